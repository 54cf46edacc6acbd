"""Inspect a built wheel: it must hold the package, its data files, its LICENSE and nothing
else.

Usage: ``python tests/check_wheel.py DIST_DIR``. Then installs the wheel into a fresh
virtualenv and imports ``django_omnisend`` there, as a user would after ``pip install``.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

REQUIRED = ["django_omnisend/__init__.py", "django_omnisend/py.typed"]
FORBIDDEN_PREFIXES = ("tests/", "example_project/", "benchmarks/")


def main(dist_dir: str) -> int:
    wheels = sorted(Path(dist_dir).glob("django_omnisend-*.whl"))
    if len(wheels) != 1:
        print(f"expected one wheel in {dist_dir}, found {wheels}")
        return 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    problems = [f"missing {name}" for name in REQUIRED if name not in names]
    problems += [f"must not ship {n}" for n in names if n.startswith(FORBIDDEN_PREFIXES)]
    # setuptools puts license_files under .dist-info/licenses/ (older: .dist-info/ itself).
    if not any(".dist-info/" in n and n.endswith("/LICENSE") for n in names):
        problems.append("no LICENSE in the wheel's .dist-info (setup.cfg license_files)")
    templates = [n for n in names if n.endswith(".html")]
    if not templates:
        problems.append("no templates in the wheel (package_data)")
    if problems:
        print("\n".join(problems))
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        python = Path(tmp) / "bin" / "python"
        subprocess.run(
            [python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheels[0]],
            check=True,
        )
        out = subprocess.run(
            [python, "-c", "import django_omnisend; print(django_omnisend.__version__)"],
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
    print(
        f"{wheels[0].name}: {len(names)} files, {len(templates)} templates, "
        f"imports as version {out.stdout.strip()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

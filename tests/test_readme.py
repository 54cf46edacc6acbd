"""The README documents every setting, and its two commands are the ones that are run."""

import configparser
import re
from pathlib import Path

from django_omnisend.conf import DEFAULTS

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text()


def _console_block_after(heading: str) -> str:
    """The first ``.. code-block:: console`` command in the section ``heading``."""
    section = README.split(f"\n{heading}\n{'=' * len(heading)}\n", 1)[1]
    block = section.split(".. code-block:: console\n", 1)[1]
    lines = [line.strip() for line in block.splitlines()[1:]]
    command = next(line for line in lines if line)
    return command


def test_every_setting_is_in_the_readme_table():
    missing = [key for key in DEFAULTS if f"``{key}``" not in README]
    assert missing == []


def test_readme_test_command_is_what_ci_runs():
    readme_command = _console_block_after("Run the tests")
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert ci_lines[-1] == readme_command
    assert readme_command.endswith("python3 -m tox -p auto")


def test_readme_first_command_runs_the_example_demo():
    """The quickstart installs the `example` extra and runs the `demo` command that
    tests/example/test_demo.py exercises."""
    command = _console_block_after("Try it: the example project")
    assert command == (
        "python3 -m pip install -q --disable-pip-version-check -e '.[example]' "
        "&& python3 example_project/manage.py demo"
    )
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    assert "django-environ" in setup["options.extras_require"]["example"]
    assert (ROOT / "example_project" / "manage.py").is_file()
    assert (ROOT / "example_project" / "members" / "management" / "commands" / "demo.py").is_file()
    # It is the first command of the README.
    first = re.search(r"\.\. code-block:: console\n\n\s+(.+)\n", README)
    assert first is not None and first.group(1).strip() == command


def test_readme_lists_every_system_check():
    checks = (ROOT / "django_omnisend" / "checks.py").read_text()
    ids = sorted(set(re.findall(r'_id\("([EWI])", (\d+)\)', checks)))
    assert ids, "no check ids found in checks.py"
    missing = [f"{kind}{int(n):03d}" for kind, n in ids if f"``{kind}{int(n):03d}``" not in README]
    assert missing == []

"""The docs site documents every setting, system check, signal and management command.

These read the ``.rst`` sources, so they run without Sphinx (the ``docs`` tox env builds the
site itself, with ``-W``). The inventory is taken from the package, not from the docs
extension, so a bug in one is caught by the other.
"""

import re
from pathlib import Path

from django.dispatch import Signal

from django_omnisend import signals
from django_omnisend.conf import DEFAULTS

from .example.readme_blocks import QUICKSTART, README, TESTING_GUIDE, code_blocks, section

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "django_omnisend"
DOCS = ROOT / "docs"


def _directive_names(page: str, directive: str) -> set[str]:
    """The arguments of every ``.. directive::`` on ``page``, one per line of arguments."""
    text = (DOCS / page).read_text()
    names: set[str] = set()
    for match in re.finditer(
        rf"^\.\. {re.escape(directive)}:: (.+(?:\n {{10,}}\S.*)*)", text, re.M
    ):
        names.update(part.strip() for part in match.group(1).splitlines())
    return names


def _check_ids() -> set[str]:
    """Every ``django_omnisend.X000`` id the package can emit (helper-built or literal)."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if {"emulator", "migrations"} & set(path.relative_to(PACKAGE).parts):
            continue
        text = path.read_text()
        found.update(
            f"{kind}{int(n):03d}"
            for kind, n in re.findall(r'_id\(\s*"([EWI])",\s*(\d+)\s*\)', text)
        )
        found.update(re.findall(r'["\']django_omnisend\.([EWI]\d{3})["\']', text))
    return found


def test_every_setting_is_documented():
    documented = _directive_names("reference/settings.rst", "omnisend-setting")
    assert sorted(set(DEFAULTS) - documented) == []
    assert sorted(documented - set(DEFAULTS)) == [], "documented settings that do not exist"


def test_every_system_check_is_documented():
    ids = _check_ids()
    assert {"E001", "W001", "I001"} <= ids, "the check ids were not found in the package"
    documented = _directive_names("reference/checks.rst", "omnisend-check")
    assert sorted(ids - documented) == []
    assert sorted(documented - ids) == [], "documented checks that the package never emits"


def test_every_signal_is_documented():
    names = {name for name, value in vars(signals).items() if isinstance(value, Signal)}
    assert names, "no signals found in django_omnisend.signals"
    documented = {
        name.removeprefix("django_omnisend.signals.")
        for name in _directive_names("reference/signals.rst", "py:data")
    }
    assert sorted(names - documented) == []


def test_every_management_command_is_documented():
    commands = {
        path.stem
        for path in (PACKAGE / "management" / "commands").glob("*.py")
        if not path.stem.startswith("_")
    }
    assert "omnisend_drain" in commands
    documented = _directive_names("reference/commands.rst", "omnisend-command")
    assert sorted(commands - documented) == []
    assert sorted(documented - commands) == [], "documented commands that do not exist"


def test_every_page_is_in_the_table_of_contents():
    index = (DOCS / "index.rst").read_text()
    pages = {
        str(path.relative_to(DOCS).with_suffix(""))
        for path in DOCS.rglob("*.rst")
        if path.parent.name != "_ext" and path.stem != "index"
    }
    listed = set(re.findall(r"^   ([\w/-]+)$", index, re.M))
    assert sorted(pages - listed) == []


def test_the_ci_runs_the_docs_build_with_warnings_as_errors():
    tox = (ROOT / "tox.ini").read_text()
    env_list = tox.split("env_list =", 1)[1].split("\n\n", 1)[0].split("skip_missing", 1)[0]
    assert "docs" in env_list.split()
    section = tox.split("[testenv:docs]", 1)[1].split("\n[", 1)[0]
    assert re.search(r"sphinx-build -W --keep-going -b html", section)


def test_quickstart_install_blocks_are_the_readmes():
    """tests/example/test_install_readme.py builds a site from the README's Install blocks;
    the quickstart shows the same blocks, in the same order."""
    readme = code_blocks(section("Install", README))
    quickstart = code_blocks(section("Install", QUICKSTART))
    assert [b.language for b in readme].count("python") == 3
    assert quickstart == readme


def test_the_testing_guide_has_the_blocks_the_install_test_runs():
    blocks = code_blocks(section("Testing your project with the emulator", TESTING_GUIDE))
    assert [b.target for b in blocks if b.language != "console"] == [
        "pytest.ini", "conftest.py", "test_omnisend.py"
    ]  # fmt: skip

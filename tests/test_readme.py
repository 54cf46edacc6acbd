"""The README's two set-up commands are the ones that are run, and it links to the docs.

That every setting and system check is documented is checked on the docs site
(tests/test_docs.py); the README only links to it.
"""

import configparser
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.rst").read_text()


def _console_block_after(heading: str) -> str:
    """The first ``.. code-block:: console`` command in the section ``heading``."""
    section = README.split(f"\n{heading}\n{'=' * len(heading)}\n", 1)[1]
    block = section.split(".. code-block:: console\n", 1)[1]
    lines = [line.strip() for line in block.splitlines()[1:]]
    command = next(line for line in lines if line)
    return command


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


def _section_heading_spans() -> list[tuple[str, int, int]]:
    """``(title, start, end)`` of every top-level (``===`` underlined) section of the README."""
    heads = [
        (m.group(1), m.start())
        for m in re.finditer(r"^([^\n]+)\n=+\n", README, re.M)
        if not m.group(1).startswith("=")
    ]
    return [
        (title, start, heads[n + 1][1] if n + 1 < len(heads) else len(README))
        for n, (title, start) in enumerate(heads)
    ]


def test_readme_has_exactly_two_set_up_commands():
    """Outside "Install" (a site's own steps), the README's console blocks are the two
    commands above: the example project and the whole test suite."""
    outside = "".join(
        README[start:end] for title, start, end in _section_heading_spans() if title != "Install"
    )
    commands = re.findall(r"\.\. code-block:: console\n\n\s+(.+)\n", outside)
    assert commands == [
        _console_block_after("Try it: the example project"),
        _console_block_after("Run the tests"),
    ]


def test_readme_links_to_docs_pages_that_exist():
    links = re.findall(r"<((?:docs/)?[\w/.-]+\.rst)>`_", README)
    assert "docs/quickstart.rst" in links and "docs/reference/settings.rst" in links
    missing = sorted({link for link in links if not (ROOT / link).is_file()})
    assert missing == []
    # Every page of the docs site is linked from the README (changelog/contributing as the
    # top-level files they include).
    included = {"docs/changelog.rst": "CHANGELOG.rst", "docs/contributing.rst": "CONTRIBUTING.rst"}
    pages = {
        included.get(str(path.relative_to(ROOT)), str(path.relative_to(ROOT)))
        for path in (ROOT / "docs").rglob("*.rst")
        if path.parent.name != "_ext" and path.name != "index.rst"
    }
    assert sorted(pages - set(links)) == []


def test_readme_says_how_to_build_the_docs():
    assert "``tox -e docs``" in README

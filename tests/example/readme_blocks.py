"""Code blocks of the README and the docs, read by section, under the convention the Install
section states (the README's "Install", the same blocks as docs/quickstart.rst's, and
docs/guides/testing.rst's "Testing your project with the emulator").

* A ``.. code-block:: python`` (or ``ini``) block starts with a comment naming the file it
  belongs to: ``# settings.py``, ``# urls.py`` (both in the project package, ``mysite/``),
  ``# conftest.py``, ``# test_omnisend.py``, ``# pytest.ini`` (next to ``manage.py``); text after
  a colon is commentary. The block is appended to that file as is.
* A ``.. code-block:: console`` block holds shell commands, one a line (a trailing ``\\``
  continues a line).
"""

from __future__ import annotations

import re
import shlex
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.rst"
QUICKSTART = ROOT / "docs" / "quickstart.rst"
TESTING_GUIDE = ROOT / "docs" / "guides" / "testing.rst"


@dataclass
class Block:
    language: str
    text: str

    @property
    def target(self) -> str:
        """The file named by the block's first line (``# settings.py: ...`` → ``settings.py``)."""
        first = self.text.splitlines()[0]
        match = re.fullmatch(r"#\s*([\w.]+\.(?:py|ini))(?::.*)?", first.strip())
        if match is None:
            raise AssertionError(
                f"README {self.language} block does not start with '# <file>':\n{self.text}"
            )
        return match.group(1)

    def commands(self) -> list[str]:
        """A console block's commands, continuation lines joined."""
        joined = self.text.replace("\\\n", " ")
        return [" ".join(line.split()) for line in joined.splitlines() if line.strip()]


def section(heading: str, readme: str | Path | None = None) -> str:
    """The text of the section ``heading`` underlined with ``=`` (up to the next one) in
    ``readme``: the text itself, a file, or by default the README."""
    if isinstance(readme, Path):
        text = readme.read_text()
    else:
        text = readme if readme is not None else README.read_text()
    start = text.index(f"\n{heading}\n{'=' * len(heading)}\n")
    body = text[start + len(heading) * 2 + 3 :]
    following = re.search(r"\n([^\n]+)\n=+\n", body)
    return body[: following.start()] if following else body


def code_blocks(text: str) -> list[Block]:
    """Every ``.. code-block::`` in ``text``, dedented, in order."""
    blocks = []
    for match in re.finditer(r"^\.\. code-block:: (\w+)\n\n((?:[ \t]+.*\n|\n)+)", text, re.M):
        blocks.append(Block(match.group(1), textwrap.dedent(match.group(2)).strip("\n") + "\n"))
    return blocks


def exports(command: str) -> dict[str, str]:
    """``export A=1 B=2`` → ``{"A": "1", "B": "2"}``."""
    words = shlex.split(command)
    assert words[0] == "export", command
    return dict(word.split("=", 1) for word in words[1:])

"""The README documents every setting the app reads."""

from pathlib import Path

from django_omnisend.conf import DEFAULTS

README = (Path(__file__).resolve().parent.parent / "README.rst").read_text()


def test_every_setting_is_in_the_readme_table():
    missing = [key for key in DEFAULTS if f"``{key}``" not in README]
    assert missing == []

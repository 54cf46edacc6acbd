"""Read a rendered HTML form's fields, as a browser would submit them unchanged.

The example tests post the admin's change forms (with their inlines) back over HTTP: the
fields are taken from the page, so only the values a test changes are spelled out.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser


class _FormFields(HTMLParser):
    def __init__(self, form_id: str) -> None:
        super().__init__()
        self.form_id = form_id
        self.inside = False
        self.fields: dict[str, str] = {}
        self._select: str | None = None
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form" and a.get("id") == self.form_id:
            self.inside = True
        if not self.inside:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("submit", "button", "image", "file"):
                return
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            self.fields[name] = a.get("value", "on" if kind == "checkbox" else "")
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.fields[self._select] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.fields[name] = ""

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self.fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.inside = False
        elif tag == "select":
            self._select = None
        elif tag == "textarea":
            self._textarea = None


def form_fields(html: str, form_id: str) -> dict[str, str]:
    """The fields of ``<form id=form_id>`` with their current values."""
    parser = _FormFields(form_id)
    parser.feed(html)
    assert parser.fields, f"no form {form_id!r} with fields in the page:\n{html[:2000]}"
    # A textarea's first newline is not part of its value (HTML's parsing rule).
    return {k: re.sub(r"^\r?\n", "", v) for k, v in parser.fields.items()}

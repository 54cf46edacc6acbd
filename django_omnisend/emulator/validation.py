"""Request-body validation that collects every failure (Omnisend reports all at once).

A :class:`Checker` gathers :class:`~.problems.FieldError` items with dotted field paths
(``identifiers[0].channels.email.status``); :meth:`Checker.raise_if_any` turns them into one
400 ``ValidationProblem``.
"""

from __future__ import annotations

import re
from typing import Any

from .problems import FieldError, validation_error
from .times import parse_rfc3339, valid_date

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")
PROPERTY_NAME_RE = re.compile(r"^[A-Za-z0-9_]{1,128}$")
UUID_RE = re.compile(
    r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[1-8][0-9a-fA-F]{3}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
)


class Checker:
    """Collects field errors for one request body."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def add(self, field: str, code: str, message: str) -> None:
        """Record one failure."""
        self.errors.append(FieldError(field, code, message))

    def obj(self, value: Any, field: str) -> bool:
        """True when ``value`` is a JSON object; records ``invalid_type`` otherwise."""
        if isinstance(value, dict):
            return True
        self.add(field, "invalid_type", "Must be an object.")
        return False

    def string(
        self, data: dict[str, Any], key: str, prefix: str = "", max_len: int | None = None
    ) -> None:
        """If ``key`` is present it must be a string (of at most ``max_len`` characters)."""
        if key not in data:
            return
        value = data[key]
        field = f"{prefix}{key}"
        if not isinstance(value, str):
            self.add(field, "invalid_type", "Must be a string.")
        elif max_len is not None and len(value) > max_len:
            self.add(field, "too_long", f"Must be at most {max_len} characters.")

    def enum(
        self, data: dict[str, Any], key: str, allowed: tuple[str, ...], prefix: str = ""
    ) -> None:
        """If ``key`` is present it must be one of ``allowed``."""
        if key in data and data[key] not in allowed:
            self.add(f"{prefix}{key}", "invalid_value", f"Must be one of: {', '.join(allowed)}.")

    def timestamp(self, data: dict[str, Any], key: str, prefix: str = "") -> None:
        """If ``key`` is present it must be an RFC 3339 timestamp with an offset."""
        if key in data and parse_rfc3339(data[key]) is None:
            self.add(f"{prefix}{key}", "invalid_format", "Must be an RFC 3339 timestamp.")

    def date(self, data: dict[str, Any], key: str, prefix: str = "") -> None:
        """If ``key`` is present it must be a ``YYYY-MM-DD`` date."""
        if key in data and not valid_date(data[key]):
            self.add(f"{prefix}{key}", "invalid_format", "Must be a date in YYYY-MM-DD format.")

    def string_list(
        self, data: dict[str, Any], key: str, max_items: int, prefix: str = "", min_items: int = 0
    ) -> None:
        """If ``key`` is present it must be a list of non-empty strings within the bounds."""
        if key not in data:
            return
        value = data[key]
        field = f"{prefix}{key}"
        if not isinstance(value, list):
            self.add(field, "invalid_type", "Must be an array of strings.")
            return
        if len(value) > max_items:
            self.add(field, "too_many", f"Must have at most {max_items} items.")
        if len(value) < min_items:
            self.add(field, "too_few", f"Must have at least {min_items} item(s).")
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                self.add(f"{field}[{i}]", "invalid_type", "Must be a non-empty string.")

    def custom_properties(
        self, data: dict[str, Any], key: str = "customProperties", prefix: str = ""
    ) -> None:
        """Custom-property rules: ≤200 names of ``[A-Za-z0-9_]{1,128}``, scalar values."""
        if key not in data:
            return
        field = f"{prefix}{key}"
        value = data[key]
        if not self.obj(value, field):
            return
        if len(value) > 200:
            self.add(field, "too_many", "Must have at most 200 properties.")
        for name, item in value.items():
            if not PROPERTY_NAME_RE.match(name):
                self.add(
                    f"{field}.{name}", "invalid_name", "Names use A-Z, a-z, 0-9 and _ (max 128)."
                )
            ok = isinstance(item, str | int | float | bool) or (
                isinstance(item, list) and all(isinstance(x, str) for x in item)
            )
            if not ok:
                self.add(
                    f"{field}.{name}",
                    "invalid_type",
                    "Must be a string, number, boolean or string array.",
                )

    def raise_if_any(self, detail: str | None = None) -> None:
        """Raise a 400 ValidationProblem when anything failed."""
        if self.errors:
            raise validation_error(self.errors, detail)


def require_object(body: Any) -> dict[str, Any]:
    """The body must be a JSON object; raise a 400 otherwise."""
    if not isinstance(body, dict):
        checker = Checker()
        checker.add("body", "invalid_type", "The request body must be a JSON object.")
        checker.raise_if_any()
    return body

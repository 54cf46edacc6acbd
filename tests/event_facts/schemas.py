"""Check recommended-event properties against Omnisend's documented schemas (test helper).

``recommended-events.json`` beside this module holds facts only (names, types, enums,
versions, required lists; its ``x-source`` names the pages and the version, 2026-03-15). Each
event's ``properties`` schema is JSON Schema 2020-12 with ``$ref``s into the file's ``$defs``.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

FACTS = Path(__file__).resolve().parent / "recommended-events.json"


@cache
def facts() -> dict[str, Any]:
    """The parsed facts file."""
    return json.loads(FACTS.read_text(encoding="utf-8"))


def documented_version(name: str) -> str:
    """Omnisend's documented ``eventVersion`` of recommended event ``name``."""
    return facts()["events"][name]["eventVersion"]


def validate_properties(name: str, properties: Any) -> None:
    """Raise AssertionError listing every way ``properties`` break event ``name``'s schema."""
    schema = {"$defs": facts()["$defs"], **facts()["events"][name]["properties"]}
    validator = Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)
    errors = sorted(validator.iter_errors(properties), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors]
        raise AssertionError(
            f"{name!r} properties break the documented schema:\n" + "\n".join(lines)
        )

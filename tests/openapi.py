"""Validate request and response bodies against Omnisend's OpenAPI contract (shared test helper).

The contract is read from the repository, ``tests/openapi_facts/`` (``contacts.json``,
``events.json``, ``batches.json``, ``brands.json``, ``products.json``,
``product-categories.json``, ``event-metadata.json``): a facts-only derivative of Omnisend's
OpenAPI files (paths, methods, parameters, schemas with types, enums, required fields, formats
and limits, status codes; no descriptions or examples).
``tests/openapi_facts/derive.py`` regenerates it by hand from Omnisend's files; the suite never
reads those, so these checks run the same from any clone and never skip.
``tests/openapi_facts/corrections.json`` then sets the few facts Omnisend documents elsewhere
(API.md §0): the ``null``s and ``gender: ""`` of live contact responses, and the ``brandID``
body of ``POST /brands/current``.

Public helpers::

    validate_request(method, path, body)                  # the operation's requestBody schema
    validate_response(method, path, status, body, strict=False)

``path`` may be a full URL, an ``/api/...`` path or a spec path (``/contacts/abc``); the query
string is ignored and literal path segments win over templates (``/contacts/tags`` is not
``/contacts/{id}``). ``body`` may be bytes, str, a parsed JSON value, or None/empty for
operations without a body. Failures raise ``AssertionError`` with the operation, the schema
location and every validation error.

How the schemas are checked: the files are OpenAPI 3.0 (no JSON Schema dialect declared), so
each document is converted to JSON Schema 2020-12 (``nullable: true`` becomes a ``"null"``
type) and validated with ``jsonschema.Draft202012Validator``; ``$ref``s resolve inside the
same document through a ``referencing`` registry. Error statuses an operation does not declare
(e.g. 401/403/429 on events, which come from Omnisend's shared gateway, API.md §5) are checked
against the shared problem schemas: ``ValidationProblem`` for 400, ``RateLimitProblem`` for 429,
``Problem`` otherwise. An undeclared success status is a failure.

``strict=True`` additionally rejects properties the schema does not declare, and requires a
problem body to carry all of ``type``, ``title``, ``status`` (equal to the HTTP status),
``detail`` and ``instance`` (RFC 9457 as Omnisend uses it).
"""

from __future__ import annotations

import copy
import functools
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_NAMES = (
    "contacts",
    "events",
    "batches",
    "brands",
    "products",
    "product-categories",
    "event-metadata",
)
FACTS_DIR = Path(__file__).resolve().parent / "openapi_facts"
PROBLEM_KEYS = ("type", "title", "status", "detail", "instance")

__all__ = ["FACTS_DIR", "load_specs", "validate_request", "validate_response"]


@functools.cache
def load_specs() -> dict[str, dict[str, Any]]:
    """The committed facts-only specs by name, corrected (parsed once; treat as read-only)."""
    specs = {
        name: json.loads((FACTS_DIR / f"{name}.json").read_text(encoding="utf-8"))
        for name in SPEC_NAMES
    }
    corrections = json.loads((FACTS_DIR / "corrections.json").read_text(encoding="utf-8"))
    for fix in corrections["corrections"]:
        *parents, last = [
            p.replace("~1", "/").replace("~0", "~") for p in fix["pointer"].split("/")[1:]
        ]
        node = specs[fix["spec"]]
        for part in parents:
            node = node[part]
        node[last] = fix["value"]
    return specs


def _to_json_schema(node: Any, strict: bool) -> Any:
    """OpenAPI 3.0 schema objects → JSON Schema 2020-12 (recursively, on a copy)."""
    if isinstance(node, list):
        return [_to_json_schema(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_json_schema(value, strict) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        if isinstance(out.get("type"), str):
            out["type"] = [out["type"], "null"]
        if isinstance(out.get("enum"), list):
            out["enum"] = [*out["enum"], None]
        if "allOf" in out or "$ref" in out:
            out = {"anyOf": [{"type": "null"}, out]}
    if strict and out.get("type") == "object" and "properties" in out:
        out.setdefault("additionalProperties", False)
    return out


@functools.cache
def _registry(strict: bool) -> tuple[Registry, dict[str, dict[str, Any]]]:
    specs = load_specs()
    converted = {name: _to_json_schema(copy.deepcopy(doc), strict) for name, doc in specs.items()}
    resources = [
        (_uri(name), Resource.from_contents(doc, default_specification=DRAFT202012))
        for name, doc in converted.items()
    ]
    return Registry().with_resources(resources), converted


def _uri(name: str) -> str:
    return f"urn:omnisend:openapi:{name}"


def _pointer(parts: list[str]) -> str:
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return quote("/" + "/".join(escaped), safe="/~")


def _spec_path(path: str) -> str:
    raw = urlsplit(path).path if "://" in path else path.split("?", 1)[0]
    if raw == "/api" or raw.startswith("/api/"):
        raw = raw[len("/api") :] or "/"
    return raw.rstrip("/") or "/"


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$")


def find_operation(method: str, path: str) -> tuple[str, str, dict[str, Any]]:
    """``(spec name, path template, operation)`` for a request; AssertionError if none."""
    specs = load_specs()
    wanted = _spec_path(path)
    candidates = []
    for name, spec in specs.items():
        for template, item in spec["paths"].items():
            if _template_regex(template).match(wanted):
                candidates.append((template.count("{"), name, template, item))
    candidates.sort(key=lambda c: c[0])  # literal segments first
    for _, name, template, item in candidates:
        operation = item.get(method.lower())
        if operation is not None:
            return name, template, operation
    raise AssertionError(f"No OpenAPI operation for {method.upper()} {wanted} in {FACTS_DIR}")


def _parse(body: Any) -> tuple[bool, Any]:
    """(present, parsed JSON) for bytes/str/parsed bodies."""
    if body is None or body in (b"", ""):
        return False, None
    if isinstance(body, bytes | bytearray):
        body = body.decode("utf-8")
    if isinstance(body, str):
        try:
            return True, json.loads(body)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"Body is not valid JSON ({exc}): {body[:200]!r}") from None
    return True, body


def _check(name: str, pointer_parts: list[str], instance: Any, strict: bool, what: str) -> None:
    registry, _ = _registry(strict)
    schema = {"$ref": f"{_uri(name)}#{_pointer(pointer_parts)}"}
    validator = Draft202012Validator(schema, registry=registry)
    errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [
            f"- at {'/'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}"
            for e in errors[:20]
        ]
        raise AssertionError(
            f"{what} does not match {name}.json#{'/'.join(pointer_parts)}:\n"
            + "\n".join(lines)
            + f"\nbody: {json.dumps(instance)[:1000]}"
        )


def _content_schema(content: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    for media_type, media in content.items():
        if "schema" in media:
            return media_type, media["schema"]
    return None


def validate_request(method: str, path: str, body: Any) -> None:
    """Assert ``body`` is what the operation's ``requestBody`` accepts."""
    name, template, operation = find_operation(method, path)
    present, parsed = _parse(body)
    request_body = operation.get("requestBody")
    what = f"Request body of {method.upper()} {template}"
    if request_body is None:
        assert not present, f"{what}: the operation takes no body"
        return
    parts = ["paths", template, method.lower(), "requestBody"]
    if "$ref" in request_body:
        ref = request_body["$ref"]
        parts = ref.lstrip("#/").split("/")
        request_body = load_specs()[name]
        for part in parts:
            request_body = request_body[part]
    if not present:
        assert not request_body.get("required"), f"{what}: a body is required"
        return
    found = _content_schema(request_body.get("content", {}))
    assert found is not None, f"{what}: no schema declared"
    _check(name, [*parts, "content", found[0], "schema"], parsed, False, what)


def _fallback_problem(name: str, status: int) -> tuple[str, list[str]]:
    wanted = {400: "ValidationProblem", 429: "RateLimitProblem"}.get(status, "Problem")
    specs = load_specs()
    for spec_name in (name, *SPEC_NAMES):
        if wanted in specs[spec_name].get("components", {}).get("schemas", {}):
            return spec_name, ["components", "schemas", wanted]
    raise AssertionError(f"No {wanted} schema in any spec")


def validate_response(method: str, path: str, status: int, body: Any, strict: bool = False) -> None:
    """Assert ``body`` matches the schema declared for ``status`` of the operation."""
    name, template, operation = find_operation(method, path)
    present, parsed = _parse(body)
    what = f"Response {status} of {method.upper()} {template}"
    responses = operation.get("responses", {})
    # A body-less response is ``{}`` in the facts (its description is dropped): test membership.
    key = str(status) if str(status) in responses else "default"
    declared = responses.get(key)
    if declared is None:
        assert status >= 400, f"{what}: status {status} is not declared in {name}.json"
        schema_name, parts = _fallback_problem(name, status)
    else:
        found = _content_schema(declared.get("content", {}))
        if found is None:
            assert not present, f"{what}: no body is declared, got {body!r:.200}"
            return
        schema_name = name
        parts = ["paths", template, method.lower(), "responses", key, "content", found[0], "schema"]
    assert present, f"{what}: a JSON body is declared but the body is empty"
    _check(schema_name, parts, parsed, strict, what)
    if strict and status >= 400:
        missing = [k for k in PROBLEM_KEYS if k not in parsed]
        assert not missing, f"{what}: problem body lacks {missing}"
        assert parsed["status"] == status, f"{what}: problem status {parsed['status']} != {status}"

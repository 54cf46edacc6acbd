"""Derive the facts-only OpenAPI test data in this directory from Omnisend's OpenAPI files.

A maintainer runs this by hand when Omnisend publishes new files; the test suite never runs it
and never reads the source files (tests/openapi.py reads only the committed output)::

    python tests/openapi_facts/derive.py [SOURCE_DIR] [--extra EXTRA_DIR]  # rewrite the files
    python tests/openapi_facts/derive.py --check [SOURCE_DIR] [--extra EXTRA_DIR]  # exit 1 if stale

``SOURCE_DIR`` holds ``contacts.json``, ``events.json``, ``batches.json`` and ``brands.json``
(default: ``../shared/omnisend/openapi`` beside the repository). ``EXTRA_DIR`` holds the files
Omnisend publishes under their own names (repository ``api-evangelist/omnisend``,
``openapi/_original/``): ``omnisend-products-api-2026-03-15.json``,
``omnisend-productcategories-api-2026-03-15.json`` and
``omnisend-event-metadata-api-2026-03-15.json`` (default: ``../spec-extra`` beside the
repository), written here as ``products.json``, ``product-categories.json`` and
``event-metadata.json``. Keep the source files outside the repository.

What is kept: paths, methods, parameters, request bodies, responses (status codes, content types,
headers), security requirements and schemes, and schemas with their types, formats, enums,
defaults, required lists, limits, ``nullable``, ``readOnly``, ``$ref`` and composition keywords.
What is dropped: every ``description``, ``summary``, ``title``, ``example(s)``, ``externalDocs``,
operation ``tags``, ``info`` apart from its version, scope descriptions, and all ``x-*``
extensions. The output is therefore not a complete OpenAPI document (responses lack their
required description); it is exactly what tests/openapi.py needs to route and validate.

The walk knows where it is in the document: names inside ``properties``, ``paths`` or
``components`` maps (a field called ``title``, say) are kept verbatim, and only keywords are
dropped. A keyword it does not know stops the run, so new prose can never slip through unseen.
Output is deterministic (sorted keys, fixed indent): re-running on the same source changes
nothing. Each file records its source file, sha256 and API version under ``x-derived-from``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

SPEC_NAMES = ("contacts", "events", "batches", "brands")
#: Output name → Omnisend's file name, for the specs read from ``--extra``.
EXTRA_SPECS = {
    "products": "omnisend-products-api-2026-03-15.json",
    "product-categories": "omnisend-productcategories-api-2026-03-15.json",
    "event-metadata": "omnisend-event-metadata-api-2026-03-15.json",
}
FACTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = FACTS_DIR.parent.parent
DEFAULT_SOURCE = REPO_ROOT.parent / "shared" / "omnisend" / "openapi"
DEFAULT_EXTRA = REPO_ROOT.parent / "spec-extra"
NOTE = (
    "Facts-only derivative of Omnisend's OpenAPI file, produced by tests/openapi_facts/derive.py: "
    "descriptions, summaries, titles and examples removed. Regenerate, do not edit by hand."
)

#: Keys dropped wherever they appear as keywords (never as names inside a map).
PROSE = frozenset(
    {"description", "summary", "title", "example", "examples", "externalDocs", "tags", "xml"}
)
#: Schema keywords whose values are kept as they are (facts, not further schemas).
SCHEMA_FACTS = frozenset(
    {
        "type", "format", "enum", "const", "default", "nullable", "required", "readOnly",
        "writeOnly", "deprecated", "minLength", "maxLength", "pattern", "minimum", "maximum",
        "exclusiveMinimum", "exclusiveMaximum", "multipleOf", "minItems", "maxItems",
        "uniqueItems", "minProperties", "maxProperties", "discriminator", "$ref",
    }
)  # fmt: skip
HTTP_METHODS = frozenset({"get", "put", "post", "delete", "options", "head", "patch", "trace"})

Walker = Callable[[Any, str], Any]


class UnknownKeyword(ValueError):
    """The source uses a key this script has not classified as fact or prose."""


def _object(node: Any, where: str, facts: frozenset[str], nested: dict[str, Walker]) -> Any:
    """Keep ``facts`` as they are, walk ``nested`` keys, drop prose and ``x-*``, refuse the rest."""
    if not isinstance(node, dict):
        raise UnknownKeyword(f"{where}: expected an object, got {type(node).__name__}")
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in facts:
            out[key] = value
        elif key in nested:
            out[key] = nested[key](value, f"{where}/{key}")
        elif key in PROSE or key.startswith("x-"):
            continue
        else:
            raise UnknownKeyword(
                f"{where}: unknown key {key!r}; classify it in derive.py as a fact or as prose"
            )
    return out


def _names(walk: Walker) -> Walker:
    """A map whose keys are names (field, path, component or status); values walked by ``walk``."""

    def walk_map(node: Any, where: str) -> dict[str, Any]:
        if not isinstance(node, dict):
            raise UnknownKeyword(f"{where}: expected an object, got {type(node).__name__}")
        return {name: walk(value, f"{where}/{name}") for name, value in node.items()}

    return walk_map


def _each(walk: Walker) -> Walker:
    def walk_list(node: Any, where: str) -> list[Any]:
        if not isinstance(node, list):
            raise UnknownKeyword(f"{where}: expected a list, got {type(node).__name__}")
        return [walk(item, f"{where}/{index}") for index, item in enumerate(node)]

    return walk_list


def schema(node: Any, where: str) -> Any:
    """A schema object: facts kept, sub-schemas walked, property names kept verbatim."""
    if isinstance(node, bool):  # additionalProperties: true/false
        return node
    return _object(
        node,
        where,
        SCHEMA_FACTS,
        {
            "properties": _names(schema),
            "additionalProperties": schema,
            "items": schema,
            "not": schema,
            "allOf": _each(schema),
            "oneOf": _each(schema),
            "anyOf": _each(schema),
        },
    )


def _media_type(node: Any, where: str) -> Any:
    return _object(node, where, frozenset(), {"schema": schema})


def _parameter(node: Any, where: str) -> Any:
    facts = frozenset(
        {"$ref", "name", "in", "required", "deprecated", "allowEmptyValue", "style", "explode",
         "allowReserved"}
    )  # fmt: skip
    return _object(node, where, facts, {"schema": schema, "content": _names(_media_type)})


def _header(node: Any, where: str) -> Any:
    facts = frozenset({"$ref", "required", "deprecated", "style", "explode"})
    return _object(node, where, facts, {"schema": schema, "content": _names(_media_type)})


def _request_body(node: Any, where: str) -> Any:
    return _object(node, where, frozenset({"$ref", "required"}), {"content": _names(_media_type)})


def _response(node: Any, where: str) -> Any:
    nested = {"content": _names(_media_type), "headers": _names(_header)}
    return _object(node, where, frozenset({"$ref"}), nested)


def _operation(node: Any, where: str) -> Any:
    nested = {
        "parameters": _each(_parameter),
        "requestBody": _request_body,
        "responses": _names(_response),
    }
    return _object(node, where, frozenset({"operationId", "security", "deprecated"}), nested)


def _path_item(node: Any, where: str) -> Any:
    nested: dict[str, Walker] = dict.fromkeys(HTTP_METHODS, _operation)
    nested["parameters"] = _each(_parameter)
    return _object(node, where, frozenset({"$ref"}), nested)


def _flow(node: Any, where: str) -> Any:
    urls = frozenset({"authorizationUrl", "tokenUrl", "refreshUrl"})
    # Scope names are facts; what each one grants is prose, so the values become "".
    return _object(node, where, urls, {"scopes": lambda scopes, _: dict.fromkeys(scopes, "")})


def _security_scheme(node: Any, where: str) -> Any:
    facts = frozenset({"type", "in", "name", "scheme", "bearerFormat", "openIdConnectUrl"})
    return _object(node, where, facts, {"flows": _names(_flow)})


def _components(node: Any, where: str) -> Any:
    nested = {
        "schemas": _names(schema),
        "parameters": _names(_parameter),
        "requestBodies": _names(_request_body),
        "responses": _names(_response),
        "headers": _names(_header),
        "securitySchemes": _names(_security_scheme),
    }
    return _object(node, where, frozenset(), nested)


def _server(node: Any, where: str) -> Any:
    return _object(node, where, frozenset({"url"}), {})


def derive(source: bytes, source_name: str) -> dict[str, Any]:
    """The facts-only document for one source file's bytes."""
    document = json.loads(source)
    info = document.get("info", {})
    facts = _object(
        document,
        "#",
        frozenset({"openapi", "security"}),
        {
            "info": lambda node, where: {"version": node["version"]},
            "paths": _names(_path_item),
            "components": _components,
            "servers": _each(_server),
        },
    )
    facts["x-derived-from"] = {
        "apiVersion": info.get("version"),
        "derivedBy": "tests/openapi_facts/derive.py",
        "note": NOTE,
        "source": source_name,
        "sourceReference": document.get("x-harvest", {}).get("source"),
        "sourceSha256": hashlib.sha256(source).hexdigest(),
    }
    return facts


def render(facts: dict[str, Any]) -> str:
    """Stable text for a derived document (sorted keys, two-space indent, trailing newline)."""
    return json.dumps(facts, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", nargs="?", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--extra", type=Path, default=DEFAULT_EXTRA)
    parser.add_argument(
        "--check", action="store_true", help="write nothing; exit 1 if a committed file is stale"
    )
    args = parser.parse_args(argv)
    sources = {name: args.source / f"{name}.json" for name in SPEC_NAMES}
    sources.update({name: args.extra / file for name, file in EXTRA_SPECS.items()})
    missing = [str(path) for path in sources.values() if not path.is_file()]
    if missing:
        print(
            f"Missing {', '.join(missing)}; pass the directories holding Omnisend's OpenAPI "
            "files (SOURCE_DIR and --extra).",
            file=sys.stderr,
        )
        return 2
    stale = []
    for name, source_file in sources.items():
        text = render(derive(source_file.read_bytes(), source_file.name))
        target = FACTS_DIR / f"{name}.json"
        current = target.read_text(encoding="utf-8") if target.is_file() else None
        if current == text:
            continue
        stale.append(target.name)
        if not args.check:
            target.write_text(text, encoding="utf-8")
    if args.check and stale:
        print(f"Stale: {', '.join(stale)}; run {Path(__file__).name} to regenerate.")
        return 1
    print("Up to date." if not stale else f"Rewrote {', '.join(stale)}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

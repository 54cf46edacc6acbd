"""tests/openapi.py and its data: it catches bad bodies, and reads only the committed facts.

The facts (tests/openapi_facts/*.json) are a derivative of Omnisend's OpenAPI files; these tests
prove they carry no prose, say where they came from, and still hold the limits the checks need.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests import openapi
from tests.openapi_facts import derive


def test_valid_and_invalid_bodies():
    openapi.validate_response("GET", "http://h/api/contacts/abc", 200, {"id": "abc", "phone": []})
    with pytest.raises(AssertionError, match="phone"):
        openapi.validate_response("GET", "/api/contacts/abc", 200, {"id": "abc", "phone": "+1"})
    with pytest.raises(AssertionError, match="not declared"):
        openapi.validate_response("POST", "/api/events", 200, b"")
    with pytest.raises(AssertionError, match="no body is declared"):
        openapi.validate_response("POST", "/api/events", 202, b"{}")
    with pytest.raises(AssertionError, match="not match"):
        openapi.validate_response("POST", "/api/contacts", 201, {"id": 1}, strict=True)
    with pytest.raises(AssertionError, match="not match"):
        openapi.validate_response("GET", "/contacts/x", 200, {"id": "x", "extra": 1}, strict=True)
    with pytest.raises(AssertionError, match="lacks"):
        openapi.validate_response("GET", "/contacts/x", 404, {"status": 404}, strict=True)
    openapi.validate_request("POST", "/api/contacts/tags", {"tags": ["a"], "emails": ["a@b.co"]})
    with pytest.raises(AssertionError):
        openapi.validate_request("POST", "/api/contacts/tags", {"emails": ["a@b.co"]})
    openapi.validate_request("PATCH", "/api/contacts/abc", {"firstName": "x"})  # $ref'd requestBody
    with pytest.raises(AssertionError, match="No OpenAPI operation"):
        openapi.validate_request("GET", "/api/nowhere", None)


def test_nullable_cursors_and_undeclared_error_statuses():
    paging = {"limit": 1, "hasMore": False, "cursors": {"after": None, "before": None}}
    openapi.validate_response(
        "GET", "/api/contacts", 200, {"contacts": [], "paging": paging}, strict=True
    )
    problem = {
        "type": "t",
        "title": "x",
        "status": 429,
        "detail": "d",
        "instance": "i",
        "retryAfter": 1,
    }
    openapi.validate_response("POST", "/api/events", 429, problem, strict=True)  # RateLimitProblem
    with pytest.raises(AssertionError):
        openapi.validate_response("POST", "/api/events", 429, {**problem, "retryAfter": "soon"})


def test_the_checks_read_the_committed_facts_and_ignore_the_environment(tmp_path, monkeypatch):
    # A fresh clone has no ../shared and no OMNISEND_OPENAPI_DIR: nothing may skip or fail.
    monkeypatch.setenv("OMNISEND_OPENAPI_DIR", str(tmp_path))
    monkeypatch.setenv("CI", "true")
    specs = openapi.load_specs()
    assert set(specs) == set(openapi.SPEC_NAMES)
    assert all(spec["x-derived-from"]["source"] == _source(n) for n, spec in specs.items())
    openapi.validate_response("GET", "/api/contacts/abc", 200, {"id": "abc"})


def _source(name):
    """The Omnisend file a committed spec is derived from."""
    return derive.EXTRA_SPECS.get(name, f"{name}.json")


#: Keys whose value maps names (fields, paths, components, statuses) to objects: their keys are
#: never keywords, so a field called "title" or "description" is not prose.
NAME_MAPS = {
    "properties",
    "paths",
    "schemas",
    "parameters",
    "requestBodies",
    "responses",
    "headers",
    "securitySchemes",
    "flows",
    "scopes",
    "content",
}
#: Values that are data, not schema: never walked.
DATA = {"enum", "default", "const", "required", "security", "x-derived-from"}
PROSE_KEYS = {"description", "summary", "example", "examples", "title", "externalDocs"}


def _prose_keywords(node, where="#", names=False):
    """Every (location, key) where a prose keyword or an x-* extension appears as a keyword."""
    found = []
    if isinstance(node, list):
        for index, item in enumerate(node):
            found += _prose_keywords(item, f"{where}/{index}")
    elif isinstance(node, dict):
        for key, value in node.items():
            if not names and (key in PROSE_KEYS or (key.startswith("x-") and where != "#")):
                found.append((where, key))
            if names or key not in DATA:
                found += _prose_keywords(
                    value, f"{where}/{key}", names=not names and key in NAME_MAPS
                )
    return found


def test_the_committed_facts_carry_no_prose():
    # The detector itself finds prose at keyword positions and spares field names.
    sample = {
        "properties": {"title": {"type": "string", "description": "x"}},
        "example": 1,
        "x-note": "y",
    }
    assert sorted(_prose_keywords({"components": {"schemas": {"S": sample}}})) == [
        ("#/components/schemas/S", "example"),
        ("#/components/schemas/S", "x-note"),
        ("#/components/schemas/S/properties/title", "description"),
    ]
    for name in openapi.SPEC_NAMES:
        text = (openapi.FACTS_DIR / f"{name}.json").read_text(encoding="utf-8")
        assert _prose_keywords(json.loads(text)) == [], name
    problem = openapi.load_specs()["contacts"]["components"]["schemas"]["Problem"]
    assert set(problem["properties"]) == {"type", "title", "status", "detail", "instance"}


def test_the_committed_facts_record_their_source_and_api_version():
    for name, spec in openapi.load_specs().items():
        origin = spec["x-derived-from"]
        assert origin["source"] == _source(name)
        assert origin["apiVersion"] == spec["info"]["version"]
        assert re.fullmatch(r"20\d\d(-\d\d-\d\d|-preview)?", origin["apiVersion"]), origin
        assert re.fullmatch(r"[0-9a-f]{64}", origin["sourceSha256"]), origin
        assert origin["derivedBy"] == "tests/openapi_facts/derive.py"
        assert "Facts-only" in origin["note"]


def test_the_facts_keep_the_limits_and_enums_the_checks_enforce():
    tags = {"emails": ["a@b.co"]}
    openapi.validate_request("POST", "/api/contacts/tags", {**tags, "tags": ["t"] * 100})
    with pytest.raises(AssertionError, match="too long"):  # maxItems 100
        openapi.validate_request("POST", "/api/contacts/tags", {**tags, "tags": ["t"] * 101})
    with pytest.raises(AssertionError, match="should be non-empty"):  # minItems 1
        openapi.validate_request("POST", "/api/contacts/tags", {**tags, "tags": []})
    batch = {"endpoint": "contacts", "method": "POST", "items": [{}]}
    openapi.validate_request("POST", "/api/batches", batch)
    with pytest.raises(AssertionError, match="is not one of"):  # enum
        openapi.validate_request("POST", "/api/batches", {**batch, "method": "PATCH"})


def test_the_corrections_from_omnisends_other_documents_apply():
    # Live contacts carry nulls and gender "" (API.md section 0) that the spec does not declare.
    live = {"id": "a", "customProperties": None, "phone": None, "gender": ""}
    openapi.validate_response("GET", "/api/contacts/a", 200, live, strict=True)
    with pytest.raises(AssertionError, match="gender"):
        openapi.validate_response("GET", "/api/contacts/a", 200, {**live, "gender": "x"})
    # POST /brands/current answers brandID; an empty 200 no longer passes.
    openapi.validate_response("POST", "/api/brands/current", 200, {"brandID": "b"}, strict=True)
    with pytest.raises(AssertionError, match="empty"):
        openapi.validate_response("POST", "/api/brands/current", 200, b"")


def test_the_new_specs_route_and_hold_their_limits():
    product = {"id": "p1", "title": "T", "url": "https://s/p1", "currency": "EUR"}
    openapi.validate_request("POST", "/api/products", {**product, "status": "inStock"})
    with pytest.raises(AssertionError, match="'status' is a required property"):
        openapi.validate_request("POST", "/api/products", product)
    product["status"] = "inStock"
    with pytest.raises(AssertionError, match="too long"):  # id maxLength 100
        openapi.validate_request("PUT", "/api/products/p1", {**product, "id": "x" * 101})
    openapi.validate_request("PATCH", "/api/product-categories/c1", {"title": "Shoes"})
    with pytest.raises(AssertionError, match="categoryID"):
        openapi.validate_request("POST", "/api/product-categories", {"title": "Shoes"})
    declared = {"name": "signed up", "origin": "api", "properties": {"plan": {"type": "string"}}}
    openapi.validate_request("POST", "/api/event-metadata", declared)
    with pytest.raises(AssertionError, match="is not one of"):
        openapi.validate_request(
            "PUT", "/api/event-metadata", {**declared, "properties": {"p": {"type": "text"}}}
        )
    openapi.validate_request("POST", "/api/event-metadata/query", {"category": "segments"})
    assert openapi.find_operation("POST", "/api/event-metadata/query")[1] == "/event-metadata/query"


def test_derive_drops_prose_keywords_keeps_field_names_and_refuses_unknown_keywords():
    source = {
        "openapi": "3.0.0",
        "info": {"title": "T", "version": "2026", "description": "prose"},
        "x-harvest": {"source": "ref"},
        "paths": {
            "/things": {
                "post": {
                    "summary": "prose",
                    "tags": ["Things"],
                    "requestBody": {
                        "description": "prose",
                        "content": {
                            "application/json": {
                                "example": {"title": "x"},
                                "schema": {
                                    "description": "prose",
                                    "properties": {
                                        "title": {"type": "string", "maxLength": 5},
                                        "description": {"type": "string", "example": "x"},
                                    },
                                    "required": ["title"],
                                    "x-enum-varnames": ["A"],
                                },
                            }
                        },
                    },
                    "responses": {"204": {"description": "prose"}},
                }
            }
        },
    }
    raw = json.dumps(source).encode()
    facts = derive.derive(raw, "things.json")
    schema = facts["paths"]["/things"]["post"]["requestBody"]["content"]["application/json"]
    assert schema == {
        "schema": {
            "properties": {
                "title": {"type": "string", "maxLength": 5},
                "description": {"type": "string"},
            },
            "required": ["title"],
        }
    }
    assert facts["info"] == {"version": "2026"}
    assert facts["paths"]["/things"]["post"]["responses"] == {"204": {}}
    assert facts["x-derived-from"]["apiVersion"] == "2026"
    assert facts["x-derived-from"]["sourceReference"] == "ref"
    assert derive.render(facts) == derive.render(derive.derive(raw, "things.json"))
    source["paths"]["/things"]["post"]["callbacks"] = {}
    with pytest.raises(derive.UnknownKeyword, match="'callbacks'"):
        derive.derive(json.dumps(source).encode(), "things.json")


def test_nothing_in_the_suite_or_its_runners_reaches_for_a_sibling_checkout():
    # A fresh clone has nothing beside it. Exempt: the by-hand derive script, and this file,
    # which names the old variable to prove it is ignored.
    root = openapi.FACTS_DIR.parent.parent
    exempt = {openapi.FACTS_DIR / "derive.py", Path(__file__).resolve()}
    files = [root / "tox.ini", root / ".ci" / "run", root / "setup.cfg", root / "pyproject.toml"]
    files += [path for path in (root / "tests").rglob("*.py") if path not in exempt]
    pattern = re.compile(r"\.\./shared|shared[\"'/, ]+omnisend|OMNISEND_OPENAPI_DIR")
    offenders = [
        f"{path.relative_to(root)}:{number}"
        for path in files
        if path.is_file()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []

"""tests/openapi.py itself: it catches bad bodies, and handles a missing spec directory."""

from __future__ import annotations

import pytest

from tests import openapi


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


def test_missing_spec_dir_skips_locally_and_fails_in_ci(tmp_path, monkeypatch):
    monkeypatch.setenv("OMNISEND_OPENAPI_DIR", str(tmp_path))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="OMNISEND_OPENAPI_DIR"):
        openapi.load_specs()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="missing"):
        openapi.validate_response("GET", "/api/contacts", 200, {})

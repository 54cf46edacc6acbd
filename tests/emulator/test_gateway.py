"""The gateway every /api request passes: version header, credentials, scopes, routes; v4."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import contact, problem
from tests.openapi import validate_response


def test_version_header_rules(api):
    missing = api.get("/contacts", version=None)
    assert (
        missing.status_code == 400 and problem(missing)["errors"][0]["field"] == "Omnisend-Version"
    )
    malformed = api.get("/contacts", version="v3")
    assert malformed.status_code == 400
    retired = api.get("/contacts", version="2025-12-31")
    assert retired.status_code == 410 and "2026-03-15" in problem(retired)["detail"]
    assert api.get("/contacts", version="2026-03-15").status_code == 200
    assert api.get("/contacts", version="2027-01-01").status_code == 200  # resolves to 2026-03-15


@pytest.mark.parametrize(
    "authorization",
    ["", "Omnisend-API-Key nope", "Bearer nope", "Basic dXNlcjpwYXNz", "X-API-KEY whatever"],
)
def test_bad_credentials_get_401(api, authorization):
    response = api.get("/contacts", authorization=authorization)
    assert response.status_code == 401 and problem(response)["title"] == "Unauthorized"


def test_bearer_token_revocation_and_expiry(api, emulator):
    token = emulator.issue_token()
    bearer = f"Bearer {token['access_token']}"
    assert api.get("/brands/current", authorization=bearer).status_code == 200
    emulator.revoke_token(token["access_token"])
    assert api.get("/brands/current", authorization=bearer).status_code == 401
    emulator.configure(token_expires_in=60)
    short = emulator.issue_token()
    bearer = f"Bearer {short['access_token']}"
    assert short["expires_in"] == 60
    assert api.get("/brands/current", authorization=bearer).status_code == 200
    emulator.advance_clock(61)
    assert api.get("/brands/current", authorization=bearer).status_code == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "scope"),
    [
        ("GET", "/contacts", None, "contacts.read"),
        ("POST", "/contacts", contact("a@example.com"), "contacts.write"),
        ("GET", "/contacts/000000000000000000000000", None, "contacts.read"),
        ("POST", "/contacts/tags", {"emails": ["a@example.com"], "tags": ["x"]}, "contacts.write"),
        (
            "POST",
            "/events",
            {"eventName": "x", "origin": "api", "contact": {"email": "a@example.com"}},
            "events.write",
        ),
        (
            "POST",
            "/batches",
            {"method": "POST", "endpoint": "events", "items": [{}]},
            "events.write",
        ),
        ("GET", "/batches?endpoint=contacts", None, "contacts.read"),
        ("GET", "/brands/current", None, "brands.read"),
    ],
)
def test_missing_scope_is_403_naming_it_only_when_strict(api, emulator, method, path, body, scope):
    key = emulator.issue_api_key(scopes=["segments.read"])
    response = api(method, path, json=body, authorization=f"Omnisend-API-Key {key}")
    assert response.status_code == 403 and scope not in problem(response)["detail"]
    emulator.configure(strict=True)  # Omnisend's gateway never names it (API.md section 0)
    response = api(method, path, json=body, authorization=f"Omnisend-API-Key {key}")
    assert response.status_code == 403 and scope in problem(response)["detail"]
    token = emulator.issue_token(scopes=["segments.read"])
    response = api(method, path, json=body, authorization=f"Bearer {token['access_token']}")
    assert response.status_code == 403 and scope in problem(response)["detail"]


def test_unknown_route_and_method(emulator, http, api_key):
    """No spec operation exists for these, so the body is checked against ``Problem`` alone."""
    headers = {"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": "2026-03-15"}
    for method, path, status in (("GET", "/nothing-here", 404), ("DELETE", "/contacts", 405)):
        response = http.request(method, emulator.api_url + path, headers=headers)
        assert response.status_code == status
        validate_response("GET", "/contacts/x", status, response.content, strict=True)  # Problem
        assert problem(response)["status"] == status


def test_query_parameters_are_checked_on_every_route(api):
    assert (
        api.post("/contacts", params={"dryRun": "1"}, json=contact("a@example.com")).status_code
        == 400
    )
    assert api.get("/brands/current", params={"x": "1"}).status_code == 400


def test_integration_headers_are_ignored(api):
    headers = {
        "X-INTEGRATION-NAME": "django-omnisend",
        "X-INTEGRATION-VERSION": "0.1",
        "X-OMNISEND-ORIGIN": "api",
    }
    assert api.post("/contacts", json=contact("h@example.com"), headers=headers).status_code == 201


def test_brands_are_isolated(api, emulator):
    other = emulator.add_brand(name="Other brand")
    other_key = emulator.issue_api_key(other["brandID"])
    api.post("/contacts", json=contact("x@example.com"))
    response = api.get("/contacts", authorization=f"Omnisend-API-Key {other_key}")
    assert response.json()["contacts"] == []
    assert other_key.startswith(other["brandID"] + "-")
    brand = api.get("/brands/current", authorization=f"Omnisend-API-Key {other_key}").json()
    assert brand["brandID"] == other["brandID"] and brand["name"] == "Other brand"


# -- v4 -----------------------------------------------------------------------------------------


def test_v4_contact_lookup_by_email(emulator, http):
    emulator.seed_contact(**contact("jane+tag@example.com", "subscribed"))
    token = emulator.issue_token(scopes=["contacts.read"])
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    found = http.get(
        f"{emulator.base_url}/v4/contacts/email:jane%2Btag@example.com", headers=headers
    )
    assert found.status_code == 200
    body = found.json()
    assert body["email"] == "jane+tag@example.com" and body["contactID"] == body["id"]
    missing = http.get(f"{emulator.base_url}/v4/contacts/email:nobody@example.com", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]
    key = emulator.issue_api_key()
    as_key = http.get(
        f"{emulator.base_url}/v4/contacts/email:jane%2Btag@example.com",
        headers={"Authorization": f"Omnisend-API-Key {key}"},
    )
    assert as_key.status_code == 401  # v4 took Bearer tokens only

"""The emulator answers as Omnisend does where Omnisend is lenient or says less (API.md §0).

Each test pins one documented behaviour of the live API that the emulator used to get wrong,
and, where the emulator keeps a stricter check, that ``strict=True`` turns it back on.
"""

from __future__ import annotations

import pytest

from tests.emulator.conftest import contact, problem

#: The problem types Omnisend documents (API.md §8 and the specs' ``Problem`` example).
DOCUMENTED_TYPES = {
    "https://problems.omnisend.com/validation-failed",
    "https://problems.omnisend.com/not-found",
    "https://problems.omnisend.com/rate-limit-exceeded",
    "https://problems.omnisend.com/problem",
}


def test_403_does_not_name_the_missing_scope_unless_strict(api, emulator):
    key = emulator.issue_api_key(scopes=["contacts.read"])
    body = contact("scope@example.com")
    response = api.post("/contacts", json=body, authorization=f"Omnisend-API-Key {key}")
    detail = problem(response)["detail"]
    assert response.status_code == 403 and "contacts.write" not in detail
    emulator.configure(strict=True)
    named = api.post("/contacts", json=body, authorization=f"Omnisend-API-Key {key}")
    assert named.status_code == 403 and "contacts.write" in problem(named)["detail"]


def test_contact_responses_carry_omnisends_nulls(api, emulator):
    created = api.post("/contacts", json=contact("nulls@example.com")).json()
    assert created["customProperties"] is None
    assert created["phone"] is None
    assert created["gender"] == ""
    listed = api.get("/contacts", params={"email": "nulls@example.com"}).json()["contacts"]
    assert listed[0]["customProperties"] is None and listed[0]["phone"] is None
    filled = api.post(
        "/contacts",
        json={
            **contact("nulls@example.com"),
            "identifiers": [
                {"type": "email", "id": "nulls@example.com"},
                {"type": "phone", "id": "+37060000001"},
            ],
            "gender": "f",
            "customProperties": {"plan": "pro"},
        },
    ).json()
    assert filled["phone"] == ["+37060000001"]
    assert filled["gender"] == "f" and filled["customProperties"] == {"plan": "pro"}


def test_the_2026_preview_version_is_accepted(api):
    assert api.get("/contacts", version="2026-preview").status_code == 200
    assert api.get("/contacts", version="2025-preview").status_code in (400, 410)


def test_phone_is_an_event_consent_channel_unless_strict(api, emulator):
    body = {
        "eventName": "opted in",
        "origin": "api",
        "contact": {
            "phone": "+37060000002",
            "consents": [{"channel": "phone", "createdAt": "2099-01-01T00:00:00Z"}],
            "optIns": [{"channel": "phone", "createdAt": "2099-01-01T00:00:00Z"}],
        },
    }
    assert api.post("/events", json=body).status_code == 202
    (saved,) = emulator.contacts()
    assert saved["statuses"][0]["channel"] == "sms" and saved["statuses"][0]["status"] == (
        "subscribed"
    )
    emulator.configure(strict=True)
    refused = api.post("/events", json=body)
    assert refused.status_code == 400
    fields = {e["field"] for e in problem(refused)["errors"]}
    assert "contact.consents[0].channel" in fields


def test_events_need_neither_origin_nor_contact_unless_strict(api, emulator):
    bare = {"eventName": "viewed page", "properties": {"path": "/"}}
    assert api.post("/events", json=bare, check_request=True).status_code == 202
    (event,) = emulator.events()
    assert event["eventName"] == "viewed page" and event["_contactID"] is None
    assert emulator.contacts() == []
    emulator.configure(strict=True)
    refused = api.post("/events", json=bare)
    assert {e["field"] for e in problem(refused)["errors"]} == {"origin", "contact"}


def test_problem_types_are_only_the_documented_ones(api, emulator, http):
    seen = []
    no_scope = emulator.issue_api_key(scopes=["segments.read"])
    seen.append(api.get("/contacts", authorization="Omnisend-API-Key nope"))  # 401
    seen.append(api.get("/contacts", authorization=f"Omnisend-API-Key {no_scope}"))  # 403
    seen.append(api.get("/contacts/000000000000000000000000"))  # 404
    seen.append(api.get("/contacts", version="2025-01-01"))  # 410
    seen.append(api.get("/contacts", params={"limit": 0}))  # 400
    api.post("/contacts", json=contact("a@example.com"))
    api.post("/contacts", json=contact("b@example.com"))
    a_id = emulator.get_contact("a@example.com")["id"]
    seen.append(api.patch(f"/contacts/{a_id}", json=contact("b@example.com")))  # 409
    emulator.configure(rate_limit=1)
    emulator.advance_clock(61)
    api.get("/contacts")
    seen.append(api.get("/contacts"))  # 429
    emulator.configure(rate_limit=400)
    emulator.add_fault("/api/contacts", "500", times=1)
    seen.append(http.get(emulator.api_url + "/contacts", headers=api_headers(api)))  # 500
    statuses = [r.status_code for r in seen]
    assert statuses == [401, 403, 404, 410, 400, 409, 429, 500]
    assert {problem(r)["type"] for r in seen} <= DOCUMENTED_TYPES


def api_headers(api):
    return {"Authorization": api.authorization, "Omnisend-Version": "2026-03-15"}


def test_post_brands_current_answers_the_brand_id(api, emulator):
    token = emulator.issue_token()["access_token"]
    body = {"platform": "django", "version": "0.1.0", "website": "https://shop.example.com"}
    response = api.post("/brands/current", json=body, authorization=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json() == {"brandID": emulator.default_brand_id}


@pytest.mark.parametrize("path", ["/products", "/product-categories"])
def test_products_and_categories_answer_outside_batches(api, path):
    response = api.get(path)
    assert response.status_code == 200


def test_strict_is_off_by_default_and_a_command_line_option():
    import argparse

    from django_omnisend.emulator.__main__ import add_arguments, build

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert build(vars(parser.parse_args([]))).config.strict is False
    assert build(vars(parser.parse_args(["--strict"]))).config.strict is True


def test_strict_mode_requires_event_version_on_recommended_events(api, emulator):
    order = {"eventName": "placed order", "origin": "api", "contact": {"email": "o@example.com"}}
    assert api.post("/events", json=order).status_code == 202  # Omnisend's leniency is unknown
    emulator.configure(strict=True)
    refused = api.post("/events", json=order)
    assert refused.status_code == 400
    assert problem(refused)["errors"][0]["field"] == "eventVersion"
    # Strict mode also wants the documented properties (django_omnisend.emulator.recommended).
    line = {"productID": "p", "productTitle": "P", "productPrice": 1, "productQuantity": 1}
    properties = {"orderID": "1", "currency": "EUR", "totalPrice": 1, "lineItems": [line]}
    versioned = {**order, "eventVersion": "v2", "properties": properties}
    assert api.post("/events", json=versioned, check_request=True).status_code == 202
    custom = {**order, "eventName": "signed up"}
    assert api.post("/events", json=custom).status_code == 202

"""Event metadata (declarations of custom events) over real HTTP, checked against the spec."""

from __future__ import annotations

import pytest

from tests.emulator.conftest import problem

DECLARATION = {
    "name": "plan upgraded",
    "origin": "api",
    "displayName": "Plan upgraded",
    "properties": {
        "plan": {"type": "string", "displayName": "Plan"},
        "seats": {"type": "integer"},
        "billing": {
            "type": "struct",
            "properties": {"interval": {"type": "string"}, "amount": {"type": "float"}},
        },
    },
}


def test_declare_then_query(api, emulator):
    created = api.post("/event-metadata", json=DECLARATION, check_request=True)
    assert created.status_code == 201
    event = created.json()["event"]
    assert event["name"] == "plan upgraded" and event["origins"] == ["api"]
    assert event["explicitlyDefined"] is True
    assert event["properties"]["billing"]["properties"]["amount"] == {
        "type": "float",
        "explicitlyDefined": True,
    }
    query = {"category": "segments", "events": ["plan upgraded"], "includeProperties": True}
    found = api.post("/event-metadata/query", json=query, check_request=True).json()["events"]
    assert [e["name"] for e in found] == ["plan upgraded"]
    assert set(found[0]["properties"]) == {"plan", "seats", "billing"}
    brief = api.post("/event-metadata/query", json={"category": "automations"}).json()["events"]
    assert "properties" not in brief[0]
    assert emulator.event_metadata()[0]["displayName"] == "Plan upgraded"


def test_declaring_twice_or_a_recommended_name_conflicts(api):
    api.post("/event-metadata", json=DECLARATION)
    again = api.post("/event-metadata", json=DECLARATION, check_request=True)
    assert again.status_code == 409 and "PUT" in problem(again)["detail"]
    other_origin = api.post("/event-metadata", json={**DECLARATION, "origin": "django"})
    assert other_origin.status_code == 201
    recommended = api.post("/event-metadata", json={**DECLARATION, "name": "placed order"})
    assert recommended.status_code == 409


def test_put_merges_and_never_removes(api):
    api.post("/event-metadata", json=DECLARATION)
    change = {
        "name": "plan upgraded",
        "origin": "api",
        "properties": {
            "coupon": {"type": "string"},
            "billing": {"type": "struct", "properties": {"currency": {"type": "string"}}},
            "plan": {"type": "string", "group": "Core"},
        },
    }
    merged = api("PUT", "/event-metadata", json=change, check_request=True)
    assert merged.status_code == 200
    event = merged.json()["event"]
    assert event["displayName"] == "Plan upgraded"  # omitted: kept
    assert set(event["properties"]) == {"plan", "seats", "billing", "coupon"}
    assert set(event["properties"]["billing"]["properties"]) == {"interval", "amount", "currency"}
    assert event["properties"]["plan"] == {
        "type": "string",
        "displayName": "Plan",
        "group": "Core",
        "explicitlyDefined": True,
    }
    renamed = api("PUT", "/event-metadata", json={**change, "displayName": "Upgrade"})
    assert renamed.json()["event"]["displayName"] == "Upgrade"


def test_put_cannot_change_a_declared_type_or_reach_an_undeclared_event(api, emulator):
    api.post("/event-metadata", json=DECLARATION)
    retype = {"name": "plan upgraded", "origin": "api", "properties": {"seats": {"type": "float"}}}
    conflict = api("PUT", "/event-metadata", json=retype, check_request=True)
    assert conflict.status_code == 409 and "seats" in problem(conflict)["detail"]
    assert emulator.event_metadata()[0]["properties"]["seats"]["type"] == "integer"
    missing = api("PUT", "/event-metadata", json={**retype, "name": "never declared"})
    assert missing.status_code == 404 and "POST" in problem(missing)["detail"]


@pytest.mark.parametrize(
    "change",
    [
        {"displayName": None},
        {"properties": {}},
        {"origin": None},
        {"properties": {"plan": {"displayName": "no type"}}},
        {"properties": {"plan": {"type": "text"}}},
        {"properties": {"plan": {"type": "string", "properties": {"x": {"type": "string"}}}}},
        {"properties": {"plan": {"type": "string", "group": None}}},
    ],
)
def test_declaration_validation_is_a_plain_problem(api, emulator, change):
    # A top-level None means "left out"; a nested None is sent (and must be refused).
    body = {k: v for k, v in {**DECLARATION, **change}.items() if v is not None}
    response = api.post("/event-metadata", json=body)
    assert response.status_code == 400
    assert "errors" not in problem(response)  # this API declares Problem, not ValidationProblem
    assert emulator.event_metadata() == []


def test_query_lists_sent_but_undeclared_events_and_filters(api, emulator):
    api.post("/event-metadata", json=DECLARATION)
    sent = {
        "eventName": "signed up",
        "origin": "django",
        "properties": {"plan": "pro", "trial": True, "seats": 3, "tags": ["a"], "meta": {"x": 1}},
    }
    api.post("/events", json=sent, check_request=True)
    query = {"category": "events", "includeProperties": True}
    events = api.post("/event-metadata/query", json=query).json()["events"]
    assert [(e["name"], e["explicitlyDefined"]) for e in events] == [
        ("plan upgraded", True),
        ("signed up", False),
    ]
    types = {k: v["type"] for k, v in events[1]["properties"].items()}
    assert types == {
        "plan": "string",
        "trial": "boolean",
        "seats": "integer",
        "tags": "stringList",
        "meta": "struct",
    }
    by_origin = {"category": "events", "origins": ["django"]}
    assert [
        e["name"] for e in api.post("/event-metadata/query", json=by_origin).json()["events"]
    ] == ["signed up"]
    custom_off = {"category": "events", "excludeCustomEvents": True}
    assert api.post("/event-metadata/query", json=custom_off).json() == {"events": []}
    for bad in ({}, {"category": "orders"}, {"category": "events", "includeProperties": "yes"}):
        response = api.post("/event-metadata/query", json=bad)
        assert response.status_code == 400 and "errors" not in problem(response)


def test_event_metadata_scopes(api, emulator):
    reader = f"Omnisend-API-Key {emulator.issue_api_key(scopes=['contacts.read'])}"
    assert api.post("/event-metadata", json=DECLARATION, authorization=reader).status_code == 403
    query = {"category": "segments"}
    assert api.post("/event-metadata/query", json=query, authorization=reader).status_code == 200

"""``omnisend_declare_events`` over real HTTP against the emulator, checked against the spec."""

from __future__ import annotations

import json

import pytest
import requests
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_omnisend.connect import get_client
from django_omnisend.event_declarations import register_event
from django_omnisend.exceptions import ValidationError
from tests.openapi import validate_request, validate_response

pytestmark = pytest.mark.django_db


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("omnisend_declare_events", *args, stdout=out)
    return out.getvalue()


def metadata_calls(emulator, method: str | None = None):
    """The emulator's /event-metadata requests, each checked against Omnisend's spec."""
    calls = [e for e in emulator.ledger if e.path.startswith("/api/event-metadata")]
    for entry in calls:
        validate_request(entry.method, entry.path, entry.body)
        validate_response(entry.method, entry.path, entry.status, entry.response_body)
    return [e for e in calls if method is None or e.method == method]


def writes(emulator):
    return [
        e for e in metadata_calls(emulator) if e.method in ("POST", "PUT") and "query" not in e.path
    ]


def query_omnisend(emulator, api_key: str, name: str):
    """Ask the emulator's /event-metadata/query directly, as any Omnisend client would."""
    response = requests.post(
        f"{emulator.api_url}/event-metadata/query",
        json={"category": "segments", "events": [name], "includeProperties": True},
        headers={"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": "2026-03-15"},
        timeout=10,
    )
    assert response.status_code == 200
    validate_response("POST", "/event-metadata/query", 200, response.content)
    return response.json()["events"]


def test_a_declared_event_is_queryable(emulator, sync_settings):
    register_event(
        "plan upgraded",
        {"plan": "string", "billing": {"type": "struct", "properties": {"amount": "float"}}},
        display_name="Plan upgraded",
    )
    out = run()
    assert "declared: 'plan upgraded' (origin api)" in out
    [event] = query_omnisend(emulator, sync_settings["API_KEY"], "plan upgraded")
    assert event["explicitlyDefined"] is True
    assert event["origins"] == ["api"] and event["displayName"] == "Plan upgraded"
    assert event["properties"]["billing"]["properties"]["amount"]["type"] == "float"
    assert [e.method for e in writes(emulator)] == ["POST"]


def test_a_second_run_changes_nothing_and_says_so(emulator, sync_settings):
    register_event("plan upgraded", {"plan": "string", "seats": "integer"})
    run()
    before = len(writes(emulator))
    out = run()
    assert "unchanged: 'plan upgraded'" in out
    assert "Nothing to change" in out
    assert len(writes(emulator)) == before == 1


def test_a_new_property_is_merged_and_omnisends_extras_are_kept(emulator, sync_settings):
    register_event("plan upgraded", {"plan": "string", "legacy": "boolean"})
    run()
    from django_omnisend import event_declarations

    event_declarations._registry.clear()
    register_event("plan upgraded", {"plan": "string", "seats": "integer"})
    out = run()
    assert "merged: 'plan upgraded'" in out
    assert "add property seats (integer)" in out
    assert "kept in Omnisend, not declared here: legacy" in out
    assert [e.method for e in writes(emulator)] == ["POST", "PUT"]
    [event] = query_omnisend(emulator, sync_settings["API_KEY"], "plan upgraded")
    assert set(event["properties"]) == {"plan", "legacy", "seats"}
    assert "Nothing to change" in run()


def test_an_event_sent_before_it_was_declared_gets_declared(emulator, sync_settings):
    client = get_client()
    client.events.send(
        {
            "eventName": "plan upgraded",
            "contact": {"email": "a@example.com"},
            "properties": {"plan": "pro"},
        }
    )
    register_event("plan upgraded", {"plan": "string"})
    assert "declared: 'plan upgraded'" in run()
    [event] = query_omnisend(emulator, sync_settings["API_KEY"], "plan upgraded")
    assert event["explicitlyDefined"] is True


def test_dry_run_reads_only(emulator, sync_settings):
    register_event("plan upgraded", {"plan": "string"})
    out = run("--dry-run")
    assert "[dry run]" in out and "would declare: 'plan upgraded'" in out
    assert writes(emulator) == []
    assert len(metadata_calls(emulator, "POST")) == 1  # the query
    assert query_omnisend(emulator, sync_settings["API_KEY"], "plan upgraded") == []


def test_a_changed_type_is_reported_without_a_request(emulator, sync_settings):
    register_event("plan upgraded", {"plan": "string"})
    run()
    from django_omnisend import event_declarations

    event_declarations._registry.clear()
    register_event("plan upgraded", {"plan": "integer"})
    out = run_capturing_failure()
    assert "would fail" not in out and "FAILED: 'plan upgraded'" in out
    assert "cannot change a declared type" in out
    assert [e.method for e in writes(emulator)] == ["POST"]


def run_capturing_failure() -> str:
    from io import StringIO

    out = StringIO()
    with pytest.raises(CommandError):
        call_command("omnisend_declare_events", stdout=out)
    return out.getvalue()


def test_a_key_without_events_write_is_told_which_scope(emulator, sync_settings):
    key = emulator.issue_api_key(scopes=["contacts.read", "contacts.write", "brands.read"])
    register_event("plan upgraded", {"plan": "string"})
    with override_settings(OMNISEND={**sync_settings, "API_KEY": key}):
        out = run_capturing_failure()
    assert "events.write" in out and "403" in out
    assert key not in out


def test_json_output_lists_every_outcome(emulator, sync_settings):
    register_event("plan upgraded", {"plan": "string"})
    register_event("trial started", {"days": "integer"})
    data = json.loads(run("--json"))
    [entry] = data["connections"]
    assert entry["connection"] == "default"
    assert {e["name"]: e["action"] for e in entry["events"]} == {
        "plan upgraded": "created",
        "trial started": "created",
    }


def test_no_declarations_says_how_to_add_one(emulator, sync_settings):
    assert "register_event()" in run()
    assert metadata_calls(emulator) == []


def test_the_client_turns_a_refused_declaration_into_a_clear_error(emulator, sync_settings):
    client = get_client()
    with pytest.raises(ValidationError) as caught:
        client.event_metadata.declare({"name": "plan upgraded", "origin": "api"})
    assert caught.value.status == 400
    assert "POST /api/event-metadata" in str(caught.value)


def test_all_declares_in_every_owners_brand_too(emulator, sync_settings):
    from django.contrib.auth.models import Group
    from django.contrib.contenttypes.models import ContentType

    from django_omnisend.models import Connection

    shop_brand = "65f0a1b2c3d4e5f6000000aa"
    emulator.add_brand(shop_brand, name="Shop brand")
    shop_key = emulator.issue_api_key(shop_brand)
    shop = Group.objects.create(name="Shop")
    Connection.objects.create(
        auth_type="api_key",
        api_key=shop_key,
        brand_id=shop_brand,
        owner_type=ContentType.objects.get_for_model(Group),
        owner_id=str(shop.pk),
    )
    register_event("plan upgraded", {"plan": "string"})
    out = run("--all")
    assert out.count("declared: 'plan upgraded'") == 2
    assert [e["name"] for e in emulator.event_metadata(shop_brand)] == ["plan upgraded"]
    assert [e["name"] for e in emulator.event_metadata()] == ["plan upgraded"]
    assert {e.brand_id for e in writes(emulator)} == {shop_brand, emulator.default_brand_id}
    assert run("--all").count("Nothing to change") == 2

"""``omnisend_import_orders``: past orders through event batches, over real HTTP."""

from __future__ import annotations

from collections import Counter

import pytest
from django.core.management import CommandError, call_command

from tests.event_facts.schemas import documented_version, validate_properties
from tests.openapi import validate_request, validate_response

pytestmark = pytest.mark.django_db

SOURCE = "tests.commerce.past_orders.orders"


def _api(emulator) -> list:
    return [e for e in emulator.ledger if e.path.startswith("/api/")]


def test_dry_run_sends_nothing(sync_settings, emulator, capsys):
    call_command("omnisend_import_orders", "--source", SOURCE, "--dry-run")
    out, err = capsys.readouterr()
    assert _api(emulator) == []
    assert "Would send 298 events for 149 orders in 3 batch(es); skipped 1" in out
    assert "Pause your Omnisend automations" in err


def test_refuses_to_send_until_automations_are_paused(sync_settings, emulator):
    with pytest.raises(CommandError, match="--automations-paused"):
        call_command("omnisend_import_orders", "--source", SOURCE)
    assert _api(emulator) == []


def test_bad_source_and_bad_order_say_what_to_do(sync_settings, emulator):
    with pytest.raises(CommandError, match="dotted path"):
        call_command("omnisend_import_orders", "--source", "no.such.thing", "--dry-run")
    with pytest.raises(CommandError, match=r"total_price.*Decimal"):
        call_command(
            "omnisend_import_orders", "--source", "tests.commerce.past_orders.broken", "--dry-run"
        )


def test_import_sends_valid_event_batches_and_a_rerun_counts_nothing_twice(
    sync_settings, emulator, capsys
):
    call_command("omnisend_import_orders", "--source", SOURCE, "--automations-paused")
    posts = [e for e in _api(emulator) if e.method == "POST" and e.path == "/api/batches"]
    assert [len(p.json["items"]) for p in posts] == [100, 100, 98]
    for post in posts:
        validate_request("POST", "/batches", post.json)
        assert post.json["endpoint"] == "events" and post.json["method"] == "POST"
        validate_response("POST", "/batches", post.status, post.response_body)
    events = emulator.events()
    assert Counter(e["eventName"] for e in events) == {"placed order": 149, "ordered product": 149}
    for event in events:
        assert event["eventVersion"] == documented_version(event["eventName"])
        validate_properties(event["eventName"], event["properties"])
    assert "Sent 298 events for 149 orders" in capsys.readouterr().out

    call_command("omnisend_import_orders", "--source", SOURCE, "--automations-paused")
    counted = Counter(e["eventID"] for e in emulator.events() if not e["_duplicate"])
    assert len(counted) == 298 and set(counted.values()) == {1}

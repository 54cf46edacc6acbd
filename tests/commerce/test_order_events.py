"""Orders reach the emulator over real HTTP as ``placed order`` + ``ordered product``, once."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.test import override_settings

from django_omnisend.api import ApiKeyAuth, OmnisendClient
from django_omnisend.commerce import placed_order
from django_omnisend.models import OutboxItem
from django_omnisend.sync import drain
from django_omnisend.sync.events import send_order, send_recommended
from tests.event_facts.schemas import documented_version, validate_properties
from tests.openapi import validate_request

from . import shop

pytestmark = pytest.mark.django_db

GUEST = "guest@example.com"


def _drain_until_sent(timeout: float = 60.0) -> None:
    """Drain until no event is pending (retries may wait a few seconds by design)."""
    deadline = time.monotonic() + timeout
    while OutboxItem.objects.filter(state=OutboxItem.State.PENDING).exists():
        assert time.monotonic() < deadline, "events still pending after the deadline"
        if not drain().requests:
            time.sleep(0.05)


def _counted(emulator) -> Counter:
    """eventID → how many times Omnisend (the emulator) counted it."""
    return Counter(e["eventID"] for e in emulator.events() if not e["_duplicate"])


def test_order_reaches_omnisend_as_placed_order_and_ordered_products(sync_settings, emulator):
    order = shop.order()
    items = send_order(order, email=" Guest@Example.com ")
    assert len(items) == 3  # placed order + one ordered product per line
    _drain_until_sent()
    events = emulator.events()
    assert [e["eventName"] for e in events] == [
        "placed order",
        "ordered product",
        "ordered product",
    ]
    for event in events:
        assert event["eventVersion"] == documented_version(event["eventName"])
        validate_properties(event["eventName"], event["properties"])
        body = {k: v for k, v in event.items() if not k.startswith("_")}
        validate_request("POST", "/events", body)
        assert event["contact"] == {"email": GUEST}  # identifiers only, never a status
    assert [e["properties"]["product"]["productID"] for e in events[1:]] == ["p1", "p2"]
    (contact,) = emulator.contacts()
    assert contact["email"] == GUEST
    assert contact["status"] == "nonSubscribed" and contact["optIns"] == []


def test_guest_identified_by_phone_only(sync_settings, emulator):
    (item, *_) = send_order(shop.order(), phone="+37060000001")
    assert item.payload["contact"] == {"phone": "+37060000001"}
    _drain_until_sent()
    assert {e["contact"]["phone"] for e in emulator.events()} == {"+37060000001"}


def test_guest_without_valid_identifier_sends_nothing(sync_settings, emulator):
    assert send_order(shop.order(), email="not an address", phone="12345") == []
    assert not OutboxItem.objects.exists()
    with pytest.raises(ValueError, match="email= or phone="):
        send_order(shop.order())


def test_requeued_order_is_queued_once(sync_settings, emulator):
    first = send_order(shop.order(), email=GUEST)
    _drain_until_sent()
    again = send_order(shop.order(), email=GUEST)
    assert [i.pk for i in again] == [i.pk for i in first]
    assert OutboxItem.objects.count() == 3
    assert sorted(_counted(emulator).values()) == [1, 1, 1]


def _faulted_order_is_counted_once(emulator, fault: dict) -> None:
    # Omnisend drops a repeated eventID + eventTime only for historical events: make "historical"
    # one second in the emulator, and let the app wait two before an uncertain resend.
    emulator.configure(event_history_seconds=1.0)
    emulator.add_fault(route="POST /api/events", times=1, **fault)
    items = send_order(shop.order(created_at=None), email=GUEST)
    _drain_until_sent()
    counted = _counted(emulator)
    assert sorted(counted) == sorted(i.payload["eventID"] for i in items)
    assert set(counted.values()) == {1}, counted
    names = Counter(e["eventName"] for e in emulator.events() if not e["_duplicate"])
    assert names == {"placed order": 1, "ordered product": 2}


def test_order_is_counted_once_after_a_503(sync_settings, emulator):
    with override_settings(
        OMNISEND={**sync_settings, "EVENT_HISTORY_SECONDS": 2, "RETRY_BACKOFF": 0.01}
    ):
        _faulted_order_is_counted_once(emulator, {"kind": "503"})
    assert OutboxItem.objects.filter(state=OutboxItem.State.SENT).count() == 3


def test_order_is_counted_once_when_applied_then_timed_out(sync_settings, emulator):
    """The first send lands but its answer never comes: the resend must not count twice."""
    settings = {
        **sync_settings,
        "EVENT_HISTORY_SECONDS": 2,
        "RETRY_BACKOFF": 0.01,
        "REQUEST_TIMEOUT": 0.3,
    }
    with override_settings(OMNISEND=settings):
        _faulted_order_is_counted_once(emulator, {"kind": "apply_then_hang", "seconds": 0.6})
    # The resend reached the emulator and was recognised as the same event.
    assert sum(e["_duplicate"] for e in emulator.events()) == 1


def test_emulator_counts_a_live_repeat_twice(sync_settings, emulator):
    """Why the app waits: a real-time repeat of an eventID is not deduplicated (API.md §5)."""
    item = send_recommended(placed_order(shop.order(created_at=None)), email=GUEST)
    with OmnisendClient(ApiKeyAuth(sync_settings["API_KEY"]), api_url=emulator.api_url) as client:
        client.events.send(item.payload)
        client.events.send(item.payload)
        assert _counted(emulator)[item.payload["eventID"]] == 2
        emulator.advance_clock(3600 + 1)
        client.events.send(item.payload)  # now historical: dropped as a repeat
    assert _counted(emulator)[item.payload["eventID"]] == 2

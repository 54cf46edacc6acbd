"""``omnisend_pull``: unsubscribes made inside Omnisend reach the site and stay (R-DI-1)."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_omnisend.models import DeliveryControl, SyncState
from django_omnisend.sync import drain
from django_omnisend.sync import gates as delivery
from django_omnisend.sync.payloads import parse_rfc3339
from django_omnisend.sync.pull import PULL_OVERLAP

from .adapters import RecordingAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()


def pull(*args: str) -> str:
    out = StringIO()
    call_command("omnisend_pull", *args, stdout=out)
    return out.getvalue()


def pull_json(*args: str) -> dict:
    return json.loads(pull("--json", *args))


def pulled_until():
    return (
        DeliveryControl.objects.filter(connection_key="default")
        .values_list("pulled_until", flat=True)
        .first()
    )


def make_user(name="jane", **fields):
    return User.objects.create_user(username=name, email=f"{name}@example.com", **fields)


def carries_subscribed(entry) -> bool:
    body = entry.json or {}
    return any(
        (ident.get("channels") or {}).get("email", {}).get("status") == "subscribed"
        for ident in body.get("identifiers") or []
    )


def test_unsubscribe_in_omnisend_is_handed_over_and_never_undone(
    recording_settings, emulator, api_requests
):
    jane = make_user("jane", first_name="Jane")
    make_user("joe")
    drain()
    contact = emulator.unsubscribe("jane@example.com")
    emulator.clear_ledger()

    output = pull()

    assert (
        "contacts read 2, matched users 2, status changes handed over 1, unknown contacts 0"
        in output
    )
    ((pk, status, changed_at, email),) = RecordingAdapter.calls
    assert (pk, status, email) == (jane.pk, "unsubscribed", "jane@example.com")
    assert changed_at == parse_rfc3339(contact["statuses"][0]["statusChangedAt"])
    assert pulled_until() == parse_rfc3339(contact["updatedAt"])
    # The pull only read: no writes, nobody marked for sync.
    assert all(e.method == "GET" for e in api_requests())
    assert not SyncState.objects.filter(dirty=True).exists()

    # A second pull finds nothing new to hand over and keeps its resume point.
    second = pull_json()
    assert second["handed_over"] == 0 and second["unknown"] == 0
    assert len(RecordingAdapter.calls) == 1
    assert pulled_until() == parse_rfc3339(contact["updatedAt"])

    # A later profile edit syncs the profile and leaves the unsubscribe alone.
    emulator.clear_ledger()
    jane.first_name = "Janet"
    jane.save()
    assert drain().synced == 1
    after = emulator.get_contact("jane@example.com")
    assert after["firstName"] == "Janet" and after["status"] == "unsubscribed"
    writes = [e for e in api_requests() if e.method in ("POST", "PATCH")]
    assert len(writes) == 1
    assert not any(carries_subscribed(e) for e in writes)
    assert "channels" not in writes[0].json["identifiers"][0]  # no status echoed back either


def test_default_hook_is_a_no_op_and_the_pull_stays_idempotent(sync_settings, emulator):
    make_user("jane")
    drain()
    emulator.unsubscribe("jane@example.com")
    assert pull_json()["handed_over"] == 1
    state = SyncState.objects.get()
    assert state.consent_sent_at is not None and not state.dirty
    assert pull_json()["handed_over"] == 0


def test_new_contacts_default_status_is_not_a_change(recording_settings, emulator):
    make_user("jane")
    drain()
    result = pull_json()
    assert result["matched"] == 1 and result["handed_over"] == 0
    assert RecordingAdapter.calls == []


def test_unknown_contacts_are_counted(recording_settings, emulator):
    make_user("jane")
    drain()
    emulator.seed_contact(
        identifiers=[
            {
                "type": "email",
                "id": "stranger@example.com",
                "channels": {"email": {"status": "unsubscribed"}},
            }
        ]
    )
    emulator.seed_contact(identifiers=[{"type": "phone", "id": "+37060000000"}])
    output = pull()
    assert "contacts read 3, matched users 1" in output and "unknown contacts 2" in output
    assert RecordingAdapter.calls == []


def test_user_without_a_sync_row_is_matched_by_email(recording_settings, emulator):
    with override_settings(OMNISEND={**recording_settings, "SYNC_USERS": False}):
        owner = make_user("shopper")
        User.objects.create_user(username="copycat", email="SHOPPER@example.com")
    emulator.seed_contact(
        identifiers=[
            {
                "type": "email",
                "id": "shopper@example.com",
                "channels": {"email": {"status": "unsubscribed"}},
            }
        ]
    )
    assert pull_json()["handed_over"] == 1
    assert [c[:2] for c in RecordingAdapter.calls] == [(owner.pk, "unsubscribed")]
    assert not SyncState.objects.exists()  # nothing was created or marked


def test_status_older_than_the_sites_record_is_not_handed_over(recording_settings, emulator):
    jane = make_user("jane")
    drain()
    emulator.unsubscribe("jane@example.com", at=timezone.now() - timedelta(hours=1))
    RecordingAdapter.statuses[jane.pk] = ("subscribed", timezone.now())  # newer, not sent yet
    assert pull_json()["handed_over"] == 0


def test_dry_run_hands_over_nothing_and_stores_nothing(recording_settings, emulator):
    make_user("jane")
    drain()
    emulator.unsubscribe("jane@example.com")
    assert "[dry run]" in pull("--dry-run") and "would hand over 1" in pull("--dry-run")
    assert RecordingAdapter.calls == [] and pulled_until() is None
    assert SyncState.objects.get().consent_sent_at is None


def test_pages_through_many_contacts_and_resumes(sync_settings, emulator, api_requests):
    for n in range(300):
        emulator.seed_contact(identifiers=[{"type": "email", "id": f"c{n}@example.com"}])
    emulator.advance_clock(2 * PULL_OVERLAP.total_seconds())
    for n in range(300, 310):
        emulator.seed_contact(identifiers=[{"type": "email", "id": f"c{n}@example.com"}])
    result = pull_json()
    assert result["read"] == 310 and result["unknown"] == 310
    assert len([e for e in api_requests() if e.path == "/api/contacts"]) == 2  # 250 a page
    newest = max(parse_rfc3339(c["updatedAt"]) for c in emulator.contacts())
    assert pulled_until() == newest
    emulator.clear_ledger()
    in_overlap = [
        c
        for c in emulator.contacts()
        if parse_rfc3339(c["updatedAt"]) >= newest - PULL_OVERLAP  # updatedAtFrom is inclusive
    ]
    # Only the overlap before the resume point is read again, not the 300 before it.
    assert len(in_overlap) == 10
    assert pull_json()["read"] == len(in_overlap)


def test_since_option_and_first_run_default(recording_settings, emulator):
    make_user("jane")
    drain()
    emulator.unsubscribe("jane@example.com")
    future = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = pull_json("--since", future)
    assert result["read"] == 0 and result["pulled_until"] == result["since"]
    assert pulled_until() is not None
    # The stored point is where the next run starts.
    assert pull_json()["read"] == 0
    with pytest.raises(CommandError, match="ISO 8601"):
        pull("--since", "yesterday")
    assert pull_json("--since", "2020-01-01")["handed_over"] == 1
    assert pulled_until() == parse_rfc3339(future)  # the resume point never moves back


def test_paused_connection_refuses(sync_settings, emulator, api_requests):
    from django_omnisend.connect import credential_fingerprint

    delivery.pause("default", "401: rejected", credential_fingerprint("default"))
    with pytest.raises(CommandError, match="paused") as excinfo:
        pull()
    assert excinfo.value.returncode == 1
    assert api_requests() == []


def test_no_credentials_refuses(emulator_settings):
    with (
        override_settings(OMNISEND={**emulator_settings, "API_KEY": ""}),
        pytest.raises(CommandError, match="not connected"),
    ):
        pull()


def test_a_change_visible_late_is_picked_up_by_the_overlap(recording_settings, emulator):
    jane, joe = make_user("jane"), make_user("joe")
    drain()
    jane_changed = parse_rfc3339(emulator.get_contact("jane@example.com")["updatedAt"])
    jane_changed += timedelta(seconds=1)
    emulator.advance_clock(60)
    emulator.unsubscribe("joe@example.com")
    assert pull_json()["handed_over"] == 1  # joe; jane's change is not visible yet
    newest = pulled_until()
    assert jane_changed < newest - timedelta(seconds=30)

    # Now jane's unsubscribe shows up, dated before the newest change already pulled.
    emulator.unsubscribe("jane@example.com", at=jane_changed, updated_at=jane_changed)
    assert jane_changed > newest - PULL_OVERLAP
    second = pull_json()
    assert second["handed_over"] == 1, second
    assert [c[:2] for c in RecordingAdapter.calls] == [
        (joe.pk, "unsubscribed"),
        (jane.pk, "unsubscribed"),
    ]
    assert pulled_until() == newest  # never moves back

    # Idempotent over the overlap: re-reading the same changes records nothing twice.
    third = pull_json()
    assert third["read"] == 2 and third["handed_over"] == 0
    assert len(RecordingAdapter.calls) == 2

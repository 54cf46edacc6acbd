"""``omnisend_sync_contacts``: a resumable backfill through /batches, against the emulator."""

from __future__ import annotations

import json
from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from django_omnisend.models import SyncState
from tests.users import fixture_fields

pytestmark = pytest.mark.django_db

User = get_user_model()


def existing_users(n: int, **fields) -> None:
    """Users that existed before the app was installed: bulk-created, so no signal fired."""
    User.objects.bulk_create(
        [
            User(
                username=f"user{i}",
                email=f"user{i}@example.com",
                first_name=fields.get("first_name", f"First{i}"),
                last_name=f"Last{i}",
            )
            for i in range(n)
        ]
    )


def batch_posts(emulator):
    return [e for e in emulator.ledger if e.method == "POST" and e.path == "/api/batches"]


def sync_contacts(*args) -> str:
    out = StringIO()
    call_command("omnisend_sync_contacts", "--no-progress", *args, stdout=out)
    return out.getvalue()


@pytest.mark.slow
def test_ten_thousand_users_in_at_most_110_requests(sync_settings, emulator):
    existing_users(10_000)
    assert not SyncState.objects.exists()
    out = sync_contacts()
    api = [e for e in emulator.ledger if e.path.startswith("/api/")]
    # 100 batches and the polls (one page of the batch list holds 250): every item succeeded,
    # so no batch's items are read.
    assert len(api) <= 110, Counter((e.method, e.path.split("/")[2]) for e in api)
    assert len(batch_posts(emulator)) == 100
    contacts = {c["email"]: c for c in emulator.contacts()}
    assert len(contacts) == 10_000
    for i in (0, 4_321, 9_999):
        contact = contacts[f"user{i}@example.com"]
        assert (contact["firstName"], contact["lastName"]) == (f"First{i}", f"Last{i}")
        assert contact["status"] == "nonSubscribed"
        assert contact["_welcome_messages"] == 0
    for entry in batch_posts(emulator):
        for item in entry.json["items"]:
            assert item["identifiers"][0]["sendWelcomeMessage"] is False
            assert "channels" not in item["identifiers"][0]
    assert SyncState.objects.filter(state=SyncState.State.SYNCED, dirty=False).count() == 10_000
    assert "Sent 10000" in out and "failed 0" in out


def test_interrupted_run_resumes_without_duplicates(sync_settings, emulator):
    existing_users(1_000)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    # Stops before any batch has finished: its batches stay on the rows.
    sync_contacts("--max-seconds", "0.5")
    first = len(batch_posts(emulator))
    assert first > 0
    assert SyncState.objects.exclude(batch_id="").exists()
    emulator.configure(batch_processing="immediate")
    emulator.advance_clock(120)
    emulator.tick()
    sync_contacts()
    emails = Counter(
        item["identifiers"][0]["id"]
        for entry in batch_posts(emulator)
        for item in entry.json["items"]
    )
    assert len(emails) == 1_000
    assert max(emails.values()) == 1, "a user was sent twice"
    assert len(emulator.contacts()) == 1_000
    assert not SyncState.objects.filter(dirty=True).exists()


def test_item_errors_land_on_the_right_users(sync_settings, emulator):
    existing_users(250)
    User.objects.filter(username__in=["user7", "user130"]).update(first_name="Poison")
    adapter = {**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    with override_settings(OMNISEND=adapter), pytest.raises(CommandError) as excinfo:
        sync_contacts("--fail-on-error")
    assert "2 users failed" in str(excinfo.value)
    dead = SyncState.objects.filter(state=SyncState.State.DEAD)
    assert sorted(dead.values_list("user__username", flat=True)) == ["user130", "user7"]
    assert all("gender" in row.last_error for row in dead)
    assert SyncState.objects.filter(state=SyncState.State.SYNCED).count() == 248
    assert len(emulator.contacts()) == 248


def test_dry_run_sends_nothing(sync_settings, emulator):
    existing_users(20)
    User.objects.filter(username="user3").update(**fixture_fields(email="broken"))
    out = sync_contacts("--dry-run")
    assert "20 users selected" in out
    assert "would send: 19" in out and "skip (invalid_email): 1" in out
    assert emulator.ledger == [] and not SyncState.objects.exists()


def test_selection_options(sync_settings, emulator):
    existing_users(30)
    ids = list(User.objects.order_by("pk").values_list("pk", flat=True)[:2])
    sync_contacts("--user-id", str(ids[0]), "--user-id", str(ids[1]))
    assert len(emulator.contacts()) == 2
    out = sync_contacts("--never-synced")
    assert "Marked 28 users" in out
    assert len(emulator.contacts()) == 30
    out = sync_contacts("--since", "2000-01-01")
    assert "Marked 30 users" in out and "unchanged 30" in out
    assert len(batch_posts(emulator)) == 2  # nothing new was sent the third time
    with pytest.raises(CommandError, match="not a date"):
        sync_contacts("--since", "yesterday")


def test_request_bodies_follow_the_openapi_contract(sync_settings, emulator):
    from tests.openapi import validate_request

    existing_users(5)
    sync_contacts()
    for entry in batch_posts(emulator):
        validate_request("POST", "/batches", json.loads(entry.body))


def test_an_adapter_bug_fails_one_user_of_the_backfill(sync_settings, emulator):
    existing_users(50)
    User.objects.filter(username="user9").update(first_name="Broken")
    broken = {**sync_settings, "ADAPTER": "tests.sync.adapters.BrokenAdapter"}
    with override_settings(OMNISEND=broken):
        out = sync_contacts("--no-fail-on-error")
    assert "Sent 49" in out and "retrying later 1" in out
    assert len(emulator.contacts()) == 49
    assert SyncState.objects.get(user__username="user9").state == SyncState.State.FAILED


def test_backfill_of_unverified_users_never_overwrites_an_existing_contact(sync_settings, emulator):
    existing_users(5)
    emulator.seed_contact(
        identifiers=[{"type": "email", "id": "user3@example.com"}], firstName="Shop's own"
    )
    with override_settings(OMNISEND={**sync_settings, "TRUST_EMAILS": False}):
        sync_contacts()
    assert emulator.get_contact("user3@example.com")["firstName"] == "Shop's own"
    row = SyncState.objects.get(user__username="user3")
    assert (row.reason, row.address) == ("unverified_email", None)
    assert emulator.get_contact("user4@example.com")["firstName"] == "First4"
    assert len(emulator.contacts()) == 5

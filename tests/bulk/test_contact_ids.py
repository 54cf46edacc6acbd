"""Settling a batch reads its items only when needed; contact ids are then learnt lazily.

A batch Omnisend finished with ``errorsCount == 0`` delivered every item: its rows are settled
from the counters, without ``GET /batches/{id}/items`` (one request per 100 users saved), and
keep whatever contact id they had (none, after a first backfill). Every path that uses the id
falls back to the address, and the next single upsert stores it.
"""

from __future__ import annotations

from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from django_omnisend.models import OutboxItem, SyncState
from django_omnisend.signals import contact_synced
from django_omnisend.sync import drain
from tests.commands.adapters import RecordingAdapter

from .test_sync_contacts import batch_posts, existing_users, sync_contacts

pytestmark = pytest.mark.django_db

User = get_user_model()


def items_reads(emulator) -> list:
    return [e for e in emulator.ledger if e.path.endswith("/items")]


def test_a_clean_backfill_settles_from_the_counters(sync_settings, emulator):
    existing_users(1_000)
    sync_contacts()
    api = [e for e in emulator.ledger if e.path.startswith("/api/")]
    # 10 batches and one page of the batch list: no items read, no lookups by e-mail.
    assert len(batch_posts(emulator)) == 10
    assert items_reads(emulator) == []
    assert len(api) == 11, Counter((e.method, e.path) for e in api)
    rows = SyncState.objects.all()
    assert rows.filter(state=SyncState.State.SYNCED, dirty=False).count() == 1_000
    assert set(rows.values_list("contact_id", flat=True)) == {""}
    assert len(emulator.contacts()) == 1_000


def test_a_contact_synced_receiver_makes_the_items_read(sync_settings, emulator):
    seen = []

    def on_synced(sender, user, contact_id, created, sync_state, **kwargs):
        seen.append((user.username, contact_id, created))

    contact_synced.connect(on_synced, dispatch_uid="test-contact-ids")
    try:
        existing_users(150)
        sync_contacts()
    finally:
        contact_synced.disconnect(dispatch_uid="test-contact-ids")
    assert len(items_reads(emulator)) == 2
    ids = {c["email"]: c["id"] for c in emulator.contacts()}
    assert sorted(seen) == sorted(
        (f"user{i}", ids[f"user{i}@example.com"], True) for i in range(150)
    )
    assert {r.email: r.contact_id for r in SyncState.objects.all()} == ids


def test_the_next_single_upsert_learns_the_contact_id(sync_settings, emulator):
    existing_users(3)
    sync_contacts()
    user = User.objects.get(username="user1")
    user.first_name = "Later"
    user.save()
    drain()
    row = SyncState.objects.get(user=user)
    assert row.contact_id == emulator.get_contact("user1@example.com")["id"]


def test_an_erasure_finds_a_backfilled_contact_by_its_address(sync_settings, emulator):
    existing_users(3)
    sync_contacts()
    User.objects.get(username="user2").delete()
    erasure = OutboxItem.objects.get(kind=OutboxItem.Kind.ERASURE)
    assert erasure.contact_id == ""
    drain()
    contact = emulator.get_contact("user2@example.com")
    assert (contact["firstName"], contact["lastName"], contact["status"]) == (
        "",
        "",
        "unsubscribed",
    )
    erasure.refresh_from_db()
    assert erasure.state == OutboxItem.State.SENT


def test_an_email_change_after_a_backfill_tags_the_old_contact(sync_settings, emulator):
    existing_users(3)
    sync_contacts()
    user = User.objects.get(username="user0")
    user.email = "renamed0@example.com"
    user.save()
    drain()
    assert "django:email-changed" in emulator.get_contact("user0@example.com")["tags"]
    row = SyncState.objects.get(user=user)
    assert row.email == "renamed0@example.com"
    assert row.contact_id == emulator.get_contact("renamed0@example.com")["id"]


def test_a_reconcile_after_a_backfill_without_ids_marks_nobody(sync_settings, emulator):
    existing_users(20)
    sync_contacts()
    out = StringIO()
    call_command("omnisend_reconcile", stdout=out)
    assert "marked dirty 0" in out.getvalue(), out.getvalue()


def test_a_pull_matches_backfilled_contacts_by_address(sync_settings, emulator):
    existing_users(3)
    sync_contacts()
    emulator.unsubscribe("user1@example.com")
    RecordingAdapter.statuses.clear()
    RecordingAdapter.calls.clear()
    omnisend = {**sync_settings, "ADAPTER": "tests.commands.adapters.RecordingAdapter"}
    try:
        with override_settings(OMNISEND=omnisend):
            call_command("omnisend_pull", stdout=StringIO())
        ((pk, status, _, email),) = RecordingAdapter.calls
    finally:
        RecordingAdapter.statuses.clear()
        RecordingAdapter.calls.clear()
    assert (pk, status, email) == (
        User.objects.get(username="user1").pk,
        "unsubscribed",
        "user1@example.com",
    )
    # The pull only read Omnisend.
    assert not [e for e in emulator.ledger if e.method != "GET" and "/contacts" in e.path]

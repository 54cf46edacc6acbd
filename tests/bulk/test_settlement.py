"""Batch settlement (issue 14): a row stays with its batch until Omnisend has processed it.

Real HTTP to the emulator with deferred batch processing: a batch stays ``pending`` until the
emulator's clock passes ``batch_delay``, so each test decides when Omnisend "gets to" it. The
30-minute batch lease passing is simulated by moving the rows' (and erasures') schedule back
to now, which is all the passing of that time changes in our tables.
"""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from django_omnisend.adapter import ContactAdapter
from django_omnisend.models import OutboxItem, SyncState
from django_omnisend.signals import contact_synced
from django_omnisend.sync import drain
from django_omnisend.sync.bulk import BatchSync, mark_users, select_users
from tests.sync.adapters import Consent, ConsentAdapter

from .test_sync_contacts import batch_posts, existing_users, sync_contacts

pytestmark = pytest.mark.django_db

User = get_user_model()


def post_batches_and_stop() -> None:
    """A backfill that posts its batches and stops at its first poll (Omnisend not done yet)."""
    mark_users(select_users())
    run = BatchSync()
    # The first poll finds the batches pending; the deadline then ends the run, leaving the
    # batches on the rows as an interrupted run (or a crashed one) does.
    run.poll_sleep = lambda seconds: setattr(run, "deadline", 0.0)
    run.run_bulk()


def lease_expires() -> None:
    """The batch lease (and any erasure's wait for it) is over: everything is due now."""
    now = timezone.now()
    SyncState.objects.update(lease_until=now - timedelta(seconds=1), next_attempt_at=now)
    OutboxItem.objects.filter(state=OutboxItem.State.PENDING).update(next_attempt_at=now)


def omnisend_processes_the_batches(emulator) -> None:
    emulator.advance_clock(3600)
    emulator.tick()


def test_erasure_waits_for_the_batch_carrying_the_address(sync_settings, emulator):
    existing_users(3)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    post_batches_and_stop()
    assert SyncState.objects.exclude(batch_id="").count() == 3
    User.objects.get(username="user1").delete()
    # Omnisend is slower than the batch lease: the erasure is due while the batch is pending.
    lease_expires()
    drain()
    assert emulator.get_contact("user1@example.com") is None
    erasure = OutboxItem.objects.get(kind=OutboxItem.Kind.ERASURE)
    assert erasure.state == OutboxItem.State.PENDING, "a 404 during an open batch is a retry"
    omnisend_processes_the_batches(emulator)
    lease_expires()
    drain()
    contact = emulator.get_contact("user1@example.com")
    # The queued batch created the contact; the erasure, sent after it, anonymised it.
    assert contact is not None
    assert (contact["firstName"], contact["lastName"]) == ("", "")
    assert "gdpr-erased" in contact["tags"]
    assert contact["status"] == "unsubscribed"
    erasure.refresh_from_db()
    assert erasure.state == OutboxItem.State.SENT


def test_a_lease_expiry_never_lets_an_old_batch_land_after_a_newer_send(sync_settings, emulator):
    existing_users(3)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    post_batches_and_stop()
    user = User.objects.get(username="user2")
    user.first_name = "Newer"
    user.save()
    lease_expires()
    drain()  # the row stays with its unsettled batch: nothing is sent for it yet
    row = SyncState.objects.get(user=user)
    assert row.batch_id and row.dirty
    assert not [e for e in emulator.ledger if e.method == "POST" and e.path == "/api/contacts"]
    omnisend_processes_the_batches(emulator)  # the old state lands now...
    lease_expires()
    drain()  # ...is settled, and the newer save is sent after it
    assert emulator.get_contact("user2@example.com")["firstName"] == "Newer"
    row.refresh_from_db()
    assert (row.batch_id, row.dirty, row.state) == ("", False, SyncState.State.SYNCED)
    assert emulator.get_contact("user1@example.com")["firstName"] == "First1"
    assert not SyncState.objects.filter(dirty=True).exists()


def test_the_drain_settles_an_abandoned_backfill(sync_settings, emulator):
    existing_users(3)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    post_batches_and_stop()
    omnisend_processes_the_batches(emulator)
    lease_expires()
    drain()  # nobody re-runs the backfill: the drain settles its batch instead
    assert len(batch_posts(emulator)) == 1
    singles = [e for e in emulator.ledger if e.method == "POST" and e.path == "/api/contacts"]
    assert singles == [], "the batch already delivered these users"
    rows = SyncState.objects.all()
    assert all(r.state == SyncState.State.SYNCED and not r.dirty for r in rows)
    assert {r.email for r in rows} == {c["email"] for c in emulator.contacts()}
    # The batch reported no error: settled from its counters, its items never read.
    assert not [e for e in emulator.ledger if e.path.endswith("/items")]


def test_a_backfill_rerun_after_the_lease_polls_the_open_batch_instead_of_resending(
    sync_settings, emulator
):
    existing_users(3)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    post_batches_and_stop()
    first = SyncState.objects.get(user__username="user0").batch_id
    lease_expires()
    post_batches_and_stop()  # the rows are due again by their lease, and their batch open
    assert len(batch_posts(emulator)) == 1
    assert set(SyncState.objects.values_list("batch_id", flat=True)) == {first}
    omnisend_processes_the_batches(emulator)
    sync_contacts()
    assert len(batch_posts(emulator)) == 1
    assert not SyncState.objects.filter(dirty=True).exists()


def reconcile() -> str:
    out = StringIO()
    call_command("omnisend_reconcile", stdout=out)
    return out.getvalue()


def test_a_reconcile_right_after_a_backfill_marks_nobody(sync_settings, emulator):
    existing_users(20)
    sync_contacts()
    out = reconcile()
    assert "marked dirty 0" in out, out
    assert not SyncState.objects.filter(dirty=True).exists()


def on_synced(sender, **kwargs) -> None:
    """A receiver that needs nothing but makes the settlement learn contact ids."""


def test_contact_ids_are_read_by_email_when_the_items_lack_them(sync_settings, emulator):
    existing_users(3)
    emulator.configure(batch_item_responses=False)
    # A receiver needs each contact's id: the items are read, and ids looked up by e-mail.
    contact_synced.connect(on_synced, dispatch_uid="test-settlement")
    try:
        sync_contacts()
    finally:
        contact_synced.disconnect(dispatch_uid="test-settlement")
    contacts = {c["email"]: c["id"] for c in emulator.contacts()}
    assert {r.email: r.contact_id for r in SyncState.objects.all()} == contacts


@pytest.fixture
def opted_out(sync_settings):
    """Users whose opt-out Django recorded: the backfill carries it in the batch."""
    ConsentAdapter.decisions = {}
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    ):
        yield ConsentAdapter.decisions
    ConsentAdapter.decisions = {}


def test_an_opt_out_carried_by_a_batch_is_not_sent_again(opted_out, emulator):
    existing_users(3)
    at = timezone.now() - timedelta(days=1)
    for user in User.objects.all():
        opted_out[user.pk] = Consent(subscribed=False, at=at)
    sync_contacts()
    entries = batch_posts(emulator)
    assert len(entries) == 1
    assert all("channels" in item["identifiers"][0] for item in entries[0].json["items"])
    assert all(row.consent_sent_at == at for row in SyncState.objects.all())
    before = len(emulator.ledger)
    out = reconcile()
    assert "marked dirty 0" in out, out
    User.objects.get(username="user0").save()  # a profile save: no consent to resend
    drain()
    sent = [e for e in emulator.ledger[before:] if e.method == "POST"]
    assert len(sent) == 0, "unchanged profile, consent already sent"


class DeletingAdapter(ContactAdapter):
    """Deletes ``user1`` while the backfill plans ``user2``: after its item was built."""

    def get_contact_fields(self, user):
        if user.username == "user2":
            User.objects.filter(username="user1").delete()
        return super().get_contact_fields(user)


def test_a_user_deleted_while_the_batch_is_built_is_not_sent(sync_settings, emulator):
    existing_users(3)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.bulk.test_settlement.DeletingAdapter"}
    ):
        post_batches_and_stop()
    sent = [item["identifiers"][0]["id"] for item in batch_posts(emulator)[0].json["items"]]
    # Deleted before its address was bound: it owned nothing (no erasure follows), so its
    # item, built already, is dropped instead of creating a contact nobody will erase.
    assert sorted(sent) == ["user0@example.com", "user2@example.com"]
    omnisend_processes_the_batches(emulator)
    lease_expires()
    drain()
    assert emulator.get_contact("user1@example.com") is None
    assert emulator.get_contact("user2@example.com") is not None
    assert not OutboxItem.objects.filter(kind=OutboxItem.Kind.ERASURE).exists()

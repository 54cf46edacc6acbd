"""The drain clears a backlog through ``/batches`` (issue 17), over real HTTP to the emulator.

A backlog here is what an outage, a mass update or a reconcile leaves: users Omnisend already
knows (a backfill wrote them), all dirty at once. Plain profile updates go out 100 to a
``POST /batches``; what must stay ordered (e-mail changes, opt-ins, first writes) still goes
one request at a time. Request counts are bounds derived from the design, never timings.
"""

from __future__ import annotations

import signal
from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from django_omnisend.models import OutboxItem, SyncState
from django_omnisend.sync import batches as batching
from django_omnisend.sync import drain, policy
from django_omnisend.sync import loop as sync
from django_omnisend.sync.bulk import mark_users, select_users
from tests.bulk.test_sync_contacts import existing_users, sync_contacts
from tests.sync.adapters import Consent, ConsentAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()


def backlog(n: int, first_name: str = "Changed") -> None:
    """``n`` users Omnisend knows (a backfill wrote them), then all changed and dirty."""
    existing_users(n)
    sync_contacts()
    User.objects.update(first_name=first_name)  # a mass update: no signal, like a migration
    mark_users(select_users())


def api_since(emulator, start: int):
    return [e for e in emulator.ledger[start:] if e.path.startswith("/api/")]


def single_writes(entries):
    return [e for e in entries if e.method in ("POST", "PATCH") and e.path == "/api/contacts"]


def shape(entries) -> Counter:
    return Counter((e.method, e.path.split("?")[0].rstrip("/").split("/")[-1]) for e in entries)


def test_a_backlog_of_plain_updates_goes_out_as_batches(sync_settings, emulator):
    backlog(1_000)
    start = len(emulator.ledger)
    result = drain()
    api = api_since(emulator, start)
    # 1,000 plain updates: 10 batches of 100; Omnisend processed them all without an error,
    # so one page of the batch list settles them all and no batch's items are read.
    posts = [e for e in api if e.method == "POST" and e.path == "/api/batches"]
    assert len(posts) == 10, shape(api)
    assert all(len(e.json["items"]) == 100 for e in posts)
    assert single_writes(api) == [], shape(api)
    assert not [e for e in api if e.path.endswith("/items")], shape(api)
    assert len(api) <= 10 + 1, shape(api)
    assert result.requests == len(api)
    assert result.synced == 1_000
    for item in (i for e in posts for i in e.json["items"]):
        assert item["identifiers"][0]["sendWelcomeMessage"] is False
        assert "channels" not in item["identifiers"][0]
    assert {c["firstName"] for c in emulator.contacts()} == {"Changed"}
    rows = SyncState.objects.all()
    assert rows.count() == 1_000
    assert not rows.filter(dirty=True).exists()
    assert not rows.exclude(batch_id="").exists()
    assert set(rows.values_list("state", flat=True)) == {SyncState.State.SYNCED}


def test_a_small_backlog_still_goes_one_request_per_user(sync_settings, emulator):
    backlog(policy.BATCH_THRESHOLD - 1)
    start = len(emulator.ledger)
    drain()
    api = api_since(emulator, start)
    assert not [e for e in api if e.path == "/api/batches"], shape(api)
    assert len(single_writes(api)) == policy.BATCH_THRESHOLD - 1


@pytest.fixture
def consent_settings(sync_settings):
    ConsentAdapter.decisions = {}
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    ):
        yield ConsentAdapter.decisions
    ConsentAdapter.decisions = {}


def test_ordered_kinds_go_singly_inside_a_backlog(consent_settings, emulator):
    backlog(300)
    moved = User.objects.get(username="user5")
    moved.email = "moved5@example.com"
    moved.save()
    opted = User.objects.get(username="user6")
    consent_settings[opted.pk] = Consent(subscribed=True, at=timezone.now())
    opted_out = User.objects.get(username="user7")
    consent_settings[opted_out.pk] = Consent(subscribed=False, at=timezone.now())
    User.objects.create_user("newcomer", "newcomer@example.com", "x")
    start = len(emulator.ledger)
    drain()
    api = api_since(emulator, start)
    batched = {
        item["identifiers"][0]["id"]
        for e in api
        if e.method == "POST" and e.path == "/api/batches"
        for item in e.json["items"]
    }
    singles = Counter(
        e.json["identifiers"][0]["id"] for e in single_writes(api) if e.path == "/api/contacts"
    )
    ordered = {
        "moved5@example.com",
        "user6@example.com",
        "user7@example.com",
        "newcomer@example.com",
    }
    assert set(singles) == ordered, singles
    assert not batched & ordered
    assert len(batched) == 300 - 3  # every other backlog user went in a batch
    # The e-mail change tagged the contact left behind; the opt-in was sent as such.
    assert "django:email-changed" in emulator.get_contact("user5@example.com")["tags"]
    assert emulator.get_contact("user6@example.com")["status"] == "subscribed"
    assert emulator.get_contact("user7@example.com")["status"] == "unsubscribed"
    assert emulator.get_contact("newcomer@example.com") is not None
    assert not SyncState.objects.filter(dirty=True).exists()
    row = SyncState.objects.get(user=opted)
    assert row.consent_sent_at is not None and row.contact_id


def test_a_failed_item_in_a_drained_batch_is_recorded_and_only_that_batch_read(
    sync_settings, emulator
):
    backlog(200)
    # One poisoned user in each claim of 100: the drain claims in (next_attempt_at, id) order,
    # which follows the user keys only when they are ordered integers (not UUIDs).
    claim_order = list(
        SyncState.objects.order_by("next_attempt_at", "id").values_list("user__username", flat=True)
    )
    poisoned = [claim_order[3], claim_order[150]]
    User.objects.filter(username__in=poisoned).update(first_name="Poison")
    start = len(emulator.ledger)
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    ):
        result = drain()
    api = api_since(emulator, start)
    posts = [e for e in api if e.method == "POST" and e.path == "/api/batches"]
    assert len(posts) == 2
    # Each batch had one failed item: its items are read to learn which (and only then).
    assert len([e for e in api if e.path.endswith("/items")]) == 2, shape(api)
    dead = SyncState.objects.filter(state=SyncState.State.DEAD)
    assert sorted(dead.values_list("user__username", flat=True)) == sorted(poisoned)
    assert all("gender" in row.last_error and not row.dirty for row in dead)
    assert result.dead == 2 and result.synced == 198
    assert SyncState.objects.filter(state=SyncState.State.SYNCED, dirty=False).count() == 198


def test_a_batch_refused_by_a_5xx_is_retried_with_backoff(sync_settings, emulator):
    backlog(100)
    emulator.add_fault(route="POST /api/batches", kind="503", times=1)
    result = drain()
    retrying = SyncState.objects.filter(state=SyncState.State.FAILED)
    assert retrying.count() == 100 and result.retried == 100
    assert all(r.dirty and r.attempts == 1 and r.batch_id == "" for r in retrying)
    assert all(r.next_attempt_at > timezone.now() for r in retrying)
    SyncState.objects.update(next_attempt_at=timezone.now())
    drain()
    assert not SyncState.objects.filter(dirty=True).exists()
    assert {c["firstName"] for c in emulator.contacts()} == {"Changed"}


def omnisend_processes_the_batches(emulator) -> None:
    emulator.advance_clock(3600)
    emulator.tick()


def due_now() -> None:
    """The rows' wait for their batch is over (as after the lease or the poll interval)."""
    now = timezone.now()
    SyncState.objects.update(lease_until=None, lease_owner="", next_attempt_at=now)
    OutboxItem.objects.filter(state=OutboxItem.State.PENDING).update(next_attempt_at=now)


def test_an_erasure_and_a_new_save_wait_for_an_outstanding_drained_batch(
    sync_settings, emulator, monkeypatch
):
    # A drain pass does not wait for Omnisend: it leaves its batches to a later pass.
    monkeypatch.setattr(sync, "BATCH_WAIT_SECONDS", 0.0)
    backlog(100)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    start = len(emulator.ledger)
    drain()
    posts = [e for e in api_since(emulator, start) if e.method == "POST"]
    assert [e.path for e in posts] == ["/api/batches"]
    assert SyncState.objects.filter(batch_id="").count() == 0
    newer = User.objects.get(username="user1")
    newer.first_name = "Newer"
    newer.save()
    User.objects.get(username="user2").delete()
    due_now()
    drain()  # the batch is still open: nothing is sent for either user
    api = api_since(emulator, start)
    assert single_writes(api) == [], shape(api)
    assert not [e for e in api if e.method == "PATCH"], shape(api)
    erasure = OutboxItem.objects.get(kind=OutboxItem.Kind.ERASURE)
    assert erasure.state == OutboxItem.State.PENDING
    row = SyncState.objects.get(user=newer)
    assert row.batch_id and row.dirty
    omnisend_processes_the_batches(emulator)  # the batch's (older) state lands now...
    due_now()
    drain()  # ...is settled; the newer save and the erasure go after it
    due_now()
    drain()
    assert emulator.get_contact("user1@example.com")["firstName"] == "Newer"
    erased = emulator.get_contact("user2@example.com")
    assert (erased["firstName"], erased["status"]) == ("", "unsubscribed")
    erasure.refresh_from_db()
    assert erasure.state == OutboxItem.State.SENT
    assert not SyncState.objects.filter(dirty=True).exists()
    assert not SyncState.objects.exclude(batch_id="").exists()


def test_open_batches_are_polled_through_the_batch_list(sync_settings, emulator, monkeypatch):
    monkeypatch.setattr(sync, "BATCH_WAIT_SECONDS", 0.0)
    backlog(500)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    drain()
    assert SyncState.objects.exclude(batch_id="").count() == 500
    omnisend_processes_the_batches(emulator)
    due_now()
    start = len(emulator.ledger)
    drain()
    api = api_since(emulator, start)
    # Five outstanding batches: one page of the batch list, not a request per batch.
    assert shape(api) == Counter({("GET", "batches"): 1}), shape(api)
    assert not SyncState.objects.filter(dirty=True).exists()
    assert not SyncState.objects.exclude(batch_id="").exists()


def test_a_pass_that_leaves_open_batches_looks_again_within_the_poll_interval(
    sync_settings, emulator, monkeypatch
):
    monkeypatch.setattr(sync, "BATCH_WAIT_SECONDS", 0.0)
    backlog(100)
    emulator.configure(batch_processing="deferred", batch_delay=60)
    before = timezone.now()
    drain()
    rows = SyncState.objects.all()
    assert rows.exclude(batch_id="").count() == 100
    latest = before + timedelta(seconds=batching.BATCH_POLL_SECONDS + 60)
    assert all(r.next_attempt_at <= latest for r in rows)


def settled_everywhere() -> bool:
    return not (
        SyncState.objects.filter(dirty=True).exists()
        or SyncState.objects.exclude(batch_id="").exists()
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_sigkill_mid_backlog_loses_nothing(sync_settings, emulator):
    from tests.sync.test_workers import assert_emulator_matches_database
    from tests.workers import start_drain, stop, wait_until

    backlog(500)
    for user in User.objects.all():  # each user's own final state, to check it arrives
        user.first_name = f"Final {user.pk}"
        user.save()
    # Slow answers keep the backlog in flight long enough to be cut in the middle.
    emulator.add_fault(route="*", kind="latency", rate=1.0, seconds=0.3)
    start = len(emulator.ledger)
    overrides = {"SYNC_USERS": True, "TASK_BACKEND": None, "LEASE_SECONDS": 2}
    victim = start_drain(overrides, "--loop", "--max-seconds", "60", "--idle-sleep", "0.05")
    posted = lambda: [e for e in emulator.ledger[start:] if e.path == "/api/batches"]  # noqa: E731
    assert wait_until(lambda: len(posted()) >= 1, 30)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    survivor = start_drain(overrides, "--loop", "--max-seconds", "90", "--idle-sleep", "0.05")
    try:
        assert wait_until(settled_everywhere, 90)
    finally:
        _, err = stop(survivor)
    assert "Traceback" not in err, err
    assert_emulator_matches_database(emulator)
    assert set(SyncState.objects.values_list("state", flat=True)) == {SyncState.State.SYNCED}

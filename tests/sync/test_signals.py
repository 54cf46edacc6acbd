"""The contact signals' documented contract, from the drain and the bulk sync, over real HTTP.

The receivers below have exactly the signatures README.rst's "Signals" section documents and
check that nothing else arrives in ``**kwargs`` (Django adds only ``signal``), so a send that
drifts from the documented arguments fails here.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from django_omnisend import exceptions
from django_omnisend.models import SyncState
from django_omnisend.signals import contact_sync_failed, contact_synced
from django_omnisend.sync import drain
from django_omnisend.sync.bulk import BatchSync, mark_users, select_users

pytestmark = pytest.mark.django_db

User = get_user_model()


@dataclass
class Synced:
    sender: Any
    user: Any
    contact_id: Any
    created: Any
    sync_state: Any


@dataclass
class Failed:
    sender: Any
    user: Any
    error: Any
    permanent: Any
    sync_state: Any


@pytest.fixture
def synced():
    """Every ``contact_synced`` sent during the test, by a receiver written from the README."""
    calls: list[Synced] = []

    def on_synced(sender, user, contact_id, created, sync_state, **kwargs):
        assert kwargs == {"signal": contact_synced}, kwargs
        calls.append(Synced(sender, user, contact_id, created, sync_state))

    contact_synced.connect(on_synced, weak=False, dispatch_uid="test-signals-synced")
    yield calls
    contact_synced.disconnect(dispatch_uid="test-signals-synced")


@pytest.fixture
def failed():
    """Every ``contact_sync_failed`` sent during the test (README signature)."""
    calls: list[Failed] = []

    def on_failed(sender, user, error, permanent, sync_state, **kwargs):
        assert kwargs == {"signal": contact_sync_failed}, kwargs
        calls.append(Failed(sender, user, error, permanent, sync_state))

    contact_sync_failed.connect(on_failed, weak=False, dispatch_uid="test-signals-failed")
    yield calls
    contact_sync_failed.disconnect(dispatch_uid="test-signals-failed")


def make_user(username="jane", email="jane@example.com", **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def existing_users(n: int, first_name: str = "First") -> list[Any]:
    """Users that existed before the app was installed (bulk-created: nothing marked)."""
    User.objects.bulk_create(
        User(username=f"user{i}", email=f"user{i}@example.com", first_name=f"{first_name}{i}")
        for i in range(n)
    )
    return list(User.objects.order_by("pk"))


def sync_contacts(*args: str) -> str:
    out = StringIO()
    call_command("omnisend_sync_contacts", "--no-progress", *args, stdout=out)
    return out.getvalue()


def receiver_errors(caplog) -> list[str]:
    """What the receivers raised, as Django's ``send_robust()`` logged it."""
    return [
        str(r.exc_info[1])
        for r in caplog.records
        if r.name == "django.dispatch" and r.levelno == logging.ERROR and r.exc_info
    ]


def drain_deleting(emulator, user) -> None:
    """Run :func:`drain` and delete ``user`` while their contact request is in flight.

    The test holds the emulator's lock, so the request that reached the emulator waits for its
    answer while the user is deleted (in the test's own committed transaction); the drain
    runs in a thread with its own database connection.
    """
    failures: list[BaseException] = []

    def run() -> None:
        try:
            drain()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    sent = len(emulator.ledger_for("/api/contacts", "POST"))
    worker = threading.Thread(target=run)
    with emulator.lock:
        worker.start()
        while len(emulator.ledger_for("/api/contacts", "POST")) == sent:
            assert worker.is_alive(), failures
            time.sleep(0.01)
        User.objects.filter(pk=user.pk).delete()
    worker.join()
    assert not failures, failures


# -- the drain ------------------------------------------------------------------------------


def test_drain_sends_synced_with_the_documented_arguments(sync_settings, emulator, synced):
    user = make_user(first_name="Jane")
    drain()
    (call,) = synced
    contact = emulator.get_contact("jane@example.com")
    assert call.sender is User
    assert call.user == user
    assert call.contact_id == contact["id"]
    assert call.created is True
    # The row as saved, after the outcome was recorded.
    assert isinstance(call.sync_state, SyncState)
    assert call.sync_state.user_id == user.pk
    assert call.sync_state.state == SyncState.State.SYNCED
    assert call.sync_state.dirty is False
    assert call.sync_state.contact_id == contact["id"]


def test_drain_reports_an_update_as_not_created(sync_settings, emulator, synced):
    user = make_user(first_name="Jane")
    drain()
    user.first_name = "Janet"
    user.save()
    drain()
    assert [c.created for c in synced] == [True, False]
    assert synced[1].contact_id == synced[0].contact_id
    # An e-mail change binds the new address to a contact of its own (the old one is left,
    # tagged): Omnisend creates it.
    user.email = "janet@example.com"
    user.save()
    drain()
    assert [c.created for c in synced] == [True, False, True]
    assert synced[2].contact_id != synced[0].contact_id
    assert synced[2].sync_state.email == "janet@example.com"


def test_drain_sends_failed_for_a_transient_error(sync_settings, emulator, synced, failed):
    user = make_user()
    emulator.add_fault(route="POST /api/contacts", kind="503", rate=1.0)
    result = drain()
    assert result.retried == 1
    (call,) = failed
    assert call.sender is User
    assert call.user == user
    assert isinstance(call.error, exceptions.OmnisendError) and call.error.status == 503
    assert call.permanent is False
    assert call.sync_state.state == SyncState.State.FAILED
    assert call.sync_state.attempts == 1 and call.sync_state.dirty
    assert synced == []


def test_drain_sends_failed_for_a_rejected_contact(sync_settings, emulator, synced, failed):
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    ):
        user = make_user("bad", "bad@example.com", first_name="Poison")
        make_user("good", "good@example.com")
        drain()
    (call,) = failed
    assert call.sender is User and call.user == user
    assert isinstance(call.error, exceptions.ValidationError) and call.error.status == 400
    assert call.permanent is True
    assert call.sync_state.state == SyncState.State.DEAD
    assert call.sync_state.reason == "validation"
    assert [c.user.username for c in synced] == ["good"]


def test_drain_sends_failed_for_an_adapter_bug(sync_settings, emulator, failed):
    broken = {**sync_settings, "ADAPTER": "tests.sync.adapters.BrokenAdapter"}
    with override_settings(OMNISEND=broken):
        user = make_user(first_name="Broken")
        drain()
    (call,) = failed
    assert call.sender is User and call.user == user
    assert isinstance(call.error, exceptions.AdapterError)
    assert call.permanent is False
    assert call.sync_state.state == SyncState.State.FAILED


def test_a_row_put_off_by_the_local_budget_sends_nothing(sync_settings, emulator, synced, failed):
    with override_settings(OMNISEND={**sync_settings, "RATE_LIMIT": 1}):
        make_user("first", "first@example.com")
        make_user()
        result = drain()
    assert result.synced == 1 and result.deferred == 1
    assert [c.user.username for c in synced] == ["first"]
    assert failed == []  # Omnisend was not asked, so nothing failed
    waiting = SyncState.objects.get(user__username="jane")
    assert waiting.dirty and waiting.attempts == 0


@pytest.mark.django_db(transaction=True)
def test_drain_reports_a_user_deleted_meanwhile_as_none(sync_settings, emulator, synced):
    user = make_user()
    drain_deleting(emulator, user)
    (call,) = synced
    assert call.sender is User
    assert call.user is None and call.sync_state is None
    assert call.contact_id == emulator.get_contact("jane@example.com")["id"]
    assert call.created is True


@pytest.mark.django_db(transaction=True)
def test_drain_failure_of_a_deleted_user_is_permanent(sync_settings, emulator, synced, failed):
    emulator.configure(rate_limit=1)
    make_user("first", "first@example.com")
    drain()  # takes the one request Omnisend allows in this window
    user = make_user()
    drain_deleting(emulator, user)
    (call,) = failed
    assert call.sender is User
    assert call.user is None and call.sync_state is None
    assert isinstance(call.error, exceptions.RateLimited) and call.error.status == 429
    # A 429 normally only cools the brand down; with the row gone nothing will retry.
    assert call.permanent is True


def test_a_raising_receiver_neither_stops_the_drain_nor_changes_rows(
    sync_settings, emulator, synced, caplog
):
    def explode(sender, user, **kwargs):
        if user.username == "user1":
            raise RuntimeError("receiver bug")

    contact_synced.connect(explode, weak=False, dispatch_uid="test-signals-explode")
    try:
        for n in range(3):
            make_user(f"user{n}", f"user{n}@example.com")
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            result = drain()
    finally:
        contact_synced.disconnect(dispatch_uid="test-signals-explode")
    assert result.synced == 3
    assert len(emulator.contacts()) == 3
    # Every receiver heard every user, the one after the raising one included.
    assert sorted(c.user.username for c in synced) == ["user0", "user1", "user2"]
    rows = SyncState.objects.all()
    assert {(r.state, r.dirty, r.attempts) for r in rows} == {(SyncState.State.SYNCED, False, 0)}
    assert receiver_errors(caplog) == ["receiver bug"]


def test_a_raising_failure_receiver_keeps_the_recorded_retry(sync_settings, emulator, caplog):
    def explode(sender, user, error, permanent, sync_state, **kwargs):
        raise RuntimeError("receiver bug")

    contact_sync_failed.connect(explode, weak=False, dispatch_uid="test-signals-explode")
    try:
        make_user()
        make_user("other", "other@example.com")
        emulator.add_fault(route="POST /api/contacts", kind="503", rate=1.0)
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            result = drain()
    finally:
        contact_sync_failed.disconnect(dispatch_uid="test-signals-explode")
    assert result.retried == 2  # the second user was still tried
    rows = SyncState.objects.all()
    assert {(r.state, r.dirty, r.attempts) for r in rows} == {(SyncState.State.FAILED, True, 1)}
    assert receiver_errors(caplog) == ["receiver bug"] * 2


# -- the bulk sync ------------------------------------------------------------------------


def test_bulk_sync_sends_synced_per_contact(sync_settings, emulator, synced, failed):
    users = existing_users(150)
    sync_contacts()
    assert failed == []
    assert len(synced) == 150
    by_pk = {c.user.pk: c for c in synced}
    assert set(by_pk) == {u.pk for u in users}
    contacts = {c["email"]: c["id"] for c in emulator.contacts()}
    for user in users:
        call = by_pk[user.pk]
        assert call.sender is User
        assert call.user == user
        assert call.contact_id == contacts[user.email]
        assert call.created is True
        assert call.sync_state.user_id == user.pk
        assert call.sync_state.state == SyncState.State.SYNCED
        assert call.sync_state.dirty is False
    # A second backfill after changes outside save(): the contacts existed, so not created.
    User.objects.filter(pk__in=[u.pk for u in users[:5]]).update(last_name="Changed")
    synced.clear()
    sync_contacts()
    assert sorted(c.user.pk for c in synced) == sorted(u.pk for u in users[:5])
    assert {c.created for c in synced} == {False}


def test_bulk_sync_sends_failed_for_rejected_items(sync_settings, emulator, synced, failed):
    existing_users(120)
    poisoned = ["user7", "user110"]
    User.objects.filter(username__in=poisoned).update(first_name="Poison")
    adapter = {**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    with override_settings(OMNISEND=adapter):
        sync_contacts("--no-fail-on-error")
    assert sorted(c.user.username for c in failed) == sorted(poisoned)
    for call in failed:
        assert call.sender is User
        assert isinstance(call.error, exceptions.ValidationError) and call.error.status == 400
        assert call.permanent is True
        assert call.sync_state.user_id == call.user.pk
        assert call.sync_state.state == SyncState.State.DEAD
    assert len(synced) == 118
    assert not {c.user.username for c in synced} & set(poisoned)


def test_bulk_sync_sends_failed_for_a_transient_error(sync_settings, emulator, synced, failed):
    users = existing_users(3)
    emulator.add_fault(route="POST /api/batches", kind="503", rate=1.0)
    # The command says Omnisend did not answer (exit 1); the signals went out before that.
    with pytest.raises(CommandError, match="503"):
        sync_contacts("--no-fail-on-error")
    assert sorted(c.user.pk for c in failed) == [u.pk for u in users]
    for call in failed:
        assert call.sender is User
        assert isinstance(call.error, exceptions.OmnisendError) and call.error.status == 503
        assert call.permanent is False
        assert call.sync_state.state == SyncState.State.FAILED and call.sync_state.dirty
    assert synced == []


def test_bulk_sync_reports_a_user_deleted_meanwhile_as_none(sync_settings, emulator, synced):
    users = existing_users(3)
    gone = users[1]
    mark_users(select_users())

    def delete_before_polling(seconds: float) -> None:
        # The batch was sent (and processed at once); the user goes before its outcome is read.
        User.objects.filter(pk=gone.pk).delete()

    BatchSync(poll_sleep=delete_before_polling).run_bulk()
    assert len(synced) == 3
    (deleted,) = [c for c in synced if c.user is None]
    assert deleted.sender is User and deleted.sync_state is None
    assert deleted.contact_id == emulator.get_contact(gone.email)["id"]
    assert deleted.created is True
    assert sorted(c.user.pk for c in synced if c.user) == [users[0].pk, users[2].pk]


def test_a_raising_receiver_does_not_stop_a_bulk_run(sync_settings, emulator, synced, caplog):
    def explode(sender, user, **kwargs):
        raise RuntimeError("receiver bug")

    existing_users(10)
    contact_synced.connect(explode, weak=False, dispatch_uid="test-signals-explode")
    try:
        with caplog.at_level(logging.ERROR, logger="django.dispatch"):
            out = sync_contacts()
    finally:
        contact_synced.disconnect(dispatch_uid="test-signals-explode")
    assert "Sent 10" in out
    assert len(synced) == 10
    assert not SyncState.objects.exclude(state=SyncState.State.SYNCED).exists()
    assert not SyncState.objects.filter(dirty=True).exists()
    assert receiver_errors(caplog) == ["receiver bug"] * 10

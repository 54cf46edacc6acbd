"""Delivery under time (issue 14): fenced leases, unknown outcomes, generation-checked clears.

Each test makes one of the races the issue describes happen deterministically against the
emulator over real HTTP: a request held in flight (a latency fault the test ends once the
other worker is done, or the emulator's lock), a lease that ran out meanwhile (simulated
time: the lease's end moved into the past, as a worker with a clock ahead would see it), and
saves made while the request is in flight.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.utils import timezone

from django_omnisend.adapter import get_adapter
from django_omnisend.models import SyncState
from django_omnisend.sync import drain
from django_omnisend.sync.payloads import plan_contact
from django_omnisend.sync.policy import EMAIL_CHANGED_TAG

User = get_user_model()


def make_user(username="jane", email="jane@example.com", **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def current_hash(user) -> str:
    """The payload hash of what the user holds now (what a clean row must have sent)."""
    user = User.objects.get(pk=user.pk)
    state = SyncState.objects.get(user=user)
    plan = plan_contact(user, get_adapter(), consent_sent_at=state.consent_sent_at)
    return plan.payload_hash


def make_due(user) -> None:
    """Skip a retry's backoff: the next drain takes the row now."""
    SyncState.objects.filter(user=user).update(next_attempt_at=timezone.now())


@contextmanager
def drain_in_flight(
    emulator, hold=None, path: str = "/api/contacts", method: str = "POST"
) -> Iterator[None]:
    """Run :func:`drain` in a thread; the block runs once its request reached the emulator.

    The drain has its own database connection, so the block's saves are other transactions.
    The request is held back by a latency fault the block ends, or by ``hold`` (the
    emulator's lock, held until the block is done: the request is not applied before).
    """
    failures: list[BaseException] = []

    def run() -> None:
        try:
            drain()
        except BaseException as exc:
            failures.append(exc)
        finally:
            connection.close()

    sent = len(emulator.ledger_for(path, method))
    worker = threading.Thread(target=run)
    if hold is not None:
        hold.acquire()
    try:
        worker.start()
        while len(emulator.ledger_for(path, method)) == sent:
            assert worker.is_alive(), failures
            time.sleep(0.01)
        yield
    finally:
        if hold is not None:
            hold.release()
        worker.join()
    assert not failures, failures


def end_latency_after(emulator, block: Callable[[], None]) -> None:
    """Run ``block``, then end the emulator's latency waits (the held request goes on).

    ``stopping`` is the event every emulator wait (latency, hang) waits on: setting it ends
    them at once, without a timer in the test.
    """
    try:
        block()
    finally:
        emulator.stopping.set()


@pytest.fixture
def waits_end(emulator):
    yield
    emulator.stopping.clear()


# -- 1. fencing ---------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_response_that_outlived_its_lease_is_not_recorded(sync_settings, emulator, waits_end):
    user = make_user(first_name="Old")
    # The first contact write waits in the emulator until the test ends the wait (60 s is a
    # hang breaker, never reached: the test ends it as soon as the other worker is done).
    emulator.add_fault(route="POST /api/contacts", kind="latency", times=1, seconds=60)
    with drain_in_flight(emulator):
        held = emulator.ledger_for("/api/contacts", "POST")[-1]

        def meanwhile() -> None:
            # The first worker's lease runs out (a slow answer, a GC pause or a clock ahead),
            user.first_name = "New"
            user.save()
            SyncState.objects.filter(user=user).update(lease_until=timezone.now())
            # and another worker sends the newer state before the late request lands.
            assert drain().synced == 1
            assert emulator.get_contact("jane@example.com")["firstName"] == "New"
            assert held.status == 0, "the held request must still be in flight (unanswered)"

        end_latency_after(emulator, meanwhile)
    # The late request wrote the old state into Omnisend; its worker must not record it as
    # the row's outcome, and the row must be sent again.
    state = SyncState.objects.get(user=user)
    assert state.dirty or (
        emulator.get_contact("jane@example.com")["firstName"] == "New"
        and state.payload_hash == current_hash(user)
    )
    drain()
    state = SyncState.objects.get(user=user)
    assert emulator.get_contact("jane@example.com")["firstName"] == "New"
    assert not state.dirty and state.payload_hash == current_hash(user)
    assert (state.lease_owner, state.lease_until) == ("", None)


@pytest.mark.django_db(transaction=True)
def test_a_lease_lost_before_the_request_marks_nothing(sync_settings, emulator, waits_end):
    """A claimed row taken over before its request was sent: the taker's outcome stands.

    (A batch longer than the lease: its last rows run out before their turn.) The first
    worker sent nothing for that row, so nothing of it can land after the taker's write;
    marking the row again would only cost the taker's outcome and one more write.
    """
    make_user(first_name="First")
    second = make_user(username="joe", email="joe@example.com", first_name="Second")
    # A lease shorter than the first request: the second row's has run out by its turn.
    with override_settings(OMNISEND={**sync_settings, "LEASE_SECONDS": 0.01}):
        emulator.add_fault(route="POST /api/contacts", kind="latency", times=1, seconds=60)
        with drain_in_flight(emulator):

            def meanwhile() -> None:
                # Another worker takes both rows over (their leases ran out) and syncs them.
                SyncState.objects.update(lease_until=timezone.now())
                assert drain().synced == 2

            end_latency_after(emulator, meanwhile)
    # The first worker's late write for ``first`` may have landed after the taker's, so the
    # row was marked and the same drain sent it again. It never sent ``second`` (that lease
    # was gone at its turn), so the taker's outcome stands and ``second`` is written once.
    writes = Counter(
        e.json["identifiers"][0]["id"] for e in emulator.ledger_for("/api/contacts", "POST")
    )
    assert writes == {"jane@example.com": 3, "joe@example.com": 1}
    state = SyncState.objects.get(user=second)
    assert not state.dirty and state.payload_hash == current_hash(second)
    assert emulator.get_contact("jane@example.com")["firstName"] == "First"


# -- 2. unknown outcomes ------------------------------------------------------------------


UNKNOWN = pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("apply_then_hang", {"seconds": 1.5}),  # the write landed; the answer never came
        ("reset_after", {}),  # the write landed; the connection was reset
        ("truncate", {}),  # the write landed; the 2xx body could not be read
    ],
)


@pytest.mark.django_db
@UNKNOWN
def test_an_unknown_outcome_then_a_revert_sends_the_reverted_state(
    sync_settings, emulator, kind, params
):
    user = make_user(first_name="Ann")
    drain()
    user.first_name = "Bea"
    user.save()
    emulator.add_fault(route="POST /api/contacts", kind=kind, times=1, **params)
    with override_settings(OMNISEND={**sync_settings, "REQUEST_TIMEOUT": 0.4}):
        assert drain().retried == 1
    assert emulator.get_contact("jane@example.com")["firstName"] == "Bea"  # it was applied
    # The user goes back to what Omnisend last confirmed, before the retry.
    user.first_name = "Ann"
    user.save()
    make_due(user)
    drain()
    assert emulator.get_contact("jane@example.com")["firstName"] == "Ann"
    state = SyncState.objects.get(user=user)
    assert not state.dirty and state.payload_hash == current_hash(user)


@pytest.mark.django_db
@UNKNOWN
def test_an_unknown_outcome_of_an_email_change_then_a_revert(sync_settings, emulator, kind, params):
    user = make_user(email="a@example.com", first_name="Ann")
    drain()
    first_id = SyncState.objects.get(user=user).contact_id
    user.email = "b@example.com"
    user.save()
    emulator.add_fault(route="POST /api/contacts", kind=kind, times=1, **params)
    with override_settings(OMNISEND={**sync_settings, "REQUEST_TIMEOUT": 0.4}):
        assert drain().retried == 1
    assert emulator.get_contact("b@example.com") is not None  # the new address was written
    user.email = "a@example.com"
    user.save()
    make_due(user)
    drain()
    # The user left b@: its contact (written by the lost request) is tagged like any address
    # a user moved away from; a@ holds the current state and is the row's contact again.
    assert EMAIL_CHANGED_TAG in emulator.get_contact("b@example.com")["tags"]
    assert EMAIL_CHANGED_TAG not in emulator.get_contact("a@example.com")["tags"]
    state = SyncState.objects.get(user=user)
    assert (state.email, state.address, state.contact_id) == (
        "a@example.com",
        "a@example.com",
        first_id,
    )
    assert not state.dirty and state.payload_hash == current_hash(user)


# -- 3. every clear checks the generation ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_400_for_an_old_state_leaves_a_newer_save_due(sync_settings, emulator):
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    ):
        user = make_user(first_name="Poison")  # Omnisend answers 400 to this state
        with drain_in_flight(emulator, hold=emulator.lock):
            user.first_name = "Fixed"  # saved while the doomed request is in flight
            user.save()
        # The refusal was for the old state: the newer one is due at once (the same pass
        # may already have sent it), never dead.
        state = SyncState.objects.get(user=user)
        assert state.state != SyncState.State.DEAD
        assert not state.dirty or state.next_attempt_at <= timezone.now()
        drain()
    assert emulator.get_contact("jane@example.com")["firstName"] == "Fixed"
    state = SyncState.objects.get(user=user)
    assert (state.dirty, state.state, state.reason) == (False, SyncState.State.SYNCED, "")

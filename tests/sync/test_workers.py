"""Drains in separate processes against the real database: leases, coalescing, crashes.

The issue's bar is PostgreSQL (``tox -e postgres``); on SQLite the same tests run against a
file database, where SQLite serialises the writers.
"""

from __future__ import annotations

import signal
import time

import pytest
from django.contrib.auth import get_user_model

from django_omnisend.models import SyncState
from tests.faults.scenarios import api_entries, overlapping_writes
from tests.workers import start_drain, stop, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

User = get_user_model()


def assert_emulator_matches_database(emulator):
    contacts = {c["email"]: c for c in emulator.contacts()}
    users = list(User.objects.all())
    assert len(contacts) == len(users)
    for user in users:
        assert contacts[user.email]["firstName"] == user.first_name, user.email


def test_four_drains_while_saves_continue(sync_settings, emulator):
    # A little latency keeps requests in flight long enough for races to show.
    emulator.add_fault(route="*", kind="latency", rate=1.0, seconds=0.01)
    users = [User.objects.create_user(f"user{n}", f"user{n}@example.com", "x") for n in range(60)]
    overrides = {"SYNC_USERS": True, "TASK_BACKEND": None, "LEASE_SECONDS": 30}
    workers = [
        start_drain(overrides, "--loop", "--max-seconds", "60", "--idle-sleep", "0.05")
        for _ in range(4)
    ]
    try:
        for round_ in range(5):
            for user in users:
                user.first_name = f"Round {round_}"
                user.save()
            time.sleep(0.2)
        done = wait_until(lambda: not SyncState.objects.filter(dirty=True).exists(), 60)
    finally:
        outputs = [stop(w) for w in workers]
    assert done, (
        list(SyncState.objects.filter(dirty=True).values()[:3]),
        outputs,
        len(emulator.ledger),
    )
    for _, err in outputs:
        assert "Traceback" not in err, err
    assert overlapping_writes(api_entries(emulator)) == []
    assert_emulator_matches_database(emulator)
    # Never more writes than changes (60 creations + 300 saves). How many saves coalesce here
    # depends on how fast the drains keep up, so coalescing itself is checked where it is
    # deterministic: test_sync.test_ten_saves_make_one_request_with_the_final_state and M1.
    writes = [e for e in emulator.ledger if e.method == "POST" and e.status < 300]
    assert len(writes) <= 360, len(writes)


def test_sigkill_mid_batch_loses_nothing(sync_settings, emulator):
    emulator.add_fault(route="*", kind="latency", rate=1.0, seconds=0.05)
    for n in range(80):
        User.objects.create_user(f"user{n}", f"user{n}@example.com", "x", first_name=f"F{n}")
    overrides = {"SYNC_USERS": True, "TASK_BACKEND": None, "LEASE_SECONDS": 2}
    victim = start_drain(overrides, "--loop", "--max-seconds", "60", "--idle-sleep", "0.05")
    assert wait_until(lambda: len(emulator.contacts()) >= 5, 30)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=10)
    leased = SyncState.objects.filter(dirty=True, lease_until__isnull=False).count()
    assert leased > 0, "the killed worker should have held leases"
    survivor = start_drain(overrides, "--loop", "--max-seconds", "60", "--idle-sleep", "0.05")
    try:
        assert wait_until(lambda: not SyncState.objects.filter(dirty=True).exists(), 60)
    finally:
        stop(survivor)
    assert_emulator_matches_database(emulator)
    assert overlapping_writes(api_entries(emulator)) == []

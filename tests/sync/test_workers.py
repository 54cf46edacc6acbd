"""Drains in separate processes against the real database: leases, coalescing, crashes.

The issue's bar is PostgreSQL (``tox -e postgres``); on SQLite the same tests run against a
file database, where SQLite serialises the writers. The drains are ``omnisend_drain --loop``
workers, or RQ workers woken through Redis by the saves (the "several hosts" setup: one
database, one broker, one rate budget in a shared cache).
"""

from __future__ import annotations

import signal
import time

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from rq import Worker

from django_omnisend.models import SyncState
from tests.faults.scenarios import api_entries, budget_check, overlapping_writes
from tests.workers import finished_results, start_drain, start_rq_worker, stop, wait_until

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


def test_four_rq_workers_woken_by_saves_share_the_rows_and_the_budget(
    rq_settings, rq_queue, emulator
):
    # Four RQ workers (four hosts' worth) on one database and one broker; every save's
    # commit enqueues a drain, so many drains run at once. The rate budget lives in Redis,
    # shared by all of them: at most ``budget`` requests per ``window`` in all.
    budget, window, workers_count = 20, 0.5, 4
    emulator.add_fault(route="*", kind="latency", rate=1.0, seconds=0.01)
    with transaction.atomic():
        users = [
            User.objects.create_user(f"user{n}", f"user{n}@example.com", "x") for n in range(30)
        ]
    overrides = {
        **rq_settings,
        "LEASE_SECONDS": 30,
        "RATE_LIMIT": budget,
        "RATE_LIMIT_WINDOW": window,
    }
    # The workers' cache (and so the budget) is Redis, whatever this run's own cache is.
    shared_cache = {"CACHE_URL": settings.BROKER_URL}
    workers = [start_rq_worker(overrides, env=shared_cache) for _ in range(workers_count)]
    try:
        # Saves start once every worker listens, so the drains they wake overlap.
        listening = wait_until(lambda: len(Worker.all(queue=rq_queue)) == workers_count, 60)
        for round_ in range(3 if listening else 0):
            for n in range(0, len(users), 5):  # a request saving 5 users: one nudge
                with transaction.atomic():
                    for user in users[n : n + 5]:
                        user.first_name = f"Round {round_}"
                        user.save()
        done = wait_until(lambda: not SyncState.objects.filter(dirty=True).exists(), 120)
    finally:
        outputs = [stop(w) for w in workers]
    assert listening, ("not every RQ worker started", outputs)
    assert done, (list(SyncState.objects.filter(dirty=True).values()[:3]), outputs)
    for _, err in outputs:
        assert "Traceback" not in err, err
    entries = api_entries(emulator)
    assert overlapping_writes(entries) == []
    assert_emulator_matches_database(emulator)
    writes = [e for e in emulator.ledger if e.method == "POST" and e.status < 300]
    assert len(writes) <= 30 + 90, len(writes)  # never more writes than changes
    assert [e for e in entries if e.status == 429] == []
    busiest, bound = budget_check([e.time for e in entries], budget, workers_count, window)
    assert busiest <= bound, (busiest, bound)
    # Every request came from one of the broker's drain tasks, each counted once.
    results = finished_results(rq_queue)
    assert {r.status for r in results} == {"SUCCESSFUL"}, [r.errors for r in results]
    assert sum(r.return_value["requests"] for r in results) == len(entries)

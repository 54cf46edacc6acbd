"""The wakeup through a real broker: django.tasks on RQ and Redis, worked by ``rqworker``.

A save enqueues the drain task in Redis (django-tasks-rq); an RQ worker in its own process,
set up as a deployed worker would be, runs the drain; the contact reaches the emulator over
HTTP. Redis comes from ``OMNISEND_TEST_BROKER_URL`` (tests/settings.py); each run has its own
queue (fixtures ``rq_queue`` and ``rq_settings`` in tests/sync/conftest.py). In CI
(``CI=true``) a Redis that cannot be reached fails these tests; elsewhere they are skipped
with the reason.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction

from django_omnisend.models import SyncState
from django_omnisend.tasks import backend_problem
from tests.workers import finished_results, start_rq_worker, stop, wait_until

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def test_a_save_enqueues_on_redis_and_an_rq_worker_delivers(rq_settings, rq_queue, emulator):
    assert backend_problem() == ""
    with transaction.atomic():
        user = User.objects.create_user("jane", "jane@example.com", "x", first_name="Jane")
        user.first_name = "Janet"
        user.save()
        assert rq_queue.count == 0  # nothing before the commit
    assert rq_queue.count == 1  # one nudge per transaction, however many saves
    assert emulator.ledger == []  # the request itself sent nothing
    worker = start_rq_worker(rq_settings, "--burst")  # exits once the queue is empty
    _out, err = worker.communicate(timeout=120)
    assert worker.returncode == 0, err
    assert "Traceback" not in err, err
    (result,) = finished_results(rq_queue)
    assert result.status == "SUCCESSFUL", result.errors
    assert result.return_value["synced"] == 1, result.return_value
    assert emulator.get_contact("jane@example.com")["firstName"] == "Janet"
    assert SyncState.objects.get(user=user).dirty is False


def test_a_waiting_worker_is_woken_by_a_save(rq_settings, rq_queue, emulator):
    # A worker already listening on the broker, as in production: the save's nudge reaches
    # it through Redis, and nothing else runs a drain here.
    worker = start_rq_worker(rq_settings)
    try:
        user = User.objects.create_user("jane", "jane@example.com", "x", first_name="Jane")
        delivered = wait_until(lambda: not SyncState.objects.filter(dirty=True).exists(), 60)
    finally:
        _out, err = stop(worker)
    assert delivered, err
    assert "Traceback" not in err, err
    assert emulator.get_contact(user.email)["firstName"] == "Jane"
    results = finished_results(rq_queue)
    assert results and {r.status for r in results} == {"SUCCESSFUL"}, [r.errors for r in results]
    # However many nudges the save made, one of their drains sent the contact, once.
    assert sum(r.return_value["synced"] for r in results) == 1, [r.return_value for r in results]

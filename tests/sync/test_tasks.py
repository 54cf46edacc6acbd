"""Delivery woken through a real django.tasks worker process (django-tasks-db's db_worker)."""

from __future__ import annotations

import subprocess
import sys

import pytest
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import override_settings

from django_omnisend.models import SyncState
from django_omnisend.tasks import backend_problem, enqueue_drain
from tests.workers import REPO_ROOT, worker_env

pytestmark = pytest.mark.django_db(transaction=True)

User = get_user_model()


def queued_tasks() -> int:
    from django_tasks_db.models import DBTaskResult

    return DBTaskResult.objects.count()


def run_worker(overrides) -> subprocess.CompletedProcess:
    """Work the queue until it is empty, in a separate process (like a deployed worker)."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "django",
            "db_worker",
            "--batch",
            "--no-startup-delay",
            "--skip-checks",
        ],
        env=worker_env(overrides),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_save_enqueues_one_drain_on_commit_and_a_worker_delivers(sync_settings, emulator):
    settings_with_tasks = {**sync_settings, "TASK_BACKEND": "default"}
    with override_settings(OMNISEND=settings_with_tasks):
        assert backend_problem() == ""
        with transaction.atomic():
            user = User.objects.create_user("jane", "jane@example.com", "x", first_name="Jane")
            user.first_name = "Janet"
            user.save()
            assert queued_tasks() == 0  # nothing before the commit
        assert queued_tasks() == 1  # one nudge per transaction, however many saves
        assert emulator.ledger == []  # the request itself sent nothing
    result = run_worker({"SYNC_USERS": True, "TASK_BACKEND": "default"})
    assert result.returncode == 0, result.stderr
    assert "failed" not in result.stdout, result.stdout
    assert emulator.get_contact("jane@example.com")["firstName"] == "Janet"
    assert SyncState.objects.get(user=user).dirty is False


def test_rollback_enqueues_nothing(sync_settings, emulator):
    with (
        override_settings(OMNISEND={**sync_settings, "TASK_BACKEND": "default"}),
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        User.objects.create_user("jane", "jane@example.com", "x")
        raise RuntimeError
    assert queued_tasks() == 0


@pytest.mark.django_db(databases=["default", "second"], transaction=True)
def test_the_nudge_waits_for_the_commit_of_the_database_holding_the_sync_tables(
    sync_settings, emulator
):
    # The user model and the sync tables in "second", the task queue in "default" (issue 14:
    # the nudge went to default's on_commit, which ran at once, before "second" committed).
    with (
        override_settings(
            DATABASE_ROUTERS=["tests.routers.UsersInSecond"],
            OMNISEND={**sync_settings, "TASK_BACKEND": "default"},
        ),
        transaction.atomic(using="second"),
    ):
        user = User.objects.create_user("jane", "jane@example.com", "x")
        assert SyncState.objects.using("second").filter(user_id=user.pk, dirty=True).exists()
        assert queued_tasks() == 0, "the drain was woken before the mark was committed"
        queued_at_commit = transaction.get_connection("second").run_on_commit
        assert len(queued_at_commit) == 1
    assert queued_tasks() == 1


def test_no_backend_means_no_nudge(sync_settings, emulator):
    User.objects.create_user("jane", "jane@example.com", "x")
    assert queued_tasks() == 0
    assert enqueue_drain() is None


def test_backend_problems_are_explained():
    assert "not configured" in backend_problem("missing-alias")
    immediate = "django.tasks.backends.immediate.ImmediateBackend"
    try:
        import django.tasks  # noqa: F401
    except ImportError:  # Django 5.2: the backport
        immediate = "django_tasks.backends.immediate.ImmediateBackend"
    with override_settings(TASKS={"default": {"BACKEND": immediate}}):
        assert "immediate" in backend_problem("default")


#: Two aliases on the database queue; "omnisend" only takes tasks for the queue of that name
#: (a site that gives the drain its own queue, and its own workers).
QUEUED_TASKS = {
    "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
    "omnisend": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["omnisend"]},
}


def test_the_drain_is_enqueued_on_the_configured_queue(sync_settings, emulator):
    from django_tasks_db.models import DBTaskResult

    omnisend = {**sync_settings, "TASK_BACKEND": "omnisend", "TASK_QUEUE": "omnisend"}
    with override_settings(TASKS=QUEUED_TASKS, OMNISEND=omnisend):
        assert backend_problem() == ""
        User.objects.create_user("jane", "jane@example.com", "x")
    (queued,) = DBTaskResult.objects.all()
    assert (queued.backend_name, queued.queue_name) == ("omnisend", "omnisend")


def test_a_queue_the_backend_does_not_serve_is_explained(sync_settings):
    omnisend = {**sync_settings, "TASK_BACKEND": "omnisend", "TASK_QUEUE": "elsewhere"}
    with override_settings(TASKS=QUEUED_TASKS, OMNISEND=omnisend):
        problem = backend_problem()
        assert "'elsewhere'" in problem and "'omnisend'" in problem, problem
        # The default queue is not one of its queues either.
        with override_settings(OMNISEND={**omnisend, "TASK_QUEUE": None}):
            assert "'default'" in backend_problem()

"""Drain workers in their own processes, sharing the test database and the emulator.

Tests that use these must use ``transactional_db`` so their writes are committed and visible
to the workers. The worker gets the test database's real name and the emulator's coordinates
through the environment (``DATABASE_URL``, ``OMNISEND_TEST_OVERRIDES``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.db import connection

REPO_ROOT = Path(__file__).resolve().parent.parent


def database_url_for_workers(sqlite_timeout: int | None = None) -> str:
    """A DATABASE_URL naming the database this test session actually uses.

    ``sqlite_timeout``: the workers' SQLite busy timeout, whole seconds (default: 5 s).
    """
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        query = f"?timeout={sqlite_timeout}" if sqlite_timeout is not None else ""
        return f"sqlite:///{db['NAME']}{query}"
    mysql = connection.vendor == "mysql"
    user = db.get("USER") or ("root" if mysql else "postgres")
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or (3306 if mysql else 5432)
    scheme = "mysql" if mysql else "postgres"
    return f"{scheme}://{user}{password}@{host}:{port}/{db['NAME']}"


def worker_env(overrides: dict[str, Any], sqlite_timeout: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url_for_workers(sqlite_timeout)
    env["OMNISEND_TEST_OVERRIDES"] = json.dumps({**settings.OMNISEND, **overrides})
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")])
    env["DJANGO_SETTINGS_MODULE"] = os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings")
    return env


def start_drain(
    overrides: dict[str, Any],
    *args: str,
    sqlite_timeout: int | None = None,
    stderr: Any = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen:
    """Start ``manage.py omnisend_drain ARGS`` in a new process.

    ``stderr``: a file to write the worker's stderr to (default: a pipe, read by :func:`stop`).
    ``env``: extra environment variables for this worker (e.g. libfaketime's, for a worker
    whose clock runs ahead of the others).
    """
    return subprocess.Popen(
        # The emulator is plain http, which the https check (E005) rightly refuses outside DEBUG.
        [sys.executable, "-m", "django", "omnisend_drain", "--skip-checks", *args],
        env={**worker_env(overrides, sqlite_timeout), **(env or {})},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE if stderr is None else stderr,
        text=True,
    )


def start_rq_worker(
    overrides: dict[str, Any], *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen:
    """Start ``manage.py rqworker`` on the test run's RQ queue (tests/settings.py) in a new process.

    The worker runs django.tasks jobs (``--job-class django_tasks_rq.Job``), each in a child
    it forks, with Django set up as a deployed site's worker would be: this test run's
    database and ``OMNISEND`` (the emulator's coordinates) come through the environment.
    ``args``: more options, e.g. ``--burst`` to exit once the queue is empty.
    """
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django",
            "rqworker",
            "--skip-checks",  # E005 refuses the emulator's plain http outside DEBUG
            "--job-class",
            "django_tasks_rq.Job",
            *args,
            settings.RQ_QUEUE,
        ],
        env={**worker_env(overrides), **(env or {})},
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished_results(queue) -> list:
    """django.tasks results of the jobs RQ finished on ``queue``."""
    from django_omnisend.tasks import task_backends  # django.tasks, or the 5.2 backport

    backend = task_backends["rq"]
    return [backend.get_result(job_id) for job_id in queue.finished_job_registry.get_job_ids()]


def stop(process: subprocess.Popen, timeout: float = 20.0) -> tuple[str, str]:
    """Ask a worker to stop (SIGTERM), wait, and return its output."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return out, err


def wait_until(predicate, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()

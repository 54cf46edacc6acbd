"""The sync tests use ``sync_settings`` and ``contact_writes`` from tests/conftest.py.

``rq_queue`` and ``rq_settings``: the run's RQ queue on a real Redis, and nudges sent there.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.test import override_settings


@pytest.fixture
def api_requests(emulator):
    """The emulator's API requests so far (OAuth and control endpoints left out)."""

    def requests():
        return [e for e in emulator.ledger if e.path.startswith("/api/")]

    return requests


@pytest.fixture
def rq_queue():
    """The run's RQ queue, empty; fails in CI and skips elsewhere when Redis is down."""
    import django_rq
    from redis.exceptions import RedisError

    queue = django_rq.get_queue(settings.RQ_QUEUE)
    try:
        queue.connection.ping()
    except RedisError as exc:
        url = urlsplit(settings.BROKER_URL)  # host, port and db only: the URL may hold a password
        problem = f"Redis at {url.hostname}:{url.port or 6379}{url.path} is not reachable ({exc})"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI needs it for the broker tests.")
        pytest.skip(f"{problem}; start Redis or set OMNISEND_TEST_BROKER_URL to run them.")
    forget_jobs(queue)
    yield queue
    forget_jobs(queue)
    queue.delete(delete_jobs=True)
    queue.connection.close()


def forget_jobs(queue) -> None:
    """Empty ``queue`` and its finished and failed registries (results outlive the queue)."""
    queue.empty()
    for registry in (queue.finished_job_registry, queue.failed_job_registry):
        for job_id in registry.get_job_ids():
            registry.remove(job_id, delete_job=True)


@pytest.fixture
def rq_settings(sync_settings, rq_queue):
    """``sync_settings`` with nudges going to the RQ backend and the run's queue."""
    omnisend = {**sync_settings, "TASK_BACKEND": "rq", "TASK_QUEUE": settings.RQ_QUEUE}
    with override_settings(OMNISEND=omnisend):
        yield omnisend

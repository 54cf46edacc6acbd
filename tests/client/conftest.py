"""Fixtures for the client tests: a fake clock, clients that close, a Redis cache."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

REDIS_URL = os.environ.get("OMNISEND_TEST_REDIS_URL", "redis://127.0.0.1:6379/2")


class FakeClock:
    """``time``/``sleep`` pair: sleeping advances the clock and records the wait."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0, seconds
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def budget_key() -> str:
    """A fresh rate-limit key, so tests never see each other's counters."""
    return f"test-{uuid.uuid4().hex[:12]}"


def _redis_reachable(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        return f"Redis at {host}:{port} is not reachable ({exc})"
    return ""


@pytest.fixture
def redis_cache():
    """A Django ``RedisCache`` on ``OMNISEND_TEST_REDIS_URL`` (db 2); skipped when Redis is down.

    In CI (``CI=true``) a missing Redis fails instead, like tests/with_services.py.
    """
    problem = _redis_reachable(REDIS_URL)
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{problem}; CI needs it for the shared rate budget tests.")
        pytest.skip(f"{problem}; start Redis to run the shared rate budget tests.")
    from django.core.cache.backends.redis import RedisCache

    cache = RedisCache(REDIS_URL, {"KEY_PREFIX": f"omnisend-tests-{uuid.uuid4().hex[:8]}"})
    yield cache
    # Close the pooled sockets so no ResourceWarning fires later (warnings are errors).
    for pool in cache._cache._pools.values():
        pool.disconnect()

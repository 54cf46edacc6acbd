"""The per-brand budget: sliding-window bound, blocking, cooldowns, shared and per-process modes.

Time is a fake clock (sleeping advances it), so these run instantly; the shared mode runs on a
real Redis. The two-process test against the emulator is in test_budget_processes.py.
"""

from __future__ import annotations

import bisect
import random

import pytest
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.test import override_settings

from django_omnisend.exceptions import BudgetExhausted
from django_omnisend.ratelimit import RateLimiter, cache_alias_is_shared, cache_is_shared


def max_in_any_window(times: list[float], span: float) -> int:
    """The most timestamps in any half-open interval ``[t, t + span)``."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + span) - i for i, t in enumerate(times)), default=0)


def make(clock, *, shared_cache=None, **kwargs):
    if shared_cache is not None:
        return RateLimiter(cache=shared_cache, clock=clock.time, sleep=clock.sleep, **kwargs)
    return RateLimiter(shared=False, clock=clock.time, sleep=clock.sleep, **kwargs)


@pytest.fixture(params=["local", "redis"])
def limiter_factory(request, clock):
    """Build limiters in per-process mode, or in shared mode on one Redis cache."""
    if request.param == "local":
        return lambda **kw: make(clock, **kw)
    cache = request.getfixturevalue("redis_cache")
    return lambda **kw: make(clock, shared_cache=cache, **kw)


def test_modes_are_chosen_from_the_backend(redis_cache):
    assert cache_is_shared(redis_cache)
    assert not cache_is_shared(LocMemCache("x", {}))
    assert not cache_is_shared(DummyCache("x", {}))
    assert not cache_is_shared(DatabaseCache("table", {}))
    assert RateLimiter(cache=redis_cache, budget=5).shared
    assert not RateLimiter(cache=LocMemCache("x", {}), budget=5).shared
    assert "per-process" in repr(RateLimiter(cache=LocMemCache("x", {}), budget=5))


def test_alias_lookup_and_settings_budget():
    caches = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "x"},
    }
    with override_settings(CACHES=caches, OMNISEND={"RATE_LIMIT": 123}):
        assert cache_alias_is_shared("shared")
        assert not cache_alias_is_shared("default")
        assert not cache_alias_is_shared("missing")
        limiter = RateLimiter("brand")
        assert limiter.budget == 123
        assert not limiter.shared
        assert limiter.key == "brand"


def test_budget_then_refusal_with_retry_after(limiter_factory, budget_key, clock):
    limiter = limiter_factory(budget=5, window=10, margin=0, subwindows=10)
    for _ in range(5):
        limiter.acquire(budget_key, timeout=0)
    with pytest.raises(BudgetExhausted) as excinfo:
        limiter.acquire(budget_key, timeout=0)
    assert 0 < excinfo.value.retry_after <= 11.1
    assert clock.sleeps == []


def test_acquire_blocks_until_a_slot_frees(limiter_factory, budget_key, clock):
    limiter = limiter_factory(budget=3, window=10, margin=0, subwindows=10)
    start = clock.now
    for _ in range(4):
        limiter.acquire(budget_key)
    assert clock.sleeps, "the fourth request must wait"
    assert 10 <= clock.now - start <= 11.2


def test_the_bound_holds_in_every_window_for_interleaved_limiters(limiter_factory, clock):
    """Two limiter objects (two "processes") on one key: random arrivals, never over budget."""
    rng = random.Random(7)
    a = limiter_factory(key="brand-x", budget=20, window=3.0, margin=0, subwindows=6)
    b = limiter_factory(key="brand-x", budget=20, window=3.0, margin=0, subwindows=6)
    a.reset()
    admitted: list[float] = []
    for _ in range(300):
        clock.now += rng.expovariate(30)  # faster than the budget allows
        (a if rng.random() < 0.5 else b).acquire()
        admitted.append(clock.now)
    assert max_in_any_window(admitted, 3.0) <= 20
    # ...and the budget is actually used: at least k/(k+1) of it over the run.
    rate = len(admitted) / (admitted[-1] - admitted[0]) * 3.0
    assert rate >= 20 * 6 / 7 * 0.9


def test_margin_stretches_the_window(limiter_factory, budget_key, clock):
    limiter = limiter_factory(budget=2, window=10, margin=2, subwindows=12)
    admitted = []
    for _ in range(8):
        limiter.acquire(budget_key)
        admitted.append(clock.now)
    assert max_in_any_window(admitted, 12.0) <= 2


def test_cooldown_is_waited_out_and_never_shortened(limiter_factory, budget_key, clock):
    limiter = limiter_factory(budget=100, window=60)
    other = limiter_factory(budget=100, window=60)  # another process sees the same cooldown
    limiter.cooldown(budget_key, 30)
    limiter.cooldown(budget_key, 5)  # shorter: ignored
    assert other.cooldown_remaining(budget_key) == pytest.approx(30)
    with pytest.raises(BudgetExhausted) as excinfo:
        other.acquire(budget_key, timeout=10)
    assert excinfo.value.retry_after == pytest.approx(30)
    assert "cooling down" in str(excinfo.value)
    other.acquire(budget_key)
    assert clock.sleeps == [pytest.approx(30)]
    assert limiter.cooldown_remaining(budget_key) == 0.0
    limiter.cooldown(budget_key, 0)  # no-op
    assert limiter.cooldown_remaining(budget_key) == 0.0


def test_reset_forgets_counts(limiter_factory, budget_key):
    limiter = limiter_factory(budget=1, window=60)
    limiter.acquire(budget_key, timeout=0)
    limiter.cooldown(budget_key, 10)
    limiter.reset(budget_key)
    assert limiter.cooldown_remaining(budget_key) == 0.0
    limiter.acquire(budget_key, timeout=0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        RateLimiter(budget=0, shared=False)
    with pytest.raises(ValueError, match="key"):
        RateLimiter(budget=1, shared=False).acquire()


def test_per_process_fallback_is_shared_by_every_limiter_of_the_process(clock, budget_key):
    one = make(clock, budget=2, window=60)
    two = make(clock, budget=2, window=60)
    one.acquire(budget_key, timeout=0)
    two.acquire(budget_key, timeout=0)
    with pytest.raises(BudgetExhausted):
        one.acquire(budget_key, timeout=0)

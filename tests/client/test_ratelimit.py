"""The per-brand budget: sliding-window bound, blocking, cooldowns, shared and per-process modes.

Time is a fake clock (sleeping advances it), so these run instantly; the shared mode runs on a
real Redis, the database mode on the test database (its one-statement form on SQLite, and the
increment-then-read form PostgreSQL and MariaDB use). The two-process tests against the
emulator are in test_budget_processes.py.
"""

from __future__ import annotations

import bisect
import random
import time

import pytest
from django.core.cache.backends.db import DatabaseCache
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_omnisend.budget_db import SKEW_HORIZON
from django_omnisend.exceptions import BudgetExhausted
from django_omnisend.models import RateBudgetSlot
from django_omnisend.ratelimit import (
    RateLimiter,
    cache_alias_is_shared,
    cache_is_shared,
    first_room,
)

from .conftest import FakeClock


def max_in_any_window(times: list[float], span: float) -> int:
    """The most timestamps in any half-open interval ``[t, t + span)``."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + span) - i for i, t in enumerate(times)), default=0)


def make(clock, *, shared_cache=None, **kwargs):
    if shared_cache is not None:
        return RateLimiter(cache=shared_cache, clock=clock.time, sleep=clock.sleep, **kwargs)
    return RateLimiter(shared=False, clock=clock.time, sleep=clock.sleep, **kwargs)


def make_database(clock, conditional=None, **kwargs):
    limiter = RateLimiter(store="database", clock=clock.time, sleep=clock.sleep, **kwargs)
    if conditional is not None:
        limiter.database.conditional = conditional
    return limiter


@pytest.fixture(params=["local", "redis", "database", "database-two-step"])
def limiter_factory(request, clock):
    """Build limiters per process, on one Redis cache, or in the database (both forms)."""
    if request.param == "local":
        return lambda **kw: make(clock, **kw)
    if request.param.startswith("database"):
        request.getfixturevalue("db")
        conditional = None if request.param == "database" else False
        return lambda **kw: make_database(clock, conditional, **kw)
    cache = request.getfixturevalue("redis_cache")
    return lambda **kw: make(clock, shared_cache=cache, **kw)


def test_modes_are_chosen_from_the_backend(redis_cache):
    assert cache_is_shared(redis_cache)
    assert not cache_is_shared(LocMemCache("x", {}))
    assert not cache_is_shared(DummyCache("x", {}))
    assert not cache_is_shared(DatabaseCache("table", {}))
    assert RateLimiter(cache=redis_cache, budget=5).shared
    # No shared cache: the database holds the budget (the app is installed here).
    assert RateLimiter(cache=LocMemCache("x", {}), budget=5).store == "database"
    assert RateLimiter(cache=DatabaseCache("table", {}), budget=5).store == "database"
    assert "mode=database" in repr(RateLimiter(cache=LocMemCache("x", {}), budget=5))
    assert RateLimiter(cache=redis_cache, budget=5).store == "cache"
    assert "per-process" in repr(RateLimiter(store="process", budget=5))
    assert not RateLimiter(shared=False, budget=5).shared
    with pytest.raises(ValueError, match="store"):
        RateLimiter(store="disk", budget=5)


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
        assert limiter.store == "database"
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


def test_first_room_is_the_first_sub_window_whose_view_has_room():
    # k = 4, budget 5, refused in sub-window 10 having seen 2+2+1 in 7, 8, 10.
    counts = {6: 0, 7: 2, 8: 2, 9: 0, 10: 1, 11: 0}
    # In 11 the view is 7..12 (5, full); in 12 it is 8..13 (3): room.
    assert first_room(counts, 10, 4, 5) == 2
    # Budget 3: 8..13 still holds 3; 9..14 holds 1: room.
    assert first_room(counts, 10, 4, 3) == 3
    # Everything counted in the sub-window itself: it slides out after k + 1 more.
    assert first_room({10: 5}, 10, 4, 5) == 5
    # A count one sub-window ahead (a clock a little fast) is waited out too.
    assert first_room({11: 5}, 10, 4, 5) == 6


@pytest.mark.django_db
def test_database_budget_admits_with_one_statement_on_sqlite(clock, budget_key):
    if connection.vendor != "sqlite":
        pytest.skip("the one-statement form is SQLite's")
    limiter = make_database(clock, budget=3, window=60)
    limiter.acquire(budget_key, timeout=0)  # opens the sub-window (and prunes older ones)
    with CaptureQueriesContext(connection) as queries:
        limiter.acquire(budget_key, timeout=0)
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert "ON CONFLICT" in queries[0]["sql"]


@pytest.mark.django_db
@pytest.mark.parametrize("conditional", [None, False], ids=["one-statement", "two-step"])
def test_database_budget_on_a_process_clock_prunes_beyond_the_skew_horizon(
    clock, budget_key, conditional
):
    """On a process clock old sub-windows go once they are an hour old, not a window old.

    Another process's clock may be behind this one's and still count in them (SQLite, one
    host: a faketime, a time namespace), so only sub-windows older than any plausible skew
    (``SKEW_HORIZON``) are deleted.
    """
    limiter = make_database(clock, conditional, budget=1000, window=6.0, margin=0, subwindows=6)
    step = 100.0
    for _ in range(100):  # 10,000 s, a request every 100 s
        limiter.acquire(budget_key)
        clock.now += step
    rows = RateBudgetSlot.objects.filter(key__startswith=f"django_omnisend:rl:{budget_key}:")
    assert SKEW_HORIZON / step - 1 <= rows.count() <= SKEW_HORIZON / step + 2


@pytest.mark.django_db
def test_database_budget_on_the_server_clock_keeps_only_the_sub_windows_read(budget_key):
    """On the server's clock every process cuts time alike: sub-windows go once none reads them."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite has no server clock")
    limiter = RateLimiter(store="database", budget=1000, window=0.3, margin=0, subwindows=3)
    assert limiter.database.server_clock
    start = limiter.database.clock(0.0)
    # Until the server's clock has moved on by ten sub-windows, whatever the speed.
    while limiter.database.clock(0.0) < start + 10 * limiter.slot:
        limiter.acquire(budget_key)
        time.sleep(limiter.slot / 3)
    rows = RateBudgetSlot.objects.filter(key__startswith=f"django_omnisend:rl:{budget_key}:")
    # The sub-windows still read (k + 2) and the one before them.
    assert 1 <= rows.count() <= 3 + 3


@pytest.mark.django_db
def test_database_cooldown_is_seen_by_the_one_statement_admission(clock, budget_key):
    limiter = make_database(clock, budget=100, window=60)
    other = make_database(clock, conditional=False, budget=100, window=60)
    other.cooldown(budget_key, 12)
    with pytest.raises(BudgetExhausted, match="cooling down") as excinfo:
        limiter.acquire(budget_key, timeout=5)
    assert excinfo.value.retry_after == pytest.approx(12, abs=0.01)
    assert limiter.usage(budget_key) == 0  # the refused request was not counted
    limiter.acquire(budget_key)
    assert clock.sleeps == [pytest.approx(12, abs=0.01)]
    assert limiter.usage(budget_key) == 1


@pytest.mark.django_db
def test_database_store_is_chosen_without_a_shared_cache_and_keys_are_bounded(clock):
    caches = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    with override_settings(CACHES=caches):
        limiter = RateLimiter("k" * 300, budget=1, window=60, clock=clock.time)
    assert limiter.store == "database"
    limiter.acquire(timeout=0)
    assert all(len(row.key) <= 200 for row in RateBudgetSlot.objects.all())
    with pytest.raises(BudgetExhausted):
        limiter.acquire(timeout=0)


def sessions_on_test_database() -> int:
    """Connections to this test database, this test's own included (PostgreSQL, MySQL)."""
    with connection.cursor() as cursor:
        if connection.vendor == "mysql":
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE()"
            )
            return cursor.fetchone()[0]
        # pg_stat_activity is a snapshot taken once per transaction unless cleared.
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_database_budget_inside_atomic_counts_at_once_and_leaves_no_connection_open(
    clock, budget_key
):
    """Inside the test's transaction the budget uses a connection of its own, then closes it."""
    if connection.vendor not in ("postgresql", "mysql"):
        pytest.skip("only PostgreSQL and MySQL count on a second connection inside atomic")
    assert connection.in_atomic_block  # pytest-django's db: the test runs in a transaction
    limiter = make_database(clock, budget=5, window=60)
    before = sessions_on_test_database()
    limiter.acquire(budget_key, timeout=0)
    limiter.cooldown(budget_key, 1)
    assert limiter.usage(budget_key) == 1
    # Closed: the server ends a closed connection's session a moment later, so wait for it
    # (30 s: a bound for a loaded machine, not a speed), then it must be gone.
    deadline = time.monotonic() + 30
    while sessions_on_test_database() > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sessions_on_test_database() == before
    # Committed already: a connection outside this transaction sees the count.
    from django.db import connections

    other = connections.create_connection(connection.alias)
    try:
        with other.cursor() as cursor:
            q = other.ops.quote_name
            cursor.execute(
                f"SELECT SUM({q('count')}) FROM {q(RateBudgetSlot._meta.db_table)} "
                f"WHERE {q('key')} LIKE %s AND {q('slot_index')} >= 0",
                [f"%:{budget_key}:%"],
            )
            assert cursor.fetchone()[0] == 1
    finally:
        other.close()
    limiter.reset(budget_key)


@pytest.mark.django_db
@pytest.mark.parametrize("conditional", [None, False], ids=["one-statement", "two-step"])
def test_a_process_clock_ahead_cannot_erase_what_the_others_count(clock, budget_key, conditional):
    """A process whose clock runs 150 s ahead prunes nothing the others still count in.

    Its sub-windows are far ahead of theirs, so "older than my window" covered their current
    ones: they were deleted, and the others spent their budget again (fault matrix M20).
    """
    ahead = FakeClock(clock.now + 150)
    normal = make_database(clock, conditional, budget=3, window=60)
    skewed = make_database(ahead, conditional, budget=3, window=60)
    for _ in range(3):
        normal.acquire(budget_key, timeout=0)
    skewed.acquire(budget_key, timeout=0)  # opens a sub-window 150 s ahead of normal's
    assert normal.usage(budget_key) == 3
    with pytest.raises(BudgetExhausted):
        normal.acquire(budget_key, timeout=0)


@pytest.mark.django_db
def test_the_database_server_clock_makes_one_budget_whatever_the_process_clocks(budget_key):
    """PostgreSQL, MariaDB/MySQL: sub-windows and cooldowns follow the server's clock.

    Two limiters whose process clocks disagree by 150 s share one budget and one cooldown.
    SQLite has no server, so a server clock is refused there (README: one host by nature).
    """
    if connection.vendor == "sqlite":
        with pytest.raises(ValueError, match="SQLite has no server clock"):
            RateLimiter(store="database", budget=3, window=60, server_clock=True)
        assert RateLimiter(store="database", budget=3, window=60).database.server_clock is False
        return
    normal = RateLimiter(store="database", budget=3, window=60)
    skewed = RateLimiter(
        store="database", budget=3, window=60, clock=lambda: time.time() + 150, server_clock=True
    )
    assert normal.database.server_clock  # the default with the default clock
    normal.acquire(budget_key, timeout=0)
    normal.acquire(budget_key, timeout=0)
    skewed.acquire(budget_key, timeout=0)
    for limiter in (normal, skewed):
        assert limiter.usage(budget_key) == 3
        with pytest.raises(BudgetExhausted, match="budget spent") as excinfo:
            limiter.acquire(budget_key, timeout=0)
        # The wait is measured on the server's clock too: at most k + 2 sub-windows.
        assert 0 < excinfo.value.retry_after <= (30 + 2) * 61 / 30 + 0.1
    skewed.cooldown(budget_key, 30)
    # Read on the server's clock: not 30 s plus the skewed process's lead.
    assert 20 < normal.cooldown_remaining(budget_key) <= 30
    assert 20 < skewed.cooldown_remaining(budget_key) <= 30
    normal.reset(budget_key)
    assert skewed.usage(budget_key) == 0
    assert skewed.cooldown_remaining(budget_key) == 0.0

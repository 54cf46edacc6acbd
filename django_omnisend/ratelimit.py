"""One request budget per Omnisend brand, shared by every process of the site.

Omnisend allows 400 requests per minute per brand in a *sliding* window, and every key, token
and integration of the brand draws on it. django-omnisend spends at most
``OMNISEND["RATE_LIMIT"]`` (default 300) of it, counted in the Django cache named by
``OMNISEND["RATE_LIMIT_CACHE"]``, so that web workers, drain workers and other machines share
one budget.

Algorithm (shared cache): the time line is cut into sub-windows of length
``w = (window + margin) / k`` (``k = subwindows``, default 30, so 2 s for a minute). Each
sub-window ``i`` has an atomic counter ``c[i]`` in the cache. To admit a request at time ``t``
in sub-window ``b``, a process increments ``c[b]`` (``cache.incr``), then reads
``c[b-k] .. c[b+1]`` and keeps the request only if their sum is at most the budget; otherwise
it decrements ``c[b]`` again and sleeps until enough old sub-windows have slid out.

Why that bounds every sliding window: take any span ``[s, s + window + margin]`` and, among the
requests admitted in it, the one whose increment came *last* (cache operations are atomic, so
there is an order), at time ``t`` in sub-window ``b``. Every other admitted request in the span
incremented its counter before that one read the counters, and was made at a time
``>= s >= t - k*w``, i.e. in a sub-window ``>= b - k``, and ``<= b + 1`` (``b + 1`` is read to
absorb clocks that disagree by less than one sub-window). So its read saw all of them, and the
total it saw (including itself) was ``<= budget``. Hence **no window of length
``window + margin`` ever holds more than ``budget`` admitted requests**. The price is that a
request may be refused while up to one sub-window of old requests is still counted, so the
guaranteed throughput is ``budget * k / (k + 1)`` per ``window + margin`` (>= 290/min for the
defaults); losing a race (two processes increment at once) only ever refuses, never admits too
many. ``margin`` (default ``window / 60``, 1 s per minute) absorbs network latency between the
moment we admit a request and the moment Omnisend's gateway counts it.

What Omnisend can count: the bound is on *admission* times, the only ones a client controls.
A request delayed longer than ``margin`` on its way (a slow network, a descheduled process)
can still arrive in a later window; only requests admitted before that window and still on
their way when it starts can, so a window at the gateway holds at most ``budget`` plus the
requests in flight at once (one per process that sends one request at a time), which the
100 a minute the default budget leaves under Omnisend's limit covers many times over.

Requirements for the shared mode: a cache whose ``incr`` is atomic across processes (Redis via
``django.core.cache.backends.redis.RedisCache`` or django-redis, Memcached), and host clocks
that agree within one sub-window (NTP).

Database (no shared cache): LocMem, dummy, database and file caches have no ``incr`` that is
atomic across processes, so then the same sub-window counters live in the database, in the
``RateBudgetSlot`` table (:mod:`django_omnisend.budget_db`): one row per key and sub-window,
counted by atomic upserts, so every worker of the site shares one budget with the same bound.
On SQLite an admitted request costs one short statement, on PostgreSQL and MariaDB/MySQL two
(see that module for why); a Redis or Memcached cache stays the faster choice. There the
sub-windows follow the database server's clock (read in the counting statement), so hosts
need not agree on the time; SQLite, whose processes share one host, uses the process clock.

Per process (last resort): when no database can hold the budget (the app is not installed,
settings are not configured, or an unsupported database), or with ``store="process"``, the
budget is kept in this process's memory as an exact sliding log. That is correct for one
process only; with several workers each would spend the whole budget.

A 429 from Omnisend cools the whole brand down: :meth:`RateLimiter.cooldown` stores a
"not before" time where the counters are, and :meth:`RateLimiter.acquire` waits for it in
every process.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import Any

from .exceptions import MAX_RETRY_AFTER, BudgetExhausted, bounded_wait

logger = logging.getLogger(__name__)

#: Words in a cache backend's *module* path that mean ``incr``/``add`` are atomic and shared
#: between processes (module, not class: ``LocMemCache`` contains "memcache").
SHARED_BACKEND_HINTS = ("redis", "memcached", "pymemcache", "pylibmc", "valkey")


def _backend_is_shared(module: str) -> bool:
    module = module.lower()
    return any(hint in module for hint in SHARED_BACKEND_HINTS)


def cache_is_shared(cache: Any) -> bool:
    """Whether ``cache`` (a Django cache object) has atomic increments shared across processes.

    Judged by the backend's class path: Redis (Django's ``RedisCache``, django-redis) and
    Memcached backends are shared; LocMem, dummy, database and file caches are not.
    """
    return _backend_is_shared(type(cache).__module__)


def cache_alias_is_shared(alias: str) -> bool:
    """:func:`cache_is_shared` for a ``CACHES`` alias (False when the alias is not configured)."""
    from django.conf import settings

    config = getattr(settings, "CACHES", {}).get(alias)
    if not config:
        return False
    return _backend_is_shared(str(config.get("BACKEND", "")).rpartition(".")[0])


#: Where a :class:`RateLimiter` keeps its counters: a shared cache, the database, this process.
STORES = ("cache", "database", "process")


def first_room(counts: dict[int, int], index: int, subwindows: int, budget: int) -> int:
    """How many sub-windows after ``index`` a request first fits (at least 1).

    ``counts``: the requests counted per sub-window (``index - subwindows .. index + 1``), as
    a refused request saw them without itself. A request in sub-window ``index + j`` reads
    ``index + j - subwindows .. index + j + 1``, of which only those up to ``index + 1`` hold
    anything yet; the first ``j`` whose view has room for one more is the answer (at most
    ``subwindows + 2``, when every counted request has slid out).
    """
    for j in range(1, subwindows + 3):
        seen = sum(c for i, c in counts.items() if i >= index + j - subwindows)
        if seen + 1 <= budget:
            return j
    return subwindows + 2


class _LocalStore:
    """Process-wide sliding logs and cooldowns for the fallback mode (thread-safe)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.logs: dict[str, collections.deque[float]] = {}
        self.cooldowns: dict[str, float] = {}


#: One store per process, so every client of the process shares the fallback budget.
_PROCESS_STORE = _LocalStore()


def forget_local_budgets() -> None:
    """Forget this process's fallback budgets and cooldowns (between tests)."""
    with _PROCESS_STORE.lock:
        _PROCESS_STORE.logs.clear()
        _PROCESS_STORE.cooldowns.clear()


class RateLimiter:
    """A per-key (per-brand) request budget; see the module docstring for the algorithm.

    :param key: the default key (normally the brand id) for methods called without one;
        :class:`~django_omnisend.api.OmnisendClient` uses it when it gets no
        ``rate_limit_key``.
    :param budget: requests allowed per ``window``; default ``OMNISEND["RATE_LIMIT"]``.
    :param window: the window in seconds (Omnisend's is 60).
    :param cache_alias: Django cache alias; default ``OMNISEND["RATE_LIMIT_CACHE"]``.
    :param cache: a cache object to use instead of looking up the alias.
    :param store: where the counters live, one of :data:`STORES`; default: ``"cache"`` when
        the cache is shared (:func:`cache_is_shared`), else ``"database"`` when a database can
        hold the budget (:func:`~django_omnisend.budget_db.database_budget_alias`), else
        ``"process"``.
    :param shared: older switch: True means ``store="cache"``, False ``store="process"``.
    :param using: database alias for the database store; default the router's choice.
    :param subwindows: ``k``; more sub-windows waste less budget but read more keys.
    :param margin: seconds added to the window for latency; default ``window / 60``.
    :param clock: wall clock, default ``time.time`` (a shared cache needs a clock all hosts
        agree on).
    :param server_clock: database store only: cut time by the database server's clock, so
        hosts whose clocks disagree still share one budget (PostgreSQL, MariaDB/MySQL; SQLite
        has no server). Default: yes there, unless ``clock`` is given.
    :param sleep: called to wait; inject a recorder in tests.
    """

    def __init__(
        self,
        key: str | None = None,
        *,
        budget: int | None = None,
        window: float | None = None,
        cache_alias: str | None = None,
        cache: Any = None,
        shared: bool | None = None,
        store: str | None = None,
        using: str | None = None,
        subwindows: int = 30,
        margin: float | None = None,
        prefix: str = "django_omnisend:rl",
        clock: Callable[[], float] | None = None,
        server_clock: bool | None = None,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        if budget is None or window is None:
            from .conf import omnisend_settings

            budget = omnisend_settings.rate_limit if budget is None else budget
            window = omnisend_settings.rate_limit_window if window is None else window
        if budget <= 0 or window <= 0 or subwindows < 1:
            raise ValueError("budget, window and subwindows must be positive")
        self.key = key
        self.budget = int(budget)
        self.window = float(window)
        self.margin = float(window / 60.0 if margin is None else margin)
        self.subwindows = int(subwindows)
        self.prefix = prefix
        self.clock = time.time if clock is None else clock
        self.sleep = sleep
        if store is None and shared is not None:
            store = "cache" if shared else "process"
        if store is not None and store not in STORES:
            raise ValueError(f"store must be one of {STORES}")
        if cache is None and store in (None, "cache"):
            cache = self._lookup_cache(cache_alias)
        self.cache = cache
        self.database: Any = None
        if store is None:
            from .budget_db import database_budget_alias

            if cache is not None and cache_is_shared(cache):
                store = "cache"
            elif database_budget_alias(using) is not None:
                store = "database"
            else:
                store = "process"
        if store == "cache" and cache is None:
            store = "process"  # forced shared mode without a cache: nothing to share
        if store == "database":
            from .budget_db import DatabaseBudget

            if server_clock is None and clock is not None:
                server_clock = False  # a clock of one's own (tests) is the clock
            self.database = DatabaseBudget(using, server_clock=server_clock)
        #: ``"cache"``, ``"database"`` or ``"process"``.
        self.store = store
        #: Whether every process of the site shares this budget.
        self.shared = store != "process"
        #: Sub-window length ``w``.
        self.slot = (self.window + self.margin) / self.subwindows
        self._local = _PROCESS_STORE

    @staticmethod
    def _lookup_cache(alias: str | None) -> Any:
        from django.conf import settings

        if not settings.configured:
            return None
        from django.core.cache import caches

        from .conf import omnisend_settings

        name = alias or omnisend_settings.rate_limit_cache
        if name not in getattr(settings, "CACHES", {}):
            return None
        return caches[name]

    def __repr__(self) -> str:
        mode = {"cache": "shared", "database": "database", "process": "per-process"}[self.store]
        return (
            f"RateLimiter(key={self.key!r}, budget={self.budget}, window={self.window:g}, "
            f"mode={mode})"
        )

    def _key(self, key: str | None) -> str:
        key = key if key is not None else self.key
        if not key:
            raise ValueError("no rate-limit key: pass one or build the RateLimiter with key=")
        return str(key)

    # -- cooldown -------------------------------------------------------------------------

    def _cooldown_key(self, key: str) -> str:
        return f"{self.prefix}:{key}:cooldown"

    def cooldown(self, key: str | None, seconds: float) -> None:
        """Refuse requests for ``key`` in every process for ``seconds`` (never shortens one).

        ``seconds`` is clamped to ``MAX_RETRY_AFTER`` (an hour); a non-finite value is ignored.
        """
        key = self._key(key)
        bounded = bounded_wait(seconds)
        if not bounded:
            return
        seconds = bounded
        now = self.clock()
        until = now + seconds
        if self.store == "database":
            self.database.set_cooldown(self._cooldown_key(key), seconds, now)
        elif self.store == "cache":
            current = self.cache.get(self._cooldown_key(key))
            if current is not None and float(current) >= until:
                return
            # A lost race between two writers leaves one of two nearly equal deadlines: fine.
            self.cache.set(self._cooldown_key(key), until, timeout=math.ceil(seconds) + 1)
        else:
            with self._local.lock:
                store, name = self._local.cooldowns, self._cooldown_key(key)
                store[name] = max(store.get(name, 0.0), until)
        logger.info("Omnisend budget %s cooling down for %.1f s", key, seconds)

    def cooldown_remaining(self, key: str | None = None) -> float:
        """Seconds left of the cooldown of ``key`` (0.0 when none)."""
        key = self._key(key)
        if self.store == "database":
            left = self.database.cooldown_remaining(self._cooldown_key(key), self.clock())
            return min(MAX_RETRY_AFTER, left)
        if self.store == "cache":
            until = self.cache.get(self._cooldown_key(key))
        else:
            with self._local.lock:
                until = self._local.cooldowns.get(self._cooldown_key(key))
        if until is None:
            return 0.0
        # Capped too: a deadline stored before waits were bounded must not park the brand.
        return min(MAX_RETRY_AFTER, max(0.0, float(until) - self.clock()))

    # -- budget ---------------------------------------------------------------------------

    def _scoped(self, key: str) -> str:
        # The sub-window length is part of the key: limiters that cut time differently cannot
        # share counters (their indexes mean different instants).
        return f"{self.prefix}:{key}:{self.slot:g}"

    def try_acquire(self, key: str | None = None) -> float:
        """Take one slot for ``key`` if there is room: return 0.0, else the seconds to wait."""
        return self._attempt(self._key(key))[0]

    def _attempt(self, key: str) -> tuple[float, str]:
        """Take a slot: ``(0.0, "")``, or the seconds to wait and why."""
        if self.store == "database":
            return self._try_database(key)
        wait = self.cooldown_remaining(key)
        if wait > 0:
            return wait, "cooling down after a 429"
        if self.store == "cache":
            return self._try_shared(key), "budget spent"
        return self._try_local(key), "budget spent"

    def acquire(self, key: str | None = None, timeout: float | None = None) -> None:
        """Take one request slot for ``key``, sleeping until one is free.

        Also waits out an active :meth:`cooldown`. Raises
        :class:`~django_omnisend.exceptions.BudgetExhausted` (with ``retry_after``) instead of
        waiting beyond ``timeout`` seconds; ``None`` waits as long as needed.
        """
        key = self._key(key)
        start = self.clock()
        while True:
            now = self.clock()
            waited = now - start
            left = math.inf if timeout is None else timeout - waited
            wait, reason = self._attempt(key)
            if wait <= 0:
                return
            if wait > left:
                raise BudgetExhausted(
                    f"Omnisend request budget for {key!r}: {reason}; "
                    f"next slot in {wait:.1f} s (allowed wait {max(left, 0):.1f} s).",
                    retry_after=wait,
                )
            logger.debug("Omnisend budget %s: %s, waiting %.2f s", key, reason, wait)
            self.sleep(wait)

    def _slot_key(self, key: str, index: int) -> str:
        return f"{self._scoped(key)}:{index}"

    def _try_shared(self, key: str) -> float:
        cache, k = self.cache, self.subwindows
        now = self.clock()
        b = math.floor(now / self.slot)
        slot_key = self._slot_key(key, b)
        ttl = math.ceil(self.slot * (k + 3)) + 1
        try:
            cache.incr(slot_key)
        except ValueError:  # missing key: create it (atomically) and count again
            cache.add(slot_key, 0, timeout=ttl)
            cache.incr(slot_key)
        indexes = list(range(b - k, b + 2))
        values = cache.get_many([self._slot_key(key, i) for i in indexes])
        counts = {i: int(values.get(self._slot_key(key, i)) or 0) for i in indexes}
        if sum(counts.values()) <= self.budget:
            return 0.0
        cache.decr(slot_key)
        counts[b] -= 1
        return self._wait_for(b + first_room(counts, b, k, self.budget), now)

    def _wait_for(self, index: int, now: float) -> float:
        # A little past the boundary, so the slot index really has moved on when we wake.
        return max(index * self.slot - now, 0.0) + min(0.01, self.slot / 100)

    def _try_database(self, key: str) -> tuple[float, str]:
        taken = self.database.take(
            self._scoped(key),
            self._cooldown_key(key),
            self.slot,
            self.subwindows,
            self.budget,
            self.clock(),
        )
        if taken.admitted:
            return 0.0, ""
        # Waits are measured on the clock the sub-window came from (the server's, or ours).
        now, b = taken.now, taken.subwindow
        if taken.cooldown_until is not None:
            wait = min(MAX_RETRY_AFTER, max(taken.cooldown_until - now, 0.0))
            return wait, "cooling down after a 429"
        return self._wait_for(b + first_room(taken.counts, b, self.subwindows, self.budget), now), (
            "budget spent"
        )

    def _try_local(self, key: str) -> float:
        span = self.window + self.margin
        with self._local.lock:
            now = self.clock()
            log = self._local.logs.setdefault(self._scoped(key), collections.deque())
            while log and log[0] <= now - span:
                log.popleft()
            if len(log) < self.budget:
                log.append(now)
                return 0.0
            # The slot frees when the oldest request that keeps us full leaves the window.
            return log[len(log) - self.budget] + span - now + 1e-6

    def usage(self, key: str | None = None) -> int:
        """Requests of ``key`` the budget currently counts (read-only; takes no slot).

        Shared modes (cache, database): the sum of the live sub-window counters (what the next
        :meth:`try_acquire` would see, minus itself). Per-process mode: this process's log
        only, so another process (a management command) sees 0 there.
        """
        key = self._key(key)
        now = self.clock()
        if self.store == "database":
            counts = self.database.counts(self._scoped(key), self.slot, self.subwindows, now)
            return sum(counts.values())
        if self.store == "cache":
            b = math.floor(now / self.slot)
            names = [self._slot_key(key, i) for i in range(b - self.subwindows, b + 2)]
            return sum(int(v or 0) for v in self.cache.get_many(names).values())
        span = self.window + self.margin
        with self._local.lock:
            log = self._local.logs.get(self._scoped(key)) or ()
            return sum(1 for t in log if t > now - span)

    def reset(self, key: str | None = None) -> None:
        """Forget the counts and cooldown of ``key`` (tests, or after changing the budget)."""
        key = self._key(key)
        if self.store == "database":
            self.database.forget(self._scoped(key), self._cooldown_key(key))
        if self.store == "cache":
            b = math.floor(self.clock() / self.slot)
            keys = [self._slot_key(key, i) for i in range(b - self.subwindows - 2, b + 3)]
            self.cache.delete_many([*keys, self._cooldown_key(key)])
        with self._local.lock:
            self._local.logs.pop(self._scoped(key), None)
            self._local.cooldowns.pop(self._cooldown_key(key), None)


def tags_rate_limiter(**kwargs: Any) -> RateLimiter:
    """The budget of ``/contacts/tags`` (``OMNISEND["TAGS_RATE_LIMIT"]`` per window).

    Omnisend limits that endpoint to 60 requests a minute on its own; its requests draw on
    this budget and on the brand's. Counted apart from the brand's (another cache prefix).
    """
    from .conf import omnisend_settings

    kwargs.setdefault("budget", omnisend_settings.tags_rate_limit)
    kwargs.setdefault("prefix", "django_omnisend:rl-tags")
    return RateLimiter(**kwargs)

"""Sliding-window rate limiter per brand, as Omnisend's gateway enforces it
(docs: reference/omnisend-api.rst, 'Rate limits').

Each brand has named buckets (``"all"``: every API request; ``"tags"``: ``/contacts/tags``),
each a deque of the times of accepted requests. A request is accepted only when every bucket
it belongs to has fewer than its limit of timestamps in ``(now - window, now]``; then ``now``
is appended to all of them atomically. Rejected requests (429) take no slot, so no span of
``window`` seconds ever holds more than ``limit`` accepted requests.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Decision:
    """Outcome of :meth:`SlidingWindowLimiter.acquire`."""

    allowed: bool
    #: The tightest bucket's limit and how many slots remain in it after this request.
    limit: int
    remaining: int
    #: Whole seconds until the oldest slot of the tightest full bucket frees (>= 1 when
    #: rejected); for allowed requests, seconds until the window's oldest entry expires.
    retry_after: int
    #: The clock reading the decision was taken at (read under the limiter's lock, so the
    #: accepted times of one brand are recorded in order).
    now: float = 0.0


class SlidingWindowLimiter:
    """Per-brand sliding windows; thread-safe."""

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], deque[float]] = {}
        self._lock = threading.Lock()

    def acquire(
        self, brand_id: str, buckets: dict[str, int], window: float, clock: Callable[[], float]
    ) -> Decision:
        """Take one slot now in every bucket (name → limit), or none if any is full."""
        with self._lock:
            now = clock()
            states = []
            for name, limit in buckets.items():
                times = self._windows.setdefault((brand_id, name), deque())
                while times and times[0] <= now - window:
                    times.popleft()
                states.append((name, limit, times))
            full = [(limit, times) for _, limit, times in states if len(times) >= limit]
            if full:
                wait = max(times[len(times) - limit] + window - now for limit, times in full)
                limit = min(limit for limit, _ in full)
                return Decision(False, limit, 0, max(1, math.ceil(wait)), now)
            for _, _, times in states:
                times.append(now)
            limit, times = min(((lim, t) for _, lim, t in states), key=lambda s: s[0] - len(s[1]))
            reset = max(0, math.ceil(times[0] + window - now)) if times else 0
            return Decision(True, limit, max(0, limit - len(times)), reset, now)

    def clear(self) -> None:
        """Forget every window."""
        with self._lock:
            self._windows.clear()

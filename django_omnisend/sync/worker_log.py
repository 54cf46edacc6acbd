"""What ``omnisend_drain --loop`` writes: each change of state once, and a periodic summary.

A line per pass floods a worker's log during an outage (the same "deferred 1" every few
seconds). Instead the loop says when something changes:

* "Omnisend unreachable since …: <why>" when requests stop getting answers, and "Omnisend
  reachable again after …" when one is answered (an open circuit breaker during the outage
  is part of it, not news);
* "Connection 'x' paused: <why>" when a connection is paused, and "… delivers again" when it
  sends again; "Connection 'x' waiting: <why> until …" when a 429 cooldown or an open circuit
  breaker holds it (and no outage explains it);
* "Drain passes succeed again after N failed passes" after passes that raised (the first
  failure is logged with its traceback, identical ones after it only counted; SQLite's
  transient "database is locked" with one line saying what to do instead of a traceback);

and every ``summary_every`` seconds one line of totals, when anything happened. When the loop
stops it writes the totals of the whole run.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime

from django.db import OperationalError
from django.utils import timezone

from .. import redaction
from ..text import moment
from .reachability import advice
from .results import DrainResult, Hold

logger = logging.getLogger("django_omnisend.worker_log")
# A failed pass is logged with its traceback: keep any credential in it out of the log.
redaction.install(logger.name)

#: The counts a summary shows, in order, with their labels.
COUNTS = (
    ("synced", "synced"),
    ("unchanged", "unchanged"),
    ("skipped", "skipped"),
    ("retried", "retrying"),
    ("dead", "dead"),
    ("events_sent", "events"),
    ("erasures_sent", "erasures"),
    ("deferred", "deferred"),
    ("requests", "requests"),
)


#: A pass that met SQLite's write lock held past the busy timeout (several workers on one file).
LOCKED = (
    "An Omnisend drain pass stopped: %s (another process held SQLite's write lock longer than "
    "the busy timeout). The next pass retries it and nothing is lost; a row caught mid-send "
    "is sent again when its lease ends. If this repeats, raise DATABASES[...]['OPTIONS']"
    "['timeout'] (seconds, 5 by default) or run several workers on PostgreSQL."
)


def database_locked(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's transient "database is locked" (or "table is locked")."""
    return isinstance(exc, OperationalError) and "is locked" in str(exc)


def duration(seconds: float) -> str:
    """``45 s``, ``2 min 5 s``, ``3 h 20 min``: how long, for people."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def counts(result: DrainResult) -> Counter:
    """The summary's counts of one pass."""
    found = Counter({name: getattr(result, name) for name, _ in COUNTS})
    found["skipped"] = sum(result.skipped.values())
    return found


class LoopLog:
    """Turns the results of a loop's passes into the few lines worth reading.

    ``write`` receives each line; ``clock`` (monotonic seconds) times the summaries.
    """

    def __init__(
        self,
        write: Callable[[str], None],
        summary_every: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.write = write
        self.summary_every = summary_every
        self.clock = clock
        self.started = self.window_started = clock()
        self.passes = self.window_passes = 0
        self.total: Counter = Counter()
        self.window: Counter = Counter()
        #: When requests stopped getting answers (None: reachable, or not known otherwise).
        self.down_since: datetime | None = None
        self.down_reason = ""
        #: Connections held back, as last reported.
        self.held: dict[str, Hold] = {}
        self.failing = ""
        self.failures = 0
        self.window_failures = 0

    # -- one pass ----------------------------------------------------------------------------

    def passed(self, result: DrainResult) -> None:
        """Record a pass that ran; write what changed, and the summary when it is due."""
        self._count(counts(result))
        if self.failing:
            self.write(f"Drain passes succeed again after {self.failures} failed passes.")
            self.failing, self.failures = "", 0
        self._reachability(result)
        self._held(result)
        self._summary_if_due()

    def failed(self, exc: BaseException) -> None:
        """Record a pass that raised: the first of a kind with its traceback, then a count."""
        self._count(Counter())
        signature = f"{type(exc).__name__}: {exc}"
        if signature != self.failing and database_locked(exc):
            # Transient, not a bug: no traceback, but what happened and what to do.
            logger.warning(LOCKED, exc)
            self.failing = signature
        elif signature != self.failing:
            logger.error(
                "An Omnisend drain pass failed; retrying after a pause. Passes failing the "
                "same way are counted, not logged again.",
                exc_info=exc,
            )
            self.failing = signature
        self.failures += 1
        self.window_failures += 1
        self._summary_if_due()

    def stopped(self) -> None:
        """Write the totals of the whole run."""
        elapsed = duration(self.clock() - self.started)
        self.write(f"Stopped after {self.passes} passes in {elapsed}: {self._counts(self.total)}")

    # -- state changes -----------------------------------------------------------------------

    def _reachability(self, result: DrainResult) -> None:
        now = timezone.now()
        if self.down_since is None and result.omnisend_unreachable:
            self.down_since, self.down_reason = now, result.unreachable
            self.write(
                f"Omnisend unreachable since {moment(now)}: {result.unreachable}. Items wait "
                f"and are retried with backoff; nothing is lost. {advice()}"
            )
        elif self.down_since is not None and result.answered:
            down_for = duration((now - self.down_since).total_seconds())
            self.write(
                f"Omnisend reachable again after {down_for} "
                f"(unreachable since {moment(self.down_since)})."
            )
            self.down_since, self.down_reason = None, ""
        elif self.down_since is not None and result.unreachable:
            self.down_reason = result.unreachable  # the latest reason, for the summary

    def _held(self, result: DrainResult) -> None:
        now = timezone.now()
        for key, hold in list(self.held.items()):
            if hold.until is not None and hold.until <= now:
                del self.held[key]  # a cooldown or breaker that ran out, as its line said
        for key, hold in result.held.items():
            if hold.kind == "breaker" and self.down_since is not None:
                continue  # the outage, already reported: the breaker is how we wait it out
            before = self.held.get(key)
            self.held[key] = hold
            if before is not None and self._same(before, hold):
                continue
            verb = "paused" if hold.kind == "paused" else "waiting"
            self.write(f"Connection {key!r} {verb}: {hold.reason}")
        for key in sorted(set(self.held) & result.delivered):
            hold = self.held.pop(key)
            self.write(f"Connection {key!r} delivers again (was {self._was(hold)}).")

    @staticmethod
    def _same(before: Hold, now: Hold) -> bool:
        """The same wait, perhaps with a new end time (a pause for a new reason is news)."""
        return before.kind == now.kind and (now.kind != "paused" or before.reason == now.reason)

    @staticmethod
    def _was(hold: Hold) -> str:
        return {"paused": "paused", "cooldown": "rate limited", "breaker": "waiting"}.get(
            hold.kind, hold.kind
        )

    # -- summaries ---------------------------------------------------------------------------

    def _count(self, found: Counter) -> None:
        self.passes += 1
        self.window_passes += 1
        self.total.update(found)
        self.window.update(found)

    def _counts(self, found: Counter) -> str:
        return ", ".join(f"{label} {found[name]}" for name, label in COUNTS)

    def _summary_if_due(self) -> None:
        now = self.clock()
        if now - self.window_started < self.summary_every:
            return
        if any(self.window.values()) or self.window_failures or self.down_since or self.held:
            notes = []
            if self.window_failures:
                notes.append(f"{self.window_failures} passes failed")
            if self.down_since is not None:
                notes.append(
                    f"Omnisend unreachable since {moment(self.down_since)} ({self.down_reason})"
                )
            notes += [
                f"{'paused' if h.kind == 'paused' else 'waiting'}: {key} ({h.reason})"
                for key, h in sorted(self.held.items())
            ]
            self.write(
                f"Last {duration(now - self.window_started)}: {self.window_passes} passes, "
                + self._counts(self.window)
                + "".join(f"; {note}" for note in notes)
            )
        self.window_started, self.window_passes = now, 0
        self.window, self.window_failures = Counter(), 0

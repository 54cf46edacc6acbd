"""``manage.py omnisend_drain``: deliver the sync outbox, once or in a loop.

For cron (``--once``, the default), systemd or containers (``--loop``). Any number may run
at once on any number of machines: rows are leased, never sent twice concurrently.

``--once`` exits 1, naming the reason and what to do, when Omnisend could not be reached
(or its circuit breaker is open) or a connection is paused; a 429 cooldown is not an error.

SIGTERM (systemd, containers) and SIGINT (Ctrl-C) stop either mode after the row in progress:
the leases of rows claimed but not reached are given back and the command exits 0. A second
signal is not caught, so it ends the process at once (the leases then expire on their own).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_omnisend.sync import DrainResult, drain
from django_omnisend.sync.reachability import advice
from django_omnisend.sync.worker_log import LoopLog

#: Signals that stop a drain after its current row (systemd and containers send SIGTERM).
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: Longest nap between checks for a stop signal while the loop waits for work (a signal does
#: not cut ``time.sleep`` short, and an ``Event`` set from a handler can deadlock).
NAP = 0.1


def held_notes(result: DrainResult) -> list[str]:
    """A note per connection held back: ``; paused: key (why)`` or ``; waiting: key (why)``."""
    return [
        f"; {'paused' if hold.kind == 'paused' else 'waiting'}: {key} ({hold.reason})"
        for key, hold in result.held.items()
    ]


def problem(result: DrainResult) -> str:
    """Why a pass could not deliver, with what to do ("" when nothing stands in the way).

    A 429 cooldown is flow control, not a problem; Omnisend unreachable (in this pass, or
    earlier so that the circuit breaker is open) and a paused connection are.
    """
    if result.omnisend_unreachable:
        return (
            f"Omnisend unreachable: {result.unreachable}. Nothing is lost: the items stay "
            f"queued and are retried with backoff. {advice()}"
        )
    for key, hold in result.held.items():
        if hold.kind == "paused":
            return f"Delivery to connection {key!r} is paused: {hold.reason}"
        if hold.kind == "breaker":
            return (
                f"Omnisend unreachable: connection {key!r} is waiting, {hold.reason}. Nothing "
                f"is lost: the items stay queued. {advice()}"
            )
    return ""


class Command(BaseCommand):
    help = "Send pending contact syncs, events and erasures to Omnisend."

    def add_arguments(self, parser: Any) -> None:
        mode = parser.add_mutually_exclusive_group()
        mode.add_argument("--once", action="store_true", help="One pass, then exit (default).")
        mode.add_argument(
            "--loop",
            action="store_true",
            help="Keep draining; sleep when nothing is due. SIGTERM or SIGINT stops it after "
            "the current row, leases given back, exit status 0.",
        )
        parser.add_argument(
            "--max-seconds",
            type=float,
            default=None,
            help="Stop after this many seconds (a pass in progress finishes its current row).",
        )
        parser.add_argument(
            "--max-items", type=int, default=None, help="Stop after this many items (--once)."
        )
        parser.add_argument(
            "--max-passes",
            type=int,
            default=None,
            help="Stop after this many passes (--loop), for a supervisor to restart the worker.",
        )
        parser.add_argument(
            "--summary-every",
            type=float,
            default=60.0,
            help="Seconds between summaries of what the loop did (--loop).",
        )
        parser.add_argument(
            "--idle-sleep",
            type=float,
            default=5.0,
            help="Seconds to wait between passes when nothing was due (--loop).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        max_seconds = options["max_seconds"]
        if max_seconds is not None and max_seconds <= 0:
            raise CommandError("--max-seconds must be positive.")
        if options["summary_every"] < 0:
            raise CommandError("--summary-every must not be negative.")
        if options["max_passes"] is not None and options["max_passes"] <= 0:
            raise CommandError("--max-passes must be positive.")
        self._stopping = False
        if not options["loop"]:
            with self._stop_on_signals():
                result = drain(
                    max_seconds=max_seconds, max_items=options["max_items"], stop=self._stopped
                )
            self._report(result)
            why = problem(result)
            if why:  # cron and scripts see it in the exit status
                raise CommandError(why)
            return
        log = LoopLog(self.stdout.write, summary_every=options["summary_every"])
        try:
            with self._stop_on_signals():
                self._loop(max_seconds, options["idle_sleep"], options["max_passes"], log)
        finally:
            log.stopped()

    def _loop(
        self, max_seconds: float | None, idle_sleep: float, max_passes: int | None, log: LoopLog
    ) -> None:
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        passes = 0
        while not self._stopping and (max_passes is None or passes < max_passes):
            passes += 1
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            try:
                result = drain(max_seconds=remaining, stop=self._stopped)
            except Exception as exc:
                # A worker outlives a bad pass (database restart, a bug in an adapter): the
                # row that failed was rescheduled with backoff, so the next pass moves on.
                log.failed(exc)
                self._nap(idle_sleep)
                continue
            # No line per pass: changes once, totals every --summary-every seconds.
            log.passed(result)
            if not result.processed:
                self._nap(min(idle_sleep, remaining) if remaining is not None else idle_sleep)

    def _nap(self, seconds: float) -> None:
        """Sleep ``seconds``, waking within :data:`NAP` of a stop signal."""
        end = time.monotonic() + seconds
        while not self._stopping:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(NAP, left))

    def _stopped(self) -> bool:
        return self._stopping

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Catch :data:`STOP_SIGNALS` for the block (main thread only, where Python can)."""
        if threading.current_thread() is not threading.main_thread():
            yield  # call_command() from another thread: the caller owns signals
            return
        previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}

        def stop(signum: int, frame: Any) -> None:
            self._stopping = True
            # The first signal asks politely; the next one takes the usual effect at once.
            for number, handler in previous.items():
                signal.signal(number, handler)

        for signum in STOP_SIGNALS:
            signal.signal(signum, stop)
        try:
            yield
        finally:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

    def _report(self, result: DrainResult) -> None:
        skipped = sum(result.skipped.values())
        self.stdout.write(
            f"synced {result.synced}, unchanged {result.unchanged}, skipped {skipped}, "
            f"retrying {result.retried}, dead {result.dead}, events {result.events_sent}, "
            f"erasures {result.erasures_sent}, deferred {result.deferred}, "
            f"requests {result.requests}" + "".join(held_notes(result))
        )

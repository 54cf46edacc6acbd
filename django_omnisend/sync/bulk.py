"""Bulk sync through Omnisend's ``/batches``: the backfill behind ``omnisend_sync_contacts``.

1. **Mark** the chosen users dirty in SQL, a chunk of primary keys per statement batch.
2. **Send** due rows 100 at a time as one ``POST /batches`` each (``sendWelcomeMessage``
   false, no channel status unless Django recorded a decision). Rows that need a single
   request (an e-mail change, an opt-in that must be checked against Omnisend first) go
   through the ordinary drain path instead.
3. **Poll** the batch list (250 batches a page, so a whole backfill is a few requests), then
   **settle** each processed batch (:mod:`django_omnisend.sync.batches`: from its counters when
   every item succeeded, else from its ``/items``).

A run that is interrupted is resumed by the next one, which polls the batches it finds on the
rows instead of sending them again; the drain, meeting such rows once their lease is over,
settles their batch itself.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from ..api.resources import BATCH_SETTLED
from ..conf import omnisend_settings
from ..models import SyncState
from . import batches as batching
from . import identity
from . import leases as claims
from .batches import BATCH_POLL_SECONDS, BATCH_SIZE, abandon, settle  # noqa: F401 - API
from .loop import Drain
from .marking import mark_dirty_many
from .payloads import plan_contact
from .policy import new_worker_id

#: Batches created before their outcomes are collected (a page of the batch list holds 250).
MAX_OUTSTANDING = 200
#: Rows in a batch are leased this long: a crashed run's rows wait for the next run to poll.
BATCH_LEASE_SECONDS = 1800.0
#: Give up polling after this long; the rows keep their batch for the next run.
POLL_TIMEOUT_SECONDS = 600.0
#: Rows marked per transaction: each chunk commits before the next is written, so a backfill
#: never holds many row locks while web saves wait on them (or deadlock with them).
MARK_CHUNK = 100
#: Primary keys read per round trip while marking (reading takes no row locks).
READ_CHUNK = 1000


@dataclass
class BulkReport:
    """What a bulk run did (the command's summary)."""

    marked: int = 0
    sent: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed: int = 0
    retrying: int = 0
    single: int = 0
    batches: int = 0
    requests: int = 0
    pending: int = 0
    errors: Counter = field(default_factory=Counter)
    #: Why Omnisend gave no usable answer to the last request that failed so ("" if none).
    unreachable: str = ""

    @property
    def done(self) -> int:
        return self.sent + self.unchanged + sum(self.skipped.values()) + self.failed


def select_users(
    *,
    since: datetime | None = None,
    user_ids: Iterable[Any] | None = None,
    never_synced: bool = False,
) -> QuerySet:
    """The users a bulk run covers (every user when no filter is given)."""
    users = get_user_model()._default_manager.all()
    if since is not None and hasattr(get_user_model(), "date_joined"):
        users = users.filter(date_joined__gte=since)
    if user_ids:
        users = users.filter(pk__in=list(user_ids))
    if never_synced:
        synced = SyncState.objects.exclude(payload_hash="").values("user_id")
        users = users.exclude(pk__in=synced)
    return users


def chunked(pks: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for pk in pks:
        chunk.append(pk)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def mark_users(users: QuerySet, connection_key: Callable[[Any], str] | None = None) -> int:
    """Mark ``users`` dirty, a short transaction per chunk of ``MARK_CHUNK`` (flat memory).

    Users are taken in primary-key order, the order every chunk locks its rows in, and each
    chunk commits on its own: no transaction spans the backfill (on PostgreSQL one that did
    deadlocked against web saves). ``connection_key(user)`` is the adapter's; with the default
    adapter every user belongs to ``"default"`` and only primary keys are read.
    """
    using = router.db_for_write(SyncState)
    marked = 0
    users = users.order_by("pk")
    if connection_key is None:
        rows = ((pk, "default") for pk in users.values_list("pk", flat=True).iterator(READ_CHUNK))
    else:
        rows = ((u.pk, connection_key(u)) for u in users.iterator(READ_CHUNK))
    for chunk in chunked(rows, MARK_CHUNK):
        with transaction.atomic(using=using):
            mark_dirty_many(chunk, using)
        marked += len(chunk)
    return marked


class BatchSync(Drain):
    """Deliver due rows through ``/batches``; reuses the drain's outcome rules."""

    def __init__(
        self,
        *,
        progress: Callable[[BulkReport], None] | None = None,
        poll_sleep: Callable[[float], Any] = time.sleep,
        max_seconds: float | None = None,
    ) -> None:
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        super().__init__(worker=f"bulk:{new_worker_id()}", deadline=deadline, max_items=None)
        self.report = BulkReport()
        self.progress = progress or (lambda report: None)
        self.poll_sleep = poll_sleep
        self.origin = omnisend_settings.event_origin
        #: batch id -> connection key, for batches sent and not yet settled.
        self.outstanding: dict[str, str] = {}

    # -- the run --------------------------------------------------------------------------

    def run_bulk(self) -> BulkReport:
        try:
            self._resume()
            while not self.out_of_time():
                worked = self._send_round()
                if len(self.outstanding) >= MAX_OUTSTANDING or (not worked and self.outstanding):
                    if not self._poll():
                        break  # Omnisend is still working: the next run polls these batches
                    continue  # settled rows may be due again (e.g. newer saves meanwhile)
                if not worked:
                    break
        finally:
            self.clients.close()
            self.report.requests = self.result.requests
            self.report.unreachable = self.result.unreachable
            self.report.pending = SyncState.objects.filter(dirty=True).count()
        return self.report

    def _resume(self) -> None:
        """Adopt batches an interrupted run left on the rows (their outcome is still due)."""
        pending = (
            SyncState.objects.exclude(batch_id="")
            .values_list("batch_id", "connection_key")
            .distinct()
        )
        for batch_id, key in pending:
            self.outstanding[batch_id] = key

    def _send_round(self) -> int:
        now = timezone.now()
        # Rows travelling in a batch are not due until their lease ends (next_attempt_at is
        # its end). No batch_id condition here: it would steer the planner off the due index
        # (SQLite then walks every row with batch_id ""); a batch row is set aside below.
        due = Q(dirty=True, next_attempt_at__lte=now)
        if self.blocked:
            due &= ~Q(connection_key__in=self.blocked)
        token = self.claim_token()  # the fence of these rows (see sync.Drain.claim_token)
        rows = claims.claim(
            SyncState,
            due,
            worker=token,
            limit=BATCH_SIZE,
            now=now,
            lease_seconds=self.lease_seconds,
        )
        if not rows:
            return 0
        by_key: dict[str, list[SyncState]] = {}
        for row in rows:
            if row.batch_id:
                # Its batch's lease ran out before the batch settled: the row stays with the
                # batch (sending it again could land before the old batch does); poll it.
                self.outstanding[row.batch_id] = row.connection_key
                SyncState.objects.filter(pk=row.pk).update(
                    next_attempt_at=now + timedelta(seconds=BATCH_LEASE_SECONDS)
                )
                continue
            by_key.setdefault(row.connection_key, []).append(row)
        try:
            for key, key_rows in by_key.items():
                self._send_key(key, key_rows)
        finally:
            claims.release(SyncState, [r.pk for r in rows], worker=token)
        self.progress(self.report)
        return len(rows)

    def _send_key(self, key: str, rows: list[SyncState]) -> None:
        if key in self.blocked or not self.gate_allows(rows[0]):
            return
        users = self.user_model._default_manager.in_bulk([r.user_id for r in rows])
        items: list[tuple[SyncState, Any]] = []
        planned: list[tuple[SyncState, Any, bool]] = []
        for row in rows:
            user = users.get(row.user_id)
            if user is None:
                continue
            try:
                plan = plan_contact(
                    user,
                    self.adapter,
                    consent_sent_at=row.consent_sent_at,
                    is_new=False,
                )
                verified = not plan.skip_reason and self.adapter.is_email_verified(user)
            except Exception:
                # The adapter failed for this user: the drain path records it with backoff.
                before = self.result.as_dict()
                self.sync_row(row)
                self._count_single(before)
                continue
            planned.append((row, plan, verified))
        # Every address of the round bound in one transaction (see identity.bind_many).
        binds = [(row, plan.email) for row, plan, _ in planned if not plan.skip_reason]
        waiting: set[Any] = set()

        def unbound(row: SyncState, outcome: identity.Binding) -> None:
            self._wait_for_address(row, outcome.value)
            self.report.skipped[outcome.value] += 1
            waiting.add(row.pk)

        if binds:
            identity.bind_many(binds, unbound=unbound)
        # A user deleted before its address was bound owned nothing, so no erasure follows
        # it: its item must not be sent. (One deleted after binding is erased once the batch
        # settled, see _record_batch.)
        alive = set(
            SyncState.objects.filter(pk__in=[row.pk for row, _, _ in planned]).values_list(
                "pk", flat=True
            )
        )
        for row, plan, verified in planned:
            if row.pk in waiting or row.pk not in alive:
                continue
            needs_single = (
                (row.email and plan.email and row.email != plan.email)
                or (plan.consent is not None and plan.consent.subscribed)
                # An unverified address this row never wrote needs a lookup first: the
                # contact may exist, and then it is not this user's to write.
                or (not verified and plan.email != row.email)
            )
            if (
                plan.skip_reason
                or needs_single
                or (
                    plan.consent is None
                    and row.payload_hash
                    and (plan.email, plan.payload_hash) == (row.email, row.payload_hash)
                )
            ):
                # Skips, unchanged rows, e-mail changes, opt-ins and first writes of
                # unverified addresses: the drain's own path.
                before = self.result.as_dict()
                self.sync_row(row)
                self._count_single(before)
                continue
            items.append((row, plan))
        if not items or key in self.blocked:
            return
        batch_id, error = batching.send_batch(
            self, key, items, origin=self.origin, lease_seconds=BATCH_LEASE_SECONDS
        )
        if error is not None:
            for n, (row, _) in enumerate(items):
                # One refused request: the breaker counts it once, not once per row.
                self._record_failure(row, error, users.get(row.user_id), breaker=n == 0)
        if batch_id:
            self.report.batches += 1
            self.outstanding[batch_id] = key

    def _count_single(self, before: dict[str, Any]) -> None:
        after = self.result.as_dict()
        self.report.single += 1
        if after["unchanged"] > before["unchanged"]:
            self.report.unchanged += 1
        elif after["synced"] > before["synced"]:
            self.report.sent += 1
        elif after["dead"] > before["dead"]:
            self.report.failed += 1
        elif after["retried"] > before["retried"]:
            self.report.retrying += 1
        for reason, n in after["skipped"].items():
            if n > before["skipped"].get(reason, 0):
                self.report.skipped[reason] += 1

    def _record_failure(
        self, row: SyncState, exc: Exception, user: Any = None, *, breaker: bool = True
    ) -> None:
        outcome = self.failed(row, exc, breaker=breaker)
        if outcome == "dead":
            self.report.failed += 1
            self.report.errors[type(exc).__name__] += 1
        elif outcome == "retry":
            self.report.retrying += 1
        self.signal_failed(row, user, exc, outcome)

    # -- outcomes -------------------------------------------------------------------------

    def _poll(self) -> bool:
        """Wait for the outstanding batches and record every item's outcome.

        Returns False when some batches were still unfinished at the poll timeout or deadline.
        """
        started, wait = time.monotonic(), 0.2
        while self.outstanding and time.monotonic() - started < POLL_TIMEOUT_SECONDS:
            self.poll_sleep(wait)
            for batch in self._list_outstanding():
                if batch.get("status") in BATCH_SETTLED:
                    self._settle(batch)
            self.progress(self.report)
            wait = min(wait * 2, 10.0)
            if self.out_of_time():
                break
        return not self.outstanding

    def _list_outstanding(self) -> list[dict[str, Any]]:
        """Our batches from the newest-first batch list, reading only as many pages as needed."""
        return batching.list_outstanding(self, self.outstanding)

    def _settle(self, batch: dict[str, Any]) -> None:
        key = self.outstanding.pop(batch["batchID"])
        settled = settle(self, key, batch)
        self.report.sent += settled.sent
        for row, error in settled.failures:
            self._record_failure(row, error)


def send_in_batches(
    *,
    progress: Callable[[BulkReport], None] | None = None,
    max_seconds: float | None = None,
) -> BulkReport:
    """Deliver every due row through ``/batches`` (and the drain path where needed)."""
    return BatchSync(progress=progress, max_seconds=max_seconds).run_bulk()


__all__ = ["BulkReport", "chunked", "mark_users", "select_users", "send_in_batches"]

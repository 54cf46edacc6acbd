"""``drain()``: deliver the outbox to Omnisend, one bounded pass.

Claim due rows with a lease, build each payload from the *current* user row, skip the call
when nothing changed, send outside any transaction, record the outcome. Any number of drains
may run at once; leases and the fence keep one request in flight per row and never let a late
answer overwrite a newer outcome. The rules are in the docs (guides/syncing.rst and
guides/security.rst, 'How each outcome is handled').
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from .. import exceptions
from ..adapter import get_adapter
from ..conf import omnisend_settings
from ..models import OutboxItem, SyncState
from . import batches as batching
from . import erasure, outcomes
from . import gates as delivery
from . import leases as claims
from .batch_rounds import BatchRounds
from .batches import BATCH_SIZE
from .contacts import ContactRows
from .outbox_rows import OutboxRows
from .policy import (
    BATCH_WAIT_SECONDS,
    CLAIM_BATCH,
    DRAIN_MAX_WAIT,
    LEASE_FLOOR,
    MAX_OUTSTANDING,
    OWNER_LENGTH,
    RECORD_WINDOW,
    LeaseLost,
    new_worker_id,
    not_connected_reason,
)
from .preparing import Prepared, Preparing
from .reachability import unreachable_reason
from .recording import Recording
from .results import DrainResult, Hold


class _Clients:
    """One API client per connection key for the length of a drain (pooled connections)."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}

    def get(self, key: str) -> Any:
        if key not in self._clients:
            from ..connect import client_for_key

            # The drain owns retries (it reschedules instead of sleeping), so the client makes
            # exactly one request per call and never sits on its leases waiting for budget.
            self._clients[key] = client_for_key(key, max_retries=0, max_wait=DRAIN_MAX_WAIT)
        return self._clients[key]

    def credential(self, key: str) -> str:
        """Fingerprint of the credential ``key`` would use now ("" when there is none)."""
        if key not in self._fingerprints:
            from ..connect import credential_fingerprint

            self._fingerprints[key] = credential_fingerprint(key)
        return self._fingerprints[key]

    def sent(self) -> int:
        """HTTP requests the clients of this drain have sent so far."""
        return sum(client.requests_sent for client in self._clients.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


class Drain(BatchRounds, Recording, Preparing, ContactRows, OutboxRows):
    """One drain pass: claim rounds, gates, requests; the mixins hold the rest.

    The database work is per claimed batch where a durable commit would otherwise be paid per
    row: a batch's users are read in one query, its addresses bound in one short transaction
    before any request, its outcomes saved in one transaction (never more than a second after an
    answer), and a lease is renewed only when it is getting short. No transaction is ever open
    across a request.

    Fencing (issue 14): a lease is a timer, so a request can outlive it (a slow answer, a pause,
    a clock ahead) while another worker takes the row over. Every claim therefore leases its rows
    under a token of its own (``lease_owner`` is the worker id plus a claim counter), and every
    ``UPDATE`` that records an outcome filters on that token: a worker that lost its lease
    records nothing, and if its request may have written to Omnisend it marks the row dirty again
    (a new generation, no payload hash) so the current state is sent once more after it. A
    request whose outcome is unknown (timeout, reset, unreadable 2xx, 5xx) forgets the payload
    hash the same way, and every path that clears ``dirty`` checks the generation it read.
    """

    def __init__(
        self,
        *,
        worker: str,
        deadline: float | None,
        max_items: int | None,
        stop: Callable[[], bool] | None = None,
    ):
        self.worker = worker
        self.deadline = deadline
        self.max_items = max_items
        self.stop = stop
        self.result = DrainResult()
        self.clients = _Clients()
        self.blocked: set[str] = set()
        #: When each connection's gate was last read open (see :meth:`gate_allows`).
        self.open_gates: dict[str, float] = {}
        self.adapter = get_adapter()
        self.lease_seconds = omnisend_settings.lease_seconds
        self.max_attempts = omnisend_settings.max_attempts
        self.user_model = get_user_model()
        #: The claimed batch's users, plans and bindings, by sync row primary key.
        self.prepared: dict[Any, Prepared] = {}
        #: Outcomes saved later, together (see :meth:`record`); None: save each at once.
        self.pending: list[tuple[Callable[[], bool], Callable[[], Any] | None]] | None = None
        self.pending_since = 0.0
        #: Connection keys with a request that got through since the last :meth:`flush`.
        self.successes: set[str] = set()
        self._claims = itertools.count(1)
        #: Batches this pass sent or met on claimed rows, not settled yet: id -> connection key.
        self.outstanding: dict[str, str] = {}
        self.origin = omnisend_settings.event_origin

    def claim_token(self) -> str:
        """A lease owner unique to one claim: this worker's id and a counter.

        Rows are fenced by it: only the claim that holds the row under this token may record
        its outcome, so a late answer to a request that outlived its lease (even this worker's
        own, after it claimed the row again) cannot overwrite a newer outcome.
        """
        suffix = f"#{next(self._claims)}"
        return self.worker[: OWNER_LENGTH - len(suffix)] + suffix

    # -- loop ---------------------------------------------------------------------------

    def out_of_time(self) -> bool:
        # Asked between rows: a row in progress finishes and records its outcome first.
        if self.stop is not None and self.stop():
            return True
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return True
        return self.max_items is not None and self.result.processed >= self.max_items

    def run(self) -> DrainResult:
        erasure.purge_expired()
        try:
            while True:
                while not self.out_of_time():
                    worked = self._round(OutboxItem, Q(state=OutboxItem.State.PENDING), self.outbox)
                    worked += self._round(SyncState, Q(dirty=True), self.contact_row)
                    if len(self.outstanding) >= MAX_OUTSTANDING:
                        self.settle_batches(wait=0.0)
                    if not worked:
                        break
                # Settled rows may be due again (a save made while their batch was open).
                if not self.outstanding or self.out_of_time():
                    break
                if not self.settle_batches(wait=BATCH_WAIT_SECONDS):
                    break  # Omnisend is still working on them: a later pass looks again
        finally:
            try:
                if self.outstanding:
                    batching.postpone(list(self.outstanding), batching.BATCH_POLL_SECONDS)
            finally:
                self.clients.close()
        return self.result

    def _round(self, model, due: Q, handle) -> int:
        now = timezone.now()
        if self.blocked:
            due &= ~Q(connection_key__in=self.blocked)
        token = self.claim_token()
        batch_mode = model is SyncState and self.backlog(due, now)
        limit = BATCH_SIZE if batch_mode else CLAIM_BATCH
        if self.max_items is not None:  # claim no more than this pass may handle
            limit = max(1, min(limit, self.max_items - self.result.processed))
        rows = claims.claim(
            model,
            due & Q(next_attempt_at__lte=now),
            worker=token,
            limit=limit,
            now=now,
            lease_seconds=self.lease_seconds,
        )
        handled: set = set()
        self.pending = []
        try:
            if model is SyncState:
                # Rows still in a backfill batch are settled with it, never sent alone.
                self.prepare(
                    [r for r in rows if r.connection_key not in self.blocked and not r.batch_id]
                )
                if batch_mode:
                    self.send_batches(rows, handled)
            for row in rows:
                if row.pk in handled:
                    continue  # sent in a batch
                if self.out_of_time():
                    break
                if row.connection_key not in self.blocked:
                    handle(row)
                    handled.add(row.pk)
        finally:
            try:
                self.flush()
            finally:
                self.pending = None
                self.prepared.clear()
                # Rows not reached, and rows deferred by a closed gate, go back; rows whose
                # outcome was recorded already released their lease (release skips those).
                claims.release(
                    model,
                    [r.pk for r in rows if r.pk not in handled or r.connection_key in self.blocked],
                    worker=token,
                )
        return len(rows)

    def failed(self, row, exc: Exception, *, written: str = "", breaker: bool = True) -> str:
        """Record a failed request by the failure policy (:func:`.outcomes.fail`)."""
        return outcomes.fail(self, row, exc, written=written, breaker=breaker)

    # -- gates ----------------------------------------------------------------------------

    def gate_allows(self, row) -> bool:
        """Check the connection's switches; defer ``row`` (no attempt spent) if closed.

        An open gate is read again after :data:`RECORD_WINDOW`, not for every row: a switch
        another worker throws is seen within a second (this worker's own failures block the
        connection at once), and a batch of fast requests does not read it 25 times.
        """
        key = row.connection_key
        read_at = self.open_gates.get(key)
        if read_at is not None and time.monotonic() - read_at < RECORD_WINDOW:
            return True
        gate = delivery.gate(key, credential=self.clients.credential(key))
        if gate.open:
            self.open_gates[key] = time.monotonic()
            return True
        self.open_gates.pop(key, None)
        self.blocked.add(row.connection_key)
        self.result.deferred += 1
        self.result.held[row.connection_key] = Hold(gate.kind, gate.reason, gate.until)
        if gate.until is not None:
            self.fenced(row).update(next_attempt_at=gate.until)
        if gate.paused and row.connection_key not in self.result.paused:
            self.result.paused.append(row.connection_key)
        return False

    def client(self, row):
        try:
            return self.clients.get(row.connection_key)
        except exceptions.NotConnected as exc:
            reason = not_connected_reason(row.connection_key, exc)
            delivery.pause(row.connection_key, reason, self.clients.credential(row.connection_key))
            self.blocked.add(row.connection_key)
            self.result.paused.append(row.connection_key)
            self.result.held[row.connection_key] = Hold("paused", reason)
            self.result.deferred += 1
            return None

    def send(self, row, call, *args, **kwargs):
        """Make one request for ``row`` under its lease (raises LeaseLost if it was lost).

        The request starts with at least :data:`LEASE_FLOOR` of a lease ahead of it: the
        lease is renewed first when less is left (a lease we hold that far into the future
        cannot have been taken over: claims only take expired leases).
        """
        self.flush(older_than=min(RECORD_WINDOW, self.lease_seconds / 8))
        now = timezone.now()
        left = (row.lease_until - now).total_seconds() if row.lease_until else 0.0
        if left < self.lease_seconds * LEASE_FLOOR and not claims.extend(
            row, worker=row.lease_owner, now=now, lease_seconds=self.lease_seconds
        ):
            raise LeaseLost
        # Count what reached the wire: not a request the budget refused, but a resend after a
        # token refresh, which is a second request.
        before = self.clients.sent()
        try:
            response = call(*args, **kwargs)
        except exceptions.OmnisendError as exc:
            why = unreachable_reason(exc)
            if why:
                self.result.unreachable = why
            elif isinstance(exc, exceptions.OmnisendAPIError):
                self.result.answered += 1
            raise
        finally:
            self.result.requests += self.clients.sent() - before
        self.result.answered += 1
        self.result.delivered.add(row.connection_key)
        return response


def drain(
    *,
    max_seconds: float | None = None,
    max_items: int | None = None,
    worker_id: str | None = None,
    stop: Callable[[], bool] | None = None,
) -> DrainResult:
    """Deliver everything that is due, then return what was done.

    ``max_seconds`` / ``max_items`` bound one call (a task or a cron run); rows it does not
    reach stay due for the next drain. ``stop()`` is asked before each row (a shutdown
    signal): once it answers True the drain returns after the row in progress, and the
    leases of the rows it claimed but did not reach are given back.
    """
    deadline = time.monotonic() + max_seconds if max_seconds is not None else None
    return Drain(
        worker=worker_id or new_worker_id(), deadline=deadline, max_items=max_items, stop=stop
    ).run()


def due_count(now: datetime | None = None) -> int:
    """How many sync rows and outbox items are due now."""
    now = now or timezone.now()
    return (
        SyncState.objects.filter(dirty=True, next_attempt_at__lte=now).count()
        + OutboxItem.objects.filter(
            state=OutboxItem.State.PENDING, next_attempt_at__lte=now
        ).count()
    )

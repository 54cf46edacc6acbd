"""The drain's backlog mode: when many rows are due, send a connection's plain profile
updates as ``/batches`` and settle them later (:mod:`~django_omnisend.sync.batches`).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from django.db.models import Q

from .. import exceptions
from ..api.resources import BATCH_SETTLED
from ..models import SyncState
from . import batches as batching
from . import gates as delivery
from . import identity
from . import leases as claims
from .batches import BATCH_SIZE
from .drain_host import DrainHost
from .policy import BATCH_MIN_ITEMS, BATCH_THRESHOLD
from .reachability import unreachable_reason


class BatchRounds(DrainHost):
    """Mixin of :class:`~django_omnisend.sync.loop.Drain`: the backlog's batches."""

    # -- batches (a backlog of plain updates; see django_omnisend.batching) ------------------

    def backlog(self, due: Q, now: datetime) -> bool:
        """Whether at least :data:`BATCH_THRESHOLD` sync rows are due (one indexed count)."""
        if self.max_items is not None and self.max_items - self.result.processed < BATCH_SIZE:
            return False
        due = due & Q(next_attempt_at__lte=now) & claims.lease_free(now)
        return SyncState.objects.filter(due)[:BATCH_THRESHOLD].count() >= BATCH_THRESHOLD

    def batchable(self, row: SyncState) -> Any:
        """``row``'s plan if it is a plain profile update a batch may carry, else None.

        Plain: bound to the address it wrote before (no first write, no e-mail change, so no
        welcome, lookup or tag), no consent to send (opt-ins are checked against Omnisend
        first, and consent changes are sent one by one in order), and something changed.
        Everything else goes the single-request way.
        """
        prepared = self.prepared.get(row.pk)
        if prepared is None or prepared.user is None or prepared.error is not None:
            return None
        plan = prepared.plan
        if prepared.binding is not identity.Binding.BOUND or plan.skip_reason:
            return None
        if plan.consent is not None or not row.email or plan.email != row.email:
            return None
        if row.payload_hash and plan.payload_hash == row.payload_hash:
            return None  # unchanged: no request at all
        return plan

    def send_batches(self, rows: list[SyncState], handled: set) -> None:
        """Send each connection's plain updates among ``rows`` as one batch, if enough."""
        by_key: dict[str, list[tuple[SyncState, Any]]] = {}
        for row in rows:
            if row.batch_id or row.connection_key in self.blocked:
                continue
            plan = self.batchable(row)
            if plan is not None:
                by_key.setdefault(row.connection_key, []).append((row, plan))
        for key, items in by_key.items():
            if len(items) < BATCH_MIN_ITEMS or key in self.blocked:
                continue
            if not self.gate_allows(items[0][0]):
                continue
            self.flush()  # earlier outcomes first: a failure below reads the breaker
            batch_id, error = batching.send_batch(
                self, key, items, origin=self.origin, lease_seconds=self.lease_seconds
            )
            for n, (row, _) in enumerate(items):
                prepared = self.prepared.pop(row.pk, None)
                if error is not None:
                    # One refused request: the breaker counts it once, not once per row.
                    outcome = self.failed(row, error, breaker=n == 0)
                    self.signal_failed(row, prepared and prepared.user, error, outcome)
                handled.add(row.pk)
            if batch_id:
                self.succeeded(key)
                self.outstanding[batch_id] = key

    def settle_batches(self, *, wait: float) -> bool:
        """Poll the outstanding batches through the batch list and settle those Omnisend
        processed, for up to ``wait`` seconds; True once none is left."""
        started, pause = time.monotonic(), 0.2
        while self.outstanding:
            for key in set(self.outstanding.values()):
                if not delivery.gate(key, credential=self.clients.credential(key)).open:
                    return False  # paused or cooling down: the rows keep their batch
            try:
                found = batching.list_outstanding(self, self.outstanding)
            except exceptions.OmnisendError as exc:
                self.result.unreachable = unreachable_reason(exc) or self.result.unreachable
                return False  # no answer to go by: a later pass looks again
            for batch in found:
                if batch.get("status") in BATCH_SETTLED:
                    key = self.outstanding.pop(batch["batchID"])
                    settled = batching.settle(self, key, batch)
                    self.result.synced += settled.sent
                    for row, error in settled.failures:
                        self.signal_failed(row, None, error, self.failed(row, error))
            left = wait - (time.monotonic() - started)
            if not self.outstanding or left <= 0 or self.out_of_time():
                break
            time.sleep(min(pause, left))
            pause = min(pause * 2, 5.0)
        return not self.outstanding

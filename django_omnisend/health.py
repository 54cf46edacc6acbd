"""Sync health in numbers: what the admin summary, ``omnisend_status`` and monitoring read.

Every figure is one aggregate over indexed columns, so it stays cheap on large tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Min, Q
from django.utils import timezone

from .models import DeliveryControl, OutboxItem, SyncState


@dataclass(frozen=True)
class Health:
    pending: int
    failed: int
    dead: int
    skipped: int
    synced: int
    outbox_pending: int
    oldest_pending: datetime | None
    paused: list[tuple[str, str]]

    @property
    def oldest_pending_age(self) -> timedelta | None:
        return timezone.now() - self.oldest_pending if self.oldest_pending else None


def health() -> Health:
    """Counts by state, the oldest pending change and paused connections."""
    # ``state`` is the last outcome; a row with a newer save (dirty) counts as pending.
    by_state = dict(
        SyncState.objects.filter(dirty=False)
        .values_list("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    # Rows waiting for an address another user owns (or whose erasure is pending) are due
    # for a re-check only: they count as skipped, not as work that is late.
    waiting = Q(dirty=True, state=SyncState.State.SKIPPED) & ~Q(wanted_address="")
    pending_rows = SyncState.objects.filter(dirty=True).exclude(waiting)
    oldest = pending_rows.aggregate(oldest=Min("dirtied_at"))["oldest"]
    outbox = OutboxItem.objects.filter(state=OutboxItem.State.PENDING)
    outbox_oldest = outbox.aggregate(oldest=Min("created_at"))["oldest"]
    if outbox_oldest and (oldest is None or outbox_oldest < oldest):
        oldest = outbox_oldest
    paused = list(
        DeliveryControl.objects.filter(paused=True).values_list("connection_key", "paused_reason")
    )
    return Health(
        pending=pending_rows.exclude(state=SyncState.State.FAILED).count(),
        failed=pending_rows.filter(state=SyncState.State.FAILED).count(),
        dead=by_state.get(SyncState.State.DEAD, 0),
        skipped=by_state.get(SyncState.State.SKIPPED, 0)
        + SyncState.objects.filter(waiting).count(),
        synced=by_state.get(SyncState.State.SYNCED, 0),
        outbox_pending=outbox.count(),
        oldest_pending=oldest,
        paused=paused,
    )

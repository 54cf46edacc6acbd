"""Recording outcomes under the lease fence: save them per claimed batch, and write only
while the claim that sent the request still holds the row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ..models import SyncState
from . import gates as delivery
from .drain_host import DrainHost

logger = logging.getLogger("django_omnisend.sync")


class Recording(DrainHost):
    """Mixin of :class:`~django_omnisend.sync.loop.Drain`: saving outcomes under the fence."""

    # -- outcomes -------------------------------------------------------------------------

    def save_outcome(
        self,
        row: SyncState,
        clean: dict[str, Any],
        newer: dict[str, Any],
        *,
        wrote: bool = False,
        then: Callable[[], Any] | None = None,
    ) -> None:
        """Record ``row``'s outcome under its claim (:meth:`record`), then run ``then``.

        Within a claimed batch the writes wait and are saved together in one transaction
        (:meth:`flush`): a durable commit per row would cost more than all the row's queries.
        The row keeps its lease (its fence token) until then, and each write still checks the
        token and the generation, so a save that arrived meanwhile makes the row due again
        exactly as before, and a lost lease records nothing (:meth:`lease_lost`). Nothing
        waits across a request for long: :meth:`send` flushes first when the oldest waiting
        outcome is older than :data:`RECORD_WINDOW`. ``then`` (signals, counters) runs after
        the outcome is saved, unless the lease was lost.
        """

        def write() -> bool:
            outcome = self.record(row, clean, newer)
            if outcome == "lost":
                self.lease_lost(row, wrote=wrote)
            return outcome != "lost"  # "gone" (deleted with its user) still counts and signals

        if self.pending is None:
            if write() and then is not None:
                then()
            return
        if not self.pending:
            self.pending_since = time.monotonic()
        self.pending.append((write, then))

    def flush(self, *, older_than: float | None = None) -> None:
        """Save the waiting outcomes in one transaction (only if the oldest is older than
        ``older_than`` seconds, when given), then run what waited for them."""
        if not self.pending and not self.successes:
            return
        if older_than is not None and time.monotonic() - self.pending_since < older_than:
            return
        pending = self.pending or []
        if self.pending is not None:
            self.pending = []
        successes, self.successes = self.successes, set()
        with transaction.atomic():
            saved = [write() for write, _ in pending]
            for key in sorted(successes):
                delivery.record_success(key)
        for (_, then), recorded in zip(pending, saved, strict=True):
            if recorded and then is not None:
                then()

    # -- fencing (shared by sync rows and outbox items) ------------------------------------

    @staticmethod
    def fenced(row):
        """``row`` as long as the claim that read it still holds it (see :meth:`claim_token`)."""
        if not row.lease_owner:  # "" would match a released row: never an owner's token
            raise ValueError("A row must be claimed before its outcome is recorded.")
        return type(row)._default_manager.filter(pk=row.pk, lease_owner=row.lease_owner)

    def record(self, row: SyncState, clean: dict[str, Any], newer: dict[str, Any]) -> str:
        """Record a sync row's outcome under its claim: "clean", "newer", "lost" or "gone".

        ``clean`` is written when no save moved the row since it was read (it may clear
        ``dirty``); ``newer`` when one did (the row stays dirty and is sent again). Nothing
        is written when the lease was lost ("lost": the new owner records its own outcome)
        or the row was deleted with its user meanwhile ("gone").
        """
        rows = self.fenced(row)
        if rows.filter(generation=row.generation).update(**clean):
            return "clean"
        if rows.update(**newer):
            return "newer"
        return "lost" if self.exists(row) else "gone"

    @staticmethod
    def exists(row) -> bool:
        """Whether ``row`` is still there (a user's deletion removes its sync row)."""
        return type(row)._default_manager.filter(pk=row.pk).exists()

    def lease_lost(self, row, *, wrote: bool) -> None:
        """Our lease ran out during the request and another worker may have sent since.

        Nothing of our outcome is recorded. If our request may have written (it reached
        Omnisend and was not refused), it may have landed after the other worker's: the row
        is marked as a save would mark it (new generation, so the other worker's outcome
        does not clear it either) and forgets its payload hash, so the current state is sent
        again after ours.
        """
        self.result.lost_leases += 1
        logger.info(
            "Lost the lease on %s %s during its request; recording nothing.",
            type(row).__name__,
            row.pk,
        )
        if wrote and isinstance(row, SyncState):
            now = timezone.now()
            SyncState.objects.filter(pk=row.pk).update(
                dirty=True,
                generation=F("generation") + 1,
                dirtied_at=now,
                payload_hash="",
                # A batch the row travels in settles its hash from this one.
                batch_hash="",
                next_attempt_at=now,
            )

    # -- failures (shared by sync rows and outbox items) -----------------------------------

    def succeeded(self, key: str) -> None:
        """A request for ``key`` got through: close its breaker (with the batch's outcomes)."""
        if self.pending is None:
            delivery.record_success(key)
        else:
            self.successes.add(key)

"""Before any request of a claimed batch: read its users, plan their contacts, bind their
addresses; and the rows that are not sent (waiting for an address, not loadable, unverified),
with the signals a synced or failed row sends.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.utils import timezone

from .. import exceptions
from ..models import SyncState
from ..signals import contact_sync_failed, contact_synced
from . import identity
from .drain_host import DrainHost
from .payloads import plan_contact
from .policy import UNVERIFIED, USER_NOT_LOADABLE, WAIT_CAP_SECONDS, backoff_seconds

logger = logging.getLogger("django_omnisend.sync")


@dataclass
class Prepared:
    """A claimed sync row's user, plan and binding, worked out before any request."""

    user: Any
    plan: Any = None
    verified: bool = False
    #: What the site's adapter raised instead of a plan.
    error: Exception | None = None
    #: None when the plan binds nothing (a skip); a row that could not bind is done.
    binding: identity.Binding | None = None


class Preparing(DrainHost):
    """Mixin of :class:`~django_omnisend.sync.loop.Drain`: a claimed batch's users and plans."""

    def prepare(self, rows: list[SyncState]) -> None:
        """Read, plan and bind a claimed batch before any request (three queries and one
        commit for the batch, not per row): the users in one query, the addresses bound in
        one short transaction (:func:`identity.bind_many`). A row that cannot bind records
        its wait inside that transaction and is done."""
        users = self.user_model._default_manager.in_bulk([r.user_id for r in rows])
        binds: list[tuple[SyncState, str]] = []
        for row in rows:
            prepared = self.prepared[row.pk] = Prepared(users.get(row.user_id))
            if prepared.user is None:  # deleted since the claim; the cascade removes the row
                continue
            try:
                prepared.plan = plan_contact(
                    prepared.user,
                    self.adapter,
                    consent_sent_at=row.consent_sent_at,
                    is_new=not row.contact_id,
                )
                prepared.verified = not prepared.plan.skip_reason and bool(
                    self.adapter.is_email_verified(prepared.user)
                )
            except Exception as exc:
                # Recorded when the row's turn comes (with backoff), not for the whole pass.
                logger.exception("The Omnisend contact adapter failed for user %s.", row.user_id)
                prepared.error = exceptions.AdapterError(f"The contact adapter raised {exc!r}.")
                continue
            if not prepared.plan.skip_reason:
                binds.append((row, prepared.plan.email))
        if binds:
            outcomes = identity.bind_many(
                binds, unbound=lambda row, outcome: self._wait_for_address(row, outcome.value)
            )
            for (row, _), outcome in zip(binds, outcomes, strict=True):
                self.prepared[row.pk].binding = outcome
            # A user deleted before its address was bound owned nothing, so no erasure
            # follows it: nothing may be sent for it (one deleted after binding is erased).
            alive = set(
                SyncState.objects.filter(pk__in=[row.pk for row, _ in binds]).values_list(
                    "pk", flat=True
                )
            )
            for row, _ in binds:
                if row.pk not in alive:
                    self.prepared[row.pk].user = None

    # -- signals (sent after the outcome is saved; see django_omnisend.signals) ---------------

    def signal_synced(self, row, user, contact_id: str, *, created: bool) -> None:
        """Send ``contact_synced`` for ``row``, whose success is saved already."""
        if not contact_synced.has_listeners(self.user_model):
            return  # nobody listens: spare the read-back
        user, saved = self._as_saved(row, user)
        contact_synced.send_robust(
            sender=self.user_model,
            user=user,
            contact_id=contact_id,
            created=bool(created),
            sync_state=saved,
        )

    def signal_failed(self, row, user, error: Exception, outcome: str) -> None:
        """Send ``contact_sync_failed`` for ``row``; ``outcome`` is what :meth:`failed` saved."""
        # A full local budget put the row off without asking Omnisend: nothing failed.
        # A lost lease recorded nothing: the worker that holds the row now reports it.
        if isinstance(error, exceptions.BudgetExhausted) or outcome == "lost":
            return
        if not contact_sync_failed.has_listeners(self.user_model):
            return
        user, saved = self._as_saved(row, user)
        contact_sync_failed.send_robust(
            sender=self.user_model,
            user=user,
            error=error,
            # A row that is gone (its user was deleted) is not retried either.
            permanent=outcome == "dead" or saved is None,
            sync_state=saved,
        )

    def _as_saved(self, row, user=None):
        """``row`` as saved now and its user; ``None`` for whichever was deleted meanwhile."""
        saved = SyncState.objects.filter(pk=row.pk).first()
        if user is None or saved is None:
            user = self.user_model._default_manager.filter(pk=row.user_id).first()
        return user, saved

    def _wait_for_address(self, row: SyncState, reason: str) -> None:
        """Skip ``row`` for now and keep it due: the address may become free later.

        Never dead (the situation resolves itself when the owner moves away or the erasure is
        sent, which wakes the row at once); meanwhile the backoff keeps re-checks rare. A
        re-check is one indexed query and no request.
        """
        self.result.skipped[reason] += 1
        attempts = row.attempts + 1 if row.state == SyncState.State.SKIPPED else 1
        self.fenced(row).update(
            state=SyncState.State.SKIPPED,
            reason=reason,
            attempts=attempts,
            last_error="",
            next_attempt_at=timezone.now()
            + timedelta(seconds=min(WAIT_CAP_SECONDS, backoff_seconds(attempts))),
            lease_until=None,
            lease_owner="",
        )

    def _not_loadable(self, row: SyncState) -> None:
        """Skip a row whose user the default manager does not return, instead of retrying it.

        A deleted user's row goes with the cascade (nothing here matches it); a user hidden by
        a filtering default manager (a soft delete) would otherwise be re-claimed every lease
        for ever. A later save of the user marks the row again.
        """
        rows = self.fenced(row)
        release = {"lease_until": None, "lease_owner": ""}
        cleared = rows.filter(generation=row.generation).update(
            dirty=False,
            state=SyncState.State.SKIPPED,
            reason=USER_NOT_LOADABLE,
            attempts=0,
            last_error="",
            **release,
        )
        if cleared:
            self.result.skipped[USER_NOT_LOADABLE] += 1
        else:  # gone, or saved again meanwhile: the next pass looks again
            rows.update(**release)

    def _unverified_existing(self, row: SyncState) -> None:
        """An unverified user's address already has a contact: write nothing, own nothing.

        Not retried on a timer (each check costs a request): a later save, or
        ``mark_for_sync`` once the address is verified, tries again.
        """
        identity.release(row)
        self.result.skipped[UNVERIFIED] += 1
        release = {"lease_until": None, "lease_owner": ""}
        self.save_outcome(
            row,
            clean={
                "dirty": False,
                "state": SyncState.State.SKIPPED,
                "reason": UNVERIFIED,
                "attempts": 0,
                "last_error": "",
                **release,
            },
            newer=release,
        )

"""Sync health in numbers: what the admin summary, ``omnisend_status`` and monitoring read.

Every figure of :func:`health` is one aggregate over indexed columns, so it stays cheap on
large tables. :func:`verify_credential` is the one check that calls Omnisend.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, Max, Min, Q
from django.utils import timezone

from ..models import DeliveryControl, OutboxItem, SyncState


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


#: What :func:`verify_credential` found.
VERIFIED = "verified"
REJECTED = "rejected"  # 401, 403 or 410: the credential (or the API version) is refused
UNREACHABLE = "unreachable"  # no answer, or a 5xx
NOT_VERIFIED = "not_verified"  # Omnisend or the budget asked us to wait, or no credential


@dataclass(frozen=True)
class Verification:
    """The outcome of one call made with the site's credential, in words without secrets."""

    outcome: str
    #: What happened (for a refusal: with what to do).
    detail: str = ""
    #: What to do when Omnisend could not be reached.
    todo: str = ""
    #: The last time Omnisend is known to have accepted this site's requests (when not now).
    last_accepted: datetime | None = None

    @property
    def verified(self) -> bool | None:
        """True: accepted now; False: refused or unreachable; None: no verdict either way."""
        if self.outcome == VERIFIED:
            return True
        return False if self.outcome in (REJECTED, UNREACHABLE) else None


def last_accepted(key: str = "default") -> datetime | None:
    """When Omnisend last accepted a request of this site: a checked connection, a synced
    contact or a sent event/erasure (a lower bound; requests leave no other trace)."""
    from ..connect import connection_for_key

    connection = connection_for_key(key)
    moments = [
        connection.checked_at if connection is not None else None,
        SyncState.objects.filter(connection_key=key).aggregate(at=Max("synced_at"))["at"],
        OutboxItem.objects.filter(connection_key=key).aggregate(at=Max("sent_at"))["at"],
    ]
    return max((m for m in moments if m is not None), default=None)


def verify_credential(key: str = "default") -> Verification:
    """Make one cheap call with ``key``'s credential: ``GET /contacts?limit=1``.

    It needs ``contacts.read``, which the sync needs anyway (the opt-in check, the pull and the
    backfill's batch polling), so a pass here is a pass for the permission too. The call
    draws one request from the shared budget and is not retried; a verified connection row
    records it in ``checked_at`` (the admin's "last checked at"). A 401 is handled as the
    drain handles it: an OAuth token is refreshed once, a rejected row is flagged for a
    reconnect.
    """
    from .. import exceptions
    from ..connect import client_for_key, connection_for_key
    from . import gates as delivery
    from .reachability import advice, unreachable_reason

    try:
        client = client_for_key(key, max_retries=0, max_wait=0)
    except exceptions.NeedsReconnect as exc:  # e.g. Omnisend refused to refresh the token
        return Verification(REJECTED, str(exc))
    except exceptions.NotConnected as exc:  # no credential at all: reported elsewhere
        return Verification(NOT_VERIFIED, str(exc))
    except exceptions.OAuthError as exc:  # the token endpoint did not answer
        return Verification(
            UNREACHABLE, str(exc).rstrip("."), "Try again later.", last_accepted(key)
        )
    try:
        client.contacts.list(limit=1)
    except (
        exceptions.AuthenticationError,
        exceptions.PermissionDenied,
        exceptions.VersionRetired,
    ) as exc:
        return Verification(REJECTED, delivery.pause_reason(exc, needed="contacts.read"))
    except exceptions.RateLimited as exc:
        wait = f" for {exc.retry_after:g} s" if exc.retry_after is not None else ""
        return Verification(NOT_VERIFIED, f"Omnisend asked to wait{wait} (429)")
    except exceptions.BudgetExhausted as exc:
        return Verification(
            NOT_VERIFIED, f"the request budget is spent (next slot in {exc.retry_after:.0f} s)"
        )
    except exceptions.OmnisendError as exc:
        why = unreachable_reason(exc)
        since = last_accepted(key)
        if why:
            return Verification(UNREACHABLE, why, advice(), last_accepted=since)
        return Verification(REJECTED, f"Omnisend refused the check: {exc}", last_accepted=since)
    finally:
        client.close()
    connection = connection_for_key(key)
    if connection is not None:
        type(connection)._default_manager.filter(pk=connection.pk).update(checked_at=timezone.now())
    return Verification(VERIFIED, "Omnisend accepted it just now")

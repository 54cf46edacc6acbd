"""The failure policy: what a failed request does to its row, in one function.

429 cools the brand down; 401/403/410 pause the connection without spending attempts; a budget
refusal defers; timeouts, resets, 5xx and unreadable 2xx retry with backoff (an unknown outcome
forgets the payload hash); other refusals fail the row for good with the API's reason. The
drain and the bulk sync both call :func:`fail`.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from .. import exceptions
from ..models import OutboxItem, SyncState
from . import events
from . import gates as delivery
from .policy import PAUSING, backoff_seconds, error_text, status_of, unknown_outcome
from .results import Hold

if TYPE_CHECKING:
    from .loop import Drain


def fail(drain: Drain, row: Any, exc: Exception, *, written: str = "", breaker: bool = True) -> str:
    """Record ``drain``'s failed request for ``row``; returns the row's new state ("lost":
    nothing recorded: another claim holds the row).

    ``written`` is the address a contact write was sent for: when the outcome is
    unknown the write may have landed, so the row records that address as possibly
    written (a later move away from it tags it) and forgets its payload hash.
    ``breaker`` False: the request was counted by the breaker already (a batch's rows).
    """
    # The successes before this failure count first (the breaker counts failures in a
    # row, and a success saved after this one would undo it).
    drain.flush()
    key = row.connection_key
    model = type(row)
    rows = drain.fenced(row)
    now = timezone.now()
    common: dict[str, Any] = {
        "last_status": status_of(exc),
        "last_error": error_text(exc),
        "lease_until": None,
        "lease_owner": "",
    }
    unknown = unknown_outcome(exc)
    if model is SyncState and unknown:
        # Omnisend may hold what we sent, not what we last confirmed: the next pass must
        # send the current state even if it equals the last confirmed one.
        common["payload_hash"] = ""
        if written and written != row.email:
            common.update(email=written, contact_id="")

    def settle(**fields: Any) -> bool:
        """Write the outcome; False (and nothing written) if another claim holds the row."""
        if rows.update(**fields, **common) or not drain.exists(row):
            return True
        drain.lease_lost(row, wrote=unknown)
        return False

    if isinstance(exc, exceptions.RateLimited):
        until = delivery.cool_down(key, exc.retry_after, now)
        drain.blocked.add(key)
        drain.result.deferred += 1
        return "deferred" if settle(next_attempt_at=until) else "lost"
    if isinstance(exc, PAUSING):
        reason = delivery.pause_reason(exc)
        delivery.pause(key, reason, drain.clients.credential(key))
        if not isinstance(exc, exceptions.VersionRetired):
            # The credential is at fault: the admin shows the connection needs a reconnect.
            # (A retired version is the site's setting, not the credential's fault.)
            from ..connect import mark_key_needs_reconnect

            mark_key_needs_reconnect(key, reason)
        drain.blocked.add(key)
        drain.result.paused.append(key)
        drain.result.held[key] = Hold("paused", reason)
        drain.result.deferred += 1
        paused = {"state": SyncState.State.PAUSED} if model is SyncState else {}
        return "paused" if settle(**paused) else "lost"
    if isinstance(exc, exceptions.BudgetExhausted):
        drain.result.deferred += 1
        later = now + timedelta(seconds=exc.retry_after)
        return "deferred" if settle(next_attempt_at=later) else "lost"
    retryable = getattr(exc, "retryable", False) and not isinstance(exc, exceptions.RateLimited)
    # A new failure streak starts from 1; only a row already retrying counts on.
    attempts = row.attempts + 1 if row.state == SyncState.State.FAILED else 1
    if retryable and attempts < drain.max_attempts:
        if breaker and delivery.record_failure(key, now) is not None:
            drain.blocked.add(key)
        delay = backoff_seconds(attempts)
        fields: dict[str, Any] = {
            "attempts": attempts,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
        if model is OutboxItem and unknown and row.kind == OutboxItem.Kind.EVENT:
            # The event may have landed, and Omnisend drops a repeated eventID only once
            # the event is historical: resending earlier could count it twice.
            historical = events.historical_after(row.payload)
            if historical is not None and historical > fields["next_attempt_at"]:
                fields["next_attempt_at"] = historical
        if model is SyncState:
            fields["state"] = SyncState.State.FAILED
        if not settle(**fields):
            return "lost"
        drain.result.retried += 1
        return "retry"
    if retryable and breaker:
        delivery.record_failure(key, now)
    reason = "max_attempts" if retryable else reason_for(exc)
    if model is not SyncState:
        if not settle(attempts=attempts, state=OutboxItem.State.DEAD):
            return "lost"
        drain.result.dead += 1
        return "dead"
    outcome = drain.record(
        row,
        clean={
            "attempts": attempts,
            "state": SyncState.State.DEAD,
            "reason": reason,
            "dirty": False,
            **common,
        },
        # A save arrived while the failed request was in flight: that state has not been
        # tried yet (it may fix what Omnisend refused), so it gets its own try now.
        newer={
            "attempts": 0,
            "state": SyncState.State.FAILED,
            "reason": reason,
            "next_attempt_at": now,
            **common,
        },
    )
    if outcome == "lost":
        drain.lease_lost(row, wrote=unknown)
        return "lost"
    if outcome == "newer":  # ("gone": reported as dead, nothing is left to retry)
        drain.result.retried += 1
        return "retry"
    drain.result.dead += 1
    return "dead"


def reason_for(exc: Exception) -> str:
    """The reason recorded on a row that failed for good."""
    if isinstance(exc, exceptions.Conflict):
        return "email_conflict"
    if isinstance(exc, exceptions.ValidationError):
        return "validation"
    status = status_of(exc)
    return f"http_{status}" if status else "error"

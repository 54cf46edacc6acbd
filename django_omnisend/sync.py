"""``drain()``: deliver the outbox to Omnisend.

One pass: claim due rows with a lease, build each payload from the *current* user row, skip
the call when nothing changed, send outside any transaction, and record the outcome. Any
number of drains may run at once (cron, ``omnisend_drain --loop``, django.tasks workers on
several machines): leases keep one request in flight per user, and a row is cleared only if
no newer save arrived while its request was in flight.

Outcomes (see ``SECURITY-RELIABILITY.md`` R-RL-7): timeouts, resets, 5xx and unreadable 2xx
are retried with exponential backoff and jitter; 400/422/409 fail the item for good with the
API's reasons; 401/403/410 pause the whole connection without spending attempts; 429 cools
the whole brand down.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from . import claims, delivery, erasure, exceptions, identity
from .adapters import get_adapter
from .conf import omnisend_settings
from .models import OutboxItem, SyncState
from .payloads import (
    SkipReason,
    date_creation,
    parse_rfc3339,
    plan_contact,
    without_channels,
)
from .reachability import unreachable_reason
from .redaction import redact
from .signals import contact_sync_failed, contact_synced
from .text import shorten

logger = logging.getLogger(__name__)

#: Cap of the item retry backoff (its base is ``OMNISEND["RETRY_BACKOFF"]``).
BACKOFF_CAP_SECONDS = 6 * 3600.0
#: Longest pause between re-checks of a row waiting for an address: a save does not move a
#: row's schedule, so this bounds how late a waiting user who changed address is sent.
WAIT_CAP_SECONDS = 300.0
#: The longest a drain waits for room in the shared budget before deferring a row instead.
DRAIN_MAX_WAIT = 5.0
#: Rows claimed per round trip; small enough that a crash re-sends little.
CLAIM_BATCH = 25
#: How much of ``last_error`` is kept (sanitised, no secrets).
MAX_ERROR_LENGTH = 1000

_PAUSING = (exceptions.AuthenticationError, exceptions.PermissionDenied, exceptions.VersionRetired)


#: Reason on a row whose address is not verified (see ``ContactAdapter.is_email_verified``).
UNVERIFIED = "unverified_email"
#: Reason on a row whose opt-in Omnisend ignored as older than the status it holds.
CONSENT_OUTDATED = "consent_outdated"
#: Reason on a row whose user exists but the user model's default manager does not return
#: (a soft delete): skipped, not retried; a later save of the user marks the row again.
USER_NOT_LOADABLE = "user_not_loadable"
#: Tag left on the contact of a user's previous address after an e-mail change.
EMAIL_CHANGED_TAG = "django:email-changed"
#: "Not looked up yet" (None means Omnisend has no such contact).
_UNKNOWN: Any = object()


class LeaseLost(Exception):
    """Another worker took the row over (our lease expired): leave it to them."""


def backoff_seconds(attempts: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempts`` (1-based): in [d/2, d], d = min(cap, b·2ⁿ⁻¹).

    ``b`` is ``OMNISEND["RETRY_BACKOFF"]`` (30 s): 12 attempts span about a day.
    """
    base = float(omnisend_settings.get("RETRY_BACKOFF"))
    delay = min(BACKOFF_CAP_SECONDS, base * (2 ** max(0, attempts - 1)))
    return (rng or random).uniform(delay / 2, delay)


@dataclass(frozen=True)
class Hold:
    """Why a connection sent nothing: ``kind`` is "paused", "cooldown" or "breaker"."""

    kind: str
    reason: str
    #: When a cooldown or an open breaker ends (None for a pause).
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass
class DrainResult:
    """What one :func:`drain` did; ``as_dict()`` is JSON-serialisable (task results)."""

    synced: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    events_sent: int = 0
    erasures_sent: int = 0
    #: HTTP requests sent (not those the rate budget refused; a resend counts again).
    requests: int = 0
    paused: list[str] = field(default_factory=list)
    #: Why each connection key was held back in this pass (paused, cooling down, breaker).
    held: dict[str, Hold] = field(default_factory=dict)
    #: Requests Omnisend answered (a 2xx or a 4xx: it was reached).
    answered: int = 0
    #: Why the last request without a usable answer failed (refused, timeout, 5xx…), or "".
    unreachable: str = ""
    #: Connection keys with at least one request Omnisend accepted (2xx) in this pass.
    delivered: set[str] = field(default_factory=set)

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["skipped"] = dict(self.skipped)
        data["held"] = {key: hold.as_dict() for key, hold in self.held.items()}
        data["delivered"] = sorted(self.delivered)
        return data

    @property
    def omnisend_unreachable(self) -> bool:
        """Requests went out and none got an answer (Omnisend down, or the way to it)."""
        return bool(self.unreachable) and not self.answered

    @property
    def processed(self) -> int:
        return (
            self.synced
            + self.unchanged
            + sum(self.skipped.values())
            + self.retried
            + self.dead
            + self.events_sent
            + self.erasures_sent
        )


class _Clients:
    """One API client per connection key for the length of a drain (pooled connections)."""

    def __init__(self) -> None:
        self._clients: dict[str, Any] = {}
        self._fingerprints: dict[str, str] = {}

    def get(self, key: str) -> Any:
        if key not in self._clients:
            from .connections import client_for_key

            # The drain owns retries (it reschedules instead of sleeping), so the client makes
            # exactly one request per call and never sits on its leases waiting for budget.
            self._clients[key] = client_for_key(key, max_retries=0, max_wait=DRAIN_MAX_WAIT)
        return self._clients[key]

    def credential(self, key: str) -> str:
        """Fingerprint of the credential ``key`` would use now ("" when there is none)."""
        if key not in self._fingerprints:
            from .connections import credential_fingerprint

            self._fingerprints[key] = credential_fingerprint(key)
        return self._fingerprints[key]

    def sent(self) -> int:
        """HTTP requests the clients of this drain have sent so far."""
        return sum(client.requests_sent for client in self._clients.values())

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()


def _worker_id() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _error_text(exc: BaseException) -> str:
    return shorten(redact(f"{type(exc).__name__}: {exc}"), MAX_ERROR_LENGTH)


def _not_connected_reason(key: str, exc: exceptions.NotConnected) -> str:
    """Why there is no client for ``key``: the connection's own reason when it has one."""
    from .connections import connection_for_key

    connection = connection_for_key(key)
    if isinstance(exc, exceptions.NeedsReconnect) and connection and connection.status_reason:
        return f"needs reconnect: {connection.status_reason}"
    return f"not connected: {exc}"


def _status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status", None)


class _Drain:
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
        self.adapter = get_adapter()
        self.lease_seconds = float(omnisend_settings.get("LEASE_SECONDS"))
        self.max_attempts = int(omnisend_settings.get("MAX_ATTEMPTS"))
        self.user_model = get_user_model()
        #: Backfill batches looked at in this pass (see :func:`bulk.follow_batch`).
        self.followed_batches: set[str] = set()

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
            while not self.out_of_time():
                worked = self._round(OutboxItem, Q(state=OutboxItem.State.PENDING), self.outbox)
                worked += self._round(SyncState, Q(dirty=True), self.contact_row)
                if not worked:
                    break
        finally:
            self.clients.close()
        return self.result

    def _round(self, model, due: Q, handle) -> int:
        now = timezone.now()
        if self.blocked:
            due &= ~Q(connection_key__in=self.blocked)
        rows = claims.claim(
            model,
            due & Q(next_attempt_at__lte=now),
            worker=self.worker,
            limit=CLAIM_BATCH,
            now=now,
            lease_seconds=self.lease_seconds,
        )
        handled: set = set()
        try:
            for row in rows:
                if self.out_of_time():
                    break
                if row.connection_key not in self.blocked:
                    handle(row)
                    handled.add(row.pk)
        finally:
            # Rows not reached, and rows deferred by a closed gate, go back; rows whose outcome
            # was recorded already released their lease (release skips those).
            claims.release(
                model,
                [r.pk for r in rows if r.pk not in handled or r.connection_key in self.blocked],
                worker=self.worker,
            )
        return len(rows)

    # -- gates ----------------------------------------------------------------------------

    def gate_allows(self, row) -> bool:
        """Check the connection's switches; defer ``row`` (no attempt spent) if closed."""
        gate = delivery.gate(
            row.connection_key, credential=self.clients.credential(row.connection_key)
        )
        if gate.open:
            return True
        self.blocked.add(row.connection_key)
        self.result.deferred += 1
        self.result.held[row.connection_key] = Hold(gate.kind, gate.reason, gate.until)
        if gate.until is not None:
            type(row)._default_manager.filter(pk=row.pk, lease_owner=self.worker).update(
                next_attempt_at=gate.until
            )
        if gate.paused and row.connection_key not in self.result.paused:
            self.result.paused.append(row.connection_key)
        return False

    def client(self, row):
        try:
            return self.clients.get(row.connection_key)
        except exceptions.NotConnected as exc:
            reason = _not_connected_reason(row.connection_key, exc)
            delivery.pause(row.connection_key, reason, self.clients.credential(row.connection_key))
            self.blocked.add(row.connection_key)
            self.result.paused.append(row.connection_key)
            self.result.held[row.connection_key] = Hold("paused", reason)
            self.result.deferred += 1
            return None

    def send(self, row, call, *args, **kwargs):
        """Make one request for ``row`` under a fresh lease (raises LeaseLost if it expired)."""
        if not claims.extend(
            row, worker=self.worker, now=timezone.now(), lease_seconds=self.lease_seconds
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

    # -- failures (shared by sync rows and outbox items) -----------------------------------

    def failed(self, row, exc: Exception) -> str:
        """Record a failed request; returns the row's new state."""
        key = row.connection_key
        model = type(row)
        rows = model._default_manager.filter(pk=row.pk)
        now = timezone.now()
        common = {
            "last_status": _status_of(exc),
            "last_error": _error_text(exc),
            "lease_until": None,
            "lease_owner": "",
        }
        if isinstance(exc, exceptions.RateLimited):
            until = delivery.cool_down(key, exc.retry_after, now)
            self.blocked.add(key)
            self.result.deferred += 1
            rows.update(next_attempt_at=until, **common)
            return "deferred"
        if isinstance(exc, _PAUSING):
            reason = delivery.pause_reason(exc)
            delivery.pause(key, reason, self.clients.credential(key))
            if not isinstance(exc, exceptions.VersionRetired):
                # The credential is at fault: the admin shows the connection needs a reconnect.
                # (A retired version is the site's setting, not the credential's fault.)
                from .connections import mark_key_needs_reconnect

                mark_key_needs_reconnect(key, reason)
            self.blocked.add(key)
            self.result.paused.append(key)
            self.result.held[key] = Hold("paused", reason)
            self.result.deferred += 1
            if model is SyncState:
                rows.update(state=SyncState.State.PAUSED, **common)
            else:
                rows.update(**common)
            return "paused"
        if isinstance(exc, exceptions.BudgetExhausted):
            self.result.deferred += 1
            rows.update(next_attempt_at=now + timedelta(seconds=exc.retry_after), **common)
            return "deferred"
        retryable = getattr(exc, "retryable", False) and not isinstance(exc, exceptions.RateLimited)
        # A new failure streak starts from 1; only a row already retrying counts on.
        attempts = row.attempts + 1 if row.state == SyncState.State.FAILED else 1
        if retryable and attempts < self.max_attempts:
            if delivery.record_failure(key, now) is not None:
                self.blocked.add(key)
            self.result.retried += 1
            delay = backoff_seconds(attempts)
            if model is SyncState:
                rows.update(
                    attempts=attempts,
                    state=SyncState.State.FAILED,
                    next_attempt_at=now + timedelta(seconds=delay),
                    **common,
                )
            else:
                rows.update(
                    attempts=attempts, next_attempt_at=now + timedelta(seconds=delay), **common
                )
            return "retry"
        if retryable:
            delivery.record_failure(key, now)
        self.result.dead += 1
        reason = "max_attempts" if retryable else self._reason_for(exc)
        if model is SyncState:
            rows.update(
                attempts=attempts,
                state=SyncState.State.DEAD,
                reason=reason,
                dirty=False,
                **common,
            )
        else:
            rows.update(attempts=attempts, state=OutboxItem.State.DEAD, **common)
        return "dead"

    @staticmethod
    def _reason_for(exc: Exception) -> str:
        if isinstance(exc, exceptions.Conflict):
            return "email_conflict"
        if isinstance(exc, exceptions.ValidationError):
            return "validation"
        status = _status_of(exc)
        return f"http_{status}" if status else "error"

    # -- contacts ---------------------------------------------------------------------------

    def contact_row(self, row: SyncState) -> None:
        """Sync ``row``, or settle the backfill batch it is still in (never sent past it)."""
        if row.batch_id:
            from .bulk import follow_batch  # bulk builds on this module

            follow_batch(self, row)
            return
        self.sync_row(row)

    def sync_row(self, row: SyncState) -> None:
        user = self.user_model._default_manager.filter(pk=row.user_id).first()
        if user is None:  # deleted since the claim, or hidden by the manager (a soft delete)
            self._not_loadable(row)
            return
        try:
            plan = plan_contact(
                user,
                self.adapter,
                consent_sent_at=row.consent_sent_at,
                is_new=not row.contact_id,
            )
            verified = not plan.skip_reason and bool(self.adapter.is_email_verified(user))
        except Exception as exc:
            # A bug in the site's adapter fails this user (with backoff), not the whole pass.
            logger.exception("The Omnisend contact adapter failed for user %s.", row.user_id)
            error = exceptions.AdapterError(f"The contact adapter raised {exc!r}.")
            self.signal_failed(row, user, error, self.failed(row, error))
            return
        rows = SyncState.objects.filter(pk=row.pk)
        release = {"lease_until": None, "lease_owner": ""}
        if plan.skip_reason in (SkipReason.NO_EMAIL, SkipReason.INVALID_EMAIL):
            identity.release(row)  # the user no longer has the address it owned
        if not plan.skip_reason:
            binding = identity.bind(row, plan.email)
            if binding is not identity.Binding.BOUND:
                self._wait_for_address(row, binding.value)
                return
        if plan.skip_reason:
            self.result.skipped[plan.skip_reason] += 1
            cleared = rows.filter(generation=row.generation).update(
                dirty=False,
                state=SyncState.State.SKIPPED,
                reason=plan.skip_reason,
                attempts=0,
                last_error="",
                **release,
            )
            if not cleared:
                rows.update(**release)
            return
        if (
            plan.consent is None
            and row.payload_hash
            and plan.email == row.email
            and plan.payload_hash == row.payload_hash
        ):
            self.result.unchanged += 1
            cleared = rows.filter(generation=row.generation).update(
                dirty=False, state=SyncState.State.SYNCED, attempts=0, **release
            )
            if not cleared:
                rows.update(**release)
            return
        if not self.gate_allows(row):
            return
        client = self.client(row)
        if client is None:
            return
        reason = ""
        withheld = None
        if not verified and plan.consent is not None and plan.consent.subscribed:
            # ``subscribed`` only for a verified address: the opt-in waits (consent_sent_at
            # stays put), and is sent by the first sync after the address is verified.
            withheld = plan.consent
            plan = replace(plan, body=without_channels(plan.body), consent=None)
            reason = UNVERIFIED
        # This row never wrote this address: the contact may exist without being ours.
        fresh = plan.email != row.email
        wants_welcome = bool(plan.body["identifiers"][0].get("sendWelcomeMessage"))
        existing: Any = _UNKNOWN
        try:
            if fresh and (not verified or wants_welcome):
                existing = self.send(row, client.contacts.get_by_email, plan.email)
                if existing and not verified:
                    self._unverified_existing(row)
                    return
            # A welcome only for a contact that did not exist, and only at a verified address.
            welcome = fresh and verified and wants_welcome and existing is None
            plan.body["identifiers"][0]["sendWelcomeMessage"] = welcome
            if existing is None:
                date_creation(plan.body, row.created_at, withheld)
            body = plan.body
            if plan.consent is not None and plan.consent.subscribed:
                body, reason = self._guard_subscribe(row, client, plan, existing)
            result = self._write_contact(row, client, plan, body)
        except LeaseLost:
            return
        except exceptions.OmnisendError as exc:
            self.signal_failed(row, user, exc, self.failed(row, exc))
            return
        except Exception as exc:  # requests' own errors the client did not wrap
            error = exceptions.TransportError(_error_text(exc), kind="transport")
            self.signal_failed(row, user, error, self.failed(row, error))
            raise
        delivery.record_success(row.connection_key)
        sent_status = body["identifiers"][0].get("channels", {}).get("email", {}).get("status")
        if sent_status == "subscribed" and result.get("status") not in (None, "subscribed"):
            # Omnisend kept a status dated after the opt-in (its status-date rule): say so
            # rather than look subscribed. Record the confirmation time as the consent's.
            reason = CONSENT_OUTDATED
        contact_id = str(result.get("id") or "") or row.contact_id
        done = {
            "contact_id": contact_id,
            "email": plan.email,
            "payload_hash": plan.payload_hash,
            "last_status": 200,
            "last_error": "",
            "batch_id": "",
            **release,
        }
        if plan.consent is not None:
            done["consent_sent_at"] = plan.consent.at
        cleared = rows.filter(generation=row.generation).update(
            dirty=False,
            state=SyncState.State.SYNCED,
            reason=reason,
            attempts=0,
            synced_at=timezone.now(),
            **done,
        )
        if not cleared:  # a newer save arrived while the request was in flight: send again
            rows.update(next_attempt_at=timezone.now(), **done)
        self.result.synced += 1
        # An upsert says whether it created the contact (201); a PATCH changed an existing one.
        self.signal_synced(row, user, contact_id, created=getattr(result, "created", False))

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
        if isinstance(error, exceptions.BudgetExhausted):
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
        SyncState.objects.filter(pk=row.pk, lease_owner=self.worker).update(
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
        rows = SyncState.objects.filter(pk=row.pk, lease_owner=self.worker)
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
        rows = SyncState.objects.filter(pk=row.pk)
        release = {"lease_until": None, "lease_owner": ""}
        cleared = rows.filter(generation=row.generation).update(
            dirty=False,
            state=SyncState.State.SKIPPED,
            reason=UNVERIFIED,
            attempts=0,
            last_error="",
            **release,
        )
        if not cleared:
            rows.update(**release)

    def _guard_subscribe(self, row, client, plan, existing=_UNKNOWN) -> tuple[dict, str]:
        """Never let a Django opt-in override a later unsubscribe made inside Omnisend.

        ``existing`` is the contact when it was already looked up (None: there is none).
        """
        if existing is _UNKNOWN:
            existing = self.send(row, client.contacts.get_by_email, plan.email)
        if not existing or existing.get("status") != "unsubscribed":
            return plan.body, ""
        changed = [
            s.get("statusChangedAt", "")
            for s in existing.get("statuses") or []
            if s.get("channel") == "email" and s.get("status") == "unsubscribed"
        ]
        latest = max((parse_rfc3339(c) for c in changed if c), default=None)
        # Fail closed: an unsubscribe whose time cannot be read may be newer than the opt-in.
        if latest is None or latest >= plan.consent.at:
            return without_channels(plan.body), "consent_conflict"
        return plan.body, ""

    def _write_contact(self, row, client, plan, body):
        """Upsert ``body``; after an e-mail change, tag the contact left behind (R-DI-4).

        The e-mail identifier is never moved to another contact: the new address gets its own
        contact (no channel status unless a new opt-in for a verified address), and the old
        one stays as it is apart from the tag, no longer synced by this user.
        """
        result = self.send(row, client.contacts.upsert, body)
        if row.email and row.email != plan.email:
            if row.contact_id:
                selector = {"contact_ids": [row.contact_id]}
            else:  # bound by a bulk sync, which does not learn ids
                selector = {"emails": [row.email]}
            self.send(row, client.contacts.add_tags, [EMAIL_CHANGED_TAG], **selector)
        return result

    # -- events and erasures ----------------------------------------------------------------

    def outbox(self, item: OutboxItem) -> None:
        if not self.gate_allows(item):
            return
        client = self.client(item)
        if client is None:
            return
        sent = True
        try:
            if item.kind == OutboxItem.Kind.ERASURE:
                sent = erasure.erase(item, client, self.send)
            else:
                self.send(item, client.events.send, dict(item.payload))
        except LeaseLost:
            return
        except erasure.BatchOpen:
            # The address travels in a backfill batch Omnisend has not processed: erasing now
            # would find nothing and the batch would recreate the contact. No attempt spent.
            OutboxItem.objects.filter(pk=item.pk, lease_owner=self.worker).update(
                next_attempt_at=timezone.now() + timedelta(seconds=erasure.BATCH_WAIT_SECONDS),
                lease_until=None,
                lease_owner="",
            )
            return
        except exceptions.OmnisendError as exc:
            if self.failed(item, exc) == "dead" and item.kind == OutboxItem.Kind.ERASURE:
                erasure.settled(item)
            return
        delivery.record_success(item.connection_key)
        fields = {
            "state": OutboxItem.State.SENT if sent else OutboxItem.State.DISCARDED,
            "sent_at": timezone.now(),
            "last_error": "",
            "lease_until": None,
            "lease_owner": "",
        }
        if item.kind == OutboxItem.Kind.ERASURE:
            fields["email"] = ""  # keep only the keyed hash once the contact is anonymised
            if not sent:
                fields["last_error"] = "Discarded: the address has a new owner since."
            self.result.erasures_sent += 1
        else:
            self.result.events_sent += 1
        OutboxItem.objects.filter(pk=item.pk).update(**fields)
        if item.kind == OutboxItem.Kind.ERASURE:
            erasure.settled(item)


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
    return _Drain(
        worker=worker_id or _worker_id(), deadline=deadline, max_items=max_items, stop=stop
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

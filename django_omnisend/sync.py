"""``drain()``: deliver the outbox to Omnisend.

One pass: claim due rows with a lease, build each payload from the *current* user row, skip
the call when nothing changed, send outside any transaction, and record the outcome. Any
number of drains may run at once (cron, ``omnisend_drain --loop``, django.tasks workers on
several machines): leases keep one request in flight per user, and a row is cleared only if
no newer save arrived while its request was in flight.

The database work is per claimed batch where a durable commit would otherwise be paid per
row: a batch's users are read in one query, its addresses bound in one short transaction
before any request, its outcomes saved in one transaction (never more than a second after an
answer), and a lease is renewed only when it is getting short. No transaction is ever open
across a request.

Outcomes (docs: guides/security.rst, 'How each outcome is handled'): timeouts, resets, 5xx and
unreadable 2xx
are retried with exponential backoff and jitter; 400/422/409 fail the item for good with the
API's reasons; 401/403/410 pause the whole connection without spending attempts; 429 cools
the whole brand down.

Fencing (issue 14): a lease is a timer, so a request can outlive it (a slow answer, a pause,
a clock ahead) while another worker takes the row over. Every claim therefore leases its rows
under a token of its own (``lease_owner`` is the worker id plus a claim counter), and every
``UPDATE`` that records an outcome filters on that token: a worker that lost its lease
records nothing, and if its request may have written to Omnisend it marks the row dirty again
(a new generation, no payload hash) so the current state is sent once more after it. A
request whose outcome is unknown (timeout, reset, unreadable 2xx, 5xx) forgets the payload
hash the same way, and every path that clears ``dirty`` checks the generation it read.
"""

from __future__ import annotations

import itertools
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
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from . import batching, catalog, claims, delivery, erasure, events, exceptions, identity, oauth
from .adapters import get_adapter
from .batching import BATCH_SIZE
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
#: A request starts with at least this share of a lease ahead of it; the lease is renewed
#: (one write) only when less is left, not before every request.
LEASE_FLOOR = 0.75
#: Outcomes of a claimed batch are saved together, one commit per batch, but none waits
#: longer than this (nor than an eighth of the lease) after its request got its answer.
RECORD_WINDOW = 1.0
#: A backlog goes through ``/batches``: when at least this many sync rows are due, the drain
#: claims :data:`batching.BATCH_SIZE` at a time instead of :data:`CLAIM_BATCH` ...
BATCH_THRESHOLD = 100
#: ... and sends a connection's plain profile updates among them as one batch when there
#: are at least this many (fewer go one request each, as outside a backlog).
BATCH_MIN_ITEMS = 20
#: How long a pass waits for Omnisend to process the batches it sent before leaving them to a
#: later pass (their rows are looked at again after ``batching.BATCH_POLL_SECONDS``).
BATCH_WAIT_SECONDS = 30.0
#: Batches sent before the pass stops to settle them (a page of the batch list holds 250).
MAX_OUTSTANDING = 200
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
#: Length of ``lease_owner`` (both sync tables): a claim token is cut to fit.
OWNER_LENGTH = 64
#: "Not looked up yet" (None means Omnisend has no such contact).
_UNKNOWN: Any = object()


class LeaseLost(Exception):
    """Another worker took the row over (our lease expired): leave it to them."""


def request_seconds_bound(request_timeout: float | None = None) -> float:
    """The longest one drain request can take: ``LEASE_SECONDS`` must be longer.

    The drain sends each request once (it retries by rescheduling the row, not in the call):
    a wait for room in the shared budget (at most :data:`DRAIN_MAX_WAIT`), then connecting
    and reading (``REQUEST_TIMEOUT`` each); after a 401, one token refresh
    (``oauth.TOKEN_TIMEOUT``) and one resend. (``requests``' read timeout bounds each wait
    for bytes, not a body trickled slowly: the fence keeps even that case safe.)
    """
    if request_timeout is None:
        request_timeout = omnisend_settings.request_timeout
    attempt = DRAIN_MAX_WAIT + 2 * float(request_timeout)
    return 2 * attempt + sum(oauth.TOKEN_TIMEOUT)


def unknown_outcome(exc: BaseException) -> bool:
    """Whether a failed request may have been applied by Omnisend all the same.

    Timeouts, resets and unreadable 2xx bodies (and a 5xx, which may come after a write):
    what Omnisend holds is unknown, so the next pass must send the current state.
    """
    if isinstance(exc, exceptions.TransportError):
        return exc.kind != "ssl"  # a failed TLS handshake sent nothing
    return isinstance(exc, exceptions.ServerError)


def backoff_seconds(attempts: int, rng: random.Random | None = None) -> float:
    """Delay before retry number ``attempts`` (1-based): in [d/2, d], d = min(cap, b·2ⁿ⁻¹).

    ``b`` is ``OMNISEND["RETRY_BACKOFF"]`` (30 s): 12 attempts span about a day.
    """
    base = omnisend_settings.retry_backoff
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
    #: Product and category writes sent (or found superseded by a newer one).
    catalog_sent: int = 0
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
    #: Rows whose lease ran out while their request was in flight (another worker took them
    #: over): no outcome was recorded, and the row was marked to be sent again.
    lost_leases: int = 0

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
            + self.catalog_sent
        )


@dataclass
class _Prepared:
    """A claimed sync row's user, plan and binding, worked out before any request."""

    user: Any
    plan: Any = None
    verified: bool = False
    #: What the site's adapter raised instead of a plan.
    error: Exception | None = None
    #: None when the plan binds nothing (a skip); a row that could not bind is done.
    binding: identity.Binding | None = None


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
        #: When each connection's gate was last read open (see :meth:`gate_allows`).
        self.open_gates: dict[str, float] = {}
        self.adapter = get_adapter()
        self.lease_seconds = omnisend_settings.lease_seconds
        self.max_attempts = omnisend_settings.max_attempts
        self.user_model = get_user_model()
        #: The claimed batch's users, plans and bindings, by sync row primary key.
        self.prepared: dict[Any, _Prepared] = {}
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
                if batch.get("status") in batching.SETTLED:
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
            reason = _not_connected_reason(row.connection_key, exc)
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

    def failed(self, row, exc: Exception, *, written: str = "", breaker: bool = True) -> str:
        """Record a failed request; returns the row's new state ("lost": nothing recorded).

        ``written`` is the address a contact write was sent for: when the outcome is
        unknown the write may have landed, so the row records that address as possibly
        written (a later move away from it tags it) and forgets its payload hash.
        ``breaker`` False: the request was counted by the breaker already (a batch's rows).
        """
        # The successes before this failure count first (the breaker counts failures in a
        # row, and a success saved after this one would undo it).
        self.flush()
        key = row.connection_key
        model = type(row)
        rows = self.fenced(row)
        now = timezone.now()
        common: dict[str, Any] = {
            "last_status": _status_of(exc),
            "last_error": _error_text(exc),
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
            if rows.update(**fields, **common) or not self.exists(row):
                return True
            self.lease_lost(row, wrote=unknown)
            return False

        if isinstance(exc, exceptions.RateLimited):
            until = delivery.cool_down(key, exc.retry_after, now)
            self.blocked.add(key)
            self.result.deferred += 1
            return "deferred" if settle(next_attempt_at=until) else "lost"
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
            paused = {"state": SyncState.State.PAUSED} if model is SyncState else {}
            return "paused" if settle(**paused) else "lost"
        if isinstance(exc, exceptions.BudgetExhausted):
            self.result.deferred += 1
            later = now + timedelta(seconds=exc.retry_after)
            return "deferred" if settle(next_attempt_at=later) else "lost"
        retryable = getattr(exc, "retryable", False) and not isinstance(exc, exceptions.RateLimited)
        # A new failure streak starts from 1; only a row already retrying counts on.
        attempts = row.attempts + 1 if row.state == SyncState.State.FAILED else 1
        if retryable and attempts < self.max_attempts:
            if breaker and delivery.record_failure(key, now) is not None:
                self.blocked.add(key)
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
            self.result.retried += 1
            return "retry"
        if retryable and breaker:
            delivery.record_failure(key, now)
        reason = "max_attempts" if retryable else self._reason_for(exc)
        if model is not SyncState:
            if not settle(attempts=attempts, state=OutboxItem.State.DEAD):
                return "lost"
            self.result.dead += 1
            return "dead"
        outcome = self.record(
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
            self.lease_lost(row, wrote=unknown)
            return "lost"
        if outcome == "newer":  # ("gone": reported as dead, nothing is left to retry)
            self.result.retried += 1
            return "retry"
        self.result.dead += 1
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
        """Sync ``row``, or settle the batch it is still in (never sent past it).

        A row in a batch whose lease ran out (a backfill or a drain that stopped before
        settling it) is never sent on its own while the batch is open: a newer state sent now
        could be overwritten by the batch landing later. Its batch joins this pass's
        outstanding ones, polled through the batch list (not a request per batch or row);
        the batch's other rows wait with it, so they are not claimed one by one meanwhile.
        """
        if row.batch_id:
            self.outstanding.setdefault(row.batch_id, row.connection_key)
            batching.postpone([row.batch_id], batching.BATCH_POLL_SECONDS)
            return
        self.sync_row(row)

    def prepare(self, rows: list[SyncState]) -> None:
        """Read, plan and bind a claimed batch before any request (three queries and one
        commit for the batch, not per row): the users in one query, the addresses bound in
        one short transaction (:func:`identity.bind_many`). A row that cannot bind records
        its wait inside that transaction and is done."""
        users = self.user_model._default_manager.in_bulk([r.user_id for r in rows])
        binds: list[tuple[SyncState, str]] = []
        for row in rows:
            prepared = self.prepared[row.pk] = _Prepared(users.get(row.user_id))
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

    def sync_row(self, row: SyncState) -> None:
        prepared = self.prepared.pop(row.pk, None)
        if prepared is None:  # not claimed by a round (the bulk sync's single rows)
            self.prepare([row])
            prepared = self.prepared.pop(row.pk)
        user, plan, verified = prepared.user, prepared.plan, prepared.verified
        if user is None:  # deleted since the claim, or hidden by the manager (a soft delete)
            self._not_loadable(row)
            return
        if prepared.error is not None:
            # A bug in the site's adapter fails this user (with backoff), not the whole pass.
            self.signal_failed(row, user, prepared.error, self.failed(row, prepared.error))
            return
        if prepared.binding not in (None, identity.Binding.BOUND):
            return  # waits for its address (recorded when binding)
        release = {"lease_until": None, "lease_owner": ""}
        if plan.skip_reason in (SkipReason.NO_EMAIL, SkipReason.INVALID_EMAIL):
            identity.release(row)  # the user no longer has the address it owned
        if plan.skip_reason:
            self.result.skipped[plan.skip_reason] += 1
            self.save_outcome(
                row,
                clean={
                    "dirty": False,
                    "state": SyncState.State.SKIPPED,
                    "reason": plan.skip_reason,
                    "attempts": 0,
                    "last_error": "",
                    **release,
                },
                newer=release,
            )
            return
        if (
            plan.consent is None
            and row.payload_hash
            and plan.email == row.email
            and plan.payload_hash == row.payload_hash
        ):
            self.result.unchanged += 1
            self.save_outcome(
                row,
                clean={"dirty": False, "state": SyncState.State.SYNCED, "attempts": 0, **release},
                newer=release,
            )
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
        #: The address a contact write was sent for (its outcome may be unknown).
        attempted: list[str] = []
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
            result = self._write_contact(row, client, plan, body, attempted)
        except LeaseLost:
            # Lost before a request (the upsert, if sent, went out under our lease).
            self.lease_lost(row, wrote=bool(attempted))
            return
        except exceptions.OmnisendError as exc:
            written = attempted[0] if attempted else ""
            self.signal_failed(row, user, exc, self.failed(row, exc, written=written))
            return
        except Exception as exc:  # requests' own errors the client did not wrap
            error = exceptions.TransportError(_error_text(exc), kind="transport")
            written = attempted[0] if attempted else ""
            self.signal_failed(row, user, error, self.failed(row, error, written=written))
            raise
        self.succeeded(row.connection_key)
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
        now = timezone.now()
        # An upsert says whether it created the contact (201); a PATCH changed an existing one.
        created = getattr(result, "created", False)

        def synced() -> None:
            self.result.synced += 1
            self.signal_synced(row, user, contact_id, created=created)

        self.save_outcome(
            row,
            clean={
                "dirty": False,
                "state": SyncState.State.SYNCED,
                "reason": reason,
                "attempts": 0,
                "synced_at": now,
                **done,
            },
            # A newer save arrived while the request was in flight: send again, and with no
            # payload hash, since a worker that lost its lease meanwhile (it moves the
            # generation too) may have written after us.
            newer={**done, "payload_hash": "", "next_attempt_at": now},
            wrote=True,
            then=synced,
        )

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
        # max() raises TypeError when one time is unreadable (None) and another is not: a
        # defect mypy found, left for a fix with its failing test first (reported).
        latest = max((parse_rfc3339(c) for c in changed if c), default=None)  # type: ignore[type-var]
        # Fail closed: an unsubscribe whose time cannot be read may be newer than the opt-in.
        if latest is None or latest >= plan.consent.at:
            return without_channels(plan.body), "consent_conflict"
        return plan.body, ""

    def _write_contact(self, row, client, plan, body, attempted: list[str]):
        """Upsert ``body``; after an e-mail change, tag the contact left behind
        (docs: guides/identity.rst, 'E-mail changes').

        The e-mail identifier is never moved to another contact: the new address gets its own
        contact (no channel status unless a new opt-in for a verified address), and the old
        one stays as it is apart from the tag, no longer synced by this user.
        ``attempted`` gets the address once the upsert is sent (its outcome may be unknown).
        """
        attempted.append(plan.email)
        try:
            result = self.send(row, client.contacts.upsert, body)
        except LeaseLost:
            # ``send`` raises it before the request: nothing of ours can land after the
            # new owner's write, so its outcome stands (no new generation, no resend).
            attempted.clear()
            raise
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
            elif item.kind in catalog.KINDS:
                sent = catalog.deliver(item, client, self.send)
            else:
                self.send(item, client.events.send, dict(item.payload))
        except LeaseLost:
            self.lease_lost(item, wrote=False)
            return
        except erasure.BatchOpen:
            # The address travels in a backfill batch Omnisend has not processed: erasing now
            # would find nothing and the batch would recreate the contact. No attempt spent.
            self.fenced(item).update(
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
        if not self.fenced(item).update(**fields) and self.exists(item):
            # Another worker holds the item now and sends it again (an erasure is idempotent,
            # an event carries its eventID): its outcome is the one recorded.
            self.lease_lost(item, wrote=False)
            return
        if item.kind == OutboxItem.Kind.ERASURE:
            self.result.erasures_sent += 1
            erasure.settled(item)
        elif item.kind in catalog.KINDS:
            self.result.catalog_sent += 1
        else:
            self.result.events_sent += 1


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

"""The drain's constants and the small rules every delivery path shares: lease and batch
sizes, retry backoff, which failures leave the outcome unknown, and the error text kept.
"""

from __future__ import annotations

import os
import random
import socket
import uuid
from typing import Any

from .. import exceptions
from ..api import tokens
from ..conf import omnisend_settings
from ..redaction import redact
from ..text import shorten

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

PAUSING = (exceptions.AuthenticationError, exceptions.PermissionDenied, exceptions.VersionRetired)


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
UNKNOWN: Any = object()


class LeaseLost(Exception):
    """Another worker took the row over (our lease expired): leave it to them."""


def request_seconds_bound(request_timeout: float | None = None) -> float:
    """The longest one drain request can take: ``LEASE_SECONDS`` must be longer.

    The drain sends each request once (it retries by rescheduling the row, not in the call):
    a wait for room in the shared budget (at most :data:`DRAIN_MAX_WAIT`), then connecting
    and reading (``REQUEST_TIMEOUT`` each); after a 401, one token refresh
    (``tokens.TOKEN_TIMEOUT``) and one resend. (``requests``' read timeout bounds each wait
    for bytes, not a body trickled slowly: the fence keeps even that case safe.)
    """
    if request_timeout is None:
        request_timeout = omnisend_settings.request_timeout
    attempt = DRAIN_MAX_WAIT + 2 * float(request_timeout)
    return 2 * attempt + sum(tokens.TOKEN_TIMEOUT)


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


def new_worker_id() -> str:
    """A worker id unique to this process and run: host, pid and a random suffix."""
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def error_text(exc: BaseException) -> str:
    return shorten(redact(f"{type(exc).__name__}: {exc}"), MAX_ERROR_LENGTH)


def not_connected_reason(key: str, exc: exceptions.NotConnected) -> str:
    """Why there is no client for ``key``: the connection's own reason when it has one."""
    from ..connect import connection_for_key

    connection = connection_for_key(key)
    if isinstance(exc, exceptions.NeedsReconnect) and connection and connection.status_reason:
        return f"needs reconnect: {connection.status_reason}"
    return f"not connected: {exc}"


def status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status", None)

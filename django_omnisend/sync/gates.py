"""Per-connection delivery switches shared by every worker through the database.

* pause: 401/403/410 stop all sends for the connection, without spending attempts, until a
  reconnect (:func:`resume`); the reason (:func:`pause_reason`) says why and what to do;
* cooldown: a 429 stops the whole brand for ``retryAfter`` (else 60 s);
* circuit breaker: 5 consecutive 5xx/timeouts open it for ``RETRY_BACKOFF`` (30 s),
  doubling up to 30 times that (15 min); the first request after that is the probe.

:attr:`Gate.reason` names the switch that holds a connection, so the drain and
``omnisend_status`` can say why nothing is sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F
from django.utils import timezone

from .. import exceptions
from ..conf import omnisend_settings
from ..crypto import fingerprint
from ..models import DeliveryControl
from ..text import moment, shorten

BREAKER_THRESHOLD = 5
#: The breaker's longest opening, as a multiple of its first (``RETRY_BACKOFF``).
BREAKER_MAX_FACTOR = 30
#: Size of ``DeliveryControl.paused_reason``.
REASON_LENGTH = 255


@dataclass(frozen=True)
class Gate:
    """Whether a connection may send now, and if not, until when and why."""

    open: bool
    until: datetime | None = None
    reason: str = ""
    paused: bool = False
    #: ``"paused"``, ``"cooldown"`` or ``"breaker"`` when closed.
    kind: str = ""


def _sealed(credential: str) -> str:
    """What a pause remembers: the credential's fingerprint together with the API version."""
    return fingerprint(f"{credential}:{omnisend_settings.api_version}")


def _control(key: str) -> DeliveryControl:
    control, _ = DeliveryControl.objects.get_or_create(connection_key=key)
    return control


def gate(key: str, now: datetime | None = None, credential: str | None = None) -> Gate:
    """Read the switches for ``key`` (one indexed query).

    ``credential`` is the fingerprint of the credential a worker would send now: a pause
    caused by a different (rejected) credential, or under a different ``API_VERSION``, lifts
    itself, so reconnecting in the admin, deploying a fixed API key or updating a retired
    version resumes delivery with nothing else to do.
    """
    now = now or timezone.now()
    control = DeliveryControl.objects.filter(connection_key=key).first()
    if control is None:
        return Gate(open=True)
    if control.paused and credential and _sealed(credential) != control.paused_credential:
        resume(key)
        control.refresh_from_db()
    if control.paused:
        return Gate(
            open=False,
            reason=control.paused_reason or "paused (no reason recorded)",
            paused=True,
            kind="paused",
        )
    waits = [
        (t, kind, why)
        for t, kind, why in (
            (control.cooldown_until, "cooldown", "rate limited (429)"),
            (
                control.breaker_open_until,
                "breaker",
                f"circuit breaker open after {control.consecutive_failures} failed requests "
                "in a row (5xx or no answer)",
            ),
        )
        if t and t > now
    ]
    if waits:
        until, kind, why = max(waits, key=lambda w: w[0])
        return Gate(open=False, until=until, reason=f"{why} until {moment(until)}", kind=kind)
    return Gate(open=True)


def pause_reason(exc: exceptions.OmnisendAPIError, needed: str = "") -> str:
    """Why a 401/403/410 paused delivery and what to do, in at most :data:`REASON_LENGTH`.

    ``needed`` is the permission the failed call needs, when the caller knows it: Omnisend's
    403 does not name the missing one (its gateway answers before Omnisend sees the call).
    """
    said = shorten(exc.detail or exc.title or "", 100)
    said = f"Omnisend says: {said.rstrip('.')}. " if said else ""
    if isinstance(exc, exceptions.PermissionDenied):
        missing = exc.missing_scope or needed
        scope = f" {missing}" if missing else ""
        what = f"permission denied (403): the credential lacks{scope or ' a'} permission."
        # A new credential lifts the pause by itself; the same key granted more does not.
        todo = "Reconnect and approve every permission, or use an API key that has it."
    elif isinstance(exc, exceptions.VersionRetired):
        what = "API version retired (410)."
        todo = 'Update OMNISEND["API_VERSION"] (or django-omnisend); delivery then resumes.'
    else:
        what = "credential rejected (401)."
        todo = 'Reconnect in the admin or set a valid OMNISEND["API_KEY"]; delivery then resumes.'
    return shorten(f"{what} {said}{todo}", REASON_LENGTH)


def pause(key: str, reason: str, credential: str = "") -> None:
    """Stop sending for ``key`` until a new credential or :func:`resume` (a reconnect)."""
    control = _control(key)
    DeliveryControl.objects.filter(pk=control.pk).update(
        paused=True,
        # Never cut mid-word: people read this in the status and the drain's output.
        paused_reason=shorten(reason, REASON_LENGTH),
        paused_at=timezone.now(),
        paused_credential=_sealed(credential) if credential else "",
    )


def resume(key: str) -> None:
    """Let ``key`` send again (called when the connection is reconnected or fixed)."""
    DeliveryControl.objects.filter(connection_key=key).update(
        paused=False,
        paused_reason="",
        paused_at=None,
        paused_credential="",
        consecutive_failures=0,
        breaker_open_until=None,
    )


def cool_down(key: str, seconds: float | None, now: datetime | None = None) -> datetime:
    """Hold the whole brand for ``seconds`` (``RETRY_AFTER_DEFAULT`` when Omnisend gave none).

    The hold is at most ``exceptions.MAX_RETRY_AFTER`` (an hour); a non-finite ``seconds``
    counts as none given.
    """
    now = now or timezone.now()
    bounded = exceptions.bounded_wait(seconds)
    if bounded is None:
        bounded = exceptions.bounded_wait(omnisend_settings.retry_after_default) or 0.0
    until = now + timedelta(seconds=bounded)
    control = _control(key)
    DeliveryControl.objects.filter(pk=control.pk).update(cooldown_until=until)
    return until


def record_failure(key: str, now: datetime | None = None) -> datetime | None:
    """Count a 5xx/timeout; returns when the breaker reopens if this failure opened it."""
    now = now or timezone.now()
    control = _control(key)
    DeliveryControl.objects.filter(pk=control.pk).update(
        consecutive_failures=F("consecutive_failures") + 1
    )
    control.refresh_from_db(fields=["consecutive_failures"])
    over = control.consecutive_failures - BREAKER_THRESHOLD
    if over < 0:
        return None
    base = omnisend_settings.retry_backoff
    seconds = min(base * BREAKER_MAX_FACTOR, base * (2**over))
    until = now + timedelta(seconds=seconds)
    DeliveryControl.objects.filter(pk=control.pk).update(breaker_open_until=until)
    return until


def record_success(key: str) -> None:
    """Close the breaker after a request got through."""
    DeliveryControl.objects.filter(connection_key=key, consecutive_failures__gt=0).update(
        consecutive_failures=0, breaker_open_until=None
    )

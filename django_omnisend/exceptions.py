"""The ``OmnisendError`` tree.

API errors are parsed from Omnisend's RFC 9457 problem bodies and carry ``status``,
``problem_type``, ``title``, ``detail``, per-field ``errors``, ``retry_after`` and the request
``instance``. HTTP errors subclass :class:`requests.HTTPError` (transport errors
:class:`requests.RequestException`), like django-anymail's, so code that already catches
``requests`` errors keeps working; :class:`OmnisendImproperlyConfigured` is Django's
``ImproperlyConfigured``. The names ``ImproperlyConfigured``, ``ValidationError`` and
``PermissionDenied`` stay as aliases of the ``Omnisend*`` classes for code that catches them.
``str()`` of any of them is useful and never contains a credential: messages are built from
the problem body and a redacted URL only.

No exception holds a credential in its attributes either, so pickling one (a task queue, a
cache) or printing its ``__dict__`` writes no secret: ``exc.request`` is None (the prepared
request carried the ``Authorization`` header) and ``exc.response`` is a detached copy with
the status, reason, headers and body but no request, no cookies and a URL without query
values. Transport errors are raised without a ``__cause__``/``__context__``: the chained
``requests``/``urllib3`` exceptions and their frames hold the request headers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import requests
from django.core import exceptions as django_exceptions
from requests.structures import CaseInsensitiveDict


class OmnisendError(Exception):
    """Base class of every error django-omnisend raises."""


class OmnisendImproperlyConfigured(OmnisendError, django_exceptions.ImproperlyConfigured):
    """A setting is missing or wrong; the message names it.

    A :class:`django.core.exceptions.ImproperlyConfigured`, so host code that catches Django's
    catches it too.
    """


#: The former name, kept for code that imports or catches it.
ImproperlyConfigured = OmnisendImproperlyConfigured


class RegistrationError(OmnisendImproperlyConfigured):
    """Omnisend did not register the site as an OAuth client (RFC 7591), so it has no client
    credentials: the message says what happened and how to get credentials instead."""

    def __init__(self, message: str, *, code: str = "registration_failed") -> None:
        super().__init__(message)
        self.code = code


class NotConnected(OmnisendError):
    """There is no usable Omnisend connection (no OAuth connection and no API key)."""


class NeedsReconnect(NotConnected):
    """The connection's credentials were rejected or cannot be decrypted: reconnect in the admin."""


class OAuthError(OmnisendError):
    """The OAuth flow failed (state, token exchange, scopes or the brand probe)."""

    def __init__(self, message: str, *, code: str = "oauth_error") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class FieldError:
    """One entry of a validation problem's ``errors[]``."""

    field: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class OmnisendAPIError(OmnisendError, requests.HTTPError):
    """Omnisend answered with an error status; the parsed problem body is on the exception."""

    #: The HTTP status this class stands for (informational; ``status`` is the real one).
    default_status: int | None = None
    #: Whether sending the same request again later may succeed.
    retryable: bool = False

    def __init__(
        self,
        message: str = "",
        *,
        status: int | None = None,
        problem_type: str = "",
        title: str = "",
        detail: str = "",
        errors: list[FieldError] | None = None,
        retry_after: float | None = None,
        instance: str = "",
        method: str = "",
        url: str = "",
        response: requests.Response | None = None,
    ) -> None:
        self.status = status if status is not None else self.default_status
        self.problem_type = problem_type
        self.title = title
        self.detail = detail
        self.errors = list(errors or [])
        self.retry_after = retry_after
        self.instance = instance
        self.method = method
        self.url = url
        super().__init__(message or self._default_message(), response=detached_response(response))

    def _default_message(self) -> str:
        head = f"Omnisend API error {self.status}" if self.status else "Omnisend API error"
        if self.method and self.url:
            head += f" on {self.method} {self.url}"
        text = self.detail or self.title
        parts = [f"{head}: {text}" if text else head]
        if self.errors:
            parts.append("; ".join(str(e) for e in self.errors[:10]))
        if self.retry_after is not None:
            parts.append(f"retry after {self.retry_after:g} s")
        if self.instance:
            parts.append(f"request {self.instance}")
        return " | ".join(parts)

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else self._default_message()


def detached_response(response: requests.Response | None) -> requests.Response | None:
    """A copy of ``response`` that holds no credential, for ``OmnisendAPIError.response``.

    The original's ``request`` is the prepared request with the ``Authorization`` header, so
    the copy has none (``request`` is None); cookies and ``Set-Cookie`` are dropped and the
    URL loses its query (its values are often e-mail addresses). Status, reason, the other
    headers and the body (Omnisend's problem document) stay for callers that inspect them.
    """
    if response is None:
        return None
    copy = requests.Response()
    copy.status_code = response.status_code
    copy.reason = response.reason
    copy.headers = CaseInsensitiveDict(
        (k, v) for k, v in response.headers.items() if k.lower() != "set-cookie"
    )
    copy._content = response.content
    copy._content_consumed = True  # type: ignore[attr-defined]  # requests has no public way
    copy.encoding = response.encoding
    copy.elapsed = response.elapsed
    copy.url = (response.url or "").split("?", 1)[0].split("#", 1)[0]
    copy.request = None  # type: ignore[assignment]
    return copy


class OmnisendValidationError(OmnisendAPIError):
    """400 (or 413/415/422): the request was invalid; see ``errors`` for the fields.

    A :class:`requests.HTTPError`, not Django's ``ValidationError``: it reports a request
    Omnisend refused, not a form value a visitor can correct.
    """

    default_status = 400


#: The former name, kept for code that imports or catches it.
ValidationError = OmnisendValidationError


class AuthenticationError(OmnisendAPIError):
    """401: the API key or token is missing, invalid or revoked. Reconnect or fix the key."""

    default_status = 401


class OmnisendPermissionDenied(OmnisendAPIError):
    """403: the credential lacks a scope or key permission; ``missing_scope`` names it if known.

    A :class:`requests.HTTPError`, not Django's ``PermissionDenied``: Django would answer the
    visitor 403 for what is the site's credential problem, which the admin must fix.
    """

    default_status = 403

    @property
    def missing_scope(self) -> str:
        """The scope Omnisend's ``detail`` names, e.g. ``contacts.write`` (empty if none)."""
        import re

        match = re.search(r"\b([a-z-]+\.(?:read|write))\b", self.detail or "")
        return match.group(1) if match else ""


#: The former name, kept for code that imports or catches it.
PermissionDenied = OmnisendPermissionDenied


class NotFound(OmnisendAPIError):
    """404: no such contact, batch or resource."""

    default_status = 404


class Conflict(OmnisendAPIError):
    """409: an identifier in the request already belongs to another contact."""

    default_status = 409


class VersionRetired(OmnisendAPIError):
    """410: the ``Omnisend-Version`` sent is retired; update ``OMNISEND["API_VERSION"]``."""

    default_status = 410


class RateLimited(OmnisendAPIError):
    """429: Omnisend's per-brand budget is spent; wait ``retry_after`` seconds (None if unsaid)."""

    default_status = 429
    retryable = True


class ServerError(OmnisendAPIError):
    """5xx: Omnisend failed; the request may be retried with backoff."""

    default_status = 500
    retryable = True


class TransportError(OmnisendError, requests.RequestException):
    """The request's outcome is unknown: timeout, reset connection or an unreadable body.

    The write may or may not have been applied, so only idempotent requests are resent. A
    :class:`requests.RequestException` (like the ``requests`` error behind it), whose
    ``request`` and ``response`` are always None: they would hold the credential.
    """

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        kind: str = "transport",
        method: str = "",
        url: str = "",
        causes: frozenset[str] = frozenset(),
    ):
        super().__init__(message)
        #: ``timeout``, ``connection``, ``bad_body``, ``ssl`` or ``transport``.
        self.kind = kind
        self.method = method
        self.url = url
        #: Class names (with their bases) of the ``requests``/``urllib3``/socket errors behind
        #: this one, e.g. ``ConnectionRefusedError``. The exceptions themselves are not kept
        #: (they hold the request and its headers); the names are enough to say what failed.
        self.causes = causes
        # A TLS/certificate failure will fail the same way again (stripe-python agrees), so
        # it is the one transport error that is not worth resending.
        if kind == "ssl":
            self.retryable = False


class PagingError(OmnisendError):
    """A list endpoint returned a cursor it had already returned; iterating would never end."""


class AdapterError(OmnisendError):
    """The site's ``ContactAdapter`` raised while building a contact; retried with backoff."""

    retryable = True


class BudgetExhausted(OmnisendError):
    """The shared per-brand budget (``OMNISEND["RATE_LIMIT"]``) has no room before the deadline.

    Raised by :meth:`django_omnisend.ratelimit.RateLimiter.acquire` (and so by the client)
    instead of sleeping longer than the caller allows, also while the brand cools down after
    a 429. ``retry_after`` is the estimated wait in seconds; schedule the work for then.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


#: The longest wait a 429 (``Retry-After``, ``retryAfter``, ``X-Rate-Limit-Reset``) can impose,
#: in seconds. Omnisend's windows are a minute long; a larger value is a bug or a hostile
#: answer, and unbounded it parked a brand for decades or overflowed ``datetime`` (issue 15).
MAX_RETRY_AFTER = 3600.0


def bounded_wait(value: Any) -> float | None:
    """``value`` as seconds clamped to ``[0, MAX_RETRY_AFTER]``; None when it is no usable number.

    Numbers and numeric strings are read; booleans, NaN, infinities and anything unparsable
    give None, so the caller falls back to its next source or default.
    """
    if isinstance(value, bool) or value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if not math.isfinite(seconds):
        return None
    return min(MAX_RETRY_AFTER, max(0.0, seconds))


#: Status code -> exception class, for the error mapping in ``client.py``.
STATUS_EXCEPTIONS: dict[int, type[OmnisendAPIError]] = {
    400: OmnisendValidationError,
    401: AuthenticationError,
    403: OmnisendPermissionDenied,
    404: NotFound,
    409: Conflict,
    410: VersionRetired,
    413: OmnisendValidationError,
    415: OmnisendValidationError,
    422: OmnisendValidationError,
    429: RateLimited,
}


def exception_for_status(status: int) -> type[OmnisendAPIError]:
    """The exception class for an HTTP error status."""
    if status in STATUS_EXCEPTIONS:
        return STATUS_EXCEPTIONS[status]
    if status >= 500:
        return ServerError
    return OmnisendAPIError


def parse_problem(body: Any) -> dict[str, Any]:
    """Pull the RFC 9457 fields out of a decoded error body, tolerating other shapes.

    Omnisend's legacy ``{"error": ..., "fields": {...}}`` shape (v3, and some batch item
    responses) is read too, so callers see one structure.
    """
    if not isinstance(body, dict):
        return {}
    errors: list[FieldError] = []
    for item in body.get("errors") or []:
        if isinstance(item, dict):
            errors.append(
                FieldError(
                    field=str(item.get("field") or ""),
                    code=str(item.get("code") or ""),
                    message=str(item.get("message") or ""),
                )
            )
    legacy_fields = body.get("fields")
    if isinstance(legacy_fields, dict):
        for field, messages in legacy_fields.items():
            for message in messages if isinstance(messages, list) else [messages]:
                errors.append(FieldError(field=str(field), code="", message=str(message)))
    retry_after = body.get("retryAfter")
    if not isinstance(retry_after, int | float):  # a string is not Omnisend's shape
        retry_after = None
    return {
        "problem_type": str(body.get("type") or ""),
        "title": str(body.get("title") or ""),
        "detail": str(body.get("detail") or body.get("error") or ""),
        "errors": errors,
        "retry_after": bounded_wait(retry_after),
        "instance": str(body.get("instance") or ""),
    }

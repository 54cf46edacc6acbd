"""What goes on the wire and what comes back: query encoding, the redacted target that
errors and logs show, body decoding, and mapping error responses and transport failures to
:mod:`django_omnisend.exceptions`.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import requests

from .. import __version__
from ..exceptions import (
    OmnisendAPIError,
    TransportError,
    bounded_wait,
    exception_for_status,
    parse_problem,
)

if TYPE_CHECKING:
    from ..conf import OmnisendSettings

#: Sent as ``User-Agent``.
USER_AGENT = f"django-omnisend/{__version__} (+python-requests)"
#: Sent as ``X-INTEGRATION-NAME`` / ``X-INTEGRATION-VERSION`` (Omnisend's plugins do the same).
INTEGRATION_NAME = "django-omnisend"
#: Statuses that are retried for safe requests.
#: Omnisend limits this endpoint on its own (60 a minute): see ``tags_rate_limiter``.
TAGS_PATH = "/contacts/tags"
RETRY_STATUSES = frozenset({408, 500, 502, 503, 504, 524})


@dataclass
class ApiResponse:
    """A successful response: ``status`` and the decoded JSON ``data`` (None when empty)."""

    status: int
    data: Any
    headers: Mapping[str, str] = field(default_factory=dict)


def settings() -> OmnisendSettings:
    """The ``OMNISEND`` settings (the defaults when Django settings are not configured)."""
    from ..conf import omnisend_settings

    return omnisend_settings


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def encode_query(params: Mapping[str, Any] | None) -> str:
    """Percent-encode every value strictly (``+`` -> ``%2B``, ``@`` -> ``%40``)."""
    if not params:
        return ""
    pairs = [(k, _query_value(v)) for k, v in params.items() if v is not None]
    return urlencode(pairs, quote_via=quote, safe="")


def safe_target(path: str, params: Mapping[str, Any] | None) -> str:
    """``path?name=***``: what errors and logs show, without query values (often e-mails)."""
    names = [k for k, v in (params or {}).items() if v is not None]
    return path + ("?" + "&".join(f"{k}=***" for k in names) if names else "")


def _retry_after(response: requests.Response, problem: Mapping[str, Any]) -> float | None:
    """Seconds to wait from ``Retry-After``, body ``retryAfter`` or ``X-Rate-Limit-Reset``.

    Each is clamped to ``[0, MAX_RETRY_AFTER]`` (an hour); a non-finite or unreadable value
    is ignored and the next source decides.
    """
    header = response.headers.get("Retry-After")
    if header:
        seconds = bounded_wait(header)
        if seconds is None:
            try:
                when = email.utils.parsedate_to_datetime(header)
                seconds = bounded_wait(when.timestamp() - time.time())
            except (TypeError, ValueError, OverflowError):
                pass
        if seconds is not None:
            return seconds
    if problem.get("retry_after") is not None:
        return bounded_wait(problem["retry_after"])
    return bounded_wait(response.headers.get("X-Rate-Limit-Reset"))


def path_prefix(api_url: str) -> str:
    """``/api`` from ``https://api.omnisend.com/api``: the path part of the base URL."""
    rest = api_url.split("://", 1)[-1]
    return "/" + rest.partition("/")[2] if "/" in rest else ""


def decode(response: requests.Response) -> Any:
    """The JSON body, None if empty; ValueError if it is not JSON (whatever the media type)."""
    content = response.content
    if not content.strip():
        return None
    return json.loads(content)


def api_error(response: requests.Response, method: str, target: str) -> OmnisendAPIError:
    try:
        body = json.loads(response.content) if response.content else None
    except ValueError:
        body = None
    problem = parse_problem(body)
    if not problem:
        problem = {"title": response.reason or ""}
    retry_after = None
    if response.status_code == 429:
        # A 429 that says nothing still means "come back later": RETRY_AFTER_DEFAULT (60 s,
        # Omnisend's window).
        retry_after = _retry_after(response, problem)
        if retry_after is None:
            retry_after = bounded_wait(settings().retry_after_default) or 0.0
    problem["retry_after"] = retry_after
    cls = exception_for_status(response.status_code)
    return cls(status=response.status_code, method=method, url=target, response=response, **problem)


def transport_error(exc: requests.RequestException, method: str, target: str) -> TransportError:
    if isinstance(exc, requests.exceptions.SSLError):
        kind, what = "ssl", "TLS/certificate error"
    elif isinstance(exc, requests.exceptions.Timeout):
        kind, what = "timeout", "timed out"
    elif isinstance(exc, requests.exceptions.ChunkedEncodingError | requests.ConnectionError):
        kind, what = "connection", "connection failed or was reset"
    else:
        kind, what = "transport", "request failed"
    # The exception's own text names the host and may name the URL with its query, so only
    # its class goes into our message.
    return TransportError(
        f"Omnisend {method} {target}: {what} ({type(exc).__name__}); the outcome is unknown.",
        kind=kind,
        method=method,
        url=target,
        causes=_cause_names(exc),
    )


def _cause_names(exc: BaseException) -> frozenset[str]:
    """The class names (bases included) of ``exc`` and every exception behind it.

    Followed: ``__cause__``, ``__context__``, urllib3's ``reason`` and exceptions in ``args``
    (requests wraps urllib3's ``MaxRetryError`` that way). Only names are kept, so
    :mod:`~django_omnisend.sync.reachability` can say "connection refused" without the objects.
    """
    names: set[str] = set()
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        names.update(cls.__name__ for cls in type(current).__mro__)
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo.extend(e for e in [*linked, *current.args] if isinstance(e, BaseException))
    return frozenset(names)


# -- resources ---------------------------------------------------------------------------------

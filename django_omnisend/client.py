"""``OmnisendClient``: the one way django-omnisend talks to Omnisend's REST API (2026-03-15).

One client owns one :class:`requests.Session` (connection pooling, keep-alive), sends the
``Omnisend-Version`` header, a versioned ``User-Agent`` and the ``X-INTEGRATION-*`` headers on
every request, applies a timeout (default ``OMNISEND["REQUEST_TIMEOUT"]``, 10 s), maps error
responses to :mod:`django_omnisend.exceptions`, retries what is safe to retry, and optionally
draws every request from a shared per-brand :class:`~django_omnisend.ratelimit.RateLimiter`.

It imports no Django models. Settings are read once, at construction, through
:mod:`django_omnisend.conf`; with Django settings not configured the built-in defaults are
used, so ``OmnisendClient(ApiKeyAuth(key), api_url=...)`` works in a plain script.

Retry policy (``max_retries`` retries after the first attempt, default
``OMNISEND["MAX_RETRIES"]``):

* 429 is retried for every request, because Omnisend refused it without processing it. The
  wait is the ``Retry-After`` header, else the body's ``retryAfter``, else
  ``X-Rate-Limit-Reset``, else 60 s. A wait longer than ``max_wait`` is not slept: the
  :class:`~django_omnisend.exceptions.RateLimited` error is raised at once with
  ``retry_after`` so a worker can reschedule. With a rate limiter, the 429 also cools down
  the whole brand for every process.
* 5xx, 408, timeouts, connection resets and unreadable 2xx bodies are retried only for
  *safe* requests: GETs, the contact upsert (``POST /contacts`` sets absolute values keyed by
  the e-mail), PATCHes with absolute values, tag add/remove (set operations) and
  ``POST /brands/current``. ``batches.create`` and ``events.send`` are not retried unless
  the caller passes ``retry=True`` (the work may already have been done). The wait is
  exponential backoff with full jitter: ``random() * min(backoff_cap, backoff_base * 2**n)``.
* TLS/certificate errors are never retried.
* 401 calls ``on_unauthorized(client, error)`` once; if it returns a new credential the request
  is sent once more with it, otherwise :class:`~django_omnisend.exceptions.AuthenticationError`
  is raised.

Privacy: exception messages and log lines carry the method and the path with query *values*
elided (``GET /api/contacts?email=***``) because the values are often e-mail addresses; never
a header, a token or a body. One log line per attempt goes to the ``django_omnisend.client``
logger (DEBUG for success, INFO for errors and retries).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random as _random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import requests
from requests.auth import AuthBase

from . import __version__, redaction
from .exceptions import (
    AuthenticationError,
    OmnisendAPIError,
    PagingError,
    TransportError,
    bounded_wait,
    exception_for_status,
    parse_problem,
)

if TYPE_CHECKING:
    from .conf import OmnisendSettings

logger = logging.getLogger(__name__)
redaction.install()

#: Sent as ``User-Agent``.
USER_AGENT = f"django-omnisend/{__version__} (+python-requests)"
#: Sent as ``X-INTEGRATION-NAME`` / ``X-INTEGRATION-VERSION`` (Omnisend's plugins do the same).
INTEGRATION_NAME = "django-omnisend"
#: Statuses that are retried for safe requests.
#: Omnisend limits this endpoint on its own (60 a minute): see ``tags_rate_limiter``.
TAGS_PATH = "/contacts/tags"
RETRY_STATUSES = frozenset({408, 500, 502, 503, 504, 524})


def _fingerprint(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:8]


class _SecretAuth(AuthBase):
    """An ``Authorization`` header built from one secret; ``repr`` shows only a fingerprint."""

    __slots__ = ("_secret",)
    scheme = ""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError(f"{type(self).__name__} needs a non-empty secret")
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"{self.scheme} {self._secret}"
        return request

    def with_secret(self, secret: str) -> _SecretAuth:
        """A new auth of the same kind carrying ``secret`` (used after a refresh)."""
        return type(self)(secret)

    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of the secret's SHA-256: enough to tell secrets apart in logs."""
        return _fingerprint(self._secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would write the secret into queues and caches; credentials stay in memory.
        raise TypeError(f"{type(self).__name__} is not picklable (it holds a credential)")


class BearerAuth(_SecretAuth):
    """``Authorization: Bearer <token>`` for an OAuth connection."""

    __slots__ = ()
    scheme = "Bearer"


class ApiKeyAuth(_SecretAuth):
    """``Authorization: Omnisend-API-Key <key>`` for API-key mode."""

    __slots__ = ()
    scheme = "Omnisend-API-Key"

    @property
    def brand_id(self) -> str:
        """The brand id keys start with (``<brandID>-<secret>``), or ``""`` if it has none."""
        head, sep, _ = self._secret.partition("-")
        return head if sep and head.isalnum() else ""


@dataclass
class ApiResponse:
    """A successful response: ``status`` and the decoded JSON ``data`` (None when empty)."""

    status: int
    data: Any
    headers: Mapping[str, str] = field(default_factory=dict)


class ContactResult(dict):
    """The ``ContactResponse`` of an upsert, plus whether Omnisend created the contact.

    It is the contact dict itself (``result["id"]``), with ``result.created`` (True on 201,
    False on 200 = an existing contact was updated) and ``result.status``; the dict's keys
    are exactly Omnisend's.
    """

    def __init__(self, data: Mapping[str, Any], *, status: int) -> None:
        super().__init__(data)
        self.status = status
        self.created = status == 201


def _settings() -> OmnisendSettings:
    """The ``OMNISEND`` settings (the defaults when Django settings are not configured)."""
    from .conf import omnisend_settings

    return omnisend_settings


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime | date):
        return value.isoformat().replace("+00:00", "Z")
    return str(value)


def _encode_query(params: Mapping[str, Any] | None) -> str:
    """Percent-encode every value strictly (``+`` -> ``%2B``, ``@`` -> ``%40``)."""
    if not params:
        return ""
    pairs = [(k, _query_value(v)) for k, v in params.items() if v is not None]
    return urlencode(pairs, quote_via=quote, safe="")


def _safe_target(path: str, params: Mapping[str, Any] | None) -> str:
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


class OmnisendClient:
    """A connection-pooled client for one Omnisend brand.

    :param auth: :class:`ApiKeyAuth` or :class:`BearerAuth`.
    :param api_url: base URL; default ``OMNISEND["API_URL"]``.
    :param api_version: ``Omnisend-Version``; default ``OMNISEND["API_VERSION"]``.
    :param timeout: seconds (or a ``(connect, read)`` tuple); default
        ``OMNISEND["REQUEST_TIMEOUT"]``.
    :param max_retries: retries after the first attempt; default ``OMNISEND["MAX_RETRIES"]``.
    :param rate_limiter: a :class:`~django_omnisend.ratelimit.RateLimiter` every request is
        drawn from, or None for no client-side budget.
    :param tags_rate_limiter: a second budget, for ``/contacts/tags`` alone (Omnisend allows
        60 a minute there); those requests draw on both.
    :param rate_limit_key: the budget's key, normally the brand id; default the limiter's own
        ``key``, else the API key's brand prefix, else ``"default"``.
    :param on_unauthorized: ``callable(client, error) -> str | None`` called once on a 401; a
        returned string is the new credential for one more try.
    :param max_wait: the longest single wait (429, budget) the client sleeps through; longer
        waits raise ``RateLimited``/``BudgetExhausted`` with ``retry_after`` instead.
    :param sleep, clock, random: injectable for tests (``clock`` only measures latency).
    :param event_origin: ``origin`` for events; default ``OMNISEND["EVENT_ORIGIN"]``.
    """

    def __init__(
        self,
        auth: BearerAuth | ApiKeyAuth,
        *,
        api_url: str | None = None,
        api_version: str | None = None,
        timeout: float | tuple[float, float] | None = None,
        max_retries: int | None = None,
        rate_limiter: Any = None,
        rate_limit_key: str | None = None,
        tags_rate_limiter: Any = None,
        on_unauthorized: Callable[[OmnisendClient, AuthenticationError], str | None] | None = None,
        max_wait: float = 60.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        sleep: Callable[[float], Any] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        random: Callable[[], float] = _random.random,
        event_origin: str | None = None,
        integration_name: str = INTEGRATION_NAME,
        integration_version: str = __version__,
    ) -> None:
        if not isinstance(auth, _SecretAuth):
            raise TypeError("auth must be ApiKeyAuth(key) or BearerAuth(token)")
        self.auth = auth
        self.api_url = str(api_url or _settings().api_url).rstrip("/")
        self.api_version = str(api_version or _settings().api_version)
        self.timeout = timeout if timeout is not None else _settings().request_timeout
        self.max_retries = int(max_retries if max_retries is not None else _settings().max_retries)
        self.event_origin = event_origin or _settings().event_origin
        self.rate_limiter = rate_limiter
        self.tags_rate_limiter = tags_rate_limiter
        self.rate_limit_key = (
            rate_limit_key
            or getattr(rate_limiter, "key", None)
            or getattr(auth, "brand_id", "")
            or "default"
        )
        self.on_unauthorized = on_unauthorized
        self.max_wait = float(max_wait)
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.sleep = sleep
        self.clock = clock
        self.random = random
        #: HTTP requests this client put on the wire (retries and resends included; requests
        #: the rate budget refused are not), for callers that report what they sent.
        self.requests_sent = 0
        self.session = requests.Session()
        self.session.headers.update(
            {
                "User-Agent": USER_AGENT,
                "Accept": "application/json",
                "Omnisend-Version": self.api_version,
                "X-INTEGRATION-NAME": integration_name[:50],
                "X-INTEGRATION-VERSION": integration_version[:50],
            }
        )
        self.contacts = Contacts(self)
        self.events = Events(self)
        self.batches = Batches(self)
        self.brands = Brands(self)
        self.event_metadata = EventMetadata(self)
        self.products = Products(self)
        self.categories = Categories(self)

    def __repr__(self) -> str:
        return f"OmnisendClient(api_url={self.api_url!r}, auth={self.auth!r})"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> OmnisendClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the request loop ---------------------------------------------------------------------

    def backoff(self, retry: int) -> float:
        """Full-jitter exponential backoff before retry number ``retry`` (1-based)."""
        return self.random() * min(self.backoff_cap, self.backoff_base * 2 ** (retry - 1))

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        retry: bool | None = None,
        expect_json: bool = True,
    ) -> ApiResponse:
        """Send one API call (with retries per the module's policy) and decode the answer.

        ``path`` is relative to ``api_url`` (``"/contacts"``). ``retry`` says whether the
        request is safe to resend after a 5xx/transport failure; default: True for GET,
        PATCH, PUT and DELETE, False for POST. Returns an :class:`ApiResponse`; raises an
        :class:`~django_omnisend.exceptions.OmnisendAPIError` subclass,
        :class:`~django_omnisend.exceptions.TransportError` or
        :class:`~django_omnisend.exceptions.BudgetExhausted`.
        """
        method = method.upper()
        safe = retry if retry is not None else method != "POST"
        query = _encode_query(params)
        url = self.api_url + path + ("?" + query if query else "")
        target = _safe_target(_path_prefix(self.api_url) + path, params)
        data = None
        headers = {}
        if json_body is not None:
            data = json.dumps(json_body, separators=(",", ":"), ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json"
        attempt = 0
        retries = 0
        reauthorized = False
        while True:
            attempt += 1
            if self.tags_rate_limiter is not None and path.startswith(TAGS_PATH):
                self.tags_rate_limiter.acquire(self.rate_limit_key, timeout=self.max_wait)
            if self.rate_limiter is not None:
                self.rate_limiter.acquire(self.rate_limit_key, timeout=self.max_wait)
            started = self.clock()
            self.requests_sent += 1
            failure: TransportError | None = None
            try:
                response = self.session.request(
                    method,
                    url,
                    data=data,
                    headers=headers,
                    auth=self.auth,
                    timeout=self.timeout,
                    allow_redirects=False,
                )
            except requests.exceptions.RequestException as exc:
                failure = _transport_error(exc, method, target)
            if failure is not None:
                # Raised here, outside the ``except``, so it has no __context__: the requests
                # and urllib3 exceptions hold the prepared request and their frames list the
                # headers, Authorization included (DEBUG pages, error trackers).
                self._log(method, target, None, started, attempt, failure.kind)
                if failure.retryable and safe and retries < self.max_retries:
                    retries += 1
                    self.sleep(self.backoff(retries))
                    continue
                raise failure
            status = response.status_code
            self._log(method, target, status, started, attempt, "")
            if 200 <= status < 300:
                try:
                    body = _decode(response) if expect_json else None
                except ValueError as exc:
                    unreadable = TransportError(
                        f"Omnisend answered {status} to {method} {target} with an unreadable "
                        "body; the outcome is unknown.",
                        kind="bad_body",
                        method=method,
                        url=target,
                    )
                    if safe and retries < self.max_retries:
                        retries += 1
                        self.sleep(self.backoff(retries))
                        continue
                    raise unreadable from exc  # a JSON decoding error: no request in it
                return ApiResponse(status, body, response.headers)
            error = _api_error(response, method, target)
            if isinstance(error, AuthenticationError) and self.on_unauthorized and not reauthorized:
                reauthorized = True
                if self._reauthorize(error):
                    continue
                raise error
            if status == 429:
                wait = error.retry_after or 0.0
                if self.rate_limiter is not None:
                    self.rate_limiter.cooldown(self.rate_limit_key, wait)
                if wait > self.max_wait or retries >= self.max_retries:
                    raise error
                retries += 1
                if self.rate_limiter is None:
                    self.sleep(wait)
                # else: the next acquire() waits out the brand's cooldown.
                continue
            if status in RETRY_STATUSES and safe and retries < self.max_retries:
                retries += 1
                self.sleep(self.backoff(retries))
                continue
            raise error

    def _reauthorize(self, error: AuthenticationError) -> bool:
        """Ask ``on_unauthorized`` for a new credential; True when the client now uses one.

        A method of its own so the new secret never is a local of the request loop, whose
        frame a DEBUG error page lists if the next attempt fails too.
        """
        assert self.on_unauthorized is not None
        secret = self.on_unauthorized(self, error)
        if not secret:
            return False
        self.auth = self.auth.with_secret(secret)  # type: ignore[assignment]
        return True

    def _log(
        self, method: str, target: str, status: int | None, started: float, attempt: int, kind: str
    ) -> None:
        elapsed = (self.clock() - started) * 1000
        ok = status is not None and status < 400
        logger.log(
            logging.DEBUG if ok else logging.INFO,
            "omnisend %s %s -> %s in %.0f ms (attempt %d, brand %s)",
            method,
            target,
            status if status is not None else kind,
            elapsed,
            attempt,
            self.rate_limit_key,
        )

    # Small helpers the resources use.
    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).data


def _path_prefix(api_url: str) -> str:
    """``/api`` from ``https://api.omnisend.com/api``: the path part of the base URL."""
    rest = api_url.split("://", 1)[-1]
    return "/" + rest.partition("/")[2] if "/" in rest else ""


def _decode(response: requests.Response) -> Any:
    """The JSON body, None if empty; ValueError if it is not JSON (whatever the media type)."""
    content = response.content
    if not content.strip():
        return None
    return json.loads(content)


def _api_error(response: requests.Response, method: str, target: str) -> OmnisendAPIError:
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
            retry_after = bounded_wait(_settings().retry_after_default) or 0.0
    problem["retry_after"] = retry_after
    cls = exception_for_status(response.status_code)
    return cls(status=response.status_code, method=method, url=target, response=response, **problem)


def _transport_error(exc: requests.RequestException, method: str, target: str) -> TransportError:
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
    :mod:`~django_omnisend.reachability` can say "connection refused" without the objects.
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


class _Resource:
    def __init__(self, client: OmnisendClient) -> None:
        self.client = client


class Contacts(_Resource):
    """``/contacts``: upsert, read, page through, update and tag contacts."""

    def upsert(self, body: Mapping[str, Any]) -> ContactResult:
        """``POST /contacts``: create the contact or update the one owning the e-mail.

        Returns a :class:`ContactResult` (the ``ContactResponse`` dict) whose ``.created`` is
        True on 201 (created) and False on 200 (updated). Retried when safe: setting absolute
        values keyed by the e-mail twice is harmless.
        """
        response = self.client.request("POST", "/contacts", json_body=dict(body), retry=True)
        return ContactResult(response.data or {}, status=response.status)

    def get(self, contact_id: str) -> dict[str, Any]:
        """``GET /contacts/{id}``; raises :class:`~django_omnisend.exceptions.NotFound`."""
        return self.client._get(f"/contacts/{quote(str(contact_id), safe='')}")

    def get_by_email(self, email: str) -> dict[str, Any] | None:
        """``GET /contacts?email=``: the contact with exactly this e-mail, or None.

        The match is exact and case-sensitive on Omnisend's side; normalise before calling.
        """
        page = self.client._get("/contacts", {"email": email})
        contacts = (page or {}).get("contacts") or []
        return contacts[0] if contacts else None

    def list(self, **filters: Any) -> dict[str, Any]:
        """``GET /contacts`` one page: ``{"contacts": [...], "paging": {...}}``."""
        return self.client._get("/contacts", filters)

    def iterate(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every contact matching ``filters``, fetched lazily page by page.

        ``filters`` are the API's query parameters (``limit``, ``sort``, ``direction``,
        ``email``, ``phone``, ``status``, ``segmentID``, ``tag``, ``updatedAtFrom``; datetimes
        are sent as RFC 3339). Stops when ``hasMore`` is false or ``after`` is null; raises
        :class:`~django_omnisend.exceptions.PagingError` if a cursor comes back twice.
        """
        params = {k: v for k, v in filters.items() if v is not None}
        seen: set[str] = set()
        while True:
            page = self.client._get("/contacts", params) or {}
            yield from page.get("contacts") or []
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("hasMore") or not after:
                return
            if after in seen:
                raise PagingError("Omnisend returned the same contacts cursor twice.")
            seen.add(after)
            # Filters are encoded in the cursor; repeating identical ones is tolerated.
            params = {**params, "after": after}

    def update(self, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /contacts/{id}``: change only the supplied fields (404, 409 possible)."""
        path = f"/contacts/{quote(str(contact_id), safe='')}"
        return self.client.request("PATCH", path, json_body=dict(body)).data

    def update_by_email(self, email: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /contacts?email=``: change only the supplied fields of that contact."""
        return self.client.request(
            "PATCH", "/contacts", params={"email": email}, json_body=dict(body)
        ).data

    def add_tags(
        self,
        tags: Iterable[str],
        *,
        emails: Iterable[str] | None = None,
        contact_ids: Iterable[str] | None = None,
        phones: Iterable[str] | None = None,
        segment_id: str | None = None,
    ) -> None:
        """``POST /contacts/tags`` (202, applied asynchronously; 60 requests/min)."""
        body = _tags_body(tags, emails, contact_ids, phones, segment_id)
        self.client.request("POST", "/contacts/tags", json_body=body, retry=True, expect_json=False)

    def remove_tags(
        self,
        tags: Iterable[str],
        *,
        emails: Iterable[str] | None = None,
        contact_ids: Iterable[str] | None = None,
        phones: Iterable[str] | None = None,
        segment_id: str | None = None,
    ) -> None:
        """``DELETE /contacts/tags`` with a JSON body (202, asynchronous)."""
        body = _tags_body(tags, emails, contact_ids, phones, segment_id)
        self.client.request(
            "DELETE", "/contacts/tags", json_body=body, retry=True, expect_json=False
        )


def _tags_body(
    tags: Iterable[str],
    emails: Iterable[str] | None,
    contact_ids: Iterable[str] | None,
    phones: Iterable[str] | None,
    segment_id: str | None,
) -> dict[str, Any]:
    if isinstance(tags, str):
        tags = [tags]
    body: dict[str, Any] = {"tags": list(tags)}
    for name, values in (("emails", emails), ("contactIDs", contact_ids), ("phones", phones)):
        if values is not None:
            body[name] = [values] if isinstance(values, str) else list(values)
    if segment_id:
        body["segmentID"] = segment_id
    if not body["tags"]:
        raise ValueError("add_tags/remove_tags need at least one tag")
    if len(body) == 1:
        raise ValueError("give emails=, contact_ids=, phones= or segment_id=")
    return body


class Events(_Resource):
    """``/events``: customer events."""

    def send(self, body: Mapping[str, Any], *, retry: bool = False) -> str:
        """``POST /events`` (202). Returns the ``eventID`` sent.

        ``eventID`` (a UUID4) is generated once if absent, so every retry of this call sends the
        same one; ``origin`` defaults to ``OMNISEND["EVENT_ORIGIN"]``. Not retried after a 5xx
        or transport failure unless ``retry=True``: Omnisend deduplicates only historical
        events, so a resent live event may be delivered twice.
        """
        payload = dict(body)
        payload.setdefault("eventID", str(uuid.uuid4()))
        payload.setdefault("origin", self.client.event_origin)
        self.client.request("POST", "/events", json_body=payload, retry=retry, expect_json=False)
        return str(payload["eventID"])


class Batches(_Resource):
    """``/batches``: asynchronous bulk writes of 1-100 items."""

    def create(
        self,
        endpoint: str,
        items: Iterable[Mapping[str, Any]],
        method: str = "POST",
        origin: str | None = None,
        *,
        retry: bool = False,
    ) -> dict[str, Any]:
        """``POST /batches``: ``{"batchID", "totalCount"}``. Never resent unless ``retry=True``.

        Raises ValueError for fewer than 1 or more than 100 items (Omnisend's limit).
        """
        items = [dict(item) for item in items]
        if not 1 <= len(items) <= 100:
            raise ValueError(f"a batch holds 1-100 items, not {len(items)}")
        body: dict[str, Any] = {"method": method, "endpoint": endpoint, "items": items}
        if origin:
            body["origin"] = origin
        return self.client.request("POST", "/batches", json_body=body, retry=retry).data

    def get(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}``: the ``Batch`` with its progress counters."""
        return self.client._get(f"/batches/{quote(str(batch_id), safe='')}")

    def items(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}/items``: the ``Batch`` with per-item ``responses``/``errors``."""
        return self.client._get(f"/batches/{quote(str(batch_id), safe='')}/items")

    def list(self, endpoint: str, **filters: Any) -> dict[str, Any]:
        """``GET /batches?endpoint=`` one page: ``{"batches": [...], "paging": {...}}``."""
        return self.client._get("/batches", {"endpoint": endpoint, **filters})

    def iterate(self, endpoint: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every batch of ``endpoint`` (offset paging), fetched lazily page by page.

        ``filters``: ``limit``, ``status``, ``dateFrom``, ``dateTo``, ``offset``.
        """
        params = {k: v for k, v in filters.items() if v is not None}
        offset = int(params.pop("offset", 0))
        while True:
            page = self.client._get("/batches", {"endpoint": endpoint, **params, "offset": offset})
            batches = (page or {}).get("batches") or []
            yield from batches
            paging = (page or {}).get("paging") or {}
            limit = int(paging.get("limit") or params.get("limit") or 100)
            if not batches or not paging.get("next") or len(batches) < limit:
                return
            offset += len(batches)


def _iterate_offset(client: OmnisendClient, path: str, key: str, params: dict[str, Any]):
    """Every item under ``key`` of an offset-paged list, page by page (``next`` ends it)."""
    offset = int(params.pop("offset", 0))
    while True:
        page = client._get(path, {**params, "offset": offset}) or {}
        items = page.get(key) or []
        yield from items
        if not items or not (page.get("paging") or {}).get("next"):
            return
        offset += len(items)


class Products(_Resource):
    """``/products``: the brand's product catalog (ids are the shop's own)."""

    def _path(self, product_id: str) -> str:
        return f"/products/{quote(str(product_id), safe='')}"

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /products`` (201 ``{id}``); :class:`~.exceptions.Conflict` when it exists.

        Not resent after a 5xx or timeout unless the caller retries: a create that landed
        answers 409 the next time, which the caller turns into a replace.
        """
        return self.client.request("POST", "/products", json_body=dict(body)).data or {}

    def replace(self, product_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /products/{id}``: replace the whole product (404 when it does not exist)."""
        path = self._path(product_id)
        return self.client.request("PUT", path, json_body=dict(body)).data or {}

    def get(self, product_id: str) -> dict[str, Any]:
        """``GET /products/{id}``; raises :class:`~.exceptions.NotFound`."""
        return self.client._get(self._path(product_id))

    def delete(self, product_id: str) -> None:
        """``DELETE /products/{id}`` (204; :class:`~.exceptions.NotFound` when unknown)."""
        self.client.request("DELETE", self._path(product_id), expect_json=False)

    def list(self, **params: Any) -> dict[str, Any]:
        """``GET /products`` one page: ``{"products": [...], "paging": {...}}``."""
        return self.client._get("/products", params)

    def iterate(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every product (``limit`` up to 250, ``sort``), fetched lazily page by page."""
        return _iterate_offset(self.client, "/products", "products", dict(params))


class Categories(_Resource):
    """``/product-categories``: the brand's product categories."""

    def _path(self, category_id: str) -> str:
        return f"/product-categories/{quote(str(category_id), safe='')}"

    def create(self, category_id: str, title: str) -> dict[str, Any]:
        """``POST /product-categories`` (201); :class:`~.exceptions.Conflict` when taken."""
        body = {"categoryID": category_id, "title": title}
        return self.client.request("POST", "/product-categories", json_body=body).data or {}

    def update(self, category_id: str, title: str) -> dict[str, Any]:
        """``PATCH /product-categories/{id}``: a new title (there is no PUT)."""
        path = self._path(category_id)
        return self.client.request("PATCH", path, json_body={"title": title}).data or {}

    def get(self, category_id: str) -> dict[str, Any]:
        """``GET /product-categories/{id}``; raises :class:`~.exceptions.NotFound`."""
        return self.client._get(self._path(category_id))

    def delete(self, category_id: str) -> None:
        """``DELETE /product-categories/{id}`` (204; NotFound when unknown)."""
        self.client.request("DELETE", self._path(category_id), expect_json=False)

    def list(self, **params: Any) -> dict[str, Any]:
        """``GET /product-categories`` one page: ``{"categories": [...], "paging": {...}}``."""
        return self.client._get("/product-categories", params)

    def iterate(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every category, fetched lazily page by page."""
        return _iterate_offset(self.client, "/product-categories", "categories", dict(params))


class Brands(_Resource):
    """``/brands/current``."""

    def current(self) -> dict[str, Any]:
        """``GET /brands/current``: ``brandID``, ``name``, ``website``, ``connected``, ..."""
        return self.client._get("/brands/current")

    def connect(
        self, platform: str, version: str, website: str, currency: str | None = None
    ) -> None:
        """``POST /brands/current`` (OAuth only): mark this site as the brand's connected store."""
        body = {"platform": platform, "version": version, "website": website}
        if currency:
            body["currency"] = currency
        self.client.request(
            "POST", "/brands/current", json_body=body, retry=True, expect_json=False
        )


class EventMetadata(_Resource):
    """``/event-metadata``: declarations of custom events (needs ``events.write`` to write)."""

    def declare(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /event-metadata`` (201): declare a new event; returns its ``EventItem``.

        ``body`` is a ``WriteEventRequest`` (``name``, ``origin``, ``displayName``, at least one
        property). Raises :class:`~django_omnisend.exceptions.Conflict` when the name and origin
        are declared already (merge with :meth:`merge`) or name a recommended event. Not
        resent after a 5xx or timeout (a POST); a caller that resends it gets a 409 if the
        first one was stored.
        """
        response = self.client.request("POST", "/event-metadata", json_body=dict(body))
        return (response.data or {}).get("event") or {}

    def merge(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /event-metadata`` (200): merge into a declared event; returns its ``EventItem``.

        Only what ``body`` carries changes; nothing is removed. A declared property's type
        cannot change (:class:`~django_omnisend.exceptions.Conflict`); an undeclared event is
        :class:`~django_omnisend.exceptions.NotFound`.
        """
        response = self.client.request("PUT", "/event-metadata", json_body=dict(body))
        return (response.data or {}).get("event") or {}

    def query(
        self,
        category: str = "segments",
        *,
        events: Iterable[str] | None = None,
        origins: Iterable[str] | None = None,
        include_properties: bool = False,
        exclude_custom_events: bool = False,
    ) -> list[dict[str, Any]]:
        """``POST /event-metadata/query``: the ``EventItem`` list usable in ``category``.

        ``category`` is ``automations``, ``events`` or ``segments``; ``events``/``origins``
        filter by exact name. A read, so it is retried like a GET.
        """
        body: dict[str, Any] = {"category": category}
        if events is not None:
            body["events"] = list(events)
        if origins is not None:
            body["origins"] = list(origins)
        if include_properties:
            body["includeProperties"] = True
        if exclude_custom_events:
            body["excludeCustomEvents"] = True
        response = self.client.request("POST", "/event-metadata/query", json_body=body, retry=True)
        return list((response.data or {}).get("events") or [])

"""``OmnisendClient``: one pooled session per brand, the request loop and its retry policy.

The policy is in :class:`OmnisendClient`'s docstring.
"""

from __future__ import annotations

import json
import logging
import random as _random
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests

from .. import __version__, redaction
from ..exceptions import (
    AuthenticationError,
    TransportError,
)
from .auth import ApiKeyAuth, BearerAuth, SecretAuth
from .contacts import Contacts
from .resources import Batches, Brands, Categories, EventMetadata, Events, Products
from .wire import (
    INTEGRATION_NAME,
    RETRY_STATUSES,
    TAGS_PATH,
    USER_AGENT,
    ApiResponse,
    api_error,
    decode,
    encode_query,
    path_prefix,
    safe_target,
    settings,
    transport_error,
)

logger = logging.getLogger("django_omnisend.client")
redaction.install()


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
        if not isinstance(auth, SecretAuth):
            raise TypeError("auth must be ApiKeyAuth(key) or BearerAuth(token)")
        self.auth = auth
        self.api_url = str(api_url or settings().api_url).rstrip("/")
        self.api_version = str(api_version or settings().api_version)
        self.timeout = timeout if timeout is not None else settings().request_timeout
        self.max_retries = int(max_retries if max_retries is not None else settings().max_retries)
        self.event_origin = event_origin or settings().event_origin
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
        """Send one API call (with retries per the class's retry policy) and decode the answer.

        ``path`` is relative to ``api_url`` (``"/contacts"``). ``retry`` says whether the
        request is safe to resend after a 5xx/transport failure; default: True for GET,
        PATCH, PUT and DELETE, False for POST. Returns an :class:`ApiResponse`; raises an
        :class:`~django_omnisend.exceptions.OmnisendAPIError` subclass,
        :class:`~django_omnisend.exceptions.TransportError` or
        :class:`~django_omnisend.exceptions.BudgetExhausted`.
        """
        method = method.upper()
        safe = retry if retry is not None else method != "POST"
        query = encode_query(params)
        url = self.api_url + path + ("?" + query if query else "")
        target = safe_target(path_prefix(self.api_url) + path, params)
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
                failure = transport_error(exc, method, target)
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
                    body = decode(response) if expect_json else None
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
            error = api_error(response, method, target)
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

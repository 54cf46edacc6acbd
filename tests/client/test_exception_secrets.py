"""Exceptions carry no credential: not when pickled, not on Django's technical 500 page.

Issue 15 item 5: an ``OmnisendAPIError`` subclasses ``requests.HTTPError``, whose ``request``
and ``response`` held the prepared request with its ``Authorization`` header, so
``pickle.dumps(exc)`` (a task queue, a cache) and ``exc.request.headers`` held the token, and
transport errors were chained to the ``requests``/``urllib3`` exception whose frames list the
headers on the DEBUG page. Every error here is raised for real by the emulator (or a closed
port), then pickled and rendered.
"""

from __future__ import annotations

import pickle
import socket

import pytest
from django.test import RequestFactory, override_settings
from django.views.debug import ExceptionReporter

from django_omnisend.api import ApiKeyAuth, BearerAuth, OmnisendClient, oauth
from django_omnisend.exceptions import (
    AuthenticationError,
    OAuthError,
    OmnisendAPIError,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
)


def closed_port_url() -> str:
    """A loopback URL nobody listens on: connecting to it is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


def technical_500(exc: BaseException) -> str:
    """Django's DEBUG=True error page for ``exc``, from the first django_omnisend frame on.

    The test's own frames (lambdas closing over a token) are dropped: what is under test is
    what the library's frames, the exception and its chain show.
    """
    tb = exc.__traceback__
    while tb is not None and "/django_omnisend/" not in tb.tb_frame.f_code.co_filename:
        tb = tb.tb_next
    assert tb is not None, "raised outside django_omnisend?"
    request = RequestFactory().get("/omnisend/")
    with override_settings(DEBUG=True):
        return ExceptionReporter(request, type(exc), exc, tb).get_traceback_html()


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    page = technical_500(exc)
    pickled = pickle.dumps(exc)
    text = f"{exc} {exc!r}"
    for secret in secrets:
        assert secret not in page
        assert secret.encode() not in pickled
        assert secret not in text
    # requests-compatible attributes stay, without the prepared request and its headers.
    if isinstance(exc, OmnisendAPIError):
        assert exc.request is None
        assert exc.response is None or exc.response.request is None
    copy = pickle.loads(pickled)
    assert type(copy) is type(exc) and str(copy) == str(exc)


@pytest.fixture
def api_key(emulator) -> str:
    return emulator.issue_api_key()


@pytest.fixture
def make_client(emulator, clock, api_key):
    """Clients on the emulator that never really sleep; all closed after the test."""
    clients: list[OmnisendClient] = []

    def make(auth=None, **kwargs) -> OmnisendClient:
        kwargs.setdefault("api_url", emulator.api_url)
        kwargs.setdefault("sleep", clock.sleep)
        kwargs.setdefault("timeout", 5)
        kwargs.setdefault("max_retries", 2)
        client = OmnisendClient(auth or ApiKeyAuth(api_key), **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def token(emulator) -> str:
    return emulator.issue_token()["access_token"]


def raised(call) -> BaseException:
    with pytest.raises(Exception) as excinfo:
        call()
    return excinfo.value


def test_401_with_a_bearer_token_leaves_no_token_behind(make_client, emulator, token):
    emulator.revoke_token(token)
    client = make_client(BearerAuth(token))
    exc = raised(client.brands.current)
    assert isinstance(exc, AuthenticationError) and exc.status == 401
    assert_secret_free(exc, token)
    # The technical page still shows what happened.
    assert "AuthenticationError" in technical_500(exc)


def test_401_after_a_refresh_that_did_not_help_leaves_no_token_behind(make_client, emulator):
    """The hook's new token was rejected too: the request loop's frame held it as a local."""
    stale, fresh = (emulator.issue_token()["access_token"] for _ in range(2))
    emulator.revoke_token(stale)
    emulator.revoke_token(fresh)
    client = make_client(BearerAuth(stale), on_unauthorized=lambda c, e: fresh)
    exc = raised(client.brands.current)
    assert isinstance(exc, AuthenticationError)
    assert_secret_free(exc, stale, fresh)


def test_401_with_an_api_key_leaves_no_key_behind(make_client):
    key = "65f0a1b2c3d4e5f600000001-not-a-real-key"
    exc = raised(make_client(ApiKeyAuth(key)).brands.current)
    assert isinstance(exc, AuthenticationError)
    assert_secret_free(exc, key)


def test_403_leaves_no_token_behind(make_client, emulator):
    token = emulator.issue_token(scopes=["contacts.read"])["access_token"]
    client = make_client(BearerAuth(token))
    exc = raised(lambda: client.events.send({"eventName": "x", "contact": {"email": "e@x.io"}}))
    assert isinstance(exc, PermissionDenied)
    assert_secret_free(exc, token)


def test_429_leaves_no_token_behind(make_client, emulator, token):
    emulator.add_fault("*", "429", retry_after=30)
    client = make_client(BearerAuth(token), max_wait=5)
    exc = raised(client.brands.current)
    assert isinstance(exc, RateLimited) and exc.retry_after == 30
    assert exc.response is not None and exc.response.status_code == 429
    assert_secret_free(exc, token)


def test_500_leaves_no_api_key_behind(make_client, emulator, api_key):
    emulator.add_fault("*", "500")
    exc = raised(make_client(max_retries=0).brands.current)
    assert isinstance(exc, ServerError)
    assert_secret_free(exc, api_key)


def test_timeout_leaves_no_token_behind(make_client, emulator, token):
    emulator.add_fault("GET /api/brands/current", "apply_then_hang", times=1, seconds=1.5)
    client = make_client(BearerAuth(token), timeout=0.3, max_retries=0)
    exc = raised(client.brands.current)
    assert isinstance(exc, TransportError) and exc.kind == "timeout"
    # Nothing chains the requests/urllib3 exception (its frames list the headers).
    assert exc.__cause__ is None and exc.__context__ is None
    assert_secret_free(exc, token)


def test_connection_refused_leaves_no_api_key_behind(make_client, api_key):
    client = make_client(api_url=closed_port_url(), max_retries=0)
    exc = raised(client.brands.current)
    assert isinstance(exc, TransportError) and exc.kind == "connection"
    assert exc.__cause__ is None and exc.__context__ is None
    assert_secret_free(exc, api_key)


def test_token_endpoint_errors_leave_no_secret_behind(emulator_settings, emulator):
    refresh_token = emulator.issue_token()["refresh_token"]
    secret = emulator_settings["CLIENT_SECRET"]
    emulator.add_fault("POST /oauth2/token", "500")
    exc = raised(lambda: oauth.refresh(refresh_token))
    assert isinstance(exc, OAuthError) and exc.code == "token_unavailable"
    assert_secret_free(exc, refresh_token, secret)
    emulator.clear_faults()
    refused = closed_port_url().replace("/api", "/oauth2/token")
    exc = raised(lambda: oauth.refresh(refresh_token, token_url=refused))
    assert isinstance(exc, OAuthError) and exc.code == "token_transport"
    assert_secret_free(exc, refresh_token, secret)


def test_client_stays_usable_after_an_error(make_client, emulator, token):
    """Dropping the request from the error does not disturb the client's session."""
    emulator.add_fault("*", "500", times=1)
    client = make_client(BearerAuth(token), max_retries=0)
    assert isinstance(raised(client.brands.current), ServerError)
    assert client.brands.current()["brandID"] == emulator.default_brand_id

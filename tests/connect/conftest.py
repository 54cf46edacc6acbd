"""Fixtures for the connect-flow tests: users, OAuth settings on the emulator, a fake AS stub.

The emulator (tests/conftest.py) is the authorization server and API for almost everything.
For token-endpoint answers a well-behaved server never gives (non-JSON, ``{}``, a redirect, a
hang, a narrower scope...) :class:`StubServer` is a tiny fake authorization server on
127.0.0.1; its tokens are minted by the emulator so the brand probe still hits the emulator.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.contrib.auth.models import Permission
from django.test import Client, override_settings

REDIRECT_URI = "http://testserver/omnisend/callback/"
CONNECT_URL = "/omnisend/connect/"
CALLBACK_URL = "/omnisend/callback/"
CHANGELIST_URL = "/admin/django_omnisend/connection/"


# -- users ------------------------------------------------------------------------------------


def make_manager(django_user_model: Any, username: str = "manager") -> Any:
    """A staff user (not superuser) with the manage and view permissions."""
    user = django_user_model.objects.create_user(username, f"{username}@example.com", "pw")
    user.is_staff = True
    user.save()
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_omnisend",
            codename__in=[
                "manage_connection",
                "view_connection",
                "change_connection",
                "add_connection",
            ],
        )
    )
    return django_user_model.objects.get(pk=user.pk)  # fresh permission cache


@pytest.fixture
def manager(db: Any, django_user_model: Any) -> Any:
    return make_manager(django_user_model)


@pytest.fixture
def manager_client(manager: Any) -> Client:
    client = Client()
    client.force_login(manager)
    return client


# -- settings -------------------------------------------------------------------------------


@pytest.fixture
def oauth_settings(emulator: Any, emulator_settings: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Emulator settings with the exact test-server callback (registered for the demo client)."""
    assert REDIRECT_URI in emulator.demo_redirect_uris
    values = {**emulator_settings, "REDIRECT_URI": REDIRECT_URI}
    with override_settings(OMNISEND=values):
        yield values


# -- driving the flow -----------------------------------------------------------------------


@dataclass
class Started:
    """A started flow: the authorize URL and its query, and the session's state record."""

    response: Any
    url: str
    query: dict[str, str]
    record: dict[str, Any]

    @property
    def state(self) -> str:
        return self.query["state"]


def start(client: Client, next_url: str | None = None, **extra: Any) -> Started:
    """POST connect (as the logged-in user) and read the authorize redirect."""
    data = {"next": next_url} if next_url is not None else {}
    response = client.post(CONNECT_URL, data, **extra)
    assert response.status_code == 302, response.content[:500]
    url = response["Location"]
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    record = client.session["omnisend_oauth"][query["state"]]
    return Started(response, url, query, record)


def authorize(emulator: Any, url: str) -> dict[str, str]:
    """Let the emulator approve at once and return the callback's query (code, state...)."""
    emulator.configure(auto_approve=True)
    response = requests.get(url, allow_redirects=False, timeout=10)
    assert response.status_code in (302, 303), response.text[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT_URI), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def finish(client: Client, query: dict[str, str]) -> Any:
    return client.get(CALLBACK_URL, query)


def connect(client: Client, emulator: Any, next_url: str | None = None) -> Any:
    """The whole flow; returns the callback response."""
    started = start(client, next_url)
    return finish(client, authorize(emulator, started.url))


def token_requests(emulator: Any) -> list[Any]:
    return emulator.ledger_for("/oauth2/token")


def form(entry: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(entry.body.decode()).items()}


# -- fake authorization server ---------------------------------------------------------------


@dataclass
class StubResponse:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    delay: float = 0.0


@dataclass
class StubRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


class StubServer:
    """A threaded HTTP server on 127.0.0.1 answering each path with a configured response."""

    def __init__(self) -> None:
        self.routes: dict[str, StubResponse] = {}
        self.requests: list[StubRequest] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                stub.requests.append(
                    StubRequest(
                        self.command,
                        parts.path,
                        parse_qs(parts.query),
                        dict(self.headers.items()),
                        body,
                    )
                )
                answer = stub.routes.get(parts.path, StubResponse(404, b"{}"))
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:  # the client gave up (timeout tests)
                    pass

            do_GET = do_POST = _handle

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> StubServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)

    def respond(self, path: str, status: int = 200, body: Any = b"", **kwargs: Any) -> None:
        if not isinstance(body, bytes):
            body = json.dumps(body).encode()
        self.routes[path] = StubResponse(status, body, **kwargs)

    def requests_to(self, path: str) -> list[StubRequest]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        self.routes.clear()
        self.requests.clear()


@pytest.fixture(scope="session")
def _stub_session() -> Iterator[StubServer]:
    with StubServer() as server:
        yield server


@pytest.fixture
def stub(_stub_session: StubServer) -> StubServer:
    """The session's stub server with no routes and no recorded requests."""
    _stub_session.reset()
    return _stub_session


@pytest.fixture
def stub_token_settings(
    oauth_settings: dict[str, Any], stub: StubServer
) -> Iterator[dict[str, Any]]:
    """OAuth settings whose token endpoint is the stub; authorize and API stay the emulator."""
    values = {**oauth_settings, "TOKEN_URL": stub.url + "/token"}
    with override_settings(OMNISEND=values):
        yield values

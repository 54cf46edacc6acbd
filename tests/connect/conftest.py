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


#: The connection a flow-parametrized test connects: the site's own, or a shop's (an owner).
FLOW_KINDS = ("site", "owner")
#: Run a test once for the site's connection and once for a shop's (tenant's) connection.
each_flow = pytest.mark.parametrize("flow_kind", FLOW_KINDS)
#: Lets shop members manage their shop's connection (the site's keeps the default rule).
SHOP_ADAPTER = "tests.connect.owner_support.ShopConnectionAdapter"


@pytest.fixture
def flow_kind() -> str:
    """The site's flow unless a test is parametrized with :data:`each_flow`."""
    return "site"


@pytest.fixture
def oauth_settings(
    emulator: Any, emulator_settings: dict[str, Any], flow_kind: str
) -> Iterator[dict[str, Any]]:
    """Emulator settings with the exact test-server callback (registered for the demo client).

    For the owner flow, the shop adapter too: every settings fixture built on this one keeps it.
    """
    assert REDIRECT_URI in emulator.demo_redirect_uris
    values = {**emulator_settings, "REDIRECT_URI": REDIRECT_URI}
    if flow_kind == "owner":
        values["CONNECTION_ADAPTER"] = SHOP_ADAPTER
    with override_settings(OMNISEND=values):
        yield values


# -- driving the flow -----------------------------------------------------------------------


def owner_url(action: str, owner: Any) -> str:
    """The connect/reconnect/disconnect URL of ``owner`` (signed, as the template tag builds)."""
    from django_omnisend import owners

    return f"/omnisend/{action}/{owners.sign_owner(owner)}/"


@pytest.fixture
def owner(flow_kind: str, db: Any) -> Any:
    """The owner of a flow-parametrized test's rows: None (the site), or a shop."""
    from django.contrib.auth.models import Group

    return None if flow_kind == "site" else Group.objects.create(name="Shop A")


@dataclass
class Flow:
    """One connection's flow: the site's (``owner`` None) or a shop's (an ``auth.Group``).

    ``user`` may manage that connection and ``client`` is logged in as them; ``outsider``
    manages another connection (the site: a second manager; a shop: shop B's staff) and
    ``default_next`` is where a flow ends without a valid ``next``.
    """

    kind: str
    owner: Any
    user: Any
    outsider: Any
    client: Client
    connect_url: str
    disconnect_url: str
    default_next: str
    login_prefix: str

    def rows(self) -> Any:
        """This owner's connection rows."""
        from django_omnisend.models import Connection

        return Connection.objects.of_owner(self.owner)

    def client_for(self, user: Any, **kwargs: Any) -> Client:
        client = Client(**kwargs)
        client.force_login(user)
        return client

    def start(self, next_url: str | None = None, client: Client | None = None, **extra: Any):
        return start(client or self.client, next_url, url=self.connect_url, **extra)

    def finish(self, query: dict[str, str], client: Client | None = None) -> Any:
        return finish(client or self.client, query)

    def connect(self, emulator: Any, next_url: str | None = None) -> Any:
        return self.finish(authorize(emulator, self.start(next_url).url))


@pytest.fixture
def flow(
    flow_kind: str, oauth_settings: dict[str, Any], django_user_model: Any, emulator: Any
) -> Flow:
    """The connection a test drives, by :func:`flow_kind` ("site" unless parametrized)."""
    if flow_kind == "site":
        user = make_manager(django_user_model)
        return Flow(
            kind="site",
            owner=None,
            user=user,
            outsider=make_manager(django_user_model, "other"),
            client=_logged_in(user),
            connect_url=CONNECT_URL,
            disconnect_url="/omnisend/disconnect/",
            default_next=CHANGELIST_URL,
            login_prefix="/admin/login/",
        )
    from django.conf import settings
    from django.contrib.auth.models import Group

    shop_a, shop_b = Group.objects.create(name="Shop A"), Group.objects.create(name="Shop B")
    ann = django_user_model.objects.create_user("ann", "ann@example.com", "pw")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw")
    ann.groups.add(shop_a)
    bob.groups.add(shop_b)
    return Flow(
        kind="owner",
        owner=shop_a,
        user=ann,
        outsider=bob,
        client=_logged_in(ann),
        connect_url=owner_url("connect", shop_a),
        disconnect_url=owner_url("disconnect", shop_a),
        default_next="/",
        login_prefix=str(settings.LOGIN_URL),
    )


def _logged_in(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


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


def start(
    client: Client, next_url: str | None = None, url: str = CONNECT_URL, **extra: Any
) -> Started:
    """POST connect (as the logged-in user) and read the authorize redirect."""
    data = {"next": next_url} if next_url is not None else {}
    response = client.post(url, data, **extra)
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

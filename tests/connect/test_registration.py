"""Zero-setup connection: with no ``CLIENT_ID`` the first Connect registers the site with
Omnisend by dynamic client registration (RFC 7591), over real HTTP to the emulator (issue 18).

The redirect URI is https (the emulator, like RFC 7591 servers, refuses plain http on a host
that is not loopback); the test client never dereferences it, the callback is called directly.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.db import close_old_connections, connection
from django.test import Client, override_settings

from django_omnisend import connect as omnisend_connections
from django_omnisend.exceptions import AuthenticationError, NeedsReconnect
from django_omnisend.models import ClientRegistration, Connection

from .conftest import CALLBACK_URL, CONNECT_URL, form, make_manager, token_requests

REDIRECT = "https://shop.test/omnisend/callback/"
SCOPES = "contacts.read contacts.write events.write brands.read"


@pytest.fixture
def dcr_settings(emulator: Any, emulator_settings: dict[str, Any]) -> Any:
    """Emulator endpoints, no client credentials and no API key: registration will happen."""
    values = {
        **emulator_settings,
        "CLIENT_ID": "",
        "CLIENT_SECRET": "",
        "API_KEY": "",
        "REDIRECT_URI": REDIRECT,
        "CLIENT_NAME": "Test Shop",
        "CLIENT_URI": "https://shop.test/",
    }
    with override_settings(OMNISEND=values):
        yield values


def register_requests(emulator: Any) -> list[Any]:
    return emulator.ledger_for("/oauth2/register")


def start(client: Client) -> dict[str, str]:
    response = client.post(CONNECT_URL)
    assert response.status_code == 302, response.content[:800]
    return {k: v[0] for k, v in parse_qs(urlsplit(response["Location"]).query).items()}


def approve(emulator: Any, query: dict[str, str]) -> dict[str, str]:
    """Send the authorize request to the emulator (auto approve) and return the callback query."""
    emulator.configure(auto_approve=True)
    response = requests.get(emulator.authorize_url, params=query, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:500]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT), location
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def raw_secret_column(pk: int) -> str:
    table = ClientRegistration._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT client_secret FROM {table} WHERE id = %s", [pk])
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_first_connect_registers_the_site_and_connects(
    manager_client, dcr_settings, emulator, caplog
):
    caplog.set_level(logging.DEBUG)
    query = start(manager_client)

    [registration_request] = register_requests(emulator)
    assert registration_request.method == "POST" and registration_request.status == 201
    sent = json.loads(registration_request.body)
    assert sent == {
        "client_name": "Test Shop",
        "client_uri": "https://shop.test/",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": SCOPES,
        "token_endpoint_auth_method": "client_secret_post",
    }
    issued = registration_request.response_json
    [row] = ClientRegistration.objects.all()
    assert row.redirect_uri == REDIRECT
    assert row.client_id == issued["client_id"] == query["client_id"]
    assert row.client_secret == issued["client_secret"]
    # Encrypted at rest: the column holds neither the secret nor anything containing it.
    raw = raw_secret_column(row.pk)
    assert raw and issued["client_secret"] not in raw
    assert row.registration_endpoint == emulator.base_url + "/oauth2/register"
    assert "client_secret" not in row.metadata
    assert row.metadata["client_id_issued_at"] == issued["client_id_issued_at"]

    # The authorize request uses the registered client and the exact redirect URI ...
    assert query["redirect_uri"] == REDIRECT
    callback = manager_client.get(CALLBACK_URL, approve(emulator, query))
    assert callback.status_code == 302, callback.content[:800]
    # ... and so does the code exchange.
    [exchange] = token_requests(emulator)
    assert exchange.status == 200
    assert form(exchange)["client_id"] == issued["client_id"]
    assert form(exchange)["client_secret"] == issued["client_secret"]
    [connected] = Connection.objects.all()
    assert connected.status == Connection.Status.ACTIVE
    assert connected.brand_id == emulator.default_brand_id

    # Refresh and revoke later authenticate as the registered client too.
    omnisend_connections.refresh_connection(connected, force=True)
    refreshed = token_requests(emulator)[-1]
    assert form(refreshed)["grant_type"] == "refresh_token" and refreshed.status == 200
    assert form(refreshed)["client_id"] == issued["client_id"]
    omnisend_connections.disconnect(connected)
    revocations = emulator.ledger_for("/oauth2/revoke")
    assert revocations and all(r.status == 200 for r in revocations)

    assert len(register_requests(emulator)) == 1
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert issued["client_secret"] not in logged
    assert issued["client_id"] in logged  # "registered as client ..." (the id is not secret)


@pytest.mark.django_db
def test_later_connects_reuse_the_stored_registration(manager_client, dcr_settings, emulator):
    first = start(manager_client)
    second = start(manager_client)
    assert first["client_id"] == second["client_id"]
    assert len(register_requests(emulator)) == 1
    assert ClientRegistration.objects.count() == 1


@pytest.mark.django_db
def test_a_new_redirect_uri_registers_again(manager_client, dcr_settings, emulator):
    """A registration is for its exact redirect URI; another one is another client."""
    first = start(manager_client)
    other = "https://shop.test/other/omnisend/callback/"
    with override_settings(OMNISEND={**dcr_settings, "REDIRECT_URI": other}):
        second = start(manager_client)
    assert first["client_id"] != second["client_id"]
    assert second["redirect_uri"] == other
    assert set(ClientRegistration.objects.values_list("redirect_uri", flat=True)) == {
        REDIRECT,
        other,
    }


@pytest.mark.django_db
def test_settings_credentials_win_over_a_stored_registration(
    manager_client, dcr_settings, emulator
):
    registered = start(manager_client)["client_id"]
    emulator.add_client(emulator.demo_client_id, emulator.demo_client_secret, [REDIRECT])
    configured = {
        **dcr_settings,
        "CLIENT_ID": emulator.demo_client_id,
        "CLIENT_SECRET": emulator.demo_client_secret,
    }
    with override_settings(OMNISEND=configured):
        query = start(manager_client)
        assert query["client_id"] == emulator.demo_client_id != registered
        callback = manager_client.get(CALLBACK_URL, approve(emulator, query))
        assert callback.status_code == 302
        assert form(token_requests(emulator)[-1])["client_id"] == emulator.demo_client_id
    assert len(register_requests(emulator)) == 1
    assert ClientRegistration.objects.count() == 1  # kept, unused


@pytest.mark.django_db
def test_settings_credentials_mean_no_registration_at_all(manager_client, dcr_settings, emulator):
    emulator.add_client(emulator.demo_client_id, emulator.demo_client_secret, [REDIRECT])
    configured = {
        **dcr_settings,
        "CLIENT_ID": emulator.demo_client_id,
        "CLIENT_SECRET": emulator.demo_client_secret,
    }
    with override_settings(OMNISEND=configured):
        assert start(manager_client)["client_id"] == emulator.demo_client_id
    assert register_requests(emulator) == []
    assert emulator.ledger_for("/.well-known") == []
    assert ClientRegistration.objects.count() == 0


@pytest.mark.django_db
def test_registration_can_be_switched_off(manager_client, dcr_settings, emulator):
    with override_settings(OMNISEND={**dcr_settings, "CLIENT_REGISTRATION": False}):
        response = manager_client.post(CONNECT_URL)
    assert response.status_code == 400
    page = response.content.decode()
    assert "CLIENT_ID" in page and "CLIENT_SECRET" in page
    assert register_requests(emulator) == []
    assert ClientRegistration.objects.count() == 0


def assert_refused_cleanly(client: Client, response: Any, *expected: str) -> str:
    assert response.status_code == 400, response.content[:800]
    page = response.content.decode()
    for text in ("CLIENT_ID", "CLIENT_SECRET", "request client credentials", *expected):
        assert text in page, (text, page[:2000])
    assert ClientRegistration.objects.count() == 0
    assert Connection.objects.count() == 0
    assert not client.session.get("omnisend_oauth")
    return page


@pytest.mark.django_db
def test_refused_redirect_uri_says_what_to_do_and_stores_nothing(
    manager_client, dcr_settings, emulator
):
    """The emulator refuses plain http on a public host (RFC 7591 invalid_redirect_uri)."""
    plain = "http://shop.test/omnisend/callback/"
    with override_settings(OMNISEND={**dcr_settings, "REDIRECT_URI": plain}):
        response = manager_client.post(CONNECT_URL)
    assert_refused_cleanly(manager_client, response, "invalid_redirect_uri", "https")
    [refused] = register_requests(emulator)
    assert refused.status == 400


@pytest.mark.django_db
def test_a_redirect_uri_too_long_to_store_is_refused_before_registering(
    manager_client, dcr_settings, emulator
):
    """Registrations are unique per redirect URI, and MariaDB/MySQL index at most 255
    characters of a unique column: a longer URI is refused with what to do, and Omnisend is
    never asked (a client it issued could not be stored)."""
    long = "http://127.0.0.1:8000/" + "x" * 240 + "/omnisend/callback/"
    with override_settings(OMNISEND={**dcr_settings, "REDIRECT_URI": long}):
        response = manager_client.post(CONNECT_URL)
    assert_refused_cleanly(manager_client, response, "255")
    assert register_requests(emulator) == []


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            400,
            {"error": "invalid_client_metadata", "error_description": "no"},
            "invalid_client_metadata",
        ),
        (400, {"title": "invalid_client_metadata"}, "invalid_client_metadata"),
        (403, {"error": "access_denied"}, "HTTP 403"),
        (503, b"<html>down</html>", "HTTP 503"),
        (201, {"client_id": "only-an-id"}, "no client secret"),
        (201, b"not json", "other than a JSON object"),
        (302, b"", "redirect"),
    ],
)
@pytest.mark.django_db
def test_refused_registration_says_what_to_do_and_stores_nothing(
    manager_client, dcr_settings, emulator, stub, status, body, expected
):
    stub.respond("/register", status, body)
    settings = {**dcr_settings, "REGISTRATION_URL": stub.url + "/register"}
    with override_settings(OMNISEND=settings):
        response = manager_client.post(CONNECT_URL)
    assert_refused_cleanly(manager_client, response, expected)
    assert len(stub.requests_to("/register")) == 1


@pytest.mark.django_db
def test_unreachable_registration_endpoint_says_what_to_do(manager_client, dcr_settings, emulator):
    settings = {**dcr_settings, "REGISTRATION_URL": "http://127.0.0.1:9/oauth2/register"}
    with override_settings(OMNISEND=settings):
        response = manager_client.post(CONNECT_URL)
    assert_refused_cleanly(manager_client, response, "Could not reach")


@pytest.mark.django_db
def test_registration_endpoint_comes_from_server_metadata(
    manager_client, dcr_settings, emulator, stub
):
    """RFC 8414: the metadata at the authorization server's origin names the endpoint.

    Here the server is the stub, whose metadata names the emulator's registration endpoint.
    """
    stub.respond(
        "/.well-known/oauth-authorization-server",
        200,
        {"issuer": stub.url, "registration_endpoint": emulator.base_url + "/oauth2/register"},
    )
    settings = {**dcr_settings, "AUTHORIZE_URL": stub.url + "/oauth2/authorize"}
    with override_settings(OMNISEND=settings):
        query = start(manager_client)
    assert [(r.method, r.path) for r in stub.requests] == [
        ("GET", "/.well-known/oauth-authorization-server")
    ]
    [registered] = register_requests(emulator)
    assert registered.response_json["client_id"] == query["client_id"]
    assert ClientRegistration.objects.get().registration_endpoint == (
        emulator.base_url + "/oauth2/register"
    )


@pytest.mark.django_db
def test_the_documented_endpoint_is_used_when_there_is_no_metadata(
    manager_client, dcr_settings, emulator, stub
):
    """A 404 at /.well-known (Omnisend serves it elsewhere): {origin}/oauth2/register."""
    stub.respond("/oauth2/register", 400, {"error": "invalid_client_metadata"})
    settings = {**dcr_settings, "AUTHORIZE_URL": stub.url + "/oauth2/authorize"}
    with override_settings(OMNISEND=settings):
        response = manager_client.post(CONNECT_URL)
    assert response.status_code == 400
    assert [r.path for r in stub.requests] == [
        "/.well-known/oauth-authorization-server",
        "/oauth2/register",
    ]


@pytest.mark.django_db
def test_metadata_of_another_issuer_is_not_trusted(manager_client, dcr_settings, emulator, stub):
    """Metadata whose issuer is not the authorization server's origin is ignored (RFC 8414 §3.3)."""
    stub.respond(
        "/.well-known/oauth-authorization-server",
        200,
        {"issuer": "https://evil.test", "registration_endpoint": "https://evil.test/register"},
    )
    stub.respond("/oauth2/register", 400, {"error": "invalid_client_metadata"})
    settings = {**dcr_settings, "AUTHORIZE_URL": stub.url + "/oauth2/authorize"}
    with override_settings(OMNISEND=settings):
        manager_client.post(CONNECT_URL)
    assert [r.path for r in stub.requests][-1] == "/oauth2/register"


@pytest.mark.django_db
def test_client_name_and_uri_default_to_the_redirect_uris_site(
    manager_client, dcr_settings, emulator
):
    settings = {k: v for k, v in dcr_settings.items() if k not in ("CLIENT_NAME", "CLIENT_URI")}
    with override_settings(OMNISEND=settings):
        start(manager_client)
    sent = json.loads(register_requests(emulator)[0].body)
    assert sent["client_name"] == "shop.test"
    assert sent["client_uri"] == "https://shop.test/"


@pytest.mark.django_db(transaction=True)
def test_client_name_and_uri_come_from_the_sites_framework_when_installed(
    manager, dcr_settings, emulator
):
    from django.test import modify_settings

    plain = {k: v for k, v in dcr_settings.items() if k not in ("CLIENT_NAME", "CLIENT_URI")}
    with (
        modify_settings(INSTALLED_APPS={"append": "django.contrib.sites"}),
        override_settings(SITE_ID=1, OMNISEND=plain),
    ):
        from django.contrib.sites.models import Site

        with connection.schema_editor() as editor:
            editor.create_model(Site)
        try:
            Site.objects.create(pk=1, domain="www.shop.test", name="Shop")
            Site.objects.clear_cache()
            client = Client()
            client.force_login(manager)
            start(client)
        finally:
            Site.objects.clear_cache()
            with connection.schema_editor() as editor:
                editor.delete_model(Site)
    sent = json.loads(register_requests(emulator)[0].body)
    assert sent["client_name"] == "Shop"
    assert sent["client_uri"] == "https://www.shop.test/"


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_first_connects_register_once(django_user_model, dcr_settings, emulator):
    """Single flight: the second Connect waits for the first one's registration and uses it.

    The registration answers slowly so that both Connects are inside the resolver together;
    whatever the order, the assertions hold only when the site registered once.
    """
    emulator.add_fault(route="POST /oauth2/register", kind="latency", seconds=1.0)
    clients = []
    for name in ("first", "second"):
        client = Client()
        client.force_login(make_manager(django_user_model, name))
        clients.append(client)
    barrier = threading.Barrier(2)
    results: list[dict[str, str]] = []
    errors: list[BaseException] = []

    def connect(client: Client) -> None:
        try:
            barrier.wait(10)
            results.append(start(client))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=connect, args=(c,)) for c in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(results) == 2
    assert len(register_requests(emulator)) == 1
    [row] = ClientRegistration.objects.all()
    assert {r["client_id"] for r in results} == {row.client_id}


@pytest.mark.django_db
def test_admin_shows_the_registration_without_its_secret(
    admin_client, manager_client, dcr_settings, emulator
):
    start(manager_client)
    row = ClientRegistration.objects.get()
    secret = row.client_secret
    listing = admin_client.get("/admin/django_omnisend/clientregistration/")
    assert listing.status_code == 200
    assert row.client_id in listing.content.decode()
    page = admin_client.get(f"/admin/django_omnisend/clientregistration/{row.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert row.client_id in html and REDIRECT in html
    assert secret not in html and raw_secret_column(row.pk) not in html
    assert "<textarea" not in html and 'type="text"' not in html  # read-only
    assert admin_client.get("/admin/django_omnisend/clientregistration/add/").status_code == 403
    assert secret not in repr(row) and secret not in str(row)


@pytest.mark.django_db
def test_connect_page_and_admin_offer_connecting_without_client_credentials(
    manager_client, dcr_settings, emulator
):
    page = manager_client.get(CONNECT_URL)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'value="Connect Omnisend"' in html and "not configured" not in html
    assert "register" in html  # says that this Connect registers the site first
    changelist = manager_client.get("/admin/django_omnisend/connection/")
    assert CONNECT_URL in changelist.content.decode()
    assert register_requests(emulator) == []  # showing the page registers nothing
    with override_settings(OMNISEND={**dcr_settings, "CLIENT_REGISTRATION": False}):
        html = manager_client.get(CONNECT_URL).content.decode()
        assert "not configured" in html and 'value="Connect Omnisend"' not in html
        assert (
            CONNECT_URL
            not in manager_client.get("/admin/django_omnisend/connection/").content.decode()
        )


@pytest.mark.django_db
def test_key_rotation_re_encrypts_the_registration_secret(settings):
    """``omnisend_rotate_keys`` covers the client secret; a registration no key opens is
    reported (never its ciphertext) and replaced at the next Connect."""
    import io

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))

    def keys(*values):
        return override_settings(OMNISEND={**settings.OMNISEND, "ENCRYPTION_KEYS": list(values)})

    with keys(old):
        row = ClientRegistration.objects.create(
            redirect_uri=REDIRECT, client_id="cid", client_secret="cs-0123456789", metadata={}
        )
    with keys(lost):
        gone = ClientRegistration.objects.create(
            redirect_uri=REDIRECT + "x/", client_id="cid2", client_secret="cs-lost", metadata={}
        )
    before = raw_secret_column(row.pk)
    with keys(new, old):
        out, err = io.StringIO(), io.StringIO()
        call_command("omnisend_rotate_keys", stdout=out, stderr=err)
        assert "1 client registration secret(s)" in out.getvalue()
        assert f"Client registration {gone.pk}" in err.getvalue()
        assert "gAAAAA" not in err.getvalue()
    assert raw_secret_column(row.pk) != before
    with keys(new):
        assert ClientRegistration.objects.get(pk=row.pk).client_secret == "cs-0123456789"
        assert not ClientRegistration.objects.get(pk=gone.pk).usable


def registered_connection(client: Client, emulator: Any) -> tuple[Connection, str]:
    """Connect through a client the site registered; returns the row and that client's ID."""
    query = start(client)
    assert client.get(CALLBACK_URL, approve(emulator, query)).status_code == 302
    [row] = Connection.objects.all()
    return row, query["client_id"]


def with_settings_client(emulator: Any, dcr_settings: dict[str, Any]) -> dict[str, Any]:
    """Settings that name Omnisend-issued credentials (the emulator's demo client)."""
    emulator.add_client(emulator.demo_client_id, emulator.demo_client_secret, [REDIRECT])
    return {
        **dcr_settings,
        "CLIENT_ID": emulator.demo_client_id,
        "CLIENT_SECRET": emulator.demo_client_secret,
    }


@pytest.mark.django_db
def test_tokens_refresh_and_revoke_with_the_client_that_issued_them(
    manager_client, dcr_settings, emulator
):
    """CLIENT_ID set after a registered client connected: that connection keeps working."""
    connected, registered = registered_connection(manager_client, emulator)
    assert connected.client_id == registered
    with override_settings(OMNISEND=with_settings_client(emulator, dcr_settings)):
        omnisend_connections.refresh_connection(connected, force=True)
        refreshed = token_requests(emulator)[-1]
        assert form(refreshed)["grant_type"] == "refresh_token"
        assert refreshed.status == 200, refreshed.response_json
        assert form(refreshed)["client_id"] == registered
        connected.refresh_from_db()
        assert connected.status == Connection.Status.ACTIVE
        access = connected.access_token
        assert omnisend_connections.probe_credentials(access_token=access)["brandID"]

        omnisend_connections.disconnect(connected)
    revocations = emulator.ledger_for("/oauth2/revoke")
    assert revocations and {form(r)["client_id"] for r in revocations} == {registered}
    # Revoked for real: the emulator ignores a token revoked by a client that did not issue it.
    with pytest.raises(AuthenticationError) as caught:
        omnisend_connections.probe_credentials(access_token=access)
    assert caught.value.status == 401


@pytest.mark.django_db
def test_a_connection_made_with_settings_credentials_remembers_that_client(
    manager_client, dcr_settings, emulator
):
    with override_settings(OMNISEND=with_settings_client(emulator, dcr_settings)):
        query = start(manager_client)
        assert manager_client.get(CALLBACK_URL, approve(emulator, query)).status_code == 302
    [connected] = Connection.objects.all()
    assert connected.client_id == emulator.demo_client_id
    assert register_requests(emulator) == []


@pytest.mark.django_db
def test_the_code_is_exchanged_by_the_client_that_asked_for_it(
    manager_client, dcr_settings, emulator
):
    """CLIENT_ID set while a person is on Omnisend's consent page: the flow still completes."""
    query = start(manager_client)
    callback_query = approve(emulator, query)
    with override_settings(OMNISEND=with_settings_client(emulator, dcr_settings)):
        callback = manager_client.get(CALLBACK_URL, callback_query)
    assert callback.status_code == 302, callback.content[:800]
    assert form(token_requests(emulator)[-1])["client_id"] == query["client_id"]
    [connected] = Connection.objects.all()
    assert connected.status == Connection.Status.ACTIVE
    assert connected.client_id == query["client_id"]


@pytest.mark.django_db
def test_a_deleted_registration_flags_its_connections_without_asking_another_client(
    manager_client, dcr_settings, emulator
):
    connected, registered = registered_connection(manager_client, emulator)
    ClientRegistration.objects.all().delete()
    before = len(token_requests(emulator))
    configured = with_settings_client(emulator, dcr_settings)
    with override_settings(OMNISEND=configured), pytest.raises(NeedsReconnect) as caught:
        omnisend_connections.refresh_connection(connected, force=True)
    assert len(token_requests(emulator)) == before  # no request with a client that never issued
    connected.refresh_from_db()
    assert connected.status == Connection.Status.NEEDS_RECONNECT
    assert registered in connected.status_reason
    assert "reconnect" in str(caught.value).lower()

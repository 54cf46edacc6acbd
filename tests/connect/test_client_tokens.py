"""``get_client`` with stored connections: auth modes, refresh, 401, single flight, no leaks.

T-OA-24 (no secret in logs or exceptions), T-OA-27 (401 flags needs reconnect),
T-OA-28 (two concurrent refreshes make one token request). Those, and T-ST-4, run for the
site's connection and for a shop's (``flow_kind``).
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.test import override_settings
from django.utils import timezone

import django_omnisend
from django_omnisend.connect import active_connection, get_client, refresh_connection
from django_omnisend.exceptions import (
    AuthenticationError,
    NeedsReconnect,
    NotConnected,
    OmnisendError,
)
from django_omnisend.models import Connection

from .conftest import authorize, each_flow, form, token_requests


def oauth_connection(emulator, *, refresh=True, expires_in=None, owner=None, **fields):
    token = emulator.issue_token(client_id=emulator.demo_client_id)
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo", **fields)
    connection.owner = owner
    connection.set_tokens(
        token["access_token"],
        token.get("refresh_token") if refresh else None,
        expires_in=expires_in if expires_in is not None else token.get("expires_in"),
    )
    connection.scopes = token["scope"].split()
    connection.save()
    return connection, token


def refresh_requests(emulator):
    return [e for e in token_requests(emulator) if form(e).get("grant_type") == "refresh_token"]


def auth_header(entry):
    headers = {k.lower(): v for k, v in entry.headers.items()}
    return headers.get("authorization", "")


# -- choosing credentials ----------------------------------------------------------------------


@pytest.mark.django_db
def test_nothing_connected_raises_a_clear_error(emulator_settings):
    no_key = override_settings(OMNISEND={**emulator_settings, "API_KEY": ""})
    with no_key, pytest.raises(NotConnected) as exc:
        django_omnisend.get_client()
    assert "Connect Omnisend" in str(exc.value) and "API_KEY" in str(exc.value)


@pytest.mark.django_db
def test_settings_api_key_works_without_a_row(emulator, emulator_settings):
    client = django_omnisend.get_client()
    assert client.brands.current()["brandID"] == emulator.default_brand_id
    assert auth_header(emulator.ledger[-1]).startswith("Omnisend-API-Key ")


@pytest.mark.django_db
def test_oauth_connection_uses_bearer_and_wins_over_the_key(emulator, emulator_settings):
    connection, token = oauth_connection(emulator)
    assert active_connection() == connection
    client = get_client()
    assert client.contacts.get_by_email("nobody@example.com") is None
    assert auth_header(emulator.ledger[-1]) == f"Bearer {token['access_token']}"


@pytest.mark.django_db
def test_api_key_connection_row(emulator, emulator_settings):
    key = emulator.issue_api_key()
    connection = Connection(brand_id=emulator.default_brand_id)
    connection.set_api_key(key)
    connection.save()
    client = get_client(connection)
    client.brands.current()
    assert auth_header(emulator.ledger[-1]) == f"Omnisend-API-Key {key}"


@pytest.mark.django_db
def test_the_seed_sample_request(emulator, emulator_settings):
    """The seed's sample: a contact by e-mail with the Bearer token."""
    oauth_connection(emulator)
    emulator.seed_contact(identifiers=[{"type": "email", "id": "ann@example.com"}])
    contact = django_omnisend.get_client().contacts.get_by_email("ann@example.com")
    assert contact is not None and contact["email"] == "ann@example.com"


# -- refresh ----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_expiring_token_is_refreshed_first(emulator, emulator_settings):
    connection, token = oauth_connection(emulator, expires_in=30)
    client = get_client(connection)
    assert len(refresh_requests(emulator)) == 1
    connection.refresh_from_db()
    assert connection.access_token != token["access_token"]
    assert connection.refreshed_at is not None
    client.brands.current()
    assert auth_header(emulator.ledger[-1]) == f"Bearer {connection.access_token}"


@pytest.mark.django_db
def test_refresh_keeps_the_old_refresh_token_when_none_comes_back(emulator, emulator_settings):
    emulator.configure(rotate_refresh_tokens=False)
    connection, _token = oauth_connection(emulator, expires_in=30)
    old_refresh = connection.refresh_token
    refresh_connection(connection, force=True)
    connection.refresh_from_db()
    assert connection.refresh_token == old_refresh
    emulator.configure(rotate_refresh_tokens=True)
    refresh_connection(connection, force=True)
    connection.refresh_from_db()
    assert connection.refresh_token and connection.refresh_token != old_refresh


@pytest.mark.django_db
def test_refresh_response_without_refresh_token_keeps_it(emulator_settings, stub):
    with override_settings(OMNISEND={**emulator_settings, "TOKEN_URL": stub.url + "/token"}):
        stub.respond("/token", 200, {"access_token": "new-access", "expires_in": 3600})
        connection = Connection(brand_id="b1")
        connection.set_tokens("old-access", "old-refresh", expires_in=10)
        connection.save()
        refresh_connection(connection)
    connection.refresh_from_db()
    assert connection.access_token == "new-access"
    assert connection.refresh_token == "old-refresh"
    body = stub.requests_to("/token")[0].form
    assert body["grant_type"] == "refresh_token" and body["refresh_token"] == "old-refresh"
    assert body["client_secret"] == emulator_settings["CLIENT_SECRET"]


@pytest.mark.django_db
def test_401_with_a_refresh_token_refreshes_once_and_retries(emulator, emulator_settings):
    connection, token = oauth_connection(emulator)
    client = get_client(connection)
    emulator.revoke_token(token["access_token"])
    assert client.brands.current()["brandID"] == emulator.default_brand_id
    assert len(refresh_requests(emulator)) == 1
    connection.refresh_from_db()
    assert connection.status == "active"
    assert connection.access_token != token["access_token"]


@each_flow
@pytest.mark.django_db
def test_401_later_flags_needs_reconnect(emulator, emulator_settings, owner):
    """T-OA-27: no silent fall back to the API key afterwards."""
    connection, token = oauth_connection(emulator, refresh=False, owner=owner)
    client = get_client(owner=owner)
    client.brands.current()
    emulator.revoke_token(token["access_token"])
    with pytest.raises(AuthenticationError):
        client.brands.current()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT
    assert "401" in connection.status_reason
    assert emulator_settings["API_KEY"]  # a key is configured, and still not used:
    with pytest.raises(NeedsReconnect) as exc:
        get_client(owner=owner)
    assert "reconnect" in str(exc.value).lower()


@pytest.mark.django_db
def test_401_when_the_refresh_token_is_dead_too(emulator, emulator_settings):
    connection, token = oauth_connection(emulator)
    client = get_client(connection)
    emulator.revoke_token(token["access_token"])
    emulator.revoke_token(token["refresh_token"])
    with pytest.raises(AuthenticationError):
        client.brands.current()
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT


@each_flow
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_refreshes_make_one_token_request(emulator, emulator_settings, owner):
    """T-OA-28: both workers end up with the same new token; one request to the AS.

    Threads of one process; two processes: tests/connect/test_refresh_processes.py.
    """
    connection, _token = oauth_connection(emulator, expires_in=30, owner=owner)
    emulator.add_fault(route="POST /oauth2/token", kind="latency", seconds=0.3)
    barrier = threading.Barrier(2)
    tokens, errors = [], []

    def worker():
        try:
            row = Connection.objects.get(pk=connection.pk)
            barrier.wait(5)
            client = get_client(row)
            client.brands.current()
            tokens.append(client.auth)
            client.close()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            close_old_connections()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(refresh_requests(emulator)) == 1
    connection.refresh_from_db()
    calls = emulator.ledger_for("/api/brands/current")
    assert len(calls) == 2
    assert {auth_header(c) for c in calls} == {f"Bearer {connection.access_token}"}


@pytest.mark.django_db
def test_a_refused_credential_does_not_condemn_a_newer_one(emulator, emulator_settings):
    """Flagging after a failure names the credential that failed; a newer one stays active."""
    from django_omnisend.connect import mark_needs_reconnect

    connection, _token = oauth_connection(emulator)
    refused = connection.fingerprint
    newer = emulator.issue_token(client_id=emulator.demo_client_id)
    stored = Connection.objects.get(pk=connection.pk)
    stored.set_tokens(newer["access_token"], newer["refresh_token"])
    stored.save()  # what another worker's refresh stores

    assert mark_needs_reconnect(connection, "invalid_grant", fingerprint=refused) is False
    stored.refresh_from_db()
    assert stored.status == Connection.Status.ACTIVE
    assert mark_needs_reconnect(stored, "invalid_grant", fingerprint=stored.fingerprint)
    stored.refresh_from_db()
    assert stored.status == Connection.Status.NEEDS_RECONNECT


# -- undecryptable secrets ------------------------------------------------------------------


@each_flow
@pytest.mark.django_db
def test_wrong_key_gives_needs_reconnect(emulator, emulator_settings, caplog, owner):
    """T-ST-4: no exception other than NeedsReconnect, the row is flagged, logged once."""
    from cryptography.fernet import Fernet

    connection, token = oauth_connection(emulator, owner=owner)
    with override_settings(
        OMNISEND={**emulator_settings, "ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}
    ):
        row = Connection.objects.get(pk=connection.pk)
        assert row.undecryptable
        with pytest.raises(NeedsReconnect):
            get_client(row)
        with pytest.raises(NeedsReconnect):
            get_client(owner=owner)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT
    flagged = [r for r in caplog.records if "needs a reconnect" in r.getMessage()]
    assert len(flagged) == 1
    assert token["access_token"] not in caplog.text


# -- no secret in logs or exceptions --------------------------------------------------------


@each_flow
@pytest.mark.django_db
def test_full_connect_and_ten_calls_leak_no_secret(flow, oauth_settings, emulator, caplog):
    """T-OA-24: root, requests and urllib3 at DEBUG."""
    caplog.set_level(logging.DEBUG)
    for name in ("requests", "urllib3", "django_omnisend", "django"):
        caplog.set_level(logging.DEBUG, logger=name)
    errors: list[Exception] = []

    started = flow.start()
    query = authorize(emulator, started.url)
    response = flow.finish(query)
    assert response.status_code == 302
    connection = flow.rows().get()
    client = django_omnisend.get_client(owner=flow.owner)
    for i in range(10):
        client.contacts.upsert(
            {
                "identifiers": [
                    {
                        "type": "email",
                        "id": f"user{i}@example.com",
                        "channels": {"email": {"status": "nonSubscribed"}},
                    }
                ],
                "firstName": f"User {i}",
            }
        )
    # Errors along the way: a bad token, a replayed callback, nothing connected.
    emulator.revoke_token(connection.access_token)
    emulator.revoke_token(connection.refresh_token)
    try:
        client.brands.current()
    except OmnisendError as exc:
        errors.append(exc)
    try:
        django_omnisend.get_client(owner=flow.owner)
    except OmnisendError as exc:
        errors.append(exc)
    replay = flow.finish(query)
    assert replay.status_code == 400
    assert len(errors) == 2

    secrets = {
        "client_secret": oauth_settings["CLIENT_SECRET"],
        "code": query["code"],
        "verifier": started.record["verifier"],
        "access_token": connection.access_token,
        "refresh_token": connection.refresh_token,
        "api_key": oauth_settings["API_KEY"],
    }
    assert all(secrets.values())
    text = caplog.text + "".join(repr(r.args) for r in caplog.records)
    texts = [text, *(str(e) for e in errors), *(repr(e) for e in errors)]
    for name, value in secrets.items():
        for chunk in texts:
            assert value not in chunk, f"{name} leaked"
    assert any("omnisend" in r.name for r in caplog.records)  # logging did happen


@pytest.mark.django_db
def test_disconnect_revokes_and_forgets(emulator, emulator_settings):
    from django_omnisend.connect import disconnect

    connection, token = oauth_connection(emulator)
    disconnect(connection)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.REVOKED
    assert connection.access_token == "" and connection.refresh_token == ""
    revokes = emulator.ledger_for("/oauth2/revoke")
    assert {form(e)["token"] for e in revokes} == {token["access_token"], token["refresh_token"]}
    assert all("client_secret" in form(e) for e in revokes)
    with pytest.raises(NotConnected):
        get_client(connection)


@pytest.mark.django_db
def test_disconnect_deletes_tokens_even_if_revoke_fails(emulator, emulator_settings):
    from django_omnisend.connect import disconnect

    connection, _ = oauth_connection(emulator)
    emulator.add_fault(route="POST /oauth2/revoke", kind="500")
    with override_settings(OMNISEND={**emulator_settings, "REVOKE_URL": "http://127.0.0.1:9/x"}):
        disconnect(connection)
    connection.refresh_from_db()
    assert connection.status == "revoked" and not connection.access_token


@pytest.mark.django_db
def test_expired_without_refresh_token_needs_reconnect(emulator, emulator_settings):
    connection, _ = oauth_connection(emulator, refresh=False, expires_in=3600)
    Connection.objects.filter(pk=connection.pk).update(
        expires_at=timezone.now() - timedelta(minutes=1)
    )
    connection.refresh_from_db()
    with pytest.raises(NeedsReconnect):
        get_client(connection)
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT


# -- connection keys (used by the sync) -------------------------------------------------------


@pytest.mark.django_db
def test_connection_keys(emulator, emulator_settings):
    from django_omnisend import crypto
    from django_omnisend.connect import (
        client_for_key,
        connection_for_key,
        credential_fingerprint,
        mark_key_needs_reconnect,
    )

    # No row: "default" is the settings key.
    assert connection_for_key("default") is None
    assert credential_fingerprint("default") == crypto.fingerprint(emulator_settings["API_KEY"])
    client_for_key("default", max_retries=0).brands.current()
    assert auth_header(emulator.ledger[-1]).startswith("Omnisend-API-Key ")
    assert mark_key_needs_reconnect("default", "401") is False
    with pytest.raises(NotConnected):
        client_for_key("12345")

    connection, token = oauth_connection(emulator)
    assert connection_for_key("default") == connection
    assert connection_for_key(str(connection.pk)) == connection
    assert credential_fingerprint("default") == connection.fingerprint
    client = client_for_key(str(connection.pk), max_retries=0)
    assert client.max_retries == 0
    client.brands.current()
    assert auth_header(emulator.ledger[-1]) == f"Bearer {token['access_token']}"
    assert mark_key_needs_reconnect("default", "HTTP 401") is True
    assert mark_key_needs_reconnect("default", "HTTP 401") is False  # flagged once
    assert connection_for_key("default") == connection  # still the site's, now flagged
    with pytest.raises(NeedsReconnect):
        client_for_key("default")

"""The connect and callback views against the emulator: state, users, URLs, redirects, headers.

IDs refer to the OAuth checklist in SECURITY-RELIABILITY.md §1.2 (T-OA-xx).
"""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client, override_settings

from django_omnisend.connect import views
from django_omnisend.models import Connection

from .conftest import (
    CALLBACK_URL,
    CHANGELIST_URL,
    CONNECT_URL,
    REDIRECT_URI,
    authorize,
    connect,
    finish,
    form,
    make_manager,
    start,
    token_requests,
)

pytestmark = pytest.mark.django_db


def assert_nothing_stored(emulator, client=None, state=None):
    assert Connection.objects.count() == 0
    assert token_requests(emulator) == []
    if client is not None and state is not None:
        assert state not in (client.session.get("omnisend_oauth") or {})


# -- connect --------------------------------------------------------------------------------


def test_get_connect_shows_a_post_form_and_starts_nothing(manager_client, oauth_settings, emulator):
    """T-OA-07: a GET never starts the flow."""
    response = manager_client.get(CONNECT_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert "omnisend_oauth" not in manager_client.session
    assert "Location" not in response
    assert emulator.ledger_for("/oauth2") == []


def test_connect_post_needs_a_csrf_token(manager, oauth_settings, emulator):
    client = Client(enforce_csrf_checks=True)
    client.force_login(manager)
    assert client.post(CONNECT_URL).status_code == 403
    assert "omnisend_oauth" not in client.session
    page = client.get(CONNECT_URL)
    token = page.context["csrf_token"]
    response = client.post(CONNECT_URL, {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert response["Location"].startswith(oauth_settings["AUTHORIZE_URL"])


def test_other_methods_are_refused(manager_client, oauth_settings):
    assert manager_client.put(CONNECT_URL).status_code == 405
    assert manager_client.post(CALLBACK_URL).status_code == 405


@pytest.mark.parametrize("who", ["anonymous", "non_staff", "staff_without_permission"])
def test_connect_and_callback_refuse_users_who_may_not_connect(
    who, db, django_user_model, oauth_settings, emulator
):
    """T-OA-06: login redirect or 403, no state, no token request."""
    client = Client()
    if who != "anonymous":
        user = django_user_model.objects.create_user(who, password="pw")
        user.is_staff = who == "staff_without_permission"
        user.save()
        client.force_login(user)
    for method in (client.get, client.post):
        response = method(CONNECT_URL)
        if who == "staff_without_permission":
            assert response.status_code == 403
        else:
            assert response.status_code == 302
            assert response["Location"].startswith("/admin/login/")
    assert "omnisend_oauth" not in client.session
    response = client.get(CALLBACK_URL, {"code": "c0de", "state": "x" * 43})
    assert response.status_code in (400, 403)
    assert "c0de" not in response.get("Location", "")
    assert_nothing_stored(emulator)


def test_authorize_url_contents(manager_client, oauth_settings, emulator):
    """T-OA-08."""
    started = start(manager_client)
    parts = urlsplit(started.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == oauth_settings["AUTHORIZE_URL"]
    raw = parse_qs(parts.query)
    assert all(len(v) == 1 for v in raw.values())
    q = started.query
    assert q["response_type"] == "code"
    assert q["client_id"] == oauth_settings["CLIENT_ID"]
    assert q["redirect_uri"] == REDIRECT_URI
    assert q["scope"] == "contacts.read contacts.write events.write brands.read"
    assert "%20" in parts.query and "+" not in parts.query  # space-separated, percent-encoded
    assert len(q["state"]) >= 43
    assert q["code_challenge_method"] == "S256"
    assert "plain" not in parts.query
    challenge = q["code_challenge"]
    assert len(challenge) == 43 and "=" not in challenge
    verifier = started.record["verifier"]
    assert 43 <= len(verifier) <= 128
    expected = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    assert challenge == expected.decode()
    assert started.record["redirect_uri"] == REDIRECT_URI
    assert started.record["next"] == CHANGELIST_URL
    for key in ("user_id", "authorize_url", "token_url", "created_at"):
        assert key in started.record
    assert started.response["Cache-Control"].find("no-store") >= 0


def test_states_of_several_tabs_coexist(manager_client, oauth_settings, emulator):
    first = start(manager_client)
    second = start(manager_client)
    assert first.state != second.state
    assert set(manager_client.session["omnisend_oauth"]) == {first.state, second.state}
    # Finish the first tab; the second one still works afterwards.
    assert finish(manager_client, authorize(emulator, first.url)).status_code == 302
    response = finish(manager_client, authorize(emulator, second.url))
    assert response.status_code == 302
    assert Connection.objects.count() == 1


def test_full_connect_stores_an_active_connection(
    manager, manager_client, oauth_settings, emulator
):
    from django_omnisend.signals import connected

    seen = []

    def receiver(sender, connection, user, **kwargs):
        seen.append((sender, connection.pk, user))

    connected.connect(receiver)
    try:
        response = connect(manager_client, emulator)
    finally:
        connected.disconnect(receiver)
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST_URL
    connection = Connection.objects.get()
    assert connection.status == Connection.Status.ACTIVE
    assert connection.auth_type == Connection.AuthType.OAUTH
    assert connection.brand_id == emulator.default_brand_id
    assert connection.brand_name
    assert set(connection.scopes) >= {"contacts.read", "contacts.write", "events.write"}
    assert connection.connected_by == manager
    assert connection.access_token and connection.fingerprint
    assert connection.checked_at is not None
    assert seen == [(Connection, connection.pk, manager)]
    page = manager_client.get(response["Location"])
    assert "Connected to the Omnisend brand" in page.content.decode()


def test_token_request_body(manager_client, oauth_settings, emulator):
    """T-OA-09: form POST with the verifier, the same redirect URI, the secret in the body."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    assert finish(manager_client, query).status_code == 302
    (entry,) = token_requests(emulator)
    assert entry.method == "POST"
    assert entry.headers.get("Content-Type", entry.headers.get("content-type", "")).startswith(
        "application/x-www-form-urlencoded"
    )
    body = form(entry)
    assert body["grant_type"] == "authorization_code"
    assert body["code"] == query["code"]
    assert body["code_verifier"] == started.record["verifier"]
    assert body["redirect_uri"] == started.query["redirect_uri"] == REDIRECT_URI
    assert body["client_id"] == oauth_settings["CLIENT_ID"]
    assert body["client_secret"] == oauth_settings["CLIENT_SECRET"]
    assert not entry.query  # nothing in the URL
    assert "Authorization" not in entry.headers


def test_server_enforcing_pkce_rejects_a_tampered_verifier(
    manager_client, oauth_settings, emulator
):
    """T-OA-11."""
    emulator.configure(require_pkce=True)
    started = start(manager_client)
    query = authorize(emulator, started.url)
    session = manager_client.session
    session["omnisend_oauth"][started.state]["verifier"] = "x" * 64
    session.save()
    response = finish(manager_client, query)
    assert response.status_code == 400
    assert Connection.objects.count() == 0
    (entry,) = token_requests(emulator)
    assert entry.status == 400


def test_server_enforcing_pkce_accepts_the_right_verifier(manager_client, oauth_settings, emulator):
    emulator.configure(require_pkce=True)
    assert connect(manager_client, emulator).status_code == 302
    assert Connection.objects.filter(status="active").count() == 1


def test_spoofed_host_does_not_change_the_redirect_uri(manager_client, oauth_settings, emulator):
    """T-OA-12."""
    with override_settings(ALLOWED_HOSTS=["*"], USE_X_FORWARDED_HOST=True):
        started = start(
            manager_client, HTTP_HOST="evil.example", HTTP_X_FORWARDED_HOST="evil.example"
        )
    assert started.query["redirect_uri"] == REDIRECT_URI
    assert started.record["redirect_uri"] == REDIRECT_URI


def test_redirect_uri_is_derived_from_the_request_only_in_debug(manager_client, oauth_settings):
    values = {**oauth_settings, "REDIRECT_URI": ""}
    with override_settings(OMNISEND=values, DEBUG=False):
        response = manager_client.post(CONNECT_URL)
        assert response.status_code == 400
        assert "REDIRECT_URI" in response.content.decode()
    with override_settings(OMNISEND=values, DEBUG=True):
        started = start(manager_client)
    assert started.query["redirect_uri"] == "http://testserver/omnisend/callback/"


OPEN_REDIRECTS = [
    "https://evil.com",
    "//evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "https:evil.com",
    "javascript:alert(1)",
    "http://testserver@evil.com",
    "https%3A%2F%2Fevil.com",
    "%2F%2Fevil.com",
    "/%5Cevil.com",
    "http:\\\\evil.com",
    " //evil.com",
    "\t//evil.com",
    "///evil.com",
    "/%2F%2Fevil.com",
    "/%5C%5Cevil.com",
    "http://evil.com/admin/",
]


@pytest.mark.parametrize("next_url", OPEN_REDIRECTS)
def test_next_never_leaves_the_site(next_url, manager_client, oauth_settings, emulator):
    """T-OA-13: the final redirect stays on site (the admin list)."""
    response = connect(manager_client, emulator, next_url=next_url)
    assert response.status_code == 302
    location = response["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location.replace("%", "")


def test_on_site_next_is_honoured(manager_client, oauth_settings, emulator):
    response = connect(manager_client, emulator, next_url="/admin/?from=connect")
    assert response["Location"] == "/admin/?from=connect"


def test_next_on_the_callback_is_ignored(manager_client, oauth_settings, emulator):
    """T-OA-14."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    response = finish(manager_client, {**query, "next": "https://evil.com/"})
    assert response.status_code == 302
    assert response["Location"] == CHANGELIST_URL


def test_callback_response_headers(manager_client, oauth_settings, emulator):
    """T-OA-15."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    response = finish(manager_client, query)
    assert response.status_code == 302
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    assert query["code"] not in response["Location"]
    assert "code=" not in response["Location"] and "state=" not in response["Location"]
    # Error pages carry them too.
    response = finish(manager_client, query)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


# -- state ----------------------------------------------------------------------------------


def test_missing_state(manager_client, oauth_settings, emulator):
    """T-OA-01."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    response = finish(manager_client, {"code": query["code"]})
    assert response.status_code == 400
    assert_nothing_stored(emulator)


def test_unknown_state(manager, manager_client, oauth_settings, emulator):
    """T-OA-02: forged, from another browser, or never issued."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    other = Client()
    other.force_login(manager)
    response = finish(other, query)  # another browser: its session has no such state
    assert response.status_code == 400
    response = finish(manager_client, {**query, "state": "A" * 43})
    assert response.status_code == 400
    assert_nothing_stored(emulator)


def test_replayed_state(manager_client, oauth_settings, emulator):
    """T-OA-03: one time only."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    assert finish(manager_client, query).status_code == 302
    assert len(token_requests(emulator)) == 1
    response = finish(manager_client, query)
    assert response.status_code == 400
    assert len(token_requests(emulator)) == 1


def test_expired_state(manager_client, oauth_settings, emulator, monkeypatch):
    """T-OA-04: older than ten minutes."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    now = time.time()
    monkeypatch.setattr(views.time, "time", lambda: now + views.STATE_TTL + 60)
    response = finish(manager_client, query)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert_nothing_stored(emulator, manager_client, started.state)


def test_state_of_another_user(manager_client, oauth_settings, emulator, django_user_model):
    """T-OA-05: a state started by A, completed by B (same browser session) -> 403."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    other = make_manager(django_user_model, "other")
    session = manager_client.session
    session["_auth_user_id"] = str(other.pk)
    session["_auth_user_hash"] = other.get_session_auth_hash()
    session.save()
    response = finish(manager_client, query)
    assert response.status_code == 403
    assert_nothing_stored(emulator, manager_client, started.state)


def test_wrong_issuer_aborts(manager_client, oauth_settings, emulator):
    """T-OA-23."""
    started = start(manager_client)
    query = authorize(emulator, started.url)
    response = finish(manager_client, {**query, "iss": "https://evil.example"})
    assert response.status_code == 400
    assert_nothing_stored(emulator, manager_client, started.state)


def test_right_issuer_is_accepted(manager_client, oauth_settings, emulator):
    started = start(manager_client)
    query = authorize(emulator, started.url)
    query.setdefault("iss", emulator.base_url)
    assert finish(manager_client, query).status_code == 302


def test_changed_endpoints_abort(manager_client, oauth_settings, emulator):
    started = start(manager_client)
    query = authorize(emulator, started.url)
    with override_settings(OMNISEND={**oauth_settings, "TOKEN_URL": "http://127.0.0.1:9/t"}):
        response = finish(manager_client, query)
    assert response.status_code == 400
    assert_nothing_stored(emulator)


# -- denial -----------------------------------------------------------------------------------


def test_access_denied_in_the_emulator(manager_client, oauth_settings, emulator):
    import requests

    started = start(manager_client)
    emulator.configure(auto_deny=True)
    answer = requests.get(started.url, allow_redirects=False, timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert query["error"] == "access_denied"
    response = finish(manager_client, query)
    assert response.status_code == 200
    assert "not approved" in response.content.decode()
    assert_nothing_stored(emulator, manager_client, started.state)


def test_access_denied_description_is_escaped_and_capped(manager_client, oauth_settings, emulator):
    """T-OA-16."""
    started = start(manager_client)
    description = "<script>alert(1)</script>" + "x" * 1000
    response = finish(
        manager_client,
        {"error": "access_denied", "error_description": description, "state": started.state},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x" * 300 not in html
    assert response["Referrer-Policy"] == "no-referrer"
    assert_nothing_stored(emulator, manager_client, started.state)


def test_other_error_from_omnisend(manager_client, oauth_settings, emulator):
    started = start(manager_client)
    response = finish(
        manager_client,
        {"error": "<b>server_error</b>", "error_description": "boom", "state": started.state},
    )
    assert response.status_code == 400
    assert "<b>server_error" not in response.content.decode()
    assert_nothing_stored(emulator)


def test_error_without_valid_state_is_400(manager_client, oauth_settings, emulator):
    response = finish(manager_client, {"error": "access_denied", "state": "nope"})
    assert response.status_code == 400


def test_session_cookie_samesite_lax_keeps_the_session(oauth_settings, manager, emulator):
    """T-OA-26: the callback is a top-level GET, so Lax (Django's default) cookies arrive."""
    from django.conf import settings

    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    client = Client()
    client.force_login(manager)
    assert connect(client, emulator).status_code == 302


def test_callback_catches_its_own_errors(manager_client, oauth_settings, emulator, caplog):
    """T-OA-25: a failing receiver must not turn into a 500 with request.GET in the report."""
    from django_omnisend.signals import connected

    def broken(**kwargs):
        raise RuntimeError("receiver exploded")

    connected.connect(broken)
    try:
        started = start(manager_client)
        query = authorize(emulator, started.url)
        response = finish(manager_client, query)
    finally:
        connected.disconnect(broken)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert Connection.objects.count() == 0  # rolled back
    assert query["code"] not in caplog.text
    assert "django.request" not in {r.name for r in caplog.records if r.levelname == "ERROR"}

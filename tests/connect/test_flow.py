"""The connect and callback views against the emulator: state, users, URLs, redirects, headers.

IDs refer to the OAuth checklist in SECURITY-RELIABILITY.md §1.2 (T-OA-xx). Every test runs
for the site's own connection and for a shop's (an owner's, ``flow_kind="owner"``): the
``flow`` fixture gives the URLs, the user allowed to manage the connection and the owner.
"""

from __future__ import annotations

import base64
import hashlib
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.messages import get_messages
from django.test import Client, override_settings

from django_omnisend.connect import owners, views
from django_omnisend.models import Connection

from .conftest import (
    CALLBACK_URL,
    REDIRECT_URI,
    authorize,
    each_flow,
    finish,
    form,
    make_manager,
    token_requests,
)

pytestmark = [pytest.mark.django_db, each_flow]


def assert_nothing_stored(emulator, client=None, state=None):
    assert Connection.objects.count() == 0
    assert token_requests(emulator) == []
    if client is not None and state is not None:
        assert state not in (client.session.get("omnisend_oauth") or {})


# -- connect --------------------------------------------------------------------------------


def test_get_connect_shows_a_post_form_and_starts_nothing(flow, oauth_settings, emulator):
    """T-OA-07: a GET never starts the flow."""
    response = flow.client.get(flow.connect_url)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'method="post"' in html and "csrfmiddlewaretoken" in html
    assert "omnisend_oauth" not in flow.client.session
    assert "Location" not in response
    assert emulator.ledger_for("/oauth2") == []


def test_connect_post_needs_a_csrf_token(flow, oauth_settings, emulator):
    client = flow.client_for(flow.user, enforce_csrf_checks=True)
    assert client.post(flow.connect_url).status_code == 403
    assert "omnisend_oauth" not in client.session
    page = client.get(flow.connect_url)
    token = page.context["csrf_token"]
    response = client.post(flow.connect_url, {"csrfmiddlewaretoken": str(token)})
    assert response.status_code == 302
    assert response["Location"].startswith(oauth_settings["AUTHORIZE_URL"])


def test_other_methods_are_refused(flow, oauth_settings):
    assert flow.client.put(flow.connect_url).status_code == 405
    assert flow.client.post(CALLBACK_URL).status_code == 405


@pytest.mark.parametrize(
    "who", ["anonymous", "non_staff", "staff_without_permission", "site_manager", "outsider"]
)
def test_connect_and_callback_refuse_users_who_may_not_connect(
    who, flow, django_user_model, oauth_settings, emulator
):
    """T-OA-06: login redirect or 403, no state, no token request.

    The site's connection sends anonymous and non-staff users to the admin login; a shop's
    sends anonymous users to LOGIN_URL and refuses everybody but its own staff with 403 (the
    site's managers and the other shop's staff included).
    """
    client = Client()
    if who in ("non_staff", "staff_without_permission"):
        user = django_user_model.objects.create_user(who, password="pw")
        user.is_staff = who == "staff_without_permission"
        user.save()
        client.force_login(user)
    elif who == "site_manager":
        client.force_login(make_manager(django_user_model, "site_manager"))
    elif who == "outsider":
        client.force_login(flow.outsider)
    may_manage = flow.kind == "site" and who in ("site_manager", "outsider")
    for method in (client.get, client.post):
        response = method(flow.connect_url)
        if may_manage:  # the site's managers may: the control case
            assert response.status_code == (200 if method == client.get else 302)
        elif who == "anonymous" or (flow.kind == "site" and who == "non_staff"):
            assert response.status_code == 302
            assert response["Location"].startswith(flow.login_prefix)
        else:
            assert response.status_code == 403
    if may_manage:
        return
    assert "omnisend_oauth" not in client.session
    response = client.get(CALLBACK_URL, {"code": "c0de", "state": "x" * 43})
    assert response.status_code in (400, 403)
    assert "c0de" not in response.get("Location", "")
    assert_nothing_stored(emulator)


def test_authorize_url_contents(flow, oauth_settings, emulator):
    """T-OA-08."""
    started = flow.start()
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
    assert started.record["next"] == flow.default_next
    assert started.record["owner"] == owners.owner_key(flow.owner)
    for key in ("user_id", "authorize_url", "token_url", "created_at"):
        assert key in started.record
    assert started.response["Cache-Control"].find("no-store") >= 0


def test_states_of_several_tabs_coexist(flow, oauth_settings, emulator):
    first = flow.start()
    second = flow.start()
    assert first.state != second.state
    assert set(flow.client.session["omnisend_oauth"]) == {first.state, second.state}
    # Finish the first tab; the second one still works afterwards.
    assert flow.finish(authorize(emulator, first.url)).status_code == 302
    response = flow.finish(authorize(emulator, second.url))
    assert response.status_code == 302
    assert Connection.objects.count() == 1


def test_full_connect_stores_an_active_connection(flow, oauth_settings, emulator):
    from django_omnisend.signals import connected

    seen = []

    def receiver(sender, connection, user, owner=None, **kwargs):
        seen.append((sender, connection.pk, user, owner))

    connected.connect(receiver)
    try:
        response = flow.connect(emulator)
    finally:
        connected.disconnect(receiver)
    assert response.status_code == 302
    assert response["Location"] == flow.default_next
    connection = Connection.objects.get()
    assert connection.status == Connection.Status.ACTIVE
    assert connection.auth_type == Connection.AuthType.OAUTH
    assert connection.brand_id == emulator.default_brand_id
    assert connection.brand_name
    assert set(connection.scopes) >= {"contacts.read", "contacts.write", "events.write"}
    assert connection.connected_by == flow.user
    assert connection.owner == flow.owner
    assert flow.rows().get() == connection
    assert connection.access_token and connection.fingerprint
    assert connection.checked_at is not None
    assert seen == [(Connection, connection.pk, flow.user, flow.owner)]
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    assert any("Connected to the Omnisend brand" in m for m in shown), shown


def test_token_request_body(flow, oauth_settings, emulator):
    """T-OA-09: form POST with the verifier, the same redirect URI, the secret in the body."""
    started = flow.start()
    query = authorize(emulator, started.url)
    assert flow.finish(query).status_code == 302
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


def test_server_enforcing_pkce_rejects_a_tampered_verifier(flow, oauth_settings, emulator):
    """T-OA-11."""
    emulator.configure(require_pkce=True)
    started = flow.start()
    query = authorize(emulator, started.url)
    session = flow.client.session
    session["omnisend_oauth"][started.state]["verifier"] = "x" * 64
    session.save()
    response = flow.finish(query)
    assert response.status_code == 400
    assert Connection.objects.count() == 0
    (entry,) = token_requests(emulator)
    assert entry.status == 400


def test_server_enforcing_pkce_accepts_the_right_verifier(flow, oauth_settings, emulator):
    emulator.configure(require_pkce=True)
    assert flow.connect(emulator).status_code == 302
    assert Connection.objects.filter(status="active").count() == 1


def test_spoofed_host_does_not_change_the_redirect_uri(flow, oauth_settings, emulator):
    """T-OA-12."""
    with override_settings(ALLOWED_HOSTS=["*"], USE_X_FORWARDED_HOST=True):
        started = flow.start(HTTP_HOST="evil.example", HTTP_X_FORWARDED_HOST="evil.example")
    assert started.query["redirect_uri"] == REDIRECT_URI
    assert started.record["redirect_uri"] == REDIRECT_URI


def test_redirect_uri_is_derived_from_the_request_only_in_debug(flow, oauth_settings):
    values = {**oauth_settings, "REDIRECT_URI": ""}
    with override_settings(OMNISEND=values, DEBUG=False):
        response = flow.client.post(flow.connect_url)
        assert response.status_code == 400
        assert "REDIRECT_URI" in response.content.decode()
    with override_settings(OMNISEND=values, DEBUG=True):
        started = flow.start()
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
def test_next_never_leaves_the_site(next_url, flow, oauth_settings, emulator):
    """T-OA-13: the final redirect stays on site (the admin list)."""
    response = flow.connect(emulator, next_url=next_url)
    assert response.status_code == 302
    location = response["Location"]
    parts = urlsplit(location)
    assert not parts.scheme and not parts.netloc
    assert location.startswith("/") and not location.startswith(("//", "/\\"))
    assert "evil" not in location.replace("%", "")


def test_on_site_next_is_honoured(flow, oauth_settings, emulator):
    response = flow.connect(emulator, next_url="/admin/?from=connect")
    assert response["Location"] == "/admin/?from=connect"


def test_next_on_the_callback_is_ignored(flow, oauth_settings, emulator):
    """T-OA-14."""
    started = flow.start()
    query = authorize(emulator, started.url)
    response = flow.finish({**query, "next": "https://evil.com/"})
    assert response.status_code == 302
    assert response["Location"] == flow.default_next


def test_callback_response_headers(flow, oauth_settings, emulator):
    """T-OA-15."""
    started = flow.start()
    query = authorize(emulator, started.url)
    response = flow.finish(query)
    assert response.status_code == 302
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]
    assert query["code"] not in response["Location"]
    assert "code=" not in response["Location"] and "state=" not in response["Location"]
    # Error pages carry them too.
    response = flow.finish(query)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert "no-store" in response["Cache-Control"]


# -- state ----------------------------------------------------------------------------------


def test_missing_state(flow, oauth_settings, emulator):
    """T-OA-01."""
    started = flow.start()
    query = authorize(emulator, started.url)
    response = flow.finish({"code": query["code"]})
    assert response.status_code == 400
    assert_nothing_stored(emulator)


def test_unknown_state(flow, oauth_settings, emulator):
    """T-OA-02: forged, from another browser, or never issued."""
    started = flow.start()
    query = authorize(emulator, started.url)
    other = flow.client_for(flow.user)
    response = finish(other, query)  # another browser: its session has no such state
    assert response.status_code == 400
    response = flow.finish({**query, "state": "A" * 43})
    assert response.status_code == 400
    assert_nothing_stored(emulator)


def test_replayed_state(flow, oauth_settings, emulator):
    """T-OA-03: one time only."""
    started = flow.start()
    query = authorize(emulator, started.url)
    assert flow.finish(query).status_code == 302
    assert len(token_requests(emulator)) == 1
    response = flow.finish(query)
    assert response.status_code == 400
    assert len(token_requests(emulator)) == 1


def test_expired_state(flow, oauth_settings, emulator, monkeypatch):
    """T-OA-04: older than ten minutes."""
    started = flow.start()
    query = authorize(emulator, started.url)
    now = time.time()
    monkeypatch.setattr(views.time, "time", lambda: now + views.STATE_TTL + 60)
    response = flow.finish(query)
    assert response.status_code == 400
    assert "expired" in response.content.decode()
    assert_nothing_stored(emulator, flow.client, started.state)


def test_state_of_another_user(flow, oauth_settings, emulator):
    """T-OA-05: a state started by A, completed by B (same browser session) -> 403.

    For a shop: started by shop A's staff, completed by shop B's staff.
    """
    started = flow.start()
    query = authorize(emulator, started.url)
    other = flow.outsider
    session = flow.client.session
    session["_auth_user_id"] = str(other.pk)
    session["_auth_user_hash"] = other.get_session_auth_hash()
    session.save()
    response = flow.finish(query)
    assert response.status_code == 403
    assert_nothing_stored(emulator, flow.client, started.state)


def test_wrong_issuer_aborts(flow, oauth_settings, emulator):
    """T-OA-23."""
    started = flow.start()
    query = authorize(emulator, started.url)
    response = flow.finish({**query, "iss": "https://evil.example"})
    assert response.status_code == 400
    assert_nothing_stored(emulator, flow.client, started.state)


def test_right_issuer_is_accepted(flow, oauth_settings, emulator):
    started = flow.start()
    query = authorize(emulator, started.url)
    query.setdefault("iss", emulator.base_url)
    assert flow.finish(query).status_code == 302


def test_changed_endpoints_abort(flow, oauth_settings, emulator):
    started = flow.start()
    query = authorize(emulator, started.url)
    with override_settings(OMNISEND={**oauth_settings, "TOKEN_URL": "http://127.0.0.1:9/t"}):
        response = flow.finish(query)
    assert response.status_code == 400
    assert_nothing_stored(emulator)


# -- denial -----------------------------------------------------------------------------------


def test_access_denied_in_the_emulator(flow, oauth_settings, emulator):
    import requests

    started = flow.start()
    emulator.configure(auto_deny=True)
    answer = requests.get(started.url, allow_redirects=False, timeout=10)
    query = {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}
    assert query["error"] == "access_denied"
    response = flow.finish(query)
    assert response.status_code == 200
    assert "not approved" in response.content.decode()
    assert_nothing_stored(emulator, flow.client, started.state)


def test_access_denied_description_is_escaped_and_capped(flow, oauth_settings, emulator):
    """T-OA-16."""
    started = flow.start()
    description = "<script>alert(1)</script>" + "x" * 1000
    response = flow.finish(
        {"error": "access_denied", "error_description": description, "state": started.state},
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "x" * 300 not in html
    assert response["Referrer-Policy"] == "no-referrer"
    assert_nothing_stored(emulator, flow.client, started.state)


def test_other_error_from_omnisend(flow, oauth_settings, emulator):
    started = flow.start()
    response = flow.finish(
        {"error": "<b>server_error</b>", "error_description": "boom", "state": started.state},
    )
    assert response.status_code == 400
    assert "<b>server_error" not in response.content.decode()
    assert_nothing_stored(emulator)


def test_error_without_valid_state_is_400(flow, oauth_settings, emulator):
    response = flow.finish({"error": "access_denied", "state": "nope"})
    assert response.status_code == 400


def test_session_cookie_samesite_lax_keeps_the_session(flow, oauth_settings, emulator):
    """T-OA-26: the callback is a top-level GET, so Lax (Django's default) cookies arrive."""
    from django.conf import settings

    assert settings.SESSION_COOKIE_SAMESITE == "Lax"
    client = flow.client_for(flow.user)
    assert (
        flow.finish(authorize(emulator, flow.start(client=client).url), client).status_code == 302
    )


def test_callback_catches_its_own_errors(flow, oauth_settings, emulator, caplog):
    """T-OA-25: a failing receiver must not turn into a 500 with request.GET in the report."""
    from django_omnisend.signals import connected

    def broken(**kwargs):
        raise RuntimeError("receiver exploded")

    connected.connect(broken)
    try:
        started = flow.start()
        query = authorize(emulator, started.url)
        response = flow.finish(query)
    finally:
        connected.disconnect(broken)
    assert response.status_code == 400
    assert response["Referrer-Policy"] == "no-referrer"
    assert Connection.objects.count() == 0  # rolled back
    assert query["code"] not in caplog.text
    assert "django.request" not in {r.name for r in caplog.records if r.levelname == "ERROR"}


def test_error_pages_lead_back_to_where_the_flow_started(flow, oauth_settings, emulator):
    """T-OA-16/17 messages for a shop's staff too: they cannot use the admin, so a cancelled
    or failed connection says to start again where they were, and links back there."""
    back = "/admin/?from=connect" if flow.kind == "site" else "/shops/mine/"
    answers = [
        {"error": "access_denied", "error_description": "No."},
        {"error": "server_error"},
        {},  # no code at all
    ]
    for answer in answers:
        started = flow.start(next_url=back)
        response = flow.finish({**answer, "state": started.state})
        html = response.content.decode()
        assert response.status_code in (200, 400), answer
        assert f'href="{back}"' in html, answer
        if flow.kind == "owner":
            assert "from the admin" not in html, answer
            assert 'href="/admin/django_omnisend/' not in html, answer  # no admin breadcrumbs
    assert_nothing_stored(emulator)

"""The OAuth server over real HTTP: consent page, codes, PKCE, token grants, revoke, metadata."""

from __future__ import annotations

import base64
import hashlib
import secrets
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlsplit

import pytest

from django_omnisend.emulator import ALL_SCOPES

SCOPE = "contacts.read contacts.write events.write brands.read"


class FormParser(HTMLParser):
    """Collects the consent form's action, hidden inputs, submit buttons and selects."""

    def __init__(self) -> None:
        super().__init__()
        self.action = None
        self.fields: dict[str, str] = {}
        self.buttons: dict[str, tuple[str, str]] = {}
        self.selects: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        elif tag == "input" and a.get("type") == "hidden":
            self.fields[a["name"]] = a.get("value", "")
        elif tag == "button":
            self.buttons[a.get("id")] = (a["name"], a["value"])
        elif tag == "select":
            self.selects.append(a["name"])


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    return verifier, challenge


def authorize_params(emulator, **extra):
    params = {
        "response_type": "code",
        "client_id": emulator.demo_client_id,
        "redirect_uri": emulator.demo_redirect_uris[0],
        "scope": SCOPE,
        "state": "st-123",
    }
    params.update(extra)
    return {k: v for k, v in params.items() if v is not None}


def query_of(response) -> dict[str, str]:
    assert response.status_code == 302, response.text[:300]
    return {k: v[0] for k, v in parse_qs(urlsplit(response.headers["Location"]).query).items()}


def consent(http, emulator, decision: str, **extra):
    page = http.get(
        emulator.authorize_url, params=authorize_params(emulator, **extra), allow_redirects=False
    )
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    form = FormParser()
    form.feed(page.text)
    name, value = form.buttons[decision]
    return (
        http.post(form.action, data={**form.fields, name: value}, allow_redirects=False),
        page,
        form,
    )


def get_code(http, emulator, **extra) -> str:
    response, _, _ = consent(http, emulator, "approve", **extra)
    return query_of(response)["code"]


def exchange(http, emulator, code, **extra):
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": emulator.demo_redirect_uris[0],
        "client_id": emulator.demo_client_id,
        "client_secret": emulator.demo_client_secret,
    }
    data.update(extra)
    return http.post(emulator.token_url, data={k: v for k, v in data.items() if v is not None})


def test_metadata_is_rfc8414_with_own_urls(emulator, http):
    meta = http.get(emulator.base_url + "/.well-known/oauth-authorization-server").json()
    assert meta["issuer"] == emulator.base_url
    assert meta["authorization_endpoint"] == emulator.authorize_url
    assert meta["token_endpoint"] == emulator.token_url
    assert meta["revocation_endpoint"] == emulator.revoke_url
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert "client_secret_basic" in meta["token_endpoint_auth_methods_supported"]
    assert http.get(meta["jwks_uri"]).json() == {"keys": []}


def test_consent_page_approve_redirects_with_code_and_state(emulator, http):
    response, page, form = consent(http, emulator, "approve")
    for scope in SCOPE.split():
        assert scope in page.text
    assert (
        emulator.demo_redirect_uris[0] in page.text
        and "Approve" in page.text
        and "Deny" in page.text
    )
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Frame-Options"] == "DENY"
    assert form.action == emulator.authorize_url
    location = response.headers["Location"]
    assert location.startswith(emulator.demo_redirect_uris[0] + "?")
    query = query_of(response)
    assert set(query) == {"code", "state"} and query["state"] == "st-123"
    token = exchange(http, emulator, query["code"])
    assert token.status_code == 200 and token.headers["Cache-Control"] == "no-store"
    body = token.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 9223372036
    assert body["scope"] == SCOPE and body["access_token"] and body["refresh_token"]
    brand = http.get(
        emulator.api_url + "/brands/current",
        headers={
            "Authorization": f"Bearer {body['access_token']}",
            "Omnisend-Version": "2026-03-15",
        },
    )
    assert brand.json()["brandID"] == emulator.default_brand_id


def test_consent_page_deny(emulator, http):
    response, _, _ = consent(http, emulator, "deny")
    query = query_of(response)
    assert query["error"] == "access_denied" and query["state"] == "st-123" and "code" not in query


def test_consent_page_escapes_and_is_single_use(emulator, http):
    emulator.add_client(
        "evil", "s", ["http://127.0.0.1:8000/cb?x=<b>"], name="<script>alert(1)</script>"
    )
    page = http.get(
        emulator.authorize_url,
        params={
            "response_type": "code",
            "client_id": "evil",
            "redirect_uri": "http://127.0.0.1:8000/cb?x=<b>",
            "scope": "contacts.read",
        },
    )
    assert "<script>alert(1)</script>" not in page.text and "&lt;script&gt;" in page.text
    form = FormParser()
    form.feed(page.text)
    first = http.post(
        form.action, data={**form.fields, "decision": "approve"}, allow_redirects=False
    )
    assert first.status_code == 302 and first.headers["Location"].startswith(
        "http://127.0.0.1:8000/cb?x=<b>&code="
    )
    again = http.post(
        form.action, data={**form.fields, "decision": "approve"}, allow_redirects=False
    )
    assert again.status_code == 400


def test_brand_choice_on_the_consent_page(emulator, http):
    other = emulator.add_brand(name="Second brand")
    page = http.get(emulator.authorize_url, params=authorize_params(emulator))
    form = FormParser()
    form.feed(page.text)
    assert form.selects == ["brand_id"]
    response = http.post(
        form.action,
        data={**form.fields, "decision": "approve", "brand_id": other["brandID"]},
        allow_redirects=False,
    )
    token = exchange(http, emulator, query_of(response)["code"]).json()
    brand = http.get(
        emulator.api_url + "/brands/current",
        headers={
            "Authorization": f"Bearer {token['access_token']}",
            "Omnisend-Version": "2026-03-15",
        },
    ).json()
    assert brand["brandID"] == other["brandID"]


def test_auto_approve_and_auto_deny(emulator, http):
    emulator.configure(auto_approve=True)
    response = http.get(
        emulator.authorize_url, params=authorize_params(emulator), allow_redirects=False
    )
    assert set(query_of(response)) == {"code", "state"}
    emulator.configure(auto_approve=False, auto_deny=True)
    response = http.get(
        emulator.authorize_url, params=authorize_params(emulator), allow_redirects=False
    )
    assert query_of(response)["error"] == "access_denied"


@pytest.mark.parametrize(
    "change",
    [
        {"client_id": "unknown"},
        {"redirect_uri": "http://127.0.0.1:8000/omnisend/callback"},  # not exact (no slash)
        {"redirect_uri": "https://evil.example/cb"},
    ],
)
def test_untrusted_client_or_redirect_never_redirects(emulator, http, change):
    response = http.get(
        emulator.authorize_url, params=authorize_params(emulator, **change), allow_redirects=False
    )
    assert response.status_code == 400 and "Location" not in response.headers
    assert response.headers["Content-Type"].startswith("text/html")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"response_type": None}, "invalid_request"),
        ({"scope": "contacts.read contacts.delete"}, "invalid_scope"),
        ({"code_challenge": "x" * 43, "code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "x" * 43}, "invalid_request"),
        ({"code_challenge": "short", "code_challenge_method": "S256"}, "invalid_request"),
    ],
)
def test_authorize_errors_redirect_with_state(emulator, http, change, error):
    response = http.get(
        emulator.authorize_url, params=authorize_params(emulator, **change), allow_redirects=False
    )
    query = query_of(response)
    assert query["error"] == error and query["state"] == "st-123"


def test_scopes_parameter_is_tolerated_and_client_scopes_enforced(emulator, http):
    emulator.configure(auto_approve=True)
    response = http.get(
        emulator.authorize_url,
        params=authorize_params(emulator, scope=None, scopes="contacts.read"),
        allow_redirects=False,
    )
    token = exchange(http, emulator, query_of(response)["code"]).json()
    assert token["scope"] == "contacts.read"
    emulator.add_client("narrow", "s", ["http://127.0.0.1:8000/cb"], scopes=["contacts.read"])
    response = http.get(
        emulator.authorize_url,
        params={"response_type": "code", "client_id": "narrow", "scope": "contacts.write"},
        allow_redirects=False,
    )
    assert query_of(response)["error"] == "invalid_scope"  # single registered URI is the default


def test_pkce_s256(emulator, http):
    emulator.configure(auto_approve=True)
    verifier, challenge = pkce()
    params = {"code_challenge": challenge, "code_challenge_method": "S256"}
    code = query_of(
        http.get(
            emulator.authorize_url,
            params=authorize_params(emulator, **params),
            allow_redirects=False,
        )
    )["code"]
    assert exchange(http, emulator, code, code_verifier=verifier).status_code == 200
    for bad in (None, pkce()[0], "short"):
        code = query_of(
            http.get(
                emulator.authorize_url,
                params=authorize_params(emulator, **params),
                allow_redirects=False,
            )
        )["code"]
        response = exchange(http, emulator, code, code_verifier=bad)
        assert response.status_code == 400 and response.json()["error"] == "invalid_grant"
    code = query_of(
        http.get(emulator.authorize_url, params=authorize_params(emulator), allow_redirects=False)
    )["code"]
    assert exchange(http, emulator, code, code_verifier=verifier).json()["error"] == "invalid_grant"


def test_require_pkce_switch(emulator, http):
    emulator.configure(auto_approve=True, require_pkce=True)
    response = http.get(
        emulator.authorize_url, params=authorize_params(emulator), allow_redirects=False
    )
    assert query_of(response)["error"] == "invalid_request"
    verifier, challenge = pkce()
    response = http.get(
        emulator.authorize_url,
        params=authorize_params(emulator, code_challenge=challenge, code_challenge_method="S256"),
        allow_redirects=False,
    )
    assert (
        exchange(http, emulator, query_of(response)["code"], code_verifier=verifier).status_code
        == 200
    )


def test_code_is_single_use_and_reuse_revokes_its_tokens(emulator, http):
    code = get_code(http, emulator)
    token = exchange(http, emulator, code).json()
    replay = exchange(http, emulator, code)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    headers = {"Authorization": f"Bearer {token['access_token']}", "Omnisend-Version": "2026-03-15"}
    assert http.get(emulator.api_url + "/brands/current", headers=headers).status_code == 401


def test_code_expires(emulator, http):
    emulator.configure(code_ttl=5)
    code = get_code(http, emulator)
    emulator.advance_clock(6)
    assert exchange(http, emulator, code).json()["error"] == "invalid_grant"


def test_code_is_bound_to_client_and_redirect_uri(emulator, http):
    emulator.add_client("other", "other-secret", emulator.demo_redirect_uris)
    code = get_code(http, emulator)
    stolen = exchange(http, emulator, code, client_id="other", client_secret="other-secret")
    assert stolen.json()["error"] == "invalid_grant"
    code = get_code(http, emulator)
    moved = exchange(http, emulator, code, redirect_uri=emulator.demo_redirect_uris[1])
    assert moved.json()["error"] == "invalid_grant"


def test_client_authentication(emulator, http):
    code = get_code(http, emulator)
    basic = http.post(
        emulator.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": emulator.demo_redirect_uris[0],
        },
        auth=(emulator.demo_client_id, emulator.demo_client_secret),
    )
    assert basic.status_code == 200
    wrong_basic = http.post(
        emulator.token_url,
        data={"grant_type": "authorization_code", "code": "x"},
        auth=(emulator.demo_client_id, "wrong"),
    )
    assert wrong_basic.status_code == 401 and wrong_basic.json()["error"] == "invalid_client"
    assert wrong_basic.headers["WWW-Authenticate"].startswith("Basic")
    wrong_post = exchange(http, emulator, "x", client_secret="wrong")
    assert wrong_post.status_code == 400 and wrong_post.json()["error"] == "invalid_client"
    both = http.post(
        emulator.token_url,
        data={"grant_type": "authorization_code", "code": "x", "client_secret": "s"},
        auth=(emulator.demo_client_id, emulator.demo_client_secret),
    )
    assert both.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"grant_type": "password"}, "unsupported_grant_type"),
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "nope"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "refresh_token", "refresh_token": "nope"}, "invalid_grant"),
    ],
)
def test_token_endpoint_errors(emulator, http, data, error):
    response = http.post(
        emulator.token_url,
        data={
            **data,
            "client_id": emulator.demo_client_id,
            "client_secret": emulator.demo_client_secret,
        },
    )
    assert response.status_code == 400 and response.json()["error"] == error
    assert set(response.json()) == {"error", "error_description"}


def test_refresh_grant_without_and_with_rotation(emulator, http):
    token = exchange(http, emulator, get_code(http, emulator)).json()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": emulator.demo_client_id,
        "client_secret": emulator.demo_client_secret,
    }
    refreshed = http.post(emulator.token_url, data=form).json()
    assert refreshed["access_token"] != token["access_token"] and "refresh_token" not in refreshed
    assert refreshed["scope"] == SCOPE
    narrower = http.post(emulator.token_url, data={**form, "scope": "contacts.read"}).json()
    assert narrower["scope"] == "contacts.read"
    assert (
        http.post(emulator.token_url, data={**form, "scope": "brands.write"}).json()["error"]
        == "invalid_scope"
    )
    emulator.configure(rotate_refresh_tokens=True)
    rotated = http.post(emulator.token_url, data=form).json()
    assert rotated["refresh_token"] != token["refresh_token"]
    assert http.post(emulator.token_url, data=form).json()["error"] == "invalid_grant"
    assert (
        http.post(
            emulator.token_url, data={**form, "refresh_token": rotated["refresh_token"]}
        ).status_code
        == 200
    )


def test_reused_rotated_refresh_token_revokes_the_grant(emulator, http):
    """With reuse detection on, a stale refresh token kills every token of its grant."""
    emulator.configure(rotate_refresh_tokens=True, refresh_reuse_revokes_grant=True)
    token = exchange(http, emulator, get_code(http, emulator)).json()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": token["refresh_token"],
        "client_id": emulator.demo_client_id,
        "client_secret": emulator.demo_client_secret,
    }
    rotated = http.post(emulator.token_url, data=form).json()
    headers = {
        "Authorization": f"Bearer {rotated['access_token']}",
        "Omnisend-Version": "2026-03-15",
    }
    assert http.get(emulator.api_url + "/brands/current", headers=headers).status_code == 200
    assert http.post(emulator.token_url, data=form).json()["error"] == "invalid_grant"
    assert http.get(emulator.api_url + "/brands/current", headers=headers).status_code == 401
    again = {**form, "refresh_token": rotated["refresh_token"]}
    assert http.post(emulator.token_url, data=again).json()["error"] == "invalid_grant"


def test_revoke(emulator, http):
    token = exchange(http, emulator, get_code(http, emulator)).json()
    creds = {"client_id": emulator.demo_client_id, "client_secret": emulator.demo_client_secret}
    headers = {"Authorization": f"Bearer {token['access_token']}", "Omnisend-Version": "2026-03-15"}
    assert http.post(emulator.revoke_url, data={"token": "unknown", **creds}).status_code == 200
    assert (
        http.post(emulator.revoke_url, data={"token": token["access_token"], **creds}).status_code
        == 200
    )
    assert http.get(emulator.api_url + "/brands/current", headers=headers).status_code == 401
    revoked = http.post(
        emulator.revoke_url,
        data={"token": token["refresh_token"], "token_type_hint": "refresh_token"},
        auth=(emulator.demo_client_id, emulator.demo_client_secret),
    )
    assert revoked.status_code == 200
    refresh = http.post(
        emulator.token_url,
        data={"grant_type": "refresh_token", "refresh_token": token["refresh_token"], **creds},
    )
    assert refresh.json()["error"] == "invalid_grant"
    assert (
        http.post(
            emulator.revoke_url, data={"token": "x", "client_id": "nope", "client_secret": "x"}
        ).status_code
        == 400
    )
    assert http.post(emulator.revoke_url, data=creds).json()["error"] == "invalid_request"


def test_revoking_a_refresh_token_revokes_its_access_tokens(emulator, http):
    token = emulator.issue_token()
    emulator.revoke_token(token["refresh_token"])
    headers = {"Authorization": f"Bearer {token['access_token']}", "Omnisend-Version": "2026-03-15"}
    assert http.get(emulator.api_url + "/brands/current", headers=headers).status_code == 401


def test_dynamic_registration(emulator, http):
    created = http.post(
        emulator.base_url + "/oauth2/register",
        json={
            "client_name": "Shop",
            "redirect_uris": ["https://shop.example/cb"],
            "scope": "contacts.read",
        },
    )
    assert created.status_code == 201
    body = created.json()
    assert (
        body["client_id"]
        and body["client_secret"]
        and body["redirect_uris"] == ["https://shop.example/cb"]
    )
    bad = http.post(emulator.base_url + "/oauth2/register", json={"client_name": "x"})
    # RFC 7591 §3.2.2: missing redirect URIs are an invalid_redirect_uri error.
    assert bad.status_code == 400 and bad.json()["title"] == "invalid_redirect_uri"


def test_issue_token_defaults(emulator):
    token = emulator.issue_token()
    assert token["scope"].split() == list(ALL_SCOPES) and token["token_type"] == "Bearer"

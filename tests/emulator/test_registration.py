"""``POST /oauth2/register`` over real HTTP: RFC 7591 validation, the 201 answer, and that the
registered client then works for authorize and token with its exact redirect URI."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from .test_oauth import pkce

REDIRECT = "https://shop.example/omnisend/callback/"


def register(http, emulator, **overrides):
    body = {
        "client_name": "Shop",
        "client_uri": "https://shop.example/",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": "contacts.read contacts.write",
        "token_endpoint_auth_method": "client_secret_post",
    }
    body.update(overrides)
    body = {k: v for k, v in body.items() if v is not None}
    return http.post(emulator.base_url + "/oauth2/register", json=body)


def test_registration_answers_201_with_credentials_and_echoed_metadata(emulator, http):
    response = register(http, emulator)
    assert response.status_code == 201, response.text
    assert response.headers["Cache-Control"] == "no-store"
    body = response.json()
    assert body["client_id"] and body["client_secret"]
    assert isinstance(body["client_id_issued_at"], int)
    assert abs(body["client_id_issued_at"] - emulator.clock()) < 5
    assert body["client_secret_expires_at"] == 0
    assert body["client_name"] == "Shop"
    assert body["client_uri"] == "https://shop.example/"
    assert body["redirect_uris"] == [REDIRECT]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["scope"] == "contacts.read contacts.write"
    assert body["token_endpoint_auth_method"] == "client_secret_post"


def test_registration_defaults_follow_rfc_7591(emulator, http):
    """Omitted grant_types/response_types/auth method take RFC 7591 §2's defaults."""
    response = register(
        http, emulator, grant_types=None, response_types=None, token_endpoint_auth_method=None
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["grant_types"] == ["authorization_code"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "client_secret_basic"


@pytest.mark.parametrize(
    "uris",
    [
        None,  # missing
        [],
        "https://shop.example/cb",  # not a list
        ["/omnisend/callback/"],  # relative
        ["shop.example/cb"],  # no scheme
        ["http://shop.example/cb"],  # plain http, not loopback
        ["https://shop.example/cb#frag"],  # fragment
        ["ftp://shop.example/cb"],
        ["https:///cb"],  # no host
        [REDIRECT, 7],
    ],
)
def test_bad_redirect_uris_are_invalid_redirect_uri(emulator, http, uris):
    response = register(http, emulator, redirect_uris=uris)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_redirect_uri"
    assert body["error_description"]
    assert emulator.state.clients.keys() == {emulator.demo_client_id}


@pytest.mark.parametrize(
    "uri",
    [
        "http://127.0.0.1:8000/omnisend/callback/",
        "http://localhost/omnisend/callback/",
        "http://[::1]:9000/cb",
        "https://shop.example/cb?tenant=1",
    ],
)
def test_loopback_http_and_https_redirect_uris_are_accepted(emulator, http, uri):
    response = register(http, emulator, redirect_uris=[uri])
    assert response.status_code == 201, response.text
    assert response.json()["redirect_uris"] == [uri]


@pytest.mark.parametrize(
    "overrides",
    [
        {"grant_types": ["client_credentials"]},
        {"grant_types": ["implicit"], "response_types": ["token"]},
        {"grant_types": ["authorization_code"], "response_types": ["token"]},
        {"grant_types": ["refresh_token"], "response_types": ["code"]},  # code without its grant
        {"grant_types": "authorization_code"},  # not a list
        {"response_types": ["code", 1]},
        {"token_endpoint_auth_method": "private_key_jwt"},
        {"token_endpoint_auth_method": ""},
        {"scope": "contacts.read everything"},
        {"client_uri": "not a url"},
        {"client_name": ["Shop"]},
    ],
)
def test_bad_metadata_is_invalid_client_metadata(emulator, http, overrides):
    response = register(http, emulator, **overrides)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_client_metadata"
    assert body["title"] == "invalid_client_metadata"  # the shape Omnisend's plugin reads
    assert emulator.state.clients.keys() == {emulator.demo_client_id}


def test_body_that_is_not_a_json_object_is_refused(emulator, http):
    url = emulator.base_url + "/oauth2/register"
    for response in (
        http.post(url, data=b"not json", headers={"Content-Type": "application/json"}),
        http.post(url, json=[REDIRECT]),
    ):
        assert response.status_code == 400
        assert response.json()["error"] == "invalid_client_metadata"
    assert http.get(url).status_code == 405


def test_registered_client_works_for_authorize_and_token(emulator, http):
    body = register(http, emulator).json()
    emulator.configure(auto_approve=True)
    verifier, challenge = pkce()
    params = {
        "response_type": "code",
        "client_id": body["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "contacts.read contacts.write",
        "state": "s1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    response = http.get(emulator.authorize_url, params=params, allow_redirects=False)
    assert response.status_code == 302, response.text[:300]
    location = response.headers["Location"]
    assert location.startswith(REDIRECT)
    code = parse_qs(urlsplit(location).query)["code"][0]
    token = http.post(
        emulator.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": body["client_id"],
            "client_secret": body["client_secret"],
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "contacts.read contacts.write"
    # Only its exact redirect URI: another one, even on the same host, is refused.
    other = http.get(
        emulator.authorize_url,
        params={**params, "redirect_uri": REDIRECT + "other/"},
        allow_redirects=False,
    )
    assert other.status_code == 400
    # Scopes beyond the registered ones are refused.
    wider = http.get(
        emulator.authorize_url,
        params={**params, "scope": "contacts.read events.write"},
        allow_redirects=False,
    )
    assert parse_qs(urlsplit(wider.headers["Location"]).query)["error"] == ["invalid_scope"]


def test_public_client_registers_without_secret_and_must_use_pkce(emulator, http):
    """``token_endpoint_auth_method: none`` (advertised): no secret, PKCE instead."""
    body = register(http, emulator, token_endpoint_auth_method="none").json()
    assert "client_secret" not in body
    emulator.configure(auto_approve=True)
    params = {
        "response_type": "code",
        "client_id": body["client_id"],
        "redirect_uri": REDIRECT,
        "scope": "contacts.read",
        "state": "s1",
    }
    refused = http.get(emulator.authorize_url, params=params, allow_redirects=False)
    assert parse_qs(urlsplit(refused.headers["Location"]).query)["error"] == ["invalid_request"]
    verifier, challenge = pkce()
    params.update(code_challenge=challenge, code_challenge_method="S256")
    response = http.get(emulator.authorize_url, params=params, allow_redirects=False)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    token = http.post(
        emulator.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": body["client_id"],
            "code_verifier": verifier,
        },
    )
    assert token.status_code == 200, token.text

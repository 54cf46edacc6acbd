"""Token endpoint answers (T-OA-10, T-OA-17..20) and the brand probe (T-OA-21).

Every test runs for the site's connection and for a shop's (``flow``, see conftest.py).

Shapes a real server never sends come from the stub authorization server (a fake AS on
127.0.0.1); its access tokens are minted by the emulator, whose API answers the probe.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from django_omnisend.api import oauth, tokens
from django_omnisend.models import Connection

from .conftest import authorize, each_flow, token_requests

pytestmark = [pytest.mark.django_db, each_flow]

REQUESTED = ["contacts.read", "contacts.write", "events.write", "brands.read"]
CODE = "stub-code-6O-KEB2KNCWKT7YVFYTF9G"


def callback_with_stub(flow, stub):
    started = flow.start()
    response = flow.finish({"code": CODE, "state": started.state})
    return started, response


def assert_failed(response, stub, emulator):
    assert response.status_code == 400
    assert Connection.objects.count() == 0
    assert CODE not in response.content.decode()
    assert len(stub.requests_to("/token")) == 1
    assert emulator.ledger_for("/api/brands") == []  # no probe of a bad answer


MALFORMED = {
    "non_json": (200, b"<html>welcome</html>", {"Content-Type": "text/html"}),
    "empty_object": (200, b"{}", None),
    "json_list": (200, b'["access_token"]', None),
    "empty_token": (200, b'{"access_token": ""}', None),
    "token_not_a_string": (200, b'{"access_token": 12345}', None),
    "error_400": (400, b'{"error": "invalid_grant"}', None),
    "error_200": (200, b'{"error": "invalid_grant", "access_token": "zzz"}', None),
    "server_error": (500, b'{"access_token": "zzz"}', None),
    "unavailable": (503, b"", None),
    "mac_token": (200, b'{"access_token": "zzz", "token_type": "mac"}', None),
    "bad_scope_type": (200, b'{"access_token": "zzz", "scope": 5}', None),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_token_responses_store_nothing(case, flow, stub_token_settings, stub, emulator):
    status, body, headers = MALFORMED[case]
    kwargs = {"headers": headers} if headers else {}
    stub.respond("/token", status, body, **kwargs)
    _, response = callback_with_stub(flow, stub)
    assert_failed(response, stub, emulator)
    assert "Connecting Omnisend failed" in response.content.decode()


def test_token_timeout_stores_nothing(flow, stub_token_settings, stub, emulator, monkeypatch):
    monkeypatch.setattr(tokens, "TOKEN_TIMEOUT", (1.0, 0.3))
    stub.respond("/token", 200, {"access_token": "late"}, delay=1.0)
    _, response = callback_with_stub(flow, stub)
    assert_failed(response, stub, emulator)
    assert "did not answer in time" in response.content.decode()


def test_token_redirect_is_not_followed(flow, stub_token_settings, stub, emulator):
    stub.respond("/elsewhere", 200, {"access_token": "stolen"})
    stub.respond(
        "/token",
        302,
        b"",
        headers={"Location": stub.url.replace("127.0.0.1", "localhost") + "/elsewhere"},
    )
    _, response = callback_with_stub(flow, stub)
    assert_failed(response, stub, emulator)
    assert stub.requests_to("/elsewhere") == []


def test_emulator_token_endpoint_500(flow, oauth_settings, emulator):
    emulator.add_fault(route="POST /oauth2/token", kind="500")
    started = flow.start()
    response = flow.finish(authorize(emulator, started.url))
    assert response.status_code == 400
    assert Connection.objects.count() == 0
    assert len(token_requests(emulator)) == 1


def minted(emulator, scopes=None):
    return emulator.issue_token(scopes=scopes, client_id=emulator.demo_client_id)


def test_server_ignoring_pkce_still_works(flow, stub_token_settings, stub, emulator):
    """T-OA-10: the stub checks no verifier at all; the flow succeeds."""
    token = minted(emulator)
    stub.respond(
        "/token",
        200,
        {
            "access_token": token["access_token"],
            "token_type": "Bearer",
            "scope": " ".join(REQUESTED),
        },
    )
    started, response = callback_with_stub(flow, stub)
    assert response.status_code == 302, response.content[:400]
    (request,) = stub.requests_to("/token")
    assert request.form["code_verifier"] == started.record["verifier"]
    connection = flow.rows().get()
    assert connection.status == "active"
    assert connection.refresh_token == ""


def test_scope_absent_means_as_requested(flow, stub_token_settings, stub, emulator):
    """T-OA-18."""
    token = minted(emulator)
    stub.respond("/token", 200, {"access_token": token["access_token"]})
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 302
    assert flow.rows().get().scopes == REQUESTED


def test_narrower_scope_is_rejected(flow, stub_token_settings, stub, emulator):
    """T-OA-19: the message names the missing scopes."""
    token = minted(emulator)
    stub.respond(
        "/token", 200, {"access_token": token["access_token"], "scope": "contacts.read brands.read"}
    )
    _, response = callback_with_stub(flow, stub)
    assert_failed(response, stub, emulator)
    html = response.content.decode()
    assert "contacts.write" in html and "events.write" in html


def test_wider_scope_is_recorded(flow, stub_token_settings, stub, emulator):
    """T-OA-20."""
    token = minted(emulator)
    stub.respond(
        "/token",
        200,
        {"access_token": token["access_token"], "scope": " ".join([*REQUESTED, "products.read"])},
    )
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 302
    assert flow.rows().get().scopes == [*REQUESTED, "products.read"]
    # ...but never asked for.
    assert "products.read" not in flow.start().query["scope"]


def test_emulator_narrower_grant_is_rejected(flow, oauth_settings, emulator):
    """A client registered with fewer scopes than we need gets fewer: rejected by name."""
    emulator.add_client(
        emulator.demo_client_id,
        emulator.demo_client_secret,
        redirect_uris=[oauth_settings["REDIRECT_URI"]],
        scopes=["contacts.read", "contacts.write", "brands.read"],
    )
    started = flow.start()
    emulator.configure(auto_approve=True)
    import requests

    answer = requests.get(started.url, allow_redirects=False, timeout=10)
    location = answer.headers["Location"]
    from urllib.parse import parse_qs, urlsplit

    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    response = flow.finish(query)
    assert response.status_code in (200, 400)
    assert Connection.objects.count() == 0
    if "code" in query:
        assert "events.write" in response.content.decode()


# -- the brand probe --------------------------------------------------------------------------


PROBE_FAULTS = {
    "500": ("500", "Try again in a few minutes"),
    "503": ("503", "Try again in a few minutes"),
    "429": ("429", "Wait a minute"),
    "truncate": ("truncate", "could not be read"),
}


def stub_good_token(stub, emulator, scopes=None):
    token = minted(emulator, scopes=scopes)
    stub.respond(
        "/token",
        200,
        {"access_token": token["access_token"], "scope": " ".join(REQUESTED)},
    )
    return token


@pytest.mark.parametrize("case", sorted(PROBE_FAULTS))
def test_probe_failures_do_not_activate(case, flow, stub_token_settings, stub, emulator):
    """T-OA-21 (5xx, 429, malformed body)."""
    kind, words = PROBE_FAULTS[case]
    stub_good_token(stub, emulator)
    params = {"retry_after": 30} if kind == "429" else {}
    emulator.add_fault(route="GET /api/brands/current", kind=kind, **params)
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 400
    assert "Nothing was activated" in response.content.decode()
    assert words in response.content.decode()
    assert Connection.objects.count() == 0
    assert len(emulator.ledger_for("/api/brands/current")) == 1  # probed once, no retry


def test_probe_401_does_not_activate(flow, stub_token_settings, stub, emulator):
    stub.respond("/token", 200, {"access_token": "not-a-token-the-emulator-knows"})
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 400
    assert "HTTP 401" in response.content.decode()
    assert Connection.objects.count() == 0


def test_probe_403_does_not_activate(flow, stub_token_settings, stub, emulator):
    stub_good_token(stub, emulator, scopes=["contacts.read", "contacts.write", "events.write"])
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 400
    html = response.content.decode()
    assert "HTTP 403" in html and "brands.read" in html
    assert Connection.objects.count() == 0


def test_probe_410_does_not_activate(flow, stub_token_settings, stub, emulator):
    stub_good_token(stub, emulator)
    with override_settings(OMNISEND={**stub_token_settings, "API_VERSION": "2020-01-01"}):
        _, response = callback_with_stub(flow, stub)
    assert response.status_code == 400
    assert "API_VERSION" in response.content.decode()
    assert Connection.objects.count() == 0


def test_probe_without_brand_id_does_not_activate(flow, stub_token_settings, stub):
    stub.respond("/token", 200, {"access_token": "tok-for-the-stub-api"})
    stub.respond("/api/brands/current", 200, {"name": "No id", "brandID": ""})
    with override_settings(OMNISEND={**stub_token_settings, "API_URL": stub.url + "/api"}):
        _, response = callback_with_stub(flow, stub)
    assert response.status_code == 400
    assert "without a brand ID" in response.content.decode()
    assert Connection.objects.count() == 0
    assert stub.requests_to("/api/brands/current")[0].headers["Authorization"].startswith("Bearer ")


def test_probe_failure_revokes_the_unused_token(flow, stub_token_settings, stub, emulator):
    stub_good_token(stub, emulator)
    emulator.add_fault(route="GET /api/brands/current", kind="500")
    callback_with_stub(flow, stub)
    assert len(emulator.ledger_for("/oauth2/revoke")) >= 1


def test_successful_probe_redirects_to_the_list(flow, stub_token_settings, stub, emulator):
    stub_good_token(stub, emulator)
    _, response = callback_with_stub(flow, stub)
    assert response.status_code == 302 and response["Location"] == flow.default_next


# -- expires_in bounds (issue 15 item 6) ------------------------------------------------------

#: Raw ``expires_in`` JSON values -> the stored lifetime: None (no expiry) or seconds.
#: Python's json accepts NaN/Infinity literals, and 1e999 reads as infinity.
EXPIRES_IN = {
    "nan": (b"NaN", None),
    "infinity": (b"Infinity", None),
    "minus_infinity": (b"-Infinity", oauth.MIN_TOKEN_LIFETIME),
    "overflowing_float": (b"1e999", None),
    "huge": (b"1e300", None),
    "omnisend_never": (b"9223372036", None),
    "negative": (b"-5", oauth.MIN_TOKEN_LIFETIME),
    "zero": (b"0", oauth.MIN_TOKEN_LIFETIME),
    "one_second": (b"1", oauth.MIN_TOKEN_LIFETIME),
    "unparsable_string": (b'"soon"', None),
    "numeric_string": (b'"7200"', 7200),
    "ordinary": (b"3600", 3600),
}


@pytest.mark.parametrize("case", sorted(EXPIRES_IN))
def test_expires_in_is_bounded(case, flow, stub_token_settings, stub, emulator):
    """Non-finite, negative, tiny or huge lifetimes neither crash the callback nor stick."""
    from datetime import timedelta

    from django.utils import timezone

    raw, expected = EXPIRES_IN[case]
    token = minted(emulator)
    body = b'{"access_token": "%s", "expires_in": %s}' % (token["access_token"].encode(), raw)
    stub.respond("/token", 200, body)
    before = timezone.now()
    _, response = callback_with_stub(flow, stub)
    after = timezone.now()
    assert response.status_code == 302, response.content[:400]
    connection = flow.rows().get()
    assert connection.status == "active"
    if expected is None:
        assert connection.expires_at is None
    else:
        assert before + timedelta(seconds=expected) <= connection.expires_at
        assert connection.expires_at <= after + timedelta(seconds=expected)

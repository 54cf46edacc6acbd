"""OmnisendClient over real HTTP against the emulator: every method, error class and fault.

Sleeping is injected (a fake clock records every wait), so retries and 429 waits cost no time.
Every JSON body the client sent is validated against the OpenAPI request schemas after each
test (``check_bodies``), from the emulator's ledger.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.test import override_settings

from django_omnisend import __version__
from django_omnisend.api import ApiKeyAuth, BearerAuth, ContactResult, OmnisendClient
from django_omnisend.exceptions import (
    AuthenticationError,
    Conflict,
    NotFound,
    OmnisendAPIError,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
    VersionRetired,
)
from django_omnisend.ratelimit import RateLimiter
from tests.openapi import validate_request

REPO = Path(__file__).resolve().parents[2]


def contact_body(email: str, **fields) -> dict:
    return {
        "identifiers": [
            {
                "type": "email",
                "id": email,
                "sendWelcomeMessage": False,
                "channels": {
                    "email": {"status": "nonSubscribed", "statusChangedAt": "2024-05-09T16:25:02Z"}
                },
            }
        ],
        "tags": ["source: django"],
        **fields,
    }


def api_entries(emulator, prefix="/api/"):
    return [e for e in emulator.ledger if e.path.startswith(prefix)]


@pytest.fixture
def check_bodies(emulator):
    """After the test: every JSON body sent to /api was valid per the OpenAPI request schema.

    Requests the emulator rejected with 400 are the tests' deliberately invalid bodies.
    """
    yield
    for entry in api_entries(emulator):
        if entry.body and entry.status != 400 and entry.fault != "400":
            validate_request(entry.method, entry.path, entry.json)


@pytest.fixture
def api_key(emulator):
    return emulator.issue_api_key()


@pytest.fixture
def make_client(emulator, clock, api_key, check_bodies):
    """Clients on the emulator with the fake clock's sleep; all closed after the test."""
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
def client(make_client):
    return make_client()


# -- headers, settings, construction ---------------------------------------------------------


def test_every_request_carries_version_agent_integration_and_auth(client, emulator, api_key):
    client.brands.current()
    (entry,) = api_entries(emulator)
    headers = {k.lower(): v for k, v in entry.headers.items()}
    assert headers["omnisend-version"] == "2026-03-15"
    assert headers["user-agent"] == f"django-omnisend/{__version__} (+python-requests)"
    assert headers["x-integration-name"] == "django-omnisend"
    assert headers["x-integration-version"] == __version__
    assert headers["authorization"] == f"Omnisend-API-Key {api_key}"
    assert headers["accept"] == "application/json"


def test_settings_are_read_at_construction_and_args_override(emulator, api_key):
    omnisend = {
        "API_URL": emulator.api_url + "/",
        "API_VERSION": "2026-04-01",
        "REQUEST_TIMEOUT": 3,
        "MAX_RETRIES": 5,
        "EVENT_ORIGIN": "django-test",
    }
    with override_settings(OMNISEND=omnisend):
        client = OmnisendClient(ApiKeyAuth(api_key))
        explicit = OmnisendClient(ApiKeyAuth(api_key), api_version="2026-03-15", max_retries=0)
    try:
        assert client.api_url == emulator.api_url
        assert (client.api_version, client.timeout, client.max_retries) == ("2026-04-01", 3, 5)
        assert client.event_origin == "django-test"
        assert (explicit.api_version, explicit.max_retries) == ("2026-03-15", 0)
        assert client.brands.current()["brandID"] == emulator.default_brand_id
        assert "Omnisend-API-Key" not in repr(client) and api_key not in repr(client)
    finally:
        client.close()
        explicit.close()


def test_client_works_without_django_settings(emulator, api_key):
    """A plain script: no DJANGO_SETTINGS_MODULE, explicit arguments only."""
    script = (
        "from django_omnisend.client import OmnisendClient, ApiKeyAuth\n"
        "import sys\n"
        "with OmnisendClient(ApiKeyAuth(sys.argv[1]), api_url=sys.argv[2]) as c:\n"
        "    print(c.brands.current()['brandID'], c.timeout, c.max_retries)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", script, api_key, emulator.api_url],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [emulator.default_brand_id, "10.0", "2"]


def test_auth_must_be_an_auth_object(emulator):
    with pytest.raises(TypeError):
        OmnisendClient("a-key", api_url=emulator.api_url)


# -- contacts ---------------------------------------------------------------------------------


def test_upsert_tells_created_from_updated(client, emulator):
    created = client.contacts.upsert(contact_body("jane@example.com", firstName="Jane"))
    assert isinstance(created, ContactResult)
    assert created.created is True and created.status == 201 and "_created" not in created
    assert created["email"] == "jane@example.com" and len(created["id"]) == 24
    updated = client.contacts.upsert(contact_body("jane@example.com", firstName="Janet"))
    assert updated.created is False and updated.status == 200
    assert updated["id"] == created["id"]
    assert emulator.get_contact("jane@example.com")["firstName"] == "Janet"


def test_get_and_get_by_email_with_plus_address(client, emulator):
    email = "jane+news@example.com"
    contact = client.contacts.upsert(contact_body(email))
    assert client.contacts.get(contact["id"])["email"] == email
    found = client.contacts.get_by_email(email)
    assert found is not None and found["id"] == contact["id"]
    # The "+" reached the server as a plus (sent as %2B), not as a space.
    lookup = [e for e in api_entries(emulator) if e.method == "GET" and e.query.get("email")]
    assert lookup[-1].query["email"] == email
    assert client.contacts.get_by_email("nobody@example.com") is None


def test_iterate_follows_cursors_lazily_and_stops(client, emulator):
    emails = {f"user{i}@example.com" for i in range(7)}
    for email in emails:
        emulator.seed_contact(**contact_body(email))
    before = len(api_entries(emulator))
    iterator = client.contacts.iterate(limit=3)
    assert len(api_entries(emulator)) == before  # lazy: nothing fetched yet
    first = next(iterator)
    assert len(api_entries(emulator)) == before + 1
    rest = list(iterator)
    assert {c["email"] for c in [first, *rest]} == emails
    pages = [e for e in api_entries(emulator)[before:] if e.path == "/api/contacts"]
    assert len(pages) == 3
    assert "after" not in pages[0].query and all(p.query.get("after") for p in pages[1:])
    assert all(p.query.get("limit") == "3" for p in pages)


def test_iterate_with_filters(client, emulator):
    emulator.seed_contact(**contact_body("vip@example.com", tags=["vip"]))
    emulator.seed_contact(**contact_body("plain@example.com", tags=["plain"]))
    assert [c["email"] for c in client.contacts.iterate(tag="vip")] == ["vip@example.com"]
    assert client.contacts.list(limit=1)["paging"]["limit"] == 1


def test_update_by_id_and_by_email(client, emulator):
    contact = client.contacts.upsert(contact_body("joe@example.com", firstName="Joe"))
    updated = client.contacts.update(contact["id"], {"lastName": "Bloggs"})
    assert updated["lastName"] == "Bloggs" and updated["firstName"] == "Joe"
    updated = client.contacts.update_by_email("joe@example.com", {"city": "Vilnius"})
    assert updated["city"] == "Vilnius"
    patches = [e for e in api_entries(emulator) if e.method == "PATCH"]
    assert patches[-1].query == {"email": "joe@example.com"}


def test_add_and_remove_tags(client, emulator):
    client.contacts.upsert(contact_body("tag@example.com"))
    client.contacts.add_tags(["vip", "beta"], emails=["tag@example.com"])
    assert {"vip", "beta"} <= set(emulator.get_contact("tag@example.com")["tags"])
    client.contacts.remove_tags("beta", emails="tag@example.com")
    assert "beta" not in emulator.get_contact("tag@example.com")["tags"]
    sent = [e.json for e in api_entries(emulator) if e.path == "/api/contacts/tags"]
    assert sent == [
        {"tags": ["vip", "beta"], "emails": ["tag@example.com"]},
        {"tags": ["beta"], "emails": ["tag@example.com"]},
    ]
    with pytest.raises(ValueError, match="emails="):
        client.contacts.add_tags(["vip"])
    with pytest.raises(ValueError, match="tag"):
        client.contacts.add_tags([], emails=["tag@example.com"])


# -- events -----------------------------------------------------------------------------------


def test_event_gets_an_event_id_and_the_origin(client, emulator):
    event_id = client.events.send(
        {"eventName": "signed up", "contact": {"email": "ev@example.com"}, "properties": {}}
    )
    assert uuid.UUID(event_id).version == 4
    (event,) = emulator.events()
    assert event["eventID"] == event_id and event["origin"] == "api"
    (entry,) = [e for e in api_entries(emulator) if e.path == "/api/events"]
    assert entry.json["eventID"] == event_id and entry.json["origin"] == "api"
    assert entry.status == 202


def test_event_keeps_a_given_event_id_and_origin(client, emulator):
    given = str(uuid.uuid4())
    body = {"eventName": "x", "eventID": given, "origin": "custom", "contact": {"email": "e@x.io"}}
    assert client.events.send(body) == given
    (entry,) = [e for e in api_entries(emulator) if e.path == "/api/events"]
    assert entry.json["eventID"] == given and entry.json["origin"] == "custom"


# -- batches ----------------------------------------------------------------------------------


def test_batch_create_get_items(client, emulator):
    items = [contact_body("b1@example.com"), contact_body("b2@example.com")]
    created = client.batches.create("contacts", items, origin="api")
    assert created["totalCount"] == 2 and created["batchID"]
    batch = client.batches.get(created["batchID"])
    assert batch["batchID"] == created["batchID"] and batch["endpoint"] == "contacts"
    detail = client.batches.items(created["batchID"])
    assert detail["batchID"] == created["batchID"]
    assert emulator.get_contact("b2@example.com") is not None
    with pytest.raises(NotFound):
        client.batches.get("000000000000000000000000")


def test_batch_iterate_offset_paging(client, emulator):
    ids = {
        client.batches.create("contacts", [contact_body(f"p{i}@x.io")])["batchID"] for i in range(5)
    }
    seen = [b["batchID"] for b in client.batches.iterate("contacts", limit=2)]
    assert sorted(seen) == sorted(ids)
    pages = [e for e in api_entries(emulator) if e.method == "GET" and e.path == "/api/batches"]
    assert [p.query.get("offset") for p in pages] == ["0", "2", "4"]
    assert client.batches.list("contacts", limit=1)["paging"]["limit"] == 1


def test_batch_size_is_checked_before_sending(client, emulator):
    with pytest.raises(ValueError):
        client.batches.create("contacts", [])
    with pytest.raises(ValueError):
        client.batches.create("contacts", [contact_body(f"{i}@x.io") for i in range(101)])
    assert api_entries(emulator) == []


# -- brands -----------------------------------------------------------------------------------


def test_brand_current_and_connect(make_client, emulator):
    token = emulator.issue_token()["access_token"]
    client = make_client(BearerAuth(token))
    brand = client.brands.current()
    assert brand["brandID"] == emulator.default_brand_id
    client.brands.connect(platform="django", version="0.1.0", website="https://shop.example")
    (entry,) = [e for e in api_entries(emulator) if e.method == "POST"]
    assert entry.path == "/api/brands/current" and entry.status == 200


# -- error classes ----------------------------------------------------------------------------


def assert_clean_message(exc: Exception, *secrets: str) -> str:
    text = str(exc)
    for secret in secrets:
        assert secret not in text
    return text


def test_400_carries_field_errors(client, api_key):
    with pytest.raises(ValidationError) as excinfo:
        client.contacts.upsert(contact_body("not-an-email"))
    exc = excinfo.value
    assert exc.status == 400 and exc.errors
    assert exc.problem_type.endswith("validation-failed")
    assert any(e.field.startswith("identifiers[0]") for e in exc.errors)
    text = assert_clean_message(exc, api_key)
    assert "400" in text and "POST /api/contacts" in text and exc.errors[0].message in text
    assert exc.instance.startswith("urn:omnisend:request:")
    assert isinstance(exc, OmnisendAPIError) and exc.response is not None


def test_401_is_not_retried_and_hides_the_key(make_client, emulator):
    client = make_client(ApiKeyAuth("65f0a1b2c3d4e5f600000001-not-a-real-key"))
    with pytest.raises(AuthenticationError) as excinfo:
        client.contacts.get_by_email("x@example.com")
    assert excinfo.value.status == 401
    text = assert_clean_message(excinfo.value, "not-a-real-key", "x@example.com")
    assert "GET /api/contacts?email=***" in text
    assert len(api_entries(emulator)) == 1


def test_401_calls_the_hook_once_and_retries_with_the_new_token(make_client, emulator):
    stale = emulator.issue_token()["access_token"]
    emulator.revoke_token(stale)
    fresh = emulator.issue_token()["access_token"]
    calls = []

    def refresh(client, exc):
        calls.append(exc)
        return fresh

    client = make_client(BearerAuth(stale), on_unauthorized=refresh)
    assert client.brands.current()["brandID"] == emulator.default_brand_id
    assert len(calls) == 1 and isinstance(calls[0], AuthenticationError)
    sent = [e.headers.get("Authorization") for e in api_entries(emulator)]
    assert sent == [f"Bearer {stale}", f"Bearer {fresh}"]
    assert client.auth.fingerprint == BearerAuth(fresh).fingerprint


def test_401_hook_without_new_token_or_with_a_bad_one_raises(make_client, emulator):
    stale = emulator.issue_token()["access_token"]
    emulator.revoke_token(stale)
    calls = []
    client = make_client(BearerAuth(stale), on_unauthorized=lambda c, e: calls.append(e))
    with pytest.raises(AuthenticationError) as excinfo:
        client.brands.current()
    assert len(calls) == 1 and len(api_entries(emulator)) == 1
    assert_clean_message(excinfo.value, stale)

    calls.clear()
    client = make_client(BearerAuth(stale), on_unauthorized=lambda c, e: calls.append(e) or "bad")
    with pytest.raises(AuthenticationError):
        client.brands.current()
    assert len(calls) == 1 and len(api_entries(emulator)) == 3  # one retry, then give up


def test_403_names_the_missing_scope_only_when_omnisend_does(make_client, emulator):
    # Omnisend's gateway does not name it (API.md section 0); the emulator's strict mode does.
    token = emulator.issue_token(scopes=["contacts.read"])["access_token"]
    client = make_client(BearerAuth(token))
    with pytest.raises(PermissionDenied) as excinfo:
        client.contacts.upsert(contact_body("scope@example.com"))
    assert excinfo.value.status == 403
    assert excinfo.value.missing_scope == ""
    assert_clean_message(excinfo.value, token)
    emulator.configure(strict=True)
    with pytest.raises(PermissionDenied) as excinfo:
        client.contacts.upsert(contact_body("scope@example.com"))
    assert excinfo.value.missing_scope == "contacts.write"
    assert len(api_entries(emulator)) == 2


def test_404_on_unknown_contact(client, emulator):
    with pytest.raises(NotFound) as excinfo:
        client.contacts.get("000000000000000000000000")
    assert excinfo.value.status == 404 and "/api/contacts/000000000000000000000000" in str(
        excinfo.value
    )
    with pytest.raises(NotFound):
        client.contacts.update_by_email("ghost@example.com", {"firstName": "X"})
    assert len(api_entries(emulator)) == 2  # not retried


def test_409_when_the_new_email_belongs_to_another_contact(client, emulator):
    client.contacts.upsert(contact_body("a@example.com"))
    other = client.contacts.upsert(contact_body("b@example.com"))
    with pytest.raises(Conflict) as excinfo:
        client.contacts.update(other["id"], contact_body("a@example.com"))
    assert excinfo.value.status == 409
    assert len([e for e in api_entries(emulator) if e.method == "PATCH"]) == 1


def test_410_for_a_retired_api_version(make_client):
    client = make_client(api_version="2023-01-01")
    with pytest.raises(VersionRetired) as excinfo:
        client.brands.current()
    assert excinfo.value.status == 410 and "410" in str(excinfo.value)


def test_real_429_from_the_gateway_raises_when_the_wait_is_too_long(make_client, emulator):
    emulator.configure(rate_limit=2, window_seconds=60)
    client = make_client(max_wait=5)
    client.brands.current()
    client.brands.current()
    with pytest.raises(RateLimited) as excinfo:
        client.brands.current()
    assert excinfo.value.status == 429 and 5 < excinfo.value.retry_after <= 60
    assert "retry after" in str(excinfo.value)
    assert len(api_entries(emulator)) == 3


@pytest.mark.parametrize("retry_after", [2, None], ids=["retryAfter", "no-retryAfter"])
def test_429_waits_the_advised_time_then_succeeds(make_client, emulator, clock, retry_after):
    emulator.add_fault("POST /api/contacts", "429", times=2, retry_after=retry_after)
    client = make_client()
    result = client.contacts.upsert(contact_body("wait@example.com"))
    assert result.created
    assert clock.sleeps == [retry_after or 60] * 2
    assert [e.status for e in api_entries(emulator)] == [429, 429, 201]


def test_429_even_on_non_idempotent_requests_is_retried(make_client, emulator, clock):
    """A 429 means "not processed", so resending a live event or a batch is safe."""
    emulator.add_fault("POST /api/events", "429", times=1, retry_after=1)
    client = make_client()
    client.events.send({"eventName": "x", "contact": {"email": "e@x.io"}})
    assert clock.sleeps == [1] and len(emulator.events()) == 1


def test_429_storm_gives_up_after_max_retries(make_client, emulator, clock):
    emulator.add_fault("*", "429", retry_after=3)
    client = make_client(max_retries=3)
    with pytest.raises(RateLimited) as excinfo:
        client.contacts.get_by_email("storm@example.com")
    assert excinfo.value.retry_after == 3
    assert clock.sleeps == [3, 3, 3] and len(api_entries(emulator)) == 4


def test_429_without_retry_after_beyond_max_wait_raises_at_once(make_client, emulator, clock):
    emulator.add_fault("*", "429", retry_after=None)
    client = make_client(max_wait=30)
    with pytest.raises(RateLimited) as excinfo:
        client.brands.current()
    assert excinfo.value.retry_after == 60
    assert clock.sleeps == [] and len(api_entries(emulator)) == 1


def test_429_cools_down_the_brand_in_the_shared_limiter(make_client, emulator, clock):
    limiter = RateLimiter(
        f"brand-{uuid.uuid4().hex[:8]}",
        budget=100,
        shared=False,
        clock=clock.time,
        sleep=clock.sleep,
    )
    emulator.add_fault("*", "429", times=1, retry_after=7)
    client = make_client(rate_limiter=limiter)
    assert client.rate_limit_key == limiter.key
    client.brands.current()
    # The limiter slept out the cooldown (7 s) before the retry; the client did not add its own.
    assert clock.sleeps == [pytest.approx(7)]
    limiter.cooldown(limiter.key, 50)
    from django_omnisend.exceptions import BudgetExhausted

    with pytest.raises(BudgetExhausted) as excinfo:
        make_client(rate_limiter=limiter, max_wait=10).brands.current()
    assert excinfo.value.retry_after == pytest.approx(50)


def test_5xx_is_retried_with_jittered_backoff_for_safe_requests(make_client, emulator, clock):
    emulator.add_fault("GET /api/contacts/*", "503", times=2)
    emulator.add_fault("POST /api/contacts", "500", times=1)
    client = make_client(random=lambda: 1.0, backoff_base=0.5)
    contact = client.contacts.upsert(contact_body("five@example.com"))
    assert clock.sleeps == [0.5]
    assert client.contacts.get(contact["id"])["id"] == contact["id"]
    assert clock.sleeps == [0.5, 0.5, 1.0]


def test_5xx_storm_raises_server_error(make_client, emulator, clock):
    emulator.add_fault("*", "500")
    client = make_client(max_retries=2, random=lambda: 0.5)
    with pytest.raises(ServerError) as excinfo:
        client.brands.current()
    assert excinfo.value.status == 500 and excinfo.value.retryable
    assert clock.sleeps == [0.25, 0.5] and len(api_entries(emulator)) == 3


def test_5xx_is_not_retried_for_events_and_batches_unless_asked(make_client, emulator, clock):
    emulator.add_fault("POST /api/events", "500", times=1)
    emulator.add_fault("POST /api/batches", "503", times=1)
    client = make_client()
    with pytest.raises(ServerError):
        client.events.send({"eventName": "once", "contact": {"email": "e@x.io"}})
    with pytest.raises(ServerError):
        client.batches.create("contacts", [contact_body("b@x.io")])
    assert clock.sleeps == []
    emulator.add_fault("POST /api/events", "500", times=1)
    client.events.send({"eventName": "twice", "contact": {"email": "e@x.io"}}, retry=True)
    assert len(clock.sleeps) == 1
    sent = [e.json["eventID"] for e in api_entries(emulator) if e.path == "/api/events"]
    assert len(sent) == 3 and sent[1] == sent[2]  # the retry reused the eventID


# -- transport faults -------------------------------------------------------------------------


def test_timeout_after_apply_is_retried_for_the_upsert(make_client, emulator, clock):
    emulator.add_fault("POST /api/contacts", "apply_then_hang", times=1, seconds=1.5)
    client = make_client(timeout=0.4)
    result = client.contacts.upsert(contact_body("hang@example.com"))
    # The first attempt was applied (created) before the hang, so the retry updates it.
    assert result.created is False
    assert len(emulator.contacts()) == 1 and len(clock.sleeps) == 1


def test_timeout_on_an_event_is_not_retried(make_client, emulator, clock):
    emulator.add_fault("POST /api/events", "apply_then_hang", times=1, seconds=1.5)
    client = make_client(timeout=0.4)
    with pytest.raises(TransportError) as excinfo:
        client.events.send({"eventName": "hang", "contact": {"email": "e@x.io"}})
    assert excinfo.value.kind == "timeout" and excinfo.value.retryable
    assert "POST /api/events" in str(excinfo.value)
    assert clock.sleeps == [] and len(emulator.events()) == 1


@pytest.mark.parametrize("kind", ["reset_before", "reset_after"])
def test_connection_reset_is_retried_for_safe_requests(make_client, emulator, clock, kind):
    emulator.add_fault("POST /api/contacts", kind, times=1)
    client = make_client()
    client.contacts.upsert(contact_body("reset@example.com"))
    assert len(emulator.contacts()) == 1 and len(clock.sleeps) == 1


def test_reset_after_an_event_is_raised_not_resent(make_client, emulator, clock):
    emulator.add_fault("POST /api/events", "reset_after", times=1)
    client = make_client()
    with pytest.raises(TransportError) as excinfo:
        client.events.send({"eventName": "reset", "contact": {"email": "e@x.io"}})
    assert excinfo.value.kind == "connection"
    assert len(emulator.events()) == 1 and clock.sleeps == []


def test_reset_storm_raises_transport_error(make_client, emulator, clock):
    emulator.add_fault("*", "reset_before")
    client = make_client(max_retries=2)
    with pytest.raises(TransportError) as excinfo:
        client.contacts.get_by_email("reset@example.com")
    assert excinfo.value.kind == "connection" and len(clock.sleeps) == 2
    assert "reset@example.com" not in str(excinfo.value)


def test_truncated_body_is_an_unknown_outcome(make_client, emulator, clock):
    emulator.add_fault("POST /api/contacts", "truncate", times=1)
    client = make_client()
    result = client.contacts.upsert(contact_body("cut@example.com"))
    assert result["email"] == "cut@example.com" and len(clock.sleeps) == 1
    emulator.add_fault("GET /api/brands/current", "truncate")
    with pytest.raises(TransportError) as excinfo:
        client.brands.current()
    assert excinfo.value.kind in {"bad_body", "connection"}


def test_truncated_batch_create_is_not_resent(make_client, emulator, clock):
    emulator.add_fault("POST /api/batches", "truncate", times=1)
    client = make_client()
    with pytest.raises(TransportError):
        client.batches.create("contacts", [contact_body("tb@x.io")])
    assert clock.sleeps == []
    assert len([e for e in api_entries(emulator) if e.path == "/api/batches"]) == 1


def test_tls_errors_are_not_retried(make_client, emulator, clock):
    client = make_client(api_url=emulator.api_url.replace("http://", "https://"))
    with pytest.raises(TransportError) as excinfo:
        client.brands.current()
    assert excinfo.value.kind == "ssl" and excinfo.value.retryable is False
    assert clock.sleeps == []


def test_error_messages_never_contain_credentials(make_client, emulator, api_key):
    errors: list[Exception] = []
    client = make_client()
    emulator.add_fault("*", "500")
    for call in (
        lambda: client.contacts.get_by_email("pii@example.com"),
        lambda: client.contacts.update_by_email("pii@example.com", {"firstName": "x"}),
    ):
        with pytest.raises(ServerError) as excinfo:
            call()
        errors.append(excinfo.value)
    for exc in errors:
        text = f"{exc} {exc!r} {exc.args}"
        assert api_key not in text and "pii@example.com" not in text
    assert json.dumps(errors[0].url) == '"/api/contacts?email=***"'

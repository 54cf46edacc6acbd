"""A DEBUG-level run with ``requests``/``urllib3`` logging on: no credential in any log line."""

from __future__ import annotations

import logging

import pytest

from django_omnisend.api import ApiKeyAuth, BearerAuth, OmnisendClient
from django_omnisend.exceptions import AuthenticationError, ValidationError
from django_omnisend.redaction import install, uninstall


@pytest.fixture
def debug_logs(caplog):
    """Capture everything at DEBUG, including urllib3's connection and URL lines."""
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "django_omnisend"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_debug_run_logs_no_secret(debug_logs, emulator, clock):
    api_key = emulator.issue_api_key()
    stale = emulator.issue_token()
    emulator.revoke_token(stale["access_token"])
    fresh = emulator.issue_token()
    secrets = [
        api_key,
        api_key.partition("-")[2],
        stale["access_token"],
        stale["refresh_token"],
        fresh["access_token"],
        fresh["refresh_token"],
    ]
    body = {
        "identifiers": [{"type": "email", "id": "log@example.com", "sendWelcomeMessage": False}]
    }
    with OmnisendClient(ApiKeyAuth(api_key), api_url=emulator.api_url, sleep=clock.sleep) as c:
        contact = c.contacts.upsert(body)
        c.contacts.get(contact["id"])
        c.contacts.get_by_email("log@example.com")
        c.events.send({"eventName": "logged", "contact": {"email": "log@example.com"}})
        emulator.add_fault("GET /api/brands/current", "500", times=1)
        c.brands.current()
        with pytest.raises(ValidationError) as excinfo:
            c.contacts.upsert({"identifiers": [{"type": "email", "id": "nope"}]})
        logging.getLogger("django_omnisend.client").exception("upsert failed: %s", excinfo.value)
    refresh = lambda client, exc: fresh["access_token"]  # noqa: E731
    with OmnisendClient(
        BearerAuth(stale["access_token"]), api_url=emulator.api_url, on_unauthorized=refresh
    ) as c:
        c.brands.current()
        logging.getLogger("django_omnisend.client").debug("client is %r", c)
    with (
        OmnisendClient(ApiKeyAuth(api_key + "x"), api_url=emulator.api_url) as c,
        pytest.raises(AuthenticationError),
    ):
        c.brands.current()
    text = debug_logs.text
    # The run really logged at DEBUG: our request lines and urllib3's.
    assert "omnisend POST /api/contacts -> 201" in text
    assert "omnisend GET /api/contacts?email=*** -> 200" in text
    assert "attempt 2" in text
    assert "Starting new HTTP connection" in text
    for secret in secrets:
        assert secret not in text


def test_session_pools_one_connection(debug_logs, emulator):
    with OmnisendClient(ApiKeyAuth(emulator.issue_api_key()), api_url=emulator.api_url) as c:
        for _ in range(5):
            c.brands.current()
    assert debug_logs.text.count("Starting new HTTP connection") == 1


def test_urllib3_lines_redacted_once_installed(debug_logs, emulator):
    """Query-string credentials in URLs urllib3 logs are masked after ``install("urllib3")``."""
    import requests

    install("urllib3")
    try:
        with requests.Session() as session:
            session.get(f"{emulator.base_url}/api/brands/current?api_key=leaky-value", timeout=5)
    finally:
        uninstall("urllib3")
    assert "api_key=[REDACTED]" in debug_logs.text
    assert "leaky-value" not in debug_logs.text

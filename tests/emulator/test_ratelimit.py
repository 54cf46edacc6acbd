"""Sliding-window rate limiting per brand, proven on the ledger's accepted timestamps."""

from __future__ import annotations

import threading
import time

import requests

from tests.emulator.conftest import VERSION, contact, problem
from tests.openapi import validate_response

WINDOW = 1.0
LIMIT = 10


def test_no_window_span_ever_holds_more_than_the_limit(emulator, api_key):
    """Four threads hammer the API for 2.5 s; the accepted times never crowd a window."""
    emulator.configure(rate_limit=LIMIT, window_seconds=WINDOW)
    headers = {"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": VERSION}
    deadline = time.monotonic() + 2.5
    retry_afters: list[int] = []
    failures: list[str] = []

    def hammer() -> None:
        with requests.Session() as session:
            while time.monotonic() < deadline:
                response = session.get(
                    emulator.api_url + "/brands/current", headers=headers, timeout=5
                )
                if response.status_code == 429:
                    body = problem(response)
                    validate_response("GET", "/brands/current", 429, response.content, strict=True)
                    retry_afters.append(body["retryAfter"])
                    time.sleep(0.01)
                elif response.status_code != 200:
                    failures.append(response.text)

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    entries = emulator.ledger_for("/api/brands/current")
    accepted = sorted(e.time for e in entries if e.rate_counted)
    assert [e.status for e in entries if e.rate_counted] == [200] * len(accepted)
    assert all(e.status == 429 for e in entries if not e.rate_counted)
    # Sliding pointer: the (i+LIMIT)-th accepted request is at least a window after the i-th,
    # i.e. no half-open span [t, t + WINDOW) ever holds more than LIMIT accepted requests.
    for i in range(len(accepted) - LIMIT):
        assert accepted[i + LIMIT] - accepted[i] >= WINDOW - 1e-9, (i, accepted[i : i + LIMIT + 1])
    assert len(accepted) >= 2 * LIMIT  # it really did let requests through, window after window
    assert retry_afters and all(isinstance(r, int) and 1 <= r <= WINDOW + 1 for r in retry_afters)


def test_rejected_requests_take_no_slot_and_the_window_slides(api, emulator):
    emulator.configure(rate_limit=3, window_seconds=10)
    assert [api.get("/brands/current").status_code for _ in range(3)] == [200] * 3
    emulator.advance_clock(5)
    rejected = api.get("/brands/current")
    assert rejected.status_code == 429 and problem(rejected)["retryAfter"] == 5
    for _ in range(5):
        assert api.get("/brands/current").status_code == 429
    emulator.advance_clock(5.001)  # the first three slide out; the 429s never took a slot
    assert [api.get("/brands/current").status_code for _ in range(3)] == [200] * 3
    assert api.get("/brands/current").status_code == 429


def test_tags_have_their_own_stricter_window(api, emulator):
    emulator.configure(tags_rate_limit=2, rate_limit=100, window_seconds=60)
    body = {"emails": ["a@example.com"], "tags": ["x"]}
    assert [api.post("/contacts/tags", json=body).status_code for _ in range(3)] == [202, 202, 429]
    assert api.delete("/contacts/tags", json=body).status_code == 429
    assert api.post("/contacts", json=contact("a@example.com")).status_code == 201


def test_window_is_per_brand(api, emulator):
    emulator.configure(rate_limit=1, window_seconds=60)
    assert api.get("/brands/current").status_code == 200
    assert api.get("/brands/current").status_code == 429
    token = emulator.issue_token()  # same brand, other credential: same window
    assert (
        api.get("/brands/current", authorization=f"Bearer {token['access_token']}").status_code
        == 429
    )
    other = emulator.add_brand(name="Other")
    other_key = emulator.issue_api_key(other["brandID"])
    assert (
        api.get("/brands/current", authorization=f"Omnisend-API-Key {other_key}").status_code == 200
    )


def test_no_rate_limit_headers_unless_asked(api, emulator):
    emulator.configure(rate_limit=2, window_seconds=60)
    first = api.get("/brands/current")
    assert not [
        h for h in first.headers if h.lower().startswith(("x-rate", "ratelimit", "retry-after"))
    ]
    emulator.configure(rate_limit_headers=True)
    second = api.get("/brands/current")
    assert (
        second.headers["X-Rate-Limit-Limit"] == "2"
        and second.headers["X-Rate-Limit-Remaining"] == "0"
    )
    assert 59 <= int(second.headers["X-Rate-Limit-Reset"]) <= 60
    third = api.get("/brands/current")
    assert third.status_code == 429 and third.headers["X-Rate-Limit-Remaining"] == "0"


def test_rate_limit_can_be_switched_off(api, emulator):
    emulator.configure(rate_limit=1, rate_limit_enabled=False)
    assert {api.get("/brands/current").status_code for _ in range(5)} == {200}

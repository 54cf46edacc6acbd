"""Narrow cases the emulator cannot produce, with ``responses`` standing in for the network.

A repeated paging cursor, ``Retry-After`` as a header (seconds and HTTP-date),
``application/problem+json``, v3's ``X-Rate-Limit-Reset``, non-JSON error pages from a proxy,
and the outcome classification of ``request()``.
"""

from __future__ import annotations

import email.utils
import time

import pytest
import requests
import responses

from django_omnisend.api import ApiKeyAuth, OmnisendClient
from django_omnisend.exceptions import (
    OmnisendAPIError,
    PagingError,
    RateLimited,
    ServerError,
    TransportError,
    ValidationError,
)

API = "https://omnisend.test/api"


@pytest.fixture
def client(clock):
    c = OmnisendClient(ApiKeyAuth("brand1-secret"), api_url=API, sleep=clock.sleep, max_retries=2)
    yield c
    c.close()


@pytest.fixture
def mocked():
    with responses.RequestsMock() as rsps:
        yield rsps


def page(contacts, after, has_more=True):
    return {
        "contacts": contacts,
        "paging": {"limit": 1, "hasMore": has_more, "cursors": {"after": after, "before": None}},
    }


def test_repeated_cursor_raises_instead_of_looping(client, mocked):
    mocked.get(f"{API}/contacts", json=page([{"id": "1"}], "c1"))
    mocked.get(f"{API}/contacts", json=page([{"id": "2"}], "c2"))
    mocked.get(f"{API}/contacts", json=page([{"id": "3"}], "c1"))
    with pytest.raises(PagingError):
        list(client.contacts.iterate(limit=1))


def test_iteration_stops_on_null_after_even_if_has_more(client, mocked):
    mocked.get(f"{API}/contacts", json=page([{"id": "1"}], None, has_more=True))
    assert [c["id"] for c in client.contacts.iterate()] == ["1"]


def test_retry_after_header_wins_over_body(client, mocked, clock):
    problem = {"type": "x", "title": "Rate limit exceeded", "status": 429, "retryAfter": 30}
    mocked.get(f"{API}/brands/current", status=429, json=problem, headers={"Retry-After": "4"})
    mocked.get(f"{API}/brands/current", json={"brandID": "b"})
    assert client.brands.current() == {"brandID": "b"}
    assert clock.sleeps == [4.0]


def test_retry_after_http_date_and_v3_reset_header(client, mocked, clock):
    when = email.utils.formatdate(time.time() + 20, usegmt=True)
    mocked.get(f"{API}/brands/current", status=429, body="", headers={"Retry-After": when})
    mocked.get(f"{API}/brands/current", status=429, body="", headers={"X-Rate-Limit-Reset": "9"})
    mocked.get(f"{API}/brands/current", json={})
    client.brands.current()
    assert 17 <= clock.sleeps[0] <= 21 and clock.sleeps[1] == 9.0


#: (Retry-After header, body retryAfter, X-Rate-Limit-Reset) -> the wait RateLimited carries.
#: Waits are clamped to [0, 3600] s; non-finite or unreadable values are ignored, so the next
#: source (or the 60 s default) decides.
RETRY_AFTER_BOUNDS = {
    "huge_header": ("1000000000000", None, None, 3600.0),
    "overflowing_header": ("1e999", 30, None, 30.0),
    "nan_header": ("nan", 30, None, 30.0),
    "inf_header": ("inf", None, None, 60.0),
    "negative_header": ("-5", 30, None, 0.0),
    "far_future_date": ("Fri, 31 Dec 9999 23:59:59 GMT", None, None, 3600.0),
    "garbage_header": ("soon", 45, None, 45.0),
    "huge_body": (None, 10**12, None, 3600.0),
    "overflowing_body": (None, "1e999", None, 60.0),
    "negative_body": (None, -7, None, 0.0),
    "huge_reset": (None, None, "1e12", 3600.0),
    "inf_reset": (None, None, "inf", 60.0),
}


@pytest.mark.parametrize("case", sorted(RETRY_AFTER_BOUNDS))
def test_retry_after_is_clamped_and_non_finite_values_are_ignored(case, client, mocked, clock):
    header, body_value, reset, expected = RETRY_AFTER_BOUNDS[case]
    headers = {}
    if header is not None:
        headers["Retry-After"] = header
    if reset is not None:
        headers["X-Rate-Limit-Reset"] = reset
    problem: dict = {"type": "x", "title": "Rate limit exceeded", "status": 429}
    raw = None
    if body_value == "1e999":  # JSON with a number no float holds (reads as infinity)
        raw = '{"title": "Rate limit exceeded", "status": 429, "retryAfter": 1e999}'
    elif body_value is not None:
        problem["retryAfter"] = body_value
    kwargs = {"body": raw, "content_type": "application/json"} if raw else {"json": problem}
    mocked.get(f"{API}/brands/current", status=429, headers=headers, **kwargs)
    client.max_wait = -1  # raise at once, whatever the wait
    with pytest.raises(RateLimited) as excinfo:
        client.brands.current()
    assert excinfo.value.retry_after == expected
    assert clock.sleeps == []


def test_problem_json_media_type_is_parsed(client, mocked):
    body = (
        '{"type":"https://problems.omnisend.com/validation-failed","title":"Validation failed",'
        '"status":400,"detail":"bad","errors":[{"field":"tags","code":"too_many","message":"max"}]}'
    )
    mocked.post(f"{API}/contacts", status=400, body=body, content_type="application/problem+json")
    with pytest.raises(ValidationError) as excinfo:
        client.contacts.upsert({"identifiers": []})
    assert excinfo.value.errors[0].field == "tags"
    assert "tags: max" in str(excinfo.value)


def test_html_error_page_from_a_proxy(client, mocked, clock):
    for _ in range(3):
        mocked.get(f"{API}/brands/current", status=502, body="<html>Bad gateway</html>")
    with pytest.raises(ServerError) as excinfo:
        client.brands.current()
    assert excinfo.value.status == 502 and "Bad Gateway" in str(excinfo.value)
    assert len(clock.sleeps) == 2


def test_unknown_4xx_maps_to_the_base_class(client, mocked):
    mocked.get(f"{API}/brands/current", status=418, json={"title": "teapot"})
    with pytest.raises(OmnisendAPIError) as excinfo:
        client.brands.current()
    assert type(excinfo.value) is OmnisendAPIError and excinfo.value.status == 418
    assert isinstance(excinfo.value, requests.HTTPError)


def test_chunked_encoding_error_is_a_transport_error(client, mocked, clock):
    error = requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")
    mocked.get(f"{API}/brands/current", body=error)
    mocked.get(f"{API}/brands/current", body=error)
    mocked.get(f"{API}/brands/current", body=error)
    with pytest.raises(TransportError) as excinfo:
        client.brands.current()
    assert excinfo.value.kind == "connection" and len(clock.sleeps) == 2


def test_non_json_success_body_is_bad_body(client, mocked):
    for _ in range(3):
        mocked.get(f"{API}/brands/current", body="not json", content_type="text/plain")
    with pytest.raises(TransportError) as excinfo:
        client.brands.current()
    assert excinfo.value.kind == "bad_body"


def test_rate_limited_without_any_hint_defaults_to_60(client, mocked, clock):
    mocked.get(f"{API}/brands/current", status=429, body="")
    client.max_wait = 1
    with pytest.raises(RateLimited) as excinfo:
        client.brands.current()
    assert excinfo.value.retry_after == 60.0 and clock.sleeps == []
    assert "retry after 60 s" in str(excinfo.value)


def test_backoff_is_full_jitter_and_capped(clock):
    with OmnisendClient(
        ApiKeyAuth("k"), api_url=API, backoff_base=1, backoff_cap=5, random=lambda: 1.0
    ) as c:
        assert [c.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]
    with OmnisendClient(ApiKeyAuth("k"), api_url=API, random=lambda: 0.0) as c:
        assert c.backoff(3) == 0.0


def test_request_is_public_for_other_endpoints(client, mocked):
    mocked.get(f"{API}/segments", json={"segments": []})
    response = client.request("GET", "/segments", params={"limit": 5, "x": None, "on": True})
    assert response.status == 200 and response.data == {"segments": []}
    assert mocked.calls[0].request.url == f"{API}/segments?limit=5&on=true"

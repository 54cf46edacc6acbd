"""Inspection and control: the Python API, the ledger, /__emulator__ and the state file."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from django_omnisend.emulator import Emulator, EmulatorConfig
from tests.emulator.conftest import VERSION, contact


def test_ledger_records_every_request(api, emulator, api_key):
    api.post("/contacts", json=contact("l@example.com"), headers={"X-Integration-Name": "tests"})
    api.get("/contacts", params={"email": "l@example.com", "limit": 5})
    api.get("/contacts", version=None)
    post, get, bad = emulator.ledger_for("/api/contacts")
    assert (post.method, post.path, post.status, post.brand_id) == (
        "POST",
        "/api/contacts",
        201,
        emulator.default_brand_id,
    )
    assert post.json == contact("l@example.com") and post.body.startswith(b"{")
    assert post.headers["Authorization"] == f"Omnisend-API-Key {api_key}"
    assert (
        post.headers["X-Integration-Name"] == "tests"
        and post.headers["Omnisend-Version"] == VERSION
    )
    assert (
        post.response_json["email"] == "l@example.com" and post.duration >= 0 and post.rate_counted
    )
    assert get.query == {"email": "l@example.com", "limit": "5"} and get.status == 200
    assert bad.status == 400 and get.time >= post.time
    assert emulator.ledger_for("/api/contacts", method="GET") == [get, bad]
    emulator.clear_ledger()
    assert emulator.ledger == []


def test_unsubscribe_inside_omnisend_is_seen_by_reverse_sync(api, emulator):
    emulator.seed_contact(**contact("u@example.com", "subscribed", "2024-01-01T00:00:00Z"))
    emulator.advance_clock(10)
    since = api.get("/contacts", params={"email": "u@example.com"}).json()["contacts"][0][
        "updatedAt"
    ]
    emulator.advance_clock(10)
    unsubscribed = emulator.unsubscribe("u@example.com")
    assert unsubscribed["status"] == "unsubscribed"
    changed = api.get(
        "/contacts", params={"updatedAtFrom": since, "sort": "updatedAt", "direction": "asc"}
    ).json()
    assert [c["status"] for c in changed["contacts"]] == ["unsubscribed"]
    # A stale "subscribed" sent later with an old date does not resubscribe.
    api.post("/contacts", json=contact("u@example.com", "subscribed", "2024-06-01T00:00:00Z"))
    assert emulator.get_contact("u@example.com")["status"] == "unsubscribed"
    with pytest.raises(KeyError):
        emulator.unsubscribe("nobody@example.com")
    at = datetime(2030, 1, 1, tzinfo=UTC)
    assert (
        emulator.unsubscribe("u@example.com", at=at)["statuses"][0]["statusChangedAt"]
        == "2030-01-01T00:00:00Z"
    )


def test_reset_restores_defaults(emulator):
    emulator.configure(rate_limit=1, auto_approve=True)
    emulator.add_brand(name="Extra")
    emulator.seed_contact(**contact("x@example.com"))
    emulator.add_fault("*", "500")
    emulator.reset()
    assert emulator.config.rate_limit == 400 and emulator.config.auto_approve is False
    assert emulator.contacts() == [] and emulator.faults_list() == [] and emulator.ledger == []
    assert emulator.demo_client_id and emulator.demo_client_secret
    assert "http://127.0.0.1:8000/omnisend/callback/" in emulator.demo_redirect_uris
    with pytest.raises(ValueError):
        emulator.configure(no_such_setting=1)
    with pytest.raises(ValueError):
        emulator.configure(batch_processing="sometimes")


def test_control_endpoints(emulator, http):
    base = emulator.base_url + "/__emulator__"
    info = http.get(base + "/").json()
    assert (
        info["api_url"] == emulator.api_url
        and info["demo_client"]["client_id"] == emulator.demo_client_id
    )
    assert http.post(base + "/config", json={"tags_delay": 5}).json()["tags_delay"] == 5
    assert http.post(base + "/config", json={"nope": 1}).status_code == 400
    key = http.post(base + "/api-keys", json={"scopes": ["contacts.read"]}).json()["api_key"]
    headers = {"Authorization": f"Omnisend-API-Key {key}", "Omnisend-Version": VERSION}
    assert (
        http.post(
            emulator.api_url + "/contacts", json=contact("c@example.com"), headers=headers
        ).status_code
        == 403
    )
    seeded = http.post(base + "/contacts", json=contact("c@example.com", "subscribed")).json()
    assert seeded["email"] == "c@example.com"
    assert [c["email"] for c in http.get(base + "/contacts").json()] == ["c@example.com"]
    assert (
        http.post(base + "/unsubscribe", json={"email": "c@example.com"}).json()["status"]
        == "unsubscribed"
    )
    token = http.post(base + "/tokens", json={"scopes": ["contacts.read"]}).json()
    assert token["scope"] == "contacts.read"
    assert http.post(base + "/revoke", json={"token": token["access_token"]}).json() == {"ok": True}
    brand = http.post(base + "/brands", json={"name": "Via HTTP"}).json()
    assert brand["name"] == "Via HTTP"
    assert http.post(
        base + "/clients",
        json={"client_id": "c2", "client_secret": "s", "redirect_uris": ["http://x/cb"]},
    ).json() == {"ok": True}
    assert http.get(base + "/events").json() == [] and http.get(base + "/batches").json() == []
    assert len(http.get(base + "/ledger", params={"path_prefix": "/api/"}).json()) == 1
    assert http.delete(base + "/ledger").json() == {"ok": True}
    assert http.post(base + "/clock", json={"advance": 1}).json()["now"] > 0
    # Every POST says it is JSON, even without a body (test_control_security.py says why).
    assert http.post(base + "/tick", json={}).json() == {"ok": True}
    assert http.post(base + "/reset", json={}).json() == {"ok": True}
    assert http.get(base + "/contacts").json() == []
    assert http.get(base + "/nothing").status_code == 404
    assert emulator.ledger == []  # control calls are not recorded


def test_root_page_lists_urls(emulator, http):
    text = http.get(emulator.base_url + "/").text
    assert emulator.api_url in text and emulator.demo_client_id in text


def test_state_file_round_trip(tmp_path):
    path = tmp_path / "state.json"
    first = Emulator(config=EmulatorConfig(tags_delay=100), state_file=path)
    first.seed_contact(**contact("keep@example.com", "subscribed"))
    key = first.issue_api_key()
    token = first.issue_token()
    second = Emulator(state_file=path)
    assert [c["email"] for c in second.contacts()] == ["keep@example.com"]
    assert key in second.state.api_keys and token["access_token"] in second.state.access_tokens
    second.reset()
    assert Emulator(state_file=path).contacts() == []


def test_wsgi_app_is_usable_without_a_server():
    emu = Emulator()
    with pytest.raises(RuntimeError):
        _ = emu.base_url
    captured = {}

    def start_response(status, headers):
        captured["status"] = status

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/api/brands/current",
        "QUERY_STRING": "",
        "HTTP_AUTHORIZATION": f"Omnisend-API-Key {emu.issue_api_key()}",
        "HTTP_OMNISEND_VERSION": VERSION,
        "HTTP_HOST": "emulator.test",
        "wsgi.url_scheme": "http",
        "wsgi.input": __import__("io").BytesIO(b""),
    }
    body = b"".join(emu.wsgi_app(environ, start_response))
    assert captured["status"] == "200 OK" and emu.default_brand_id.encode() in body

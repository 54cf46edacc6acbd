"""Seeded fault injection: every kind, its effect on state, and reproducibility per seed."""

from __future__ import annotations

import json
import time

import pytest
import requests

from django_omnisend.emulator import Emulator
from tests.emulator.conftest import VERSION, Api, contact, problem
from tests.workers import wait_until


def statuses(api: Api, n: int = 40) -> list[int]:
    out = []
    for i in range(n):
        out.append(api.post("/contacts", json=contact(f"s{i}@example.com")).status_code)
        out.append(api.get("/contacts", params={"limit": 1}).status_code)
    return out


def schedule(emu: Emulator) -> None:
    emu.add_fault("POST /api/contacts", "500", rate=0.3)
    emu.add_fault("POST /api/contacts", "429", rate=0.2, retry_after=None)
    emu.add_fault("GET /api/contacts", "503", rate=0.25)


def test_same_seed_same_sequence(api, emulator, http):
    schedule(emulator)
    first = statuses(api)
    assert {500, 429, 201}.issubset(first) and {503, 200}.issubset(first)
    emulator.reset()  # forgets the API key too
    schedule(emulator)
    assert statuses(Api(emulator, http, f"Omnisend-API-Key {emulator.issue_api_key()}")) == first
    # An independent emulator with the same seed replays it too; another seed does not.
    for seed, same in ((1234, True), (99, False)):
        other = Emulator(seed=seed)
        with other.serve():
            schedule(other)
            sequence = statuses(Api(other, http, f"Omnisend-API-Key {other.issue_api_key()}"))
        assert (sequence == first) is same


def test_error_kinds_answer_without_applying(api, emulator):
    emulator.add_fault("POST /api/contacts", "429", times=1, retry_after=7)
    emulator.add_fault("POST /api/contacts", "429", times=1, retry_after=None)
    emulator.add_fault("POST /api/contacts", "500", times=1)
    emulator.add_fault("POST /api/contacts", "503", times=1)
    emulator.add_fault("POST /api/contacts", "400", times=1)
    answers = [api.post("/contacts", json=contact("f@example.com")) for _ in range(6)]
    assert [r.status_code for r in answers] == [429, 429, 500, 503, 400, 201]
    assert problem(answers[0])["retryAfter"] == 7
    assert "retryAfter" not in problem(answers[1])
    assert problem(answers[4])["errors"]
    assert [e.fault for e in emulator.ledger_for("/api/contacts")] == [
        "429",
        "429",
        "500",
        "503",
        "400",
        None,
    ]
    assert len(emulator.contacts()) == 1


def test_reset_before_drops_the_connection_without_applying(emulator, api_key, http):
    emulator.add_fault("POST /api/contacts", "reset_before")
    with pytest.raises(requests.ConnectionError):
        http.post(
            emulator.api_url + "/contacts",
            json=contact("r@example.com"),
            headers={"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": VERSION},
        )
    assert emulator.get_contact("r@example.com") is None
    (entry,) = emulator.ledger_for("/api/contacts")
    assert entry.status == 0 and entry.fault == "reset_before"


def test_reset_after_applies_then_drops(emulator, api_key, http):
    emulator.add_fault("POST /api/contacts", "reset_after")
    with pytest.raises(requests.ConnectionError) as excinfo:
        http.post(
            emulator.api_url + "/contacts",
            json=contact("r@example.com"),
            headers={"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": VERSION},
        )
    assert "reset" in str(excinfo.value).lower() or "aborted" in str(excinfo.value).lower()
    assert emulator.get_contact("r@example.com") is not None


def test_apply_then_hang_outlasts_the_client_timeout(api, emulator):
    emulator.add_fault("POST /api/contacts", "apply_then_hang", seconds=1.0, times=1)
    with pytest.raises(requests.ReadTimeout):
        api.post("/contacts", json=contact("h@example.com"), timeout=0.3)
    # On a loaded machine the client may give up before the emulator has read the request:
    # wait for the write itself (it lands within the fault's hang), not for a moment in time.
    assert wait_until(lambda: emulator.get_contact("h@example.com") is not None, timeout=10)
    assert api.post("/contacts", json=contact("h@example.com")).status_code == 200


def test_truncated_json_body(emulator, api_key, http):
    emulator.add_fault("POST /api/contacts", "truncate")
    response = http.post(
        emulator.api_url + "/contacts",
        json=contact("t@example.com"),
        headers={"Authorization": f"Omnisend-API-Key {api_key}", "Omnisend-Version": VERSION},
    )
    assert response.status_code == 201
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert response.content.startswith(b'{"id":')
    assert emulator.get_contact("t@example.com") is not None


def test_latency(api, emulator):
    emulator.add_fault("GET /api/brands/current", "latency", seconds=0.3)
    started = time.monotonic()
    assert api.get("/brands/current").status_code == 200
    assert time.monotonic() - started >= 0.3


def test_route_patterns_rates_and_times(api, emulator):
    emulator.add_fault("/api/contacts*", "503", times=2)
    assert api.get("/brands/current").status_code == 200
    assert api.get("/contacts/abc").status_code == 503
    assert api.post("/contacts", json=contact("p@example.com")).status_code == 503
    assert api.get("/contacts").status_code == 200
    emulator.clear_faults()
    emulator.add_fault("*", "500", rate=0.0)
    assert api.get("/brands/current").status_code == 200
    emulator.add_fault("GET /oauth2/*", "500")
    assert requests.get(emulator.authorize_url, timeout=5).status_code == 500
    with pytest.raises(ValueError):
        emulator.add_fault("*", "418")
    with pytest.raises(ValueError):
        emulator.add_fault("*", "500", rate=2)


def test_faults_over_the_control_endpoint(api, emulator, http):
    url = emulator.base_url + "/__emulator__/faults"
    added = http.post(url, json={"route": "GET /api/brands/current", "kind": "503", "times": 1})
    assert added.status_code == 200 and added.json()["kind"] == "503"
    assert api.get("/brands/current").status_code == 503
    assert http.get(url).json()[0]["fired"] == 1
    assert http.post(url, json={"kind": "nope"}).status_code == 400
    assert http.delete(url).json() == {"ok": True}
    assert http.get(url).json() == []


def test_duration_ends_a_rule_on_the_emulator_clock(api, emulator, http):
    rule = emulator.add_fault("POST /api/contacts", "429", duration=60, retry_after=None)
    after = emulator.add_fault("POST /api/contacts", "503", rate=0.0)
    assert rule["expires_at"] == pytest.approx(emulator.clock() + 60, abs=1)
    assert api.post("/contacts", json=contact("d@example.com")).status_code == 429
    emulator.advance_clock(61)  # the storm is over: healthy again, without removing the rule
    assert api.post("/contacts", json=contact("d@example.com")).status_code == 201
    (listed, _) = emulator.faults_list()
    assert (listed["fired"], listed["seen"]) == (1, 2)
    # An expired rule still draws, so the rules after it keep their schedule.
    assert emulator.faults_list()[1]["seen"] == 2 and after["expires_at"] is None
    # Over HTTP too.
    url = emulator.base_url + "/__emulator__/faults"
    added = http.post(url, json={"route": "GET /api/brands/current", "kind": "503", "duration": 30})
    assert added.json()["expires_at"] == pytest.approx(emulator.clock() + 30, abs=1)
    assert api.get("/brands/current").status_code == 503
    emulator.advance_clock(31)
    assert api.get("/brands/current").status_code == 200


def test_remove_fault_by_id_keeps_the_others(api, emulator):
    storm = emulator.add_fault("POST /api/contacts", "503")
    slow = emulator.add_fault("GET /api/brands/current", "latency", seconds=0.0)
    assert api.post("/contacts", json=contact("r@example.com")).status_code == 503
    assert emulator.remove_fault(storm["id"]) is True
    assert emulator.remove_fault(storm["id"]) is False
    assert api.post("/contacts", json=contact("r@example.com")).status_code == 201
    assert [r["id"] for r in emulator.faults_list()] == [slow["id"]]
    # Numbering goes on after a removal (ids stay unique); clear() restarts it.
    assert emulator.add_fault("*", "500", rate=0.0)["id"] == slow["id"] + 1


def test_revoked_api_key_gets_401(api, emulator, api_key):
    assert api.get("/brands/current").status_code == 200
    emulator.revoke_api_key(api_key)
    assert api.get("/brands/current").status_code == 401
    with pytest.raises(KeyError):
        emulator.revoke_api_key("no-such-key")

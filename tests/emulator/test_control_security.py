"""The control API (``/__emulator__``) answers this machine's tools, not any web page.

A browser page on any site can send a "simple" cross-site POST (``text/plain``, a form, or no
body at all) to ``http://127.0.0.1:8787``; it cannot send ``Content-Type: application/json``
or a custom header without a CORS preflight, which the emulator never grants. A DNS-rebinding
page can read answers, but its requests carry its own name in ``Host``. So: every POST and
every body must be JSON, the ``Host`` must be loopback, and a control token, when one is set,
must come in the ``Emulator-Control-Token`` header.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import requests

from django_omnisend.emulator import Emulator, control
from tests.emulator.conftest import contact
from tests.emulator.test_process import REPO, banner, start


def _port(emulator: Emulator) -> int:
    return int(emulator.base_url.rsplit(":", 1)[1])


@pytest.mark.parametrize(
    "headers, body",
    [
        ({"Content-Type": "text/plain"}, json.dumps({"auto_approve": True})),
        ({"Content-Type": "text/plain;charset=UTF-8"}, json.dumps({"auto_approve": True})),
        ({"Content-Type": "application/x-www-form-urlencoded"}, '{"auto_approve": true}'),
        ({"Content-Type": "multipart/form-data; boundary=x"}, '{"auto_approve": true}'),
        ({}, json.dumps({"auto_approve": True})),  # no Content-Type at all
    ],
)
def test_a_cross_site_post_is_refused_and_changes_nothing(emulator, http, headers, body):
    response = http.post(emulator.control_url + "/config", data=body, headers=headers)
    assert response.status_code == 415
    assert "application/json" in response.json()["error"]
    assert emulator.config.auto_approve is False


def test_a_body_less_cross_site_post_is_refused_too(emulator, http):
    # fetch(url, {method: "POST", mode: "no-cors"}) sends no body and no Content-Type.
    emulator.seed_contact(**contact("kept@example.com", "subscribed"))
    response = http.post(emulator.control_url + "/reset")
    assert response.status_code == 415
    assert [c["email"] for c in emulator.contacts()] == ["kept@example.com"]
    # The same call as a tool makes it: JSON, even if empty.
    assert http.post(emulator.control_url + "/reset", json={}).json() == {"ok": True}
    assert emulator.contacts() == []


def test_json_with_parameters_is_json(emulator, http):
    response = http.post(
        emulator.control_url + "/config",
        data=json.dumps({"tags_delay": 7}),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200 and emulator.config.tags_delay == 7


@pytest.mark.parametrize(
    "host",
    [
        "evil.example",
        "evil.example:{port}",
        "127.0.0.1.evil.example:{port}",
        "localhost.evil.example",
        "[::1].evil.example",
        "127.0.0.1:{port}@evil.example",
        "0x7f000001:{port}",
        "",
    ],
)
def test_a_foreign_host_header_is_refused(emulator, http, host):
    host = host.format(port=_port(emulator))
    emulator.issue_api_key()  # something secret to read
    ledger = http.get(emulator.control_url + "/ledger", headers={"Host": host})
    assert ledger.status_code == 403
    assert "Host" in ledger.json()["error"] and emulator.newest_api_key() not in ledger.text
    changed = http.post(
        emulator.control_url + "/config", json={"auto_approve": True}, headers={"Host": host}
    )
    assert changed.status_code == 403 and emulator.config.auto_approve is False
    # The start page shows the demo client's secret and an API key: the same rule.
    start_page = http.get(emulator.base_url + "/", headers={"Host": host})
    assert start_page.status_code == 403 and emulator.demo_client_secret not in start_page.text


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1:{port}",
        "127.0.0.1",
        "127.1.2.3:{port}",
        "localhost:{port}",
        "LocalHost",
        "[::1]:{port}",
        "[::1]",
    ],
)
def test_loopback_host_headers_are_accepted(emulator, http, host):
    headers = {"Host": host.format(port=_port(emulator))}
    assert http.get(emulator.control_url + "/ledger", headers=headers).status_code == 200
    changed = http.post(emulator.control_url + "/config", json={"tags_delay": 3}, headers=headers)
    assert changed.status_code == 200 and emulator.config.tags_delay == 3
    assert http.get(emulator.base_url + "/", headers=headers).status_code == 200


def test_the_api_and_oauth_answer_any_host(emulator, http, api_key):
    # Only the control API and the start page check the Host: Omnisend's own endpoints are
    # what a site under test calls, by whatever name it reaches the emulator.
    response = http.get(
        emulator.api_url + "/brands/current",
        headers={
            "Host": "omnisend.test",
            "Authorization": f"Omnisend-API-Key {api_key}",
            "Omnisend-Version": "2026-03-15",
        },
    )
    assert response.status_code == 200


def test_a_control_token_is_required_when_set():
    with Emulator(control_token="s3cret-token").serve() as emulator, requests.Session() as http:
        url = emulator.control_url + "/config"
        assert http.get(url).status_code == 403
        wrong = http.post(url, json={"auto_approve": True}, headers={control.TOKEN_HEADER: "guess"})
        assert wrong.status_code == 403 and "token" in wrong.json()["error"]
        assert "s3cret-token" not in wrong.text
        assert emulator.config.auto_approve is False
        right = http.post(
            url, json={"auto_approve": True}, headers={control.TOKEN_HEADER: "s3cret-token"}
        )
        assert right.status_code == 200 and emulator.config.auto_approve is True
        # The token guards the control API only: the API keeps its own credentials.
        key = emulator.issue_api_key()
        brand = http.get(
            emulator.api_url + "/brands/current",
            headers={"Authorization": f"Omnisend-API-Key {key}", "Omnisend-Version": "2026-03-15"},
        )
        assert brand.status_code == 200
        # The start page says a token is needed, never which.
        page = http.get(emulator.base_url + "/").text
        assert control.TOKEN_HEADER in page and "s3cret-token" not in page


def test_no_token_is_needed_when_none_is_set(emulator, http):
    assert http.get(emulator.control_url + "/", headers={control.TOKEN_HEADER: "x"}).ok
    assert http.get(emulator.control_url + "/").ok


def test_the_command_line_takes_a_control_token():
    proc = start(
        [
            sys.executable,
            "-m",
            "django_omnisend.emulator",
            "--port",
            "0",
            "--control-token",
            "cli-token",
        ]
    )
    try:
        shown = banner(proc)
        control_url = shown["Control"].rstrip("/")
        assert requests.get(control_url + "/", timeout=5).status_code == 403
        answer = requests.get(
            control_url + "/", headers={control.TOKEN_HEADER: "cli-token"}, timeout=5
        )
        assert answer.status_code == 200
    finally:
        proc.terminate()
        proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_the_control_token_is_not_in_the_process_banner_or_state(tmp_path):
    state = tmp_path / "state.json"
    emulator = Emulator(control_token="never-stored", state_file=state)
    assert "never-stored" not in emulator.describe_text("http://127.0.0.1:1")
    assert "never-stored" not in json.dumps(emulator.describe("http://127.0.0.1:1"))
    assert "never-stored" not in state.read_text()
    assert "never-stored" not in repr(emulator)


def test_the_cli_help_lists_the_option():
    done = subprocess.run(
        [sys.executable, "-m", "django_omnisend.emulator", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "--control-token" in done.stdout

"""The emulator's start page (``GET /``) shows what the README tells a developer to paste:
the API URL, the OAuth URLs, the demo client's credentials and an API key."""

from __future__ import annotations

import sys

import requests

from django_omnisend.emulator import Emulator

from .test_process import banner, start, stop


def _page(base_url: str) -> str:
    response = requests.get(base_url + "/", timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return response.text


def test_start_page_shows_urls_client_and_the_newest_api_key():
    with Emulator(seed=1).serve(port=0) as emu:
        emu.issue_api_key()
        newest = emu.issue_api_key()
        base = emu.base_url
        page = _page(base)
    for path in ("/api", "/oauth2/authorize", "/oauth2/token", "/oauth2/revoke"):
        assert f"{base}{path}" in page, path
    assert emu.demo_client_id in page and emu.demo_client_secret in page
    assert f"API key:       {newest}" in page


def test_start_page_names_no_key_when_none_was_issued():
    with Emulator(seed=1).serve(port=0) as emu:
        page = _page(emu.base_url)
    assert "API key:       none issued" in page
    assert "/__emulator__/api-keys" in page  # says how to get one


def test_revoked_key_is_not_offered():
    with Emulator(seed=1).serve(port=0) as emu:
        kept = emu.issue_api_key()
        emu.revoke_api_key(emu.issue_api_key())
        assert f"API key:       {kept}" in _page(emu.base_url)


def test_fixed_key_is_the_one_shown_even_when_registered_again(tmp_path):
    """``--api-key`` across runs with a state file: the key of this run is the one shown."""
    state = tmp_path / "state.json"
    first = Emulator(state_file=state)
    first.add_api_key("local-dev-key")
    first.issue_api_key()  # e.g. a run without --api-key in between
    second = Emulator(state_file=state)
    second.add_api_key("local-dev-key")
    with second.serve(port=0):
        assert "API key:       local-dev-key" in _page(second.base_url)


def test_command_line_banner_and_start_page_agree(tmp_path):
    args = [sys.executable, "-m", "django_omnisend.emulator", "--port", "0", "--api-key", "k-123"]
    with start(args) as proc:
        info = banner(proc)
        base = info["API"].removesuffix("/api")
        page = _page(base)
        stop(proc)
    assert info["API key"] == "k-123"
    shown = {
        name.strip(): value.strip().split("   ")[0]
        for name, _, value in (line.partition(":") for line in page.splitlines()[1:])
    }
    for name in ("API", "Authorize", "Token", "Revoke", "Client ID", "Client secret", "API key"):
        assert shown[name] == info[name], name

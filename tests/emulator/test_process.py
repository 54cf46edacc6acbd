"""The emulator as a process: ``python -m django_omnisend.emulator`` and ``manage.py``."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import requests

from tests.emulator.conftest import VERSION, contact

REPO = Path(__file__).resolve().parents[2]


def start(args: list[str]) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def banner(proc: subprocess.Popen[str], timeout: float = 15) -> dict[str, str]:
    """Read the printed banner (``Name: value`` lines) until "Serving"."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.put(line)
            if line.startswith("Serving"):
                return

    threading.Thread(target=pump, daemon=True).start()
    seen: dict[str, str] = {}
    text = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no banner; output so far: {''.join(text)}") from None
        text.append(line)
        if line.startswith("Serving"):
            return seen
        if ":" in line and line.startswith("  "):
            name, _, value = line.strip().partition(":")
            seen[name] = value.strip().split("   ")[0]


def stop(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    return out


def test_module_entry_point_serves_the_consent_page_and_keeps_state(tmp_path):
    state = tmp_path / "emulator.json"
    args = [
        sys.executable, "-m", "django_omnisend.emulator", "--port", "0", "--state-file", str(state),
        "--redirect-uri", "http://127.0.0.1:9000/omnisend/callback/", "--api-key", "fixed-key-123",
    ]  # fmt: skip
    with start(args) as proc:
        info = banner(proc)
        assert info["Client ID"] and info["Client secret"] and info["API key"] == "fixed-key-123"
        assert info["Redirect URIs"] == "http://127.0.0.1:9000/omnisend/callback/"
        assert info["API"].endswith("/api") and info["Authorize"].endswith("/oauth2/authorize")
        with requests.Session() as http:
            page = http.get(
                info["Authorize"],
                params={
                    "response_type": "code",
                    "client_id": info["Client ID"],
                    "redirect_uri": "http://127.0.0.1:9000/omnisend/callback/",
                    "scope": "contacts.read contacts.write",
                    "state": "abc",
                },
            )
            assert page.status_code == 200 and "Approve" in page.text and "Deny" in page.text
            headers = {
                "Authorization": "Omnisend-API-Key fixed-key-123",
                "Omnisend-Version": VERSION,
            }
            created = http.post(
                info["API"] + "/contacts", json=contact("kept@example.com"), headers=headers
            )
            assert created.status_code == 201
        assert "Emulator stopped." in stop(proc)
    assert state.is_file()
    with start(args) as proc:  # a second run sees the contacts of the first
        info = banner(proc)
        with requests.Session() as http:
            listed = http.get(info["API"] + "/contacts", headers=headers).json()
        assert [c["email"] for c in listed["contacts"]] == ["kept@example.com"]
        stop(proc)


def test_management_command(tmp_path):
    args = [
        sys.executable, "-m", "django", "omnisend_emulator", "--port", "0", "--auto-approve",
        "--settings", "tests.settings",
    ]  # fmt: skip
    with start(args) as proc:
        info = banner(proc)
        with requests.Session() as http:
            params = {
                "response_type": "code",
                "client_id": info["Client ID"],
                "scope": "contacts.read",
                "redirect_uri": "http://127.0.0.1:8000/omnisend/callback/",
                "state": "s",
            }
            response = http.get(info["Authorize"], params=params, allow_redirects=False)
        assert response.status_code == 302 and "code=" in response.headers["Location"]
        stop(proc)

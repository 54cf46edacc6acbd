"""Two worker *processes* race to refresh one rotating refresh token (issue 15, item 1).

The emulator rotates refresh tokens and, like a careful authorization server (RFC 9700
§4.14.2), revokes the whole grant when a rotated-out refresh token comes back. A second token
request therefore does not just fail: it kills the token the first one got. Exactly one
token request may reach it, both workers must call the API with the same new token, and the
connection must stay active. The token endpoint answers slowly so that, without a lock shared
by the processes, both are inside their refresh at once.

Runs on whichever database the suite uses (SQLite by default; ``DATABASE_URL=postgres://…``).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from django_omnisend.models import Connection
from tests.workers import REPO_ROOT, stop, wait_until, worker_env

from .conftest import form, token_requests

WORKER = (sys.executable, "-m", "tests.connect.refresh_worker")
#: Seconds the token endpoint takes: long enough that both workers are inside it together.
TOKEN_LATENCY = 0.5


def stale_connection(emulator, mode):
    token = emulator.issue_token(client_id=emulator.demo_client_id)
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo")
    # "expiring": a token about to expire is refreshed before the call.
    connection.set_tokens(
        token["access_token"],
        token["refresh_token"],
        expires_in=30 if mode == "expiring" else token["expires_in"],
    )
    connection.scopes = token["scope"].split()
    connection.save()
    return connection, token


@pytest.mark.parametrize("mode", ["expiring", "401"])
@pytest.mark.django_db(transaction=True)
def test_two_processes_refresh_a_rotating_token_once(emulator, emulator_settings, tmp_path, mode):
    emulator.configure(rotate_refresh_tokens=True, refresh_reuse_revokes_grant=True)
    emulator.add_fault(route="POST /oauth2/token", kind="latency", seconds=TOKEN_LATENCY)
    connection, token = stale_connection(emulator, mode)

    workers = [
        subprocess.Popen(
            [*WORKER, mode, str(connection.pk), str(tmp_path), name],
            env=worker_env({}),
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    try:
        ready = [tmp_path / "a.ready", tmp_path / "b.ready"]
        assert wait_until(lambda: all(p.exists() for p in ready), timeout=120, interval=0.01)
        if mode == "401":
            emulator.revoke_token(token["access_token"])
        (tmp_path / "go").touch()
        outputs = [w.communicate(timeout=120) for w in workers]
    finally:
        for w in workers:
            if w.poll() is None:  # only after a failure above
                stop(w)
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err[-3000:]

    refreshes = [e for e in token_requests(emulator) if form(e)["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1, [e.status for e in refreshes]
    connection.refresh_from_db()
    assert connection.status == Connection.Status.ACTIVE, connection.status_reason
    assert connection.access_token != token["access_token"]
    assert connection.refresh_token != token["refresh_token"]
    results = [json.loads(out) for out, _err in outputs]
    assert [r["fingerprint"] for r in results] == [connection.fingerprint] * 2
    assert [r["brand"] for r in results] == [emulator.default_brand_id] * 2
    # The stored token is still valid at Omnisend (a second refresh would have revoked it).
    calls = [e for e in emulator.ledger_for("/api/brands/current") if e.status == 200]
    assert len(calls) == 2
    assert emulator.ledger_for("/oauth2/token")[0].status == 200

"""The example serves on loopback only: ``demo --host`` and ``runserver ADDR`` refuse the rest.

The example runs with ``DEBUG`` on, a development ``SECRET_KEY`` and a demo superuser: it must
not be reachable from the network, so both commands stop with a clear error, before migrating
or binding anything, when asked for a host that is not a loopback address (127.0.0.0/8, ::1,
``localhost``). The commands run as child processes, as a user types them.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import requests

from .demo_site import MANAGE_PY, free_port, port_is_closed, terminate

REFUSED = ["0.0.0.0", "192.0.2.10", "example.com", "::"]


def _env(folder: Path) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OMNISEND_", "DJANGO_")) and key not in {"DATABASE_URL", "DEBUG"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        DATABASE_URL=f"sqlite:///{folder / 'example.sqlite3'}",
        OMNISEND_USE_EMULATOR="true",
        OMNISEND_EMULATOR_URL=f"http://127.0.0.1:{free_port()}",
        OMNISEND_EMULATOR_STATE=str(folder / "emulator_state.json"),
        PYTHONUNBUFFERED="1",
    )
    return env


def _tables(database: Path) -> list[str]:
    """The tables in a SQLite file (none when it does not exist: the system checks may open
    the database, which creates an empty file)."""
    if not database.exists():
        return []
    with closing(sqlite3.connect(database)) as db:
        return [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]


def _manage(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(MANAGE_PY), *args],
        cwd=folder,
        env=_env(folder),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("host", REFUSED)
def test_demo_refuses_a_host_that_is_not_loopback(tmp_path, host):
    port = free_port()
    done = _manage(tmp_path, "demo", "--host", host, "--port", str(port))
    assert done.returncode != 0
    assert "loopback" in done.stderr and host in done.stderr, done.stderr
    # Refused before anything happened: nothing migrated, no emulator state, nothing listening.
    assert _tables(tmp_path / "example.sqlite3") == []
    assert not (tmp_path / "emulator_state.json").exists()
    assert port_is_closed(port)


@pytest.mark.parametrize("host", REFUSED)
def test_runserver_refuses_a_host_that_is_not_loopback(tmp_path, host):
    port = free_port()
    addrport = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    done = _manage(tmp_path, "runserver", addrport, "--noreload", "--skip-checks")
    assert done.returncode != 0
    assert "loopback" in done.stderr and host in done.stderr, done.stderr
    assert port_is_closed(port)


@pytest.mark.slow
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_runserver_still_serves_on_loopback(tmp_path, host):
    port = free_port()
    assert _manage(tmp_path, "migrate", "--verbosity", "0").returncode == 0
    process = subprocess.Popen(
        [sys.executable, str(MANAGE_PY), "runserver", f"{host}:{port}", "--noreload"],
        cwd=tmp_path,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        # runserver prints this line once it listens (or exits, ending the output).
        for line in process.stdout:
            if "Quit the server with" in line:
                break
        assert process.poll() is None, "runserver exited"
        page = requests.get(f"http://127.0.0.1:{port}/", timeout=10)
        assert page.status_code == 200
    finally:
        terminate(process)
        process.stdout.close()

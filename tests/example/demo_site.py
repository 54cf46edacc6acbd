"""Run the example project's ``manage.py demo`` as the README's first command does.

:func:`running_demo` starts it in a child process on free ports with a fresh SQLite database and
emulator state file in a temporary folder (so it never meets a developer's own example data or
a concurrent test run), waits for its banner, and stops it with SIGTERM as Ctrl-C would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MANAGE_PY = REPO / "example_project" / "manage.py"
#: The last line of the banner `demo` prints once the site answers.
READY_LINE = "Press Ctrl-C to stop."
ADMIN_USER = "admin"
#: The banner's admin line; `demo` gives the superuser a new random password at each start.
ADMIN_LINE = re.compile(rf"\(user {ADMIN_USER}, password (\S+)\)")
#: Variables that would steer the example away from its embedded defaults.
_STRIPPED = {"DATABASE_URL", "CACHE_URL", "DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG"}


@dataclass
class DemoSite:
    base_url: str
    emulator_url: str
    process: subprocess.Popen
    log_path: Path
    #: The demo superuser's password, as the banner printed it.
    admin_password: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_is_closed(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def running_demo(folder: Path, timeout: float = 90.0, **extra_env: str) -> Iterator[DemoSite]:
    """``manage.py demo`` running in ``folder``; yields once it printed its banner.

    ``extra_env`` adds environment variables (e.g. ``OMNISEND_MARK_WITH="trigger"``).
    """
    port, emulator_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("OMNISEND_") and key not in _STRIPPED
    }
    env.update(
        DJANGO_SETTINGS_MODULE="example.settings",
        DATABASE_URL=f"sqlite:///{folder / 'example.sqlite3'}",
        OMNISEND_USE_EMULATOR="true",  # whatever a developer's example_project/.env says
        OMNISEND_EMULATOR_URL=f"http://127.0.0.1:{emulator_port}",
        OMNISEND_EMULATOR_STATE=str(folder / "emulator_state.json"),
        PYTHONUNBUFFERED="1",
        **extra_env,
    )
    log_path = folder / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(MANAGE_PY), "demo", "--port", str(port)],
            cwd=folder,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    site = DemoSite(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{emulator_port}", process, log_path
    )
    try:
        deadline = time.monotonic() + timeout
        while READY_LINE not in site.log():
            if process.poll() is not None:
                pytest.fail(f"manage.py demo exited with {process.returncode}:\n{site.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"manage.py demo did not start within {timeout:.0f} s:\n{site.log()}")
            time.sleep(0.2)
        found = ADMIN_LINE.search(site.log())
        assert found, f"no admin password in the banner:\n{site.log()}"
        site.admin_password = found.group(1)
        yield site
    finally:
        stop(site)


def stop(site: DemoSite) -> int:
    """SIGTERM, as a supervisor would; the whole group is killed if it does not stop in time."""
    return terminate(site.process)


def terminate(process: subprocess.Popen) -> int:
    """SIGTERM ``process`` (started in a group of its own); SIGKILL the group after 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return process.returncode


def confirmation_link(log: str, email: str) -> str:
    """The link in the confirmation e-mail to ``email``, as the console backend printed it.

    The body is quoted-printable, so long lines carry soft breaks (``=`` at a line end).
    """
    text = log.replace("=\n", "")
    match = re.search(rf"confirm {re.escape(email)}:\s+(http://\S+/verify/\S+/)", text)
    assert match, log
    return match.group(1)

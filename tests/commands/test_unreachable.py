"""With Omnisend unreachable, every command exits non-zero and says why and what to do."""

from __future__ import annotations

import subprocess
import sys
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from django_omnisend.models import SyncState
from tests.sync.outage import omnisend_down
from tests.workers import REPO_ROOT, worker_env

pytestmark = pytest.mark.django_db

User = get_user_model()


def make_users(count=3):
    for n in range(count):
        User.objects.create_user(f"user{n}", f"user{n}@example.com")


def run(*args: str) -> tuple[str, CommandError]:
    out = StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command(*args, stdout=out, stderr=StringIO())
    return out.getvalue(), excinfo.value


def assert_says_why(error: CommandError, down: dict) -> None:
    message = str(error)
    assert error.returncode != 0
    assert f"connection refused by {down['host']}" in message
    assert 'OMNISEND["API_URL"]' in message  # what to check
    assert down["API_KEY"] not in message and "@example.com" not in message


def test_sync_contacts_exits_non_zero_naming_the_reason(sync_settings, emulator):
    make_users()
    with omnisend_down(sync_settings) as down:
        output, error = run("omnisend_sync_contacts", "--no-progress")
    assert "still pending 3" in output
    assert_says_why(error, down)
    assert "3 users" in str(error)
    assert SyncState.objects.filter(dirty=True).count() == 3  # nothing lost


@pytest.mark.django_db(transaction=True)
def test_sync_contacts_exit_status_from_the_command_line(sync_settings, emulator):
    make_users()
    with omnisend_down(sync_settings) as down:
        process = subprocess.run(
            [sys.executable, "-m", "django", "omnisend_sync_contacts", "--skip-checks"],
            env=worker_env({"SYNC_USERS": True}),
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert process.returncode == 1, process.stdout
    assert f"connection refused by {down['host']}" in process.stderr
    assert "Traceback" not in process.stderr


def test_drain_once_exits_non_zero_naming_the_reason(sync_settings, emulator):
    make_users()
    with omnisend_down(sync_settings) as down:
        output, error = run("omnisend_drain", "--once")
    assert "retrying 3" in output
    assert_says_why(error, down)


def test_drain_once_names_omnisend_failing(sync_settings, emulator):
    make_users(1)
    emulator.add_fault(route="/api/*", kind="503")
    _, error = run("omnisend_drain", "--once")
    assert "Omnisend answered 503" in str(error) and error.returncode != 0


def test_pull_exits_non_zero_naming_the_reason(recording_settings, emulator):
    with omnisend_down(recording_settings) as down:
        _, error = run("omnisend_pull")
    assert_says_why(error, down)
    assert "resume point" in str(error)

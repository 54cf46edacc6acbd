"""``omnisend_drain --loop`` logs each change of state once and a periodic summary, not a
line per pass (an outage used to print the same line on every pass)."""

from __future__ import annotations

import subprocess

import pytest
from django.contrib.auth import get_user_model

from tests.workers import start_drain, stop

User = get_user_model()
PASSES = 40


def make_users(count):
    for n in range(count):
        User.objects.create_user(f"user{n}", f"user{n}@example.com")


def run_worker(overrides, passes=PASSES) -> list[str]:
    """Run a worker for exactly ``passes`` passes; its stdout and stderr lines."""
    worker = start_drain(
        overrides,
        "--loop",
        "--max-passes",
        str(passes),
        "--idle-sleep",
        "0.01",
        "--summary-every",
        "3600",  # no periodic summary inside the run: every line counted is a state change
    )
    try:
        out, err = worker.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        out, err = stop(worker)
        pytest.fail(f"the worker did not finish {passes} passes: {out}{err}")
    assert worker.returncode == 0, err
    return [line for line in (out + err).splitlines() if line.strip()]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("fault", ["503", "reset_before"])
def test_an_outage_is_logged_once_over_many_passes(sync_settings, emulator, fault):
    make_users(30)  # enough to open the circuit breaker, which then holds every pass
    emulator.add_fault(route="/api/*", kind=fault)
    lines = run_worker({"SYNC_USERS": True})
    down = [line for line in lines if line.startswith("Omnisend unreachable since ")]
    assert len(down) == 1, lines
    assert lines[-1].startswith(f"Stopped after {PASSES} passes"), lines
    assert len(lines) == 2, lines
    assert "@example.com" not in "\n".join(lines)


@pytest.mark.django_db(transaction=True)
def test_a_pause_is_logged_once_with_its_reason(sync_settings, emulator):
    make_users(3)
    key = f"{emulator.default_brand_id}-revoked"
    lines = run_worker({"SYNC_USERS": True, "API_KEY": key})
    assert lines[0].startswith("Connection 'default' paused: credential rejected (401).")
    assert lines[-1].startswith(f"Stopped after {PASSES} passes") and len(lines) == 2, lines
    assert key not in "\n".join(lines)


@pytest.mark.django_db
def test_recovery_is_logged_once_and_a_summary_comes_per_interval(sync_settings, emulator):
    from django.utils import timezone

    from django_omnisend.models import DeliveryControl, SyncState
    from django_omnisend.sync import drain
    from django_omnisend.sync.worker_log import LoopLog

    lines: list[str] = []
    clock = [0.0]
    log = LoopLog(lines.append, summary_every=60, clock=lambda: clock[0])
    make_users(3)
    emulator.add_fault(route="/api/*", kind="503")
    for _ in range(PASSES):
        log.passed(drain())
        clock[0] += 1
    assert len(lines) == 1 and lines[0].startswith("Omnisend unreachable since ")
    assert "Omnisend answered 503" in lines[0]

    emulator.clear_faults()
    # Skip the retry backoff (about 30 s) instead of waiting for it.
    SyncState.objects.update(next_attempt_at=timezone.now())
    DeliveryControl.objects.update(breaker_open_until=None)
    log.passed(drain())
    assert len(lines) == 2 and lines[1].startswith("Omnisend reachable again after ")

    clock[0] = 61.0
    log.passed(drain())  # nothing due: an idle pass, which ends the interval
    assert len(lines) == 3
    assert lines[2] == (
        f"Last 1 min 1 s: {PASSES + 2} passes, synced 3, unchanged 0, skipped 0, retrying 3, "
        "dead 0, events 0, erasures 0, deferred 0, requests 6"
    )
    clock[0] = 200.0
    log.passed(drain())
    assert len(lines) == 3  # an interval where nothing happened says nothing
    log.stopped()
    assert lines[3].startswith(f"Stopped after {PASSES + 3} passes in 3 min 20 s: synced 3,")


@pytest.mark.django_db
def test_a_pass_failing_the_same_way_is_logged_once(sync_settings, emulator, caplog):
    from django_omnisend.sync import drain
    from django_omnisend.sync.worker_log import LoopLog

    lines: list[str] = []
    log = LoopLog(lines.append, summary_every=3600)
    for _ in range(PASSES):
        try:  # raised, so the log carries a real traceback
            raise RuntimeError("proxy said no to Authorization: Bearer tok-123-secret")
        except RuntimeError as exc:
            log.failed(exc)
    errors = [r for r in caplog.records if r.name == "django_omnisend.worker_log"]
    assert len(errors) == 1 and "Traceback" in caplog.text
    assert "tok-123-secret" not in caplog.text
    log.passed(drain())
    assert lines == [f"Drain passes succeed again after {PASSES} failed passes."]


@pytest.mark.django_db
def test_a_cooldown_is_logged_once_with_its_end(sync_settings, emulator):
    from django_omnisend.sync import drain
    from django_omnisend.sync.worker_log import LoopLog

    lines: list[str] = []
    log = LoopLog(lines.append, summary_every=3600)
    make_users(5)
    emulator.add_fault(route="POST /api/contacts", kind="429", retry_after=30)
    for _ in range(PASSES):
        log.passed(drain())
    (line,) = lines
    assert line.startswith("Connection 'default' waiting: rate limited (429) until ")

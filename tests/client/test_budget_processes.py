"""Two processes, one shared budget (Redis, or the database): the emulator never sees more.

The budget is scaled down (20 requests per 3 s instead of 300 per 60 s) and so is the
emulator's own window, which would answer 429 if the bound were broken. The check is on the
emulator's ledger timestamps: no 3-second span holds more than 20 requests plus the two that
may be on their way (one per process) when the span starts. The budget bounds the times it
admits requests, not when they arrive; a request admitted just before a span and delayed past
the budget's margin lands in it (see ``budget_check`` in tests/faults/scenarios.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import pytest
from django.db import connection

from tests.faults.scenarios import FAKETIME_LIB, budget_check, clock_ahead, faketime_env

from .conftest import REDIS_URL
from .test_ratelimit import max_in_any_window

REPO = Path(__file__).resolve().parents[2]
BUDGET, WINDOW, PER_PROCESS = 20, 3.0, 25
#: Requests admitted but not yet arrived, at most: each process sends one at a time.
IN_FLIGHT = 2


def run_two_workers(
    emulator,
    store: str,
    *,
    envs: tuple[dict[str, str] | None, ...] = (None, None),
    per_process: int = PER_PROCESS,
    emulator_limit: int = BUDGET + IN_FLIGHT,
) -> list:
    """Run two budget workers on ``store`` to the end; return the emulator's upsert entries.

    ``envs``: extra environment of each worker (libfaketime's for a clock ahead). The workers
    are labelled ``w0`` and ``w1`` in their contacts' e-mails (:func:`sent_by`).
    """
    emulator.configure(rate_limit=emulator_limit, window_seconds=WINDOW)
    api_key = emulator.issue_api_key()
    brand = f"brand{uuid.uuid4().hex[:8]}"
    prefix = f"omnisend-budget-{uuid.uuid4().hex[:8]}"
    args = [emulator.api_url, api_key, store, prefix, brand, str(per_process)]
    args += [str(BUDGET), str(WINDOW)]
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-W", "error", "-m", "tests.client.budget_worker", *args, f"w{n}"],
            cwd=REPO,
            env={**env, **(extra or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n, extra in enumerate(envs)
    ]
    outputs = [w.communicate(timeout=240) for w in workers]
    for worker, (out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
        assert out.strip() == str(per_process)
    entries = emulator.ledger_for("/api/contacts", method="POST")
    # At least every success; a request retried after a dropped connection shows up twice,
    # and both attempts drew on the budget, so the window bound below still covers them.
    assert len(entries) >= len(envs) * per_process
    assert all(e.status in (200, 201) for e in entries), [e.status for e in entries]
    return entries


def sent_by(entries: list, label: str) -> list[float]:
    """Arrival times of the upserts worker ``label`` sent (its label is in the e-mail)."""
    return [e.time for e in entries if f"-{label}-".encode() in e.body]


def database_url(db: dict) -> str:
    """The test database as a URL the workers understand (SQLite file or PostgreSQL)."""
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    if connection.vendor not in ("postgresql", "mysql"):
        pytest.skip(f"the workers speak SQLite, PostgreSQL and MySQL, not {connection.vendor}")
    user = quote(db.get("USER") or "", safe="")
    password = quote(db.get("PASSWORD") or "", safe="")
    auth = f"{user}:{password}@" if password else f"{user}@"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    scheme = "mysql" if connection.vendor == "mysql" else "postgres"
    return f"{scheme}://{auth}{db.get('HOST') or ''}{port}/{db['NAME']}"


@pytest.mark.redis
@pytest.mark.slow
def test_two_processes_never_exceed_the_shared_budget(emulator, redis_cache):
    entries = run_two_workers(emulator, REDIS_URL)
    times = [e.time for e in entries]
    assert max_in_any_window(times, WINDOW) <= BUDGET + IN_FLIGHT
    # Both processes really ran concurrently and the budget was used, not just trickled.
    assert times[-1] - times[0] < 3 * WINDOW * 2


@pytest.mark.slow
def test_two_processes_share_a_database_budget_without_a_shared_cache(emulator, transactional_db):
    """LocMem caches (no Redis): the RateBudgetSlot table of the test database is the budget.

    On SQLite the one-statement admission, on PostgreSQL increment-then-read.
    """
    entries = run_two_workers(emulator, database_url(connection.settings_dict))
    times = [e.time for e in entries]
    most, bound = budget_check(times, BUDGET, in_flight=IN_FLIGHT, window=WINDOW)
    assert most <= bound
    # Both processes really ran concurrently and the budget was used, not just trickled:
    # 50 requests at 20 per 3 s take a little over 6 s when the two share it well.
    assert times[-1] - times[0] < 3 * WINDOW * 2


#: How far ahead the skewed worker's clock runs: many windows, as in the fault matrix's M20.
AHEAD = 150.0


@pytest.mark.slow
def test_a_worker_with_its_clock_ahead_neither_splits_nor_erases_a_database_budget(
    emulator, transactional_db
):
    """Two workers on the database budget, one with its clock 150 s ahead (libfaketime).

    Indexed by each process's clock, the skewed worker counted in sub-windows the other never
    read (the budget split in two), and deleted the other's current ones as "old" (so the
    other spent its budget again and again). PostgreSQL and MariaDB/MySQL index by the
    database server's clock: one budget, whatever the hosts' clocks say. SQLite has no server
    and keeps the process clock (one host by nature, see README): there each worker's clock
    makes its own budget, but neither may erase the other's, so each stays within it.
    """
    if not os.path.exists(FAKETIME_LIB):
        pytest.fail(f"libfaketime is not installed ({FAKETIME_LIB}): apt-get install faketime")
    skewed = faketime_env(AHEAD)
    # Fails, not skips, when the preload does not take: the test would prove nothing.
    assert clock_ahead(skewed) > AHEAD / 2
    # Three windows' worth each, so both run for several windows, side by side.
    per_process = 3 * BUDGET
    server_clock = connection.vendor != "sqlite"
    budgets = 1 if server_clock else 2
    entries = run_two_workers(
        emulator,
        database_url(connection.settings_dict),
        envs=(None, skewed),
        per_process=per_process,
        # The emulator's own limit is not what is tested here: the ledger is.
        emulator_limit=4 * (BUDGET + IN_FLIGHT),
    )
    everyone = [e.time for e in entries]
    most, bound = budget_check(everyone, budgets * BUDGET, in_flight=IN_FLIGHT, window=WINDOW)
    assert most <= bound, f"{most} requests in {WINDOW:g} s, bound {bound}"
    for label in ("w0", "w1"):
        times = sent_by(entries, label)
        assert len(times) >= per_process, label
        most, bound = budget_check(times, BUDGET, in_flight=1, window=WINDOW)
        assert most <= bound, f"{label}: {most} requests in {WINDOW:g} s, bound {bound}"

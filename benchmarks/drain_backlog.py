"""P9: a backlog of 100,000 dirty users cleared by ``omnisend_drain`` alone: API requests.

The users exist and Omnisend knows them (a backfill wrote them, outside the measured part);
then a mass update changes every profile and marks every row dirty, as an outage, a data
migration or a reconcile leaves them. The drain runs in a process of its own (``drain()``
until nothing is due), against an emulator process with its rate limit off and our own
budget far above what the run can use, so the figures are the app's own cost.

P9  API requests that reached the emulator (its ledger) to clear the backlog; target ≤ 1,100
    for 100,000 users (1,000 batches of 100 and the polls of the batch list). The baseline
    is the same drain sending one request per user (batches switched off), measured in the
    same run on ``--baseline-users`` users (10,000 by default: one request each, at 100,000
    it would take most of an hour); its figure is requests per user.

With ``--quick`` the sizes are 10,000 (batched) and 2,000 (one by one); the target scales
with the users (≤ 0.011 requests per user).

Run from the repository root::

    python benchmarks/drain_backlog.py [--db sqlite|postgresql|mariadb|all] [--quick]
        [--users 100000] [--baseline-users 10000] [--result rows.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

#: Target at 100,000 users; --quick scales it linearly.
REQUESTS_PER_USER = 1_100 / 100_000
OUR_RATE_LIMIT = 1_000_000


def child(step: str, out: str) -> int:
    """In a child process: ``backfill`` (the users Omnisend knows) or ``drain`` / ``single``."""
    import django

    django.setup()
    from django.core.management import call_command

    from django_omnisend.sync import batch_rounds
    from django_omnisend.sync import loop as sync

    started = time.perf_counter()
    result: dict[str, Any] = {}
    if step == "backfill":
        call_command("omnisend_sync_contacts", "--no-progress", stdout=open(os.devnull, "w"))  # noqa: SIM115
    else:
        if step == "single":
            batch_rounds.BATCH_THRESHOLD = 10**12  # the baseline: one request per user
        totals = {"requests": 0, "synced": 0, "passes": 0}
        while sync.due_count():
            done = sync.drain()
            totals["requests"] += done.requests
            totals["synced"] += done.synced
            totals["passes"] += 1
            if not done.processed and not done.requests:
                break
        result.update(totals)
    result["wall_seconds"] = time.perf_counter() - started
    Path(out).write_text(json.dumps(result))
    return 0


def run_child(db: dict[str, Any], omnisend: dict[str, Any], step: str) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    try:
        subprocess.run(
            [sys.executable, __file__, "--child", step, "--child-out", out],
            env=common.bench_env(db, omnisend),
            cwd=common.REPO_ROOT,
            check=True,
        )
        return json.loads(Path(out).read_text())
    finally:
        os.unlink(out)


def one_backlog(kind: str, db: dict[str, Any], users: int, step: str) -> dict[str, Any]:
    """Backfill ``users``, change and mark them all, then clear the backlog with ``step``."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from django_omnisend.models import SyncState
    from django_omnisend.sync.bulk import mark_users, select_users

    common.recreate_database(db)
    common.log(f"[{kind}] P9: {users:,} users, backfilled first")
    common.create_users(users)
    connection.close()
    with common.emulator(rate_limit_enabled=False) as emu:
        omnisend = common.omnisend_for(
            emu,
            SYNC_USERS=True,
            TRUST_EMAILS=True,
            RATE_LIMIT=OUR_RATE_LIMIT,
            RATE_LIMIT_WINDOW=60,
        )
        run_child(db, omnisend, "backfill")
        get_user_model()._default_manager.update(first_name="Backlog")
        marked = mark_users(select_users())
        connection.close()
        emu.clear_ledger()
        common.log(f"[{kind}] P9: draining {marked:,} dirty users ({step})")
        result = run_child(db, omnisend, step)
        ledger = emu.ledger("/api")
        contacts = emu.contacts()
    result["ledger_requests"] = len(ledger)
    result["batches"] = sum(1 for e in ledger if e["method"] == "POST" and "batches" in e["path"])
    result["statuses"] = sorted({e["status"] for e in ledger})
    result["clean"] = SyncState.objects.filter(dirty=False, state="synced").count()
    result["changed_at_omnisend"] = sum(1 for c in contacts if c.get("firstName") == "Backlog")
    connection.close()
    common.log(
        f"[{kind}]   {result['ledger_requests']:,} requests, {result['wall_seconds']:.1f} s, "
        f"{result['clean']:,} clean, {result['changed_at_omnisend']:,} changed at Omnisend"
    )
    if result["clean"] != users or result["changed_at_omnisend"] != users:
        raise SystemExit(f"the backlog was not cleared: {result}")
    return result


def measure(kind: str, options: Any) -> list[dict[str, Any]]:
    users = options.users or (10_000 if options.quick else 100_000)
    baseline_users = options.baseline_users or (2_000 if options.quick else 10_000)
    with common.database(kind) as db:
        common.setup_django(db, {"SYNC_USERS": False}, migrate=True)
        single = one_backlog(kind, db, baseline_users, "single")
        batched = one_backlog(kind, db, users, "drain")
    target = round(REQUESTS_PER_USER * users)
    per_user_single = single["ledger_requests"] / baseline_users
    return [
        common.row(
            "P9",
            kind,
            "requests",
            f"drain a backlog of {users:,} dirty users: API requests",
            f"{batched['ledger_requests']:,} requests ({batched['wall_seconds']:.0f} s)",
            f"{per_user_single:.2f}/user one by one ({baseline_users:,} users, "
            f"{single['wall_seconds']:.0f} s)",
            f"{batched['ledger_requests'] / users:.4f} per user "
            f"({per_user_single * users / max(batched['ledger_requests'], 1):.0f}x fewer)",
            f"≤ {target:,}",
            batched["ledger_requests"] <= target,
            batched=batched,
            single=single,
            users=users,
            baseline_users=baseline_users,
        )
    ]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    parser.add_argument("--users", type=int, help="dirty users in the measured backlog")
    parser.add_argument("--baseline-users", type=int, help="users drained one by one")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-out", help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    if options.child:
        return child(options.child, options.child_out)
    return common.main_per_database(__file__, argv, options, measure, ("P9",))


if __name__ == "__main__":
    sys.exit(main())

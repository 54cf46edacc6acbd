"""P8: ``omnisend_reconcile --all`` at a million users: wall time and memory growth.

Every user has a clean, synced sync row holding the hash of the payload the adapter builds
today (as after a backfill), so the command does its whole comparison for each of them; then,
as after ``QuerySet.update()`` and ``bulk_create``, 1 % of the users changed their first name
and another 1 % have no sync row at all. ``omnisend_reconcile --all`` runs in its own process
(so its peak RSS is its own) and marks exactly those 2 %. Figures:

* wall time of the run at ``--users`` (target ≤ 10 min at 10⁶; scaled with the user count
  under ``--quick``), with the statements it ran;
* RSS growth: the run's peak RSS at ``--users`` ÷ its peak RSS at a tenth of that (≤ 1.2x);
* beside it, the old approach (a user cursor held open for the whole run, one upsert per
  marked user) on the smaller table (both approaches run twice there, the faster run of each
  counts), extrapolated linearly to the full one; ``--old-full``
  also runs it on the full table (a few more minutes at 10⁶).

The users (bulk inserts) and their sync rows are made outside the timed part; after each run
the marks are undone so the next one finds the same 2 %. Run from the repository root::

    python benchmarks/reconcile.py [--db sqlite|postgresql|mariadb|all] [--quick]
        [--users 1000000] [--old-full] [--result rows.json]

``OMNISEND_BENCH_PG_DB`` names the PostgreSQL database it creates and drops (default
``omnisend_bench``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

common.PG_BENCH_DB = os.environ.get("OMNISEND_BENCH_PG_DB", common.PG_BENCH_DB)

#: Seconds allowed for 10⁶ users; the quick run scales it to its size.
TARGET_SECONDS_PER_MILLION = 600.0
TARGET_RSS_GROWTH = 1.2
#: One user in this many changed their profile; as many have no sync row.
EVERY = 100
CHUNK = 10_000


def populate(start: int, count: int) -> None:
    """Users ``start`` … ``start + count - 1``, each with a clean synced row of today's hash."""
    from django.contrib.auth import get_user_model

    from django_omnisend.adapter import get_adapter
    from django_omnisend.models import SyncState
    from django_omnisend.sync.payloads import plan_contact

    common.create_users(count, start=start, batch=CHUNK)
    user_model = get_user_model()
    adapter = get_adapter()
    first_pk = user_model.objects.get(username=f"user{start}").pk
    last = first_pk - 1
    while True:
        chunk = list(user_model.objects.filter(pk__gt=last).order_by("pk")[:CHUNK])
        if not chunk:
            break
        rows = []
        for user in chunk:
            plan = plan_contact(user, adapter)
            rows.append(
                SyncState(
                    user_id=user.pk,
                    connection_key="default",
                    state=SyncState.State.SYNCED,
                    dirty=False,
                    contact_id=f"c{user.pk:024x}",
                    email=plan.email,
                    address=plan.email,
                    payload_hash=plan.payload_hash,
                )
            )
        SyncState.objects.bulk_create(rows, batch_size=2000)
        last = chunk[-1].pk
    # The changes no signal saw: a renamed 1 %, and a 1 % whose rows are gone.
    renamed, rowless = [], []
    for pk in range(first_pk, last + 1):
        if pk % EVERY == 0:
            renamed.append(pk)
        elif pk % EVERY == 1:
            rowless.append(pk)
    for i in range(0, len(renamed), CHUNK):
        user_model.objects.filter(pk__in=renamed[i : i + CHUNK]).update(first_name="Renamed")
    for i in range(0, len(rowless), CHUNK):
        SyncState.objects.filter(user_id__in=rowless[i : i + CHUNK]).delete()


def undo_marks() -> None:
    """Back to the state :func:`populate` left: the next run finds the same 2 % to mark."""
    from django_omnisend.models import SyncState

    SyncState.objects.filter(dirty=True, contact_id="").delete()
    SyncState.objects.filter(dirty=True).update(dirty=False)


def analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


# -- the measured process -------------------------------------------------------------------


def old_reconcile() -> str:
    """The approach before issue 17: ``iterator()`` over every user, one upsert per mark."""
    from collections import Counter

    from django.contrib.auth import get_user_model
    from django.db import router, transaction

    from django_omnisend.adapter import get_adapter
    from django_omnisend.management.commands.omnisend_reconcile import verdict
    from django_omnisend.models import SyncState
    from django_omnisend.sync import marking as outbox
    from django_omnisend.tasks import nudge_drain_on_commit

    adapter = get_adapter()
    outcomes: Counter[str] = Counter()
    marked = 0

    def reconcile(users: list[Any]) -> None:
        nonlocal marked
        rows = {
            (row.user_id, row.connection_key): row
            for row in SyncState.objects.filter(user_id__in=[u.pk for u in users])
        }
        to_mark = []
        for user in users:
            key = str(adapter.get_connection_key(user))
            mark, why = verdict(user, rows.get((user.pk, key)), adapter)
            outcomes[why] += 1
            if mark:
                to_mark.append((user.pk, key))
        marked += len(to_mark)
        if to_mark:
            with transaction.atomic(using=router.db_for_write(SyncState)):
                for pk, key in to_mark:
                    outbox.mark_dirty(pk, key)
                nudge_drain_on_commit()

    chunk: list[Any] = []
    for user in get_user_model()._default_manager.order_by("pk").iterator(chunk_size=500):
        chunk.append(user)
        if len(chunk) >= 500:
            reconcile(chunk)
            chunk = []
    if chunk:
        reconcile(chunk)
    return f"checked {sum(outcomes.values())}, marked dirty {marked}"


def child(approach: str) -> None:
    """In a fresh process: run one approach, print its figures as JSON."""
    import io

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    statements = 0

    def count(execute, sql, params, many, context):
        nonlocal statements
        statements += 1
        return execute(sql, params, many, context)

    rss_before = common.rss_bytes()
    started = time.perf_counter()
    with connection.execute_wrapper(count):
        if approach == "new":
            out = io.StringIO()
            call_command("omnisend_reconcile", "--all", stdout=out)
            output = out.getvalue().strip()
        else:
            output = old_reconcile()
    seconds = time.perf_counter() - started
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss": common.max_rss_bytes(),
                "rss_before": rss_before,
                "statements": statements,
                "output": output,
            }
        )
    )


def run_child(db: dict[str, Any], approach: str) -> dict[str, Any]:
    from django.db import connections

    connections.close_all()
    env = common.bench_env(db, {"SYNC_USERS": True, "TRUST_EMAILS": True})
    done = subprocess.run(
        [sys.executable, __file__, "--child", approach],
        env=env,
        cwd=common.REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    common.log(
        f"  {approach}: {figures['seconds']:.1f} s, peak RSS {figures['peak_rss'] / 2**20:.0f} MB,"
        f" {figures['statements']} statements: {figures['output']}"
    )
    return figures


# -- the rows -------------------------------------------------------------------------------


def measure(kind: str, options: Any) -> list[dict[str, Any]]:
    users_n = options.users or (100_000 if options.quick else 1_000_000)
    small_n = users_n // 10
    target = TARGET_SECONDS_PER_MILLION * users_n / 1_000_000
    with common.database(kind) as db:
        common.setup_django(db, {"SYNC_USERS": False, "TRUST_EMAILS": True}, migrate=True)
        started = time.perf_counter()
        populate(0, small_n)
        analyze()
        common.log(f"[{kind}] P8: {small_n:,} users made in {time.perf_counter() - started:.0f} s")
        # Twice each, alternating, keeping the faster: the first run after the table was
        # written pays for settling it (checkpoints, page cache) whichever approach it is.
        runs: dict[str, list[dict[str, Any]]] = {"new": [], "old": []}
        for approach in ("new", "old", "new", "old"):
            runs[approach].append(run_child(db, approach))
            undo_marks()
        small = min(runs["new"], key=lambda figures: figures["seconds"])
        old = min(runs["old"], key=lambda figures: figures["seconds"])
        started = time.perf_counter()
        populate(small_n, users_n - small_n)
        analyze()
        common.log(f"[{kind}] P8: {users_n:,} users made in {time.perf_counter() - started:.0f} s")
        large = run_child(db, "new")
        if options.old_full:
            undo_marks()
            old_large = run_child(db, "old")
    expected = f"checked {users_n}, marked dirty {2 * users_n // EVERY}"
    correct = large["output"].startswith(expected) and small["output"].startswith(
        f"checked {small_n}, marked dirty {2 * small_n // EVERY}"
    )
    growth = large["peak_rss"] / small["peak_rss"]
    old_full = old["seconds"] * users_n / small_n
    rows = [
        common.row(
            "P8",
            kind,
            "wall",
            f"omnisend_reconcile --all, {users_n:,} users, 2 % marked",
            f"{large['seconds']:.0f} s ({large['seconds'] / users_n * 1e6:.0f} µs per user)",
            f"{large['statements']:,} statements",
            f"{large['seconds']:.0f} s",
            f"≤ {target:.0f} s",
            large["seconds"] <= target and correct,
            users=users_n,
            seconds=large["seconds"],
            statements=large["statements"],
            output=large["output"],
        ),
        common.row(
            "P8",
            kind,
            "rss_growth",
            f"  peak RSS, {small_n:,} → {users_n:,} users",
            f"{large['peak_rss'] / 2**20:.0f} MB",
            f"{small['peak_rss'] / 2**20:.0f} MB at {small_n:,}",
            f"{growth:.2f}x",
            f"≤ {TARGET_RSS_GROWTH}x",
            growth <= TARGET_RSS_GROWTH,
            small_users=small_n,
            small_peak_rss=small["peak_rss"],
            large_peak_rss=large["peak_rss"],
            small_seconds=small["seconds"],
            small_statements=small["statements"],
        ),
        common.row(
            "P8",
            kind,
            "old_approach",
            f"  old approach (cursor, one upsert per mark) at {small_n:,} users",
            f"{old['seconds']:.1f} s ({old['statements']:,} statements)",
            f"new {small['seconds']:.1f} s ({small['statements']:,} statements)",
            f"≈ {old_full:.0f} s at {users_n:,} (linear)",
            "",
            None,
            old_seconds=old["seconds"],
            old_statements=old["statements"],
            old_peak_rss=old["peak_rss"],
            old_extrapolated_seconds=old_full,
        ),
    ]
    if options.old_full:
        rows.append(
            common.row(
                "P8",
                kind,
                "old_full",
                f"  old approach at {users_n:,} users",
                f"{old_large['seconds']:.0f} s ({old_large['statements']:,} statements)",
                f"new {large['seconds']:.0f} s",
                f"{old_large['seconds'] / large['seconds']:.2f}x the new run",
                "",
                None,
                old_seconds=old_large["seconds"],
                old_statements=old_large["statements"],
                old_peak_rss=old_large["peak_rss"],
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--child"]:
        child(argv[1])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    parser.add_argument("--users", type=int, default=None, help="users in the full-size run")
    parser.add_argument(
        "--old-full",
        action="store_true",
        help="also run the old approach at full size (else only on the tenth-size table)",
    )
    options = parser.parse_args(argv)
    return common.main_per_database(__file__, argv, options, measure, ("P8", "P8", "P8"))


if __name__ == "__main__":
    sys.exit(main())

"""P7: the drain's database time per row with a million users, and the old ownership check.

Every user has a sync row bound to its address (as after a backfill), so the binding's unique
index is full size. Then ``--rows`` users change their name and get a fresh address, and one
drain sends them to the emulator: each row takes the whole path (claim, read the user, bind
the new address under the unique constraint, look for a pending erasure, upsert, record).
Figures, per drained row, summed over every SQL statement the drain ran (a Django
``execute_wrapper``) and every ``COMMIT`` of its transactions (Django sends those outside any
statement); HTTP time is not counted:

* the drain's database time (target ≤ 2 ms);
* beside it, the old design's ownership check in the same database: the user-table query
  ``email__iexact=… AND is_active AND pk < …`` it ran for every drained row (no index can
  serve a case-insensitive comparison), timed for the same users, and the drain figure with
  today's ownership work (``identity.bind_many``, timed whole) swapped for it.

Run from the repository root::

    python benchmarks/identity.py [--db sqlite|postgresql|mariadb|all] [--quick]
        [--users 1000000] [--rows 500] [--result rows.json]

MariaDB/MySQL: the server and benchmark database (dropped and recreated) are
``BENCH_MARIADB_URL``, default ``mysql://root@127.0.0.1:3306/omnisend_bench``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import re
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

TARGET_SECONDS = 0.002


class SqlTimer:
    """Sums the database time of a drain: every statement (an ``execute_wrapper``; autocommit
    statements include their commit) and every ``COMMIT``/``ROLLBACK`` of a transaction
    (which Django sends outside any statement, see :meth:`timing_transactions`).

    :meth:`timing_bind` times ``identity.bind_many`` as a whole (statements, savepoints,
    commit and the Python between them) and keeps it apart as the ownership figure."""

    def __init__(self) -> None:
        self.total = 0.0
        self.ownership = 0.0
        #: The ownership statements alone, without their transaction's commit.
        self.ownership_statements = 0.0
        self.statements = 0
        self.commits = 0
        #: Statements run in autocommit (outside any transaction): each is its own commit,
        #: durable on its own (an fsync where the server flushes the log at every commit).
        self.autocommit_statements = 0
        #: ``"[bind] KIND table [autocommit]"`` -> [count, seconds]: where the time goes.
        self.by_kind: dict[str, list[float]] = {}
        #: Seconds in the rate budget's statements (``RateBudgetSlot``): the cache is local
        #: memory here, not shared, so the budget lives in the database (one count per request).
        self.budget = 0.0
        #: kind -> (seconds, sql, params) of its slowest statement, to EXPLAIN afterwards.
        self.slowest: dict[str, tuple[float, str, Any]] = {}
        self._in_bind = False

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            spent = time.perf_counter() - started
            self.statements += 1
            autocommit = not context["connection"].in_atomic_block
            self.autocommit_statements += autocommit
            kind = statement_kind(sql) + (" (autocommit)" if autocommit else "")
            self._note(kind, spent)
            key = ("bind: " if self._in_bind else "") + kind
            if not many and spent > self.slowest.get(key, (0.0,))[0]:
                self.slowest[key] = (spent, sql, params)
            if "ratebudgetslot" in sql.lower():
                self.budget += spent
            if self._in_bind:
                self.ownership_statements += spent
            else:
                self.total += spent

    def _note(self, kind: str, seconds: float) -> None:
        entry = self.by_kind.setdefault(("bind: " if self._in_bind else "") + kind, [0, 0.0])
        entry[0] += 1
        entry[1] += seconds

    def breakdown(self, rows: int) -> list[dict[str, Any]]:
        """Each kind of statement (and the commits): count and milliseconds per drained row,
        the costliest first."""
        return [
            {"kind": kind, "per_row": count / rows, "ms_per_row": seconds * 1000 / rows}
            for kind, (count, seconds) in sorted(self.by_kind.items(), key=lambda i: -i[1][1])
        ]

    def timing_bind(self, bind_many):
        """``identity.bind_many`` timed as a whole: every statement, savepoint and commit."""

        def timed(pairs, **kwargs):
            self._in_bind = True
            started = time.perf_counter()
            try:
                return bind_many(pairs, **kwargs)
            finally:
                spent = time.perf_counter() - started
                self._in_bind = False
                self.total += spent
                self.ownership += spent

        return timed

    @contextlib.contextmanager
    def timing_transactions(self, connection):
        """Add the time of each transaction's ``COMMIT`` and ``ROLLBACK`` (not statements)."""

        def timed(method):
            def call():
                started = time.perf_counter()
                try:
                    return method()
                finally:
                    spent = time.perf_counter() - started
                    self.commits += 1
                    self._note(f"{method.__name__.strip('_').upper()} (transaction)", spent)
                    if not self._in_bind:  # inside bind_many its wall time counts already
                        self.total += spent

            return call

        commit, rollback = connection._commit, connection._rollback
        connection._commit, connection._rollback = timed(commit), timed(rollback)
        try:
            yield
        finally:
            del connection._commit, connection._rollback


def statement_kind(sql: str) -> str:
    """``SELECT auth_user``, ``UPDATE django_omnisend_syncstate``, ``SAVEPOINT``: a
    statement's verb and first table, to group the drain's statements."""
    words = sql.split(None, 1)
    verb = words[0].upper() if words else "?"
    table = re.search(r'(?:FROM|UPDATE|INTO)\s+[`"]?(\w+)', sql, re.IGNORECASE)
    return f"{verb} {table.group(1)}" if table and verb not in ("SAVEPOINT", "RELEASE") else verb


def explain_costliest(timer: SqlTimer, top: int = 2) -> list[dict[str, Any]]:
    """The plan of the slowest statement of each of the ``top`` costliest kinds of ``SELECT``
    (logged; the database's own ``EXPLAIN``, run after the drain on the same rows)."""
    from django.db import connection, transaction

    out = []
    for entry in timer.breakdown(1):
        if len(out) >= top:
            break
        seconds, sql, params = timer.slowest.get(entry["kind"], (0.0, "", None))
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        explain = {"sqlite": "EXPLAIN QUERY PLAN "}.get(connection.vendor, "EXPLAIN ")
        with transaction.atomic(), connection.cursor() as cursor:  # FOR UPDATE needs one
            cursor.execute(explain + sql, params)
            columns = [c[0] for c in cursor.description]
            plan = [dict(zip(columns, line, strict=True)) for line in cursor.fetchall()]
        out.append({"kind": entry["kind"], "slowest_ms": seconds * 1000, "sql": sql, "plan": plan})
        common.log(f"  slowest {entry['kind']} ({seconds * 1000:.1f} ms): {sql % _shown(params)}")
        for line in plan:
            common.log(f"    {line}")
    return out


def _shown(params: Any) -> tuple:
    return tuple(repr(p) for p in params or ())


def bind_everyone() -> None:
    """A sync row per user, bound to the user's address and clean (as after a backfill)."""
    from django.contrib.auth import get_user_model
    from django.db.models import OuterRef, Subquery

    from django_omnisend.models import SyncState
    from django_omnisend.sync.bulk import mark_users

    user_model = get_user_model()
    mark_users(user_model.objects.all())
    email = user_model.objects.filter(pk=OuterRef("user_id")).values("email")[:1]
    SyncState.objects.update(address=Subquery(email), email=Subquery(email), dirty=False)


def old_ownership_check(user: Any) -> bool:
    """The removed ``payloads.is_duplicate``: an older active user with the same address."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    return (
        user_model._default_manager.filter(email__iexact=user.email, is_active=True)
        .filter(pk__lt=user.pk)
        .exists()
    )


def move_and_drain(kind: str, users_n: int, rows_n: int, *, seed: int) -> tuple[list, Any, Any]:
    """Give ``rows_n`` random users a fresh address, mark them, and time one drain."""
    from django.contrib.auth import get_user_model
    from django.db import connection

    from django_omnisend.models import SyncState
    from django_omnisend.sync import drain, identity

    user_model = get_user_model()
    rng = random.Random(seed)
    picked = rng.sample(range(1, users_n + 1), rows_n)
    users = list(user_model.objects.filter(pk__in=picked))
    for user in users:
        user.email = f"moved.{seed}.{user.pk}@example.com"
        user.first_name = "Moved"
        user_model.objects.filter(pk=user.pk).update(email=user.email, first_name="Moved")
    SyncState.objects.filter(user_id__in=picked).update(
        dirty=True, address=None, email="", payload_hash=""
    )
    if connection.vendor == "mysql":
        common.log(f"[{kind}] P7: InnoDB history list length {history_length()} before the drain")
    timer = SqlTimer()
    bind_many = identity.bind_many
    identity.bind_many = timer.timing_bind(bind_many)
    try:
        with connection.execute_wrapper(timer), timer.timing_transactions(connection):
            result = drain()
    finally:
        identity.bind_many = bind_many
    return users, timer, result


def history_length() -> int:
    """InnoDB's history list length: undo records the purge has not yet removed. Rows
    updated in bulk leave their old index entries (delete-marked) until purge reaches them,
    and every index scan still steps over them."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW ENGINE INNODB STATUS")
        status = cursor.fetchone()[2]
    found = re.search(r"History list length (\d+)", status)
    return int(found.group(1)) if found else -1


def wait_for_purge(kind: str, limit: int = 1000, timeout: float = 900) -> float:
    """Wait (at most ``timeout`` s) until InnoDB's purge has nearly caught up; seconds waited."""
    started = time.monotonic()
    while (length := history_length()) > limit and time.monotonic() - started < timeout:
        common.log(f"[{kind}]   history list length {length:,}, waiting for purge")
        time.sleep(15)
    return time.monotonic() - started


def measure_p7(kind: str, users_n: int, rows_n: int, after_purge: bool = False) -> dict[str, Any]:
    from django.db import connection

    with common.emulator(rate_limit_enabled=False) as emu:
        common.set_omnisend(
            **common.omnisend_for(emu, SYNC_USERS=False, RATE_LIMIT=1_000_000, TRUST_EMAILS=True)
        )
        started = time.perf_counter()
        common.create_users(users_n, batch=10_000)
        bind_everyone()
        common.log(f"[{kind}] P7: {users_n:,} users bound in {time.perf_counter() - started:.0f} s")
        users, timer, result = move_and_drain(kind, users_n, rows_n, seed=7)
        old = SqlTimer()
        with connection.execute_wrapper(old):
            for user in users:
                old_ownership_check(user)
        requests = len(emu.ledger("/api"))
        purged = None
        if after_purge and connection.vendor == "mysql":
            # Diagnosis: the same drain once InnoDB's purge has removed the old index
            # entries that bind_everyone()'s mass update left behind (server settings as
            # they are; only time passes).
            waited = wait_for_purge(kind)
            _, again, again_result = move_and_drain(kind, users_n, rows_n, seed=8)
            purged = {
                "waited_seconds": waited,
                "drain_db_per_row": again.total / rows_n,
                "budget_per_row": again.budget / rows_n,
                "synced": again_result.synced,
                "breakdown": again.breakdown(rows_n),
            }
            common.log(f"[{kind}] P7 after purge ({waited:.0f} s): {json.dumps(purged)}")
    new_per_row = timer.total / rows_n
    old_per_row = old.total / rows_n
    common.log(
        f"[{kind}] P7: {common.fmt_ms(new_per_row)} per row; {timer.statements / rows_n:.2f} "
        f"statements, {timer.commits / rows_n:.2f} transaction commits and "
        f"{timer.autocommit_statements / rows_n:.2f} autocommit statements per row; by kind:"
    )
    for entry in timer.breakdown(rows_n):
        common.log(
            f"[{kind}]   {entry['ms_per_row']:7.3f} ms  {entry['per_row']:5.2f}x  {entry['kind']}"
        )
    explained = explain_costliest(timer)
    return {
        "users": users_n,
        "rows": rows_n,
        "synced": result.synced,
        "requests": requests,
        "statements_per_row": timer.statements / rows_n,
        "commits_per_row": timer.commits / rows_n,
        "autocommit_statements_per_row": timer.autocommit_statements / rows_n,
        "breakdown": timer.breakdown(rows_n),
        "budget_per_row": timer.budget / rows_n,
        "explained": explained,
        "after_purge": purged,
        "vendor": connection.vendor,
        "drain_db_per_row": new_per_row,
        "ownership_per_row": timer.ownership / rows_n,
        "ownership_statements_per_row": timer.ownership_statements / rows_n,
        "old_check_per_row": old_per_row,
        "old_design_per_row": new_per_row - timer.ownership / rows_n + old_per_row,
    }


def measure(kind: str, options: Any) -> list[dict[str, Any]]:
    users_n = options.users or (100_000 if options.quick else 1_000_000)
    rows_n = options.rows or (200 if options.quick else 500)
    with common.database(kind) as db:
        common.setup_django(db, {"SYNC_USERS": False}, migrate=True)
        p7 = measure_p7(kind, users_n, rows_n, options.after_purge)
    ok = p7["drain_db_per_row"] <= TARGET_SECONDS and p7["synced"] == rows_n
    return [
        common.row(
            "P7",
            kind,
            "drain_db_per_row",
            f"drain DB time per row, {p7['users']:,} bound users, {rows_n} fresh bindings",
            f"{common.fmt_ms(p7['drain_db_per_row'])} per row",
            f"{p7['statements_per_row']:.1f} statements per row",
            f"{common.fmt_ms(p7['drain_db_per_row'])}",
            f"≤ {TARGET_SECONDS * 1000:g} ms",
            ok,
            **p7,
        ),
        common.row(
            "P7",
            kind,
            "old_design",
            "  old design (user-table iexact check) for the same rows",
            f"{common.fmt_ms(p7['old_check_per_row'])} check per row",
            f"ownership now {common.fmt_ms(p7['ownership_per_row'])} "
            f"({common.fmt_ms(p7['ownership_statements_per_row'])} without its commit)",
            f"{common.fmt_ms(p7['old_design_per_row'])} per row",
            "",
            None,
        ),
        common.row(
            "P7",
            kind,
            "budget",
            "  of which the rate budget in the database (no shared cache)",
            f"{common.fmt_ms(p7['budget_per_row'])} per row",
            f"{p7['autocommit_statements_per_row']:.2f} autocommit statements, "
            f"{p7['commits_per_row']:.2f} commits per row",
            f"{common.fmt_ms(p7['drain_db_per_row'] - p7['budget_per_row'])} without it",
            "",
            None,
        ),
    ] + ([after_purge_row(kind, p7)] if p7.get("after_purge") else [])


def after_purge_row(kind: str, p7: dict[str, Any]) -> dict[str, Any]:
    """Context row: the drain again once InnoDB's purge caught up (``--after-purge``)."""
    again = p7["after_purge"]
    return common.row(
        "P7",
        kind,
        "after_purge",
        "  the same drain once InnoDB's purge caught up (diagnosis)",
        f"{common.fmt_ms(again['drain_db_per_row'])} per row",
        f"waited {again['waited_seconds']:.0f} s",
        f"{common.fmt_ms(again['drain_db_per_row'] - again['budget_per_row'])} without budget",
        "",
        None,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    parser.add_argument("--users", type=int, default=None, help="users in the table")
    parser.add_argument("--rows", type=int, default=None, help="rows drained")
    parser.add_argument(
        "--after-purge",
        action="store_true",
        help="MariaDB/MySQL diagnosis: drain again once InnoDB's purge has caught up",
    )
    options = parser.parse_args(argv)
    return common.main_per_database(
        __file__, argv, options, measure, ("P7", "P7", "P7"), common.DATABASES
    )


if __name__ == "__main__":
    sys.exit(main())

"""P1 and P2: what sync costs a ``user.save()``.

P1  ``user.save()`` with ``SYNC_USERS`` on ÷ the same save with it off. Bare saves in
    autocommit, the worst case. Measured for both ways of marking a user
    (``OMNISEND["MARK_WITH"]``):

    ``trigger``  database triggers on the user table write the mark inside the save's own
                 statement: no extra round trip, no extra commit. The target applies here.
    ``signal``   (the default) a ``post_save`` receiver runs one more statement; in autocommit
                 that statement is a second durable commit. Shown for comparison, with a row
                 that repeats it with every save in its own ``transaction.atomic()`` (a view
                 under ``ATOMIC_REQUESTS``), where the mark shares the save's commit.

    Same rows in every mode, a field changed on every save; blocks of 20 saves with sync off
    and on are timed back to back (order alternating), and the figure is the median of the
    per-pair ratios, so load from other processes and drift hit both sides alike. The sync-off
    side never has working triggers (between blocks, outside the timed part, SQLite's are
    dropped and created, PostgreSQL's disabled and enabled). Warm-up passes first, so the sync
    rows exist (the steady state of a site: users are saved again and again).
P2  sync against a naive integration: a fresh ``requests.post`` to ``/contacts`` inside a
    ``post_save`` receiver, against the emulator answering after 50 ms (its ``latency`` fault
    on every route), which is what the naive integration makes every sign-up wait for. The
    figure compares what each integration *adds* to a save: (sync-on save - sync-off save) ÷
    (naive save - sync-off save), trigger marking. Context rows give the whole-save ratio
    (sync-on save ÷ naive save) for both markings, and its floor, a save with sync off ÷ the
    naive save: the whole-save ratio can never beat that floor, whatever an integration does,
    and on a machine whose bare save costs more than 1/100 of the naive one (an fsync per
    commit), no integration could meet 1/100 on it.

Run from the repository root (the emulator is started in its own process)::

    python benchmarks/save_overhead.py [--db sqlite|postgresql|mariadb|all] [--quick]
        [--users 200] [--pairs 200] [--naive-saves 20] [--result rows.json]

SQLite is a temporary file; PostgreSQL is a database ``omnisend_bench`` on 127.0.0.1:5432
(user postgres) created and dropped by the script, skipped with a note when unreachable.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common

P1_TARGET = 1.2
P2_TARGET = 1 / 100
LATENCY = 0.05
#: Saves per timed block; the figure is the median ratio of back-to-back blocks.
BLOCK = int(__import__("os").environ.get("BENCH_BLOCK", "20"))


def measure(kind: str, options: Any) -> list[dict[str, Any]]:
    users_n = options.users or (100 if options.quick else 200)
    pairs = options.pairs or (40 if options.quick else 200)
    naive_saves = options.naive_saves or (10 if options.quick else 20)
    naive_rounds = 3
    with common.database(kind) as db, common.emulator(rate_limit_enabled=False) as emu:
        common.setup_django(db, common.omnisend_for(emu, SYNC_USERS=False), migrate=True)
        from django.contrib.auth import get_user_model
        from django.db import connection, transaction
        from django.db.models.signals import post_save

        from django_omnisend.models import SyncState
        from django_omnisend.sync import triggers

        user_model = get_user_model()
        common.create_users(users_n)
        users = list(user_model.objects.order_by("pk"))
        blocks = [users[i : i + BLOCK] for i in range(0, users_n, BLOCK)]
        assert connection.get_autocommit() and not connection.in_atomic_block
        counter = [0]

        def use(mode: str) -> None:
            """Settings and installed triggers for ``mode``: off, signal or trigger."""
            common.set_omnisend(
                SYNC_USERS=mode != "off", MARK_WITH="trigger" if mode == "trigger" else "signal"
            )
            want = mode == "trigger"
            if connection.vendor == "postgresql":
                # Enabled and disabled, not re-created: a new trigger function would make
                # every trigger block pay plpgsql's compile, which a real site pays once per
                # database session.
                if not triggers.installed(connection, disabled_too=True):
                    triggers.install()
                table = connection.ops.quote_name(user_model._meta.db_table)
                with connection.cursor() as cursor:
                    for name in triggers.installed(connection, disabled_too=True):
                        switch = "ENABLE" if want else "DISABLE"
                        cursor.execute(f'ALTER TABLE {table} {switch} TRIGGER "{name}"')
            elif want and not triggers.installed(connection):
                triggers.install()
            elif not want:
                triggers.uninstall()
            triggers.forget()
            assert triggers.active(connection.alias) is (mode == "trigger")

        def saves(mode: str, rows: list, atomic: bool = False) -> float:
            """Save every row once; returns seconds per save."""
            use(mode)
            counter[0] += 1
            started = time.perf_counter()
            for user in rows:
                user.first_name = f"Save {counter[0]}"
                if atomic:
                    with transaction.atomic():
                        user.save()
                else:
                    user.save()
            return (time.perf_counter() - started) / len(rows)

        def block(mode: str, atomic: bool = False):
            return lambda i: saves(mode, blocks[i % len(blocks)], atomic)

        # Warm up: create the sync rows (later saves are the steady state), then check that
        # each marking mode really marks (a mode that marked nothing would look free).
        saves("signal", users)
        assert SyncState.objects.count() == users_n
        marked = {}
        for mode in ("signal", "trigger"):
            before = sum(SyncState.objects.values_list("generation", flat=True))
            saves(mode, users)
            marked[mode] = sum(SyncState.objects.values_list("generation", flat=True)) - before
        saves("off", users)
        assert marked == {"signal": users_n, "trigger": users_n}, marked

        results = {}
        for mode in ("trigger", "signal"):
            common.log(
                f"[{kind}] P1 ({mode}): {pairs} pairs of {BLOCK}-save blocks "
                f"(sync off, sync on), {users_n} users"
            )
            results[mode] = common.paired_ratio(block("off"), block(mode), pairs)
        off, on, p1, ratios = results["trigger"]
        s_off, s_on, s_p1, s_ratios = results["signal"]
        # Context, not a target: each save in its own transaction (a view under
        # ATOMIC_REQUESTS), where the signal mark shares the save's commit.
        common.log(f"[{kind}] P1 context: signal marking, each save in transaction.atomic()")
        tx_off, tx_on, tx_ratio, _ = common.paired_ratio(
            block("off", atomic=True), block("signal", atomic=True), pairs
        )

        # P2: the naive integration, one fresh requests.post per save, 50 ms away.
        import requests

        headers = {
            "Authorization": f"Omnisend-API-Key {emu.api_key}",
            "Omnisend-Version": "2026-03-15",
            "Content-Type": "application/json",
        }

        def naive_receiver(sender: Any, instance: Any, **kwargs: Any) -> None:
            body = {
                "identifiers": [{"type": "email", "id": instance.email}],
                "firstName": instance.first_name,
                "lastName": instance.last_name,
            }
            requests.post(
                f"{emu.api_url}/contacts", json=body, headers=headers, timeout=10
            ).raise_for_status()

        emu.add_fault(route="*", kind="latency", rate=1.0, seconds=LATENCY)
        post_save.connect(naive_receiver, sender=user_model, dispatch_uid="bench-naive")
        common.log(f"[{kind}] P2: naive requests.post, {naive_saves} saves x {naive_rounds}")
        try:
            naive_rows = users[:naive_saves]
            saves("off", naive_rows[:3])  # warm up (imports, first connection)
            naive = common.median([saves("off", naive_rows) for _ in range(naive_rounds)])
        finally:
            post_save.disconnect(sender=user_model, dispatch_uid="bench-naive")
        # What each integration adds to a bare save (the sync-off save of the same run).
        p2 = (on - off) / (naive - off)
        sent = len(emu.ledger("/api/contacts", "POST"))
        assert sent == naive_saves * naive_rounds + 3, sent
        use("off")
    return [
        common.row(
            "P1",
            kind,
            "autocommit",
            "user.save(), sync on ÷ off (autocommit, trigger)",
            f"{common.fmt_ms(on)}/save",
            f"{common.fmt_ms(off)}/save",
            f"{p1:.2f}x",
            f"≤ {P1_TARGET}x",
            p1 <= P1_TARGET,
            ratio=p1,
            mark_with="trigger",
            sync_on_seconds=on,
            sync_off_seconds=off,
            pair_ratios=[round(r, 4) for r in ratios],
            pairs=pairs,
            block=BLOCK,
            users=users_n,
        ),
        common.row(
            "P1",
            kind,
            "autocommit_signal",
            "  context: the same, signal marking (default)",
            f"{common.fmt_ms(s_on)}/save",
            f"{common.fmt_ms(s_off)}/save",
            f"{s_p1:.2f}x",
            "",
            None,
            ratio=s_p1,
            mark_with="signal",
            sync_on_seconds=s_on,
            sync_off_seconds=s_off,
            pair_ratios=[round(r, 4) for r in s_ratios],
        ),
        common.row(
            "P1",
            kind,
            "atomic_signal",
            "  context: signal, each save in atomic()",
            f"{common.fmt_ms(tx_on)}/save",
            f"{common.fmt_ms(tx_off)}/save",
            f"{tx_ratio:.2f}x",
            "",
            None,
            ratio=tx_ratio,
            mark_with="signal",
            sync_on_seconds=tx_on,
            sync_off_seconds=tx_off,
        ),
        common.row(
            "P2",
            kind,
            "autocommit",
            "time sync adds ÷ time a naive post adds (trigger)",
            f"{common.fmt_ms(on - off)}/save",
            f"{common.fmt_ms(naive - off)}/save",
            _fraction(p2),
            "≤ 1/100",
            p2 <= P2_TARGET,
            ratio=p2,
            mark_with="trigger",
            sync_on_seconds=on,
            sync_off_seconds=off,
            naive_seconds=naive,
            latency_seconds=LATENCY,
            naive_saves=naive_saves * naive_rounds,
        ),
        common.row(
            "P2",
            kind,
            "added_signal",
            "  context: the same, signal marking",
            f"{common.fmt_ms(s_on - s_off)}/save",
            f"{common.fmt_ms(naive - s_off)}/save",
            _fraction((s_on - s_off) / (naive - s_off)),
            "",
            None,
            ratio=(s_on - s_off) / (naive - s_off),
            mark_with="signal",
        ),
        common.row(
            "P2",
            kind,
            "whole_trigger",
            "  context: whole save, sync on ÷ naive (trigger)",
            f"{common.fmt_ms(on)}/save",
            f"{common.fmt_ms(naive)}/save",
            _fraction(on / naive),
            "",
            None,
            ratio=on / naive,
            mark_with="trigger",
        ),
        common.row(
            "P2",
            kind,
            "whole_signal",
            "  context: whole save, sync on ÷ naive (signal)",
            f"{common.fmt_ms(s_on)}/save",
            f"{common.fmt_ms(naive)}/save",
            _fraction(s_on / naive),
            "",
            None,
            ratio=s_on / naive,
            mark_with="signal",
        ),
        common.row(
            "P2",
            kind,
            "floor",
            "  context: whole save, sync off ÷ naive (floor)",
            f"{common.fmt_ms(off)}/save",
            f"{common.fmt_ms(naive)}/save",
            _fraction(off / naive),
            "",
            None,
            ratio=off / naive,
        ),
    ]


def _fraction(ratio: float) -> str:
    """``1/N`` for a ratio below one (what the table prints for P2)."""
    return f"1/{1 / ratio:,.0f}" if ratio > 0 else "0 (no measurable cost)"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    common.add_common_arguments(parser)
    parser.add_argument("--users", type=int, default=None, help="rows saved per round")
    parser.add_argument(
        "--pairs", type=int, default=None, help=f"(off, on) pairs of {BLOCK}-save blocks"
    )
    parser.add_argument("--naive-saves", type=int, default=None, help="naive saves per round")
    options = parser.parse_args(argv)
    return common.main_per_database(__file__, argv, options, measure, ("P1", "P2"))


if __name__ == "__main__":
    sys.exit(main())

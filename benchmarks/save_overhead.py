"""P1 and P2: what sync costs a ``user.save()``.

P1  ``user.save()`` with ``SYNC_USERS`` on ÷ the same save with it off. Bare saves in
    autocommit, the worst case: the outbox mark cannot share the save's commit, so it pays
    a commit of its own (in a request's transaction it shares the save's). Same rows in both
    modes, a field changed on every save; blocks of 20 saves with sync off and on are timed
    back to back (order alternating), and the figure is the median of the per-pair ratios,
    so load from other processes and drift hit both sides alike. Warm-up passes first, so the
    sync rows exist (the steady state of a site: users are saved again and again). A context
    row repeats it with every save in its own ``transaction.atomic()``.
P2  the same sync-on save ÷ a naive ``requests.post`` to ``/contacts`` inside a ``post_save``
    receiver, against the emulator answering after 50 ms (its ``latency`` fault on every
    route), which is what the naive integration makes every sign-up wait for.

Run from the repository root (the emulator is started in its own process)::

    python benchmarks/save_overhead.py [--db sqlite|postgresql|all] [--quick]
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
BLOCK = 20


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

        user_model = get_user_model()
        common.create_users(users_n)
        users = list(user_model.objects.order_by("pk"))
        blocks = [users[i : i + BLOCK] for i in range(0, users_n, BLOCK)]
        assert connection.get_autocommit() and not connection.in_atomic_block
        counter = [0]

        def saves(sync: bool, rows: list, atomic: bool = False) -> float:
            """Save every row once; returns seconds per save."""
            common.set_omnisend(SYNC_USERS=sync)
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

        def block(sync: bool, atomic: bool = False):
            return lambda i: saves(sync, blocks[i % len(blocks)], atomic)

        common.log(
            f"[{kind}] P1: {pairs} pairs of {BLOCK}-save blocks (sync off, sync on), "
            f"{users_n} users"
        )
        saves(True, users)  # creates the sync rows: later saves are the steady state
        saves(False, users)
        assert SyncState.objects.count() == users_n
        off, on, p1, ratios = common.paired_ratio(block(False), block(True), pairs)
        # Context, not a target: each save in its own transaction (a view under
        # ATOMIC_REQUESTS), where the mark shares the save's commit.
        common.log(f"[{kind}] P1 context: the same saves, each in transaction.atomic()")
        tx_off, tx_on, tx_ratio, _ = common.paired_ratio(
            block(False, atomic=True), block(True, atomic=True), pairs
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
            saves(False, naive_rows[:3])  # warm up (imports, first connection)
            naive = common.median([saves(False, naive_rows) for _ in range(naive_rounds)])
        finally:
            post_save.disconnect(sender=user_model, dispatch_uid="bench-naive")
        p2 = on / naive
        sent = len(emu.ledger("/api/contacts", "POST"))
        assert sent == naive_saves * naive_rounds + 3, sent
    return [
        common.row(
            "P1",
            kind,
            "autocommit",
            "user.save(), sync on ÷ off (autocommit)",
            f"{common.fmt_ms(on)}/save",
            f"{common.fmt_ms(off)}/save",
            f"{p1:.2f}x",
            f"≤ {P1_TARGET}x",
            p1 <= P1_TARGET,
            ratio=p1,
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
            "atomic",
            "  context: each save in atomic(), on ÷ off",
            f"{common.fmt_ms(tx_on)}/save",
            f"{common.fmt_ms(tx_off)}/save",
            f"{tx_ratio:.2f}x",
            "",
            None,
            ratio=tx_ratio,
            sync_on_seconds=tx_on,
            sync_off_seconds=tx_off,
        ),
        common.row(
            "P2",
            kind,
            "autocommit",
            "sync-on save ÷ naive requests.post (50 ms API)",
            f"{common.fmt_ms(on)}/save",
            f"{common.fmt_ms(naive)}/save",
            f"1/{1 / p2:,.0f}",
            "≤ 1/100",
            p2 <= P2_TARGET,
            ratio=p2,
            sync_on_seconds=on,
            naive_seconds=naive,
            latency_seconds=LATENCY,
            naive_saves=naive_saves * naive_rounds,
        ),
        common.row(
            "P2",
            kind,
            "atomic",
            "  context: save in atomic() ÷ naive",
            f"{common.fmt_ms(tx_on)}/save",
            f"{common.fmt_ms(naive)}/save",
            f"1/{naive / tx_on:,.0f}",
            "",
            None,
            ratio=tx_on / naive,
        ),
    ]


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

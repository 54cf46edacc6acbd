"""Run every benchmark (P1-P11) on SQLite, PostgreSQL and MariaDB and print one table.

From the repository root, with PostgreSQL (127.0.0.1:5432, user postgres, trust), MariaDB
(``BENCH_MARIADB_URL``, default ``mysql://root@127.0.0.1:3306/omnisend_bench``) and Redis
(127.0.0.1:6379, ``BENCH_REDIS_URL``) up::

    python benchmarks/run.py                         # full sizes, several minutes
    python benchmarks/run.py --quick                 # reduced sizes, under two minutes
    python benchmarks/run.py --json benchmarks/latest.json
    python benchmarks/run.py --only P3 --db postgresql

The scripts run one after the other, each in its own processes (one per database), so only
one heavy benchmark loads the machine at a time:

``save_overhead.py``  P1 (save with sync on ÷ off) and P2 (÷ a naive ``requests.post``)
``backfill.py``       P3 (requests, wall time) and P4 (memory growth) of a 100,000-user backfill
``drain_budget.py``   P5 (four drains under a shared budget) and P6 (ten saves, one request)
``identity.py``       P7 (drain DB time per row with a million bound users; the old ownership
                      check beside it)
``reconcile.py``      P8 (``omnisend_reconcile --all`` at a million users: wall time, memory
                      growth from a tenth of that; the old approach beside it)
``drain_backlog.py``  P9 (requests to clear 100,000 dirty users with the drain alone; the
                      drain one request per user beside it)
``drain_budget_db.py`` P10 (four drains sharing a budget in the database, no Redis)
``backfill.py --p11``  P11 (a 1,000,000-user backfill on PostgreSQL: requests, wall time,
                      memory growth from 100,000; ``--quick``: 100,000 from 10,000)

Every figure is a ratio or count against a baseline measured in the same run. A row whose
target is missed says FAIL, and the exit status is then 1. PostgreSQL and MariaDB are skipped
(SKIP rows, with a note) when their server is unreachable. ``--json FILE`` writes the machine
and every figure keyed ``P1``…``P11``, then by database, then by measurement.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
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

HERE = Path(__file__).resolve().parent
#: (script, its ids, extra arguments): one run of a script per line, in this order.
SCRIPTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("save_overhead.py", ("P1", "P2"), ()),
    ("backfill.py", ("P3", "P4"), ()),
    ("drain_budget.py", ("P5", "P6"), ()),
    ("identity.py", ("P7",), ()),
    ("reconcile.py", ("P8",), ()),
    ("drain_backlog.py", ("P9",), ()),
    ("drain_budget_db.py", ("P10",), ()),
    ("backfill.py", ("P11",), ("--p11",)),
)


def run_script(
    name: str, pids: tuple[str, ...], extra: tuple[str, ...], options: Any
) -> tuple[list[dict], float]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = handle.name
    args = [sys.executable, str(HERE / name), *extra, "--db", options.db, "--result", out]
    if options.quick:
        args.append("--quick")
    started = time.monotonic()
    try:
        # The script's own table goes to /dev/null (ours follows); its progress is on stderr.
        code = subprocess.call(args, cwd=common.REPO_ROOT, stdout=subprocess.DEVNULL)
        if code == 0:
            rows = json.loads(Path(out).read_text())
        else:
            common.log(f"{name} exited with status {code}")
            rows = common.skipped_rows(pids, options.db, f"{name} crashed (exit {code})", False)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(out)
    return rows, time.monotonic() - started


def keyed(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``{"P1": {"sqlite": {"autocommit": {...}, ...}, ...}, ...}``."""
    out: dict[str, Any] = {}
    for r in rows:
        entry = {k: v for k, v in r.items() if k not in ("id", "db", "name", "values")}
        entry["pass"] = r["pass"] if r["pass"] != "skip" else None
        entry.update(r.get("values") or {})
        out.setdefault(r["id"], {}).setdefault(r["db"], {})[r["name"]] = entry
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (< 2 minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write every figure to FILE")
    parser.add_argument("--db", choices=(*common.DATABASES, "all"), default="all")
    parser.add_argument(
        "--only",
        help="comma-separated ids to run (P1..P11; a script runs if one of its ids is)",
    )
    options = parser.parse_args(argv)
    wanted = {p.strip().upper() for p in options.only.split(",")} if options.only else None

    started = time.monotonic()
    info = common.machine()
    if problem := common.postgres_problem():
        common.log(f"Note: PostgreSQL rows are skipped: {problem}")
    if problem := common.mariadb_problem():
        common.log(f"Note: MariaDB rows are skipped: {problem}")
    rows: list[dict[str, Any]] = []
    durations: dict[str, float] = {}
    for name, pids, extra in SCRIPTS:
        if wanted and not wanted & set(pids):
            continue
        label = " ".join((name, *extra))
        common.log(f"== {label} ({', '.join(pids)}){' --quick' if options.quick else ''}")
        script_rows, seconds = run_script(name, pids, extra, options)
        rows += script_rows
        durations[label] = seconds
        common.log(f"== {label} took {seconds:.0f} s")
    total = time.monotonic() - started

    failed = [r for r in rows if r["pass"] is False]
    print(f"Machine: {common.machine_line(info)}")
    print(
        f"Run: {'--quick, reduced sizes' if options.quick else 'full sizes'}, "
        f"{datetime.date.today().isoformat()}, {total:.0f} s"
    )
    print()
    print(common.format_table(rows))
    print()
    targets = sum(1 for r in rows if r["pass"] in (True, False))
    if failed:
        ids = ", ".join(f"{r['id']} {r['db']} ({r['what'].strip()})" for r in failed)
        print(f"FAIL: {len(failed)} of {targets} targets missed: {ids}")
    else:
        print(f"PASS: all {targets} targets met")
    if options.json:
        data = {
            "machine": info,
            "machine_line": common.machine_line(info),
            "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
            "quick": options.quick,
            "duration_seconds": round(total, 1),
            "script_seconds": {k: round(v, 1) for k, v in durations.items()},
            "passed": not failed,
            **keyed(rows),
            "table": common.format_table(rows),
        }
        Path(options.json).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        common.log(f"Wrote {options.json}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

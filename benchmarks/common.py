"""Shared plumbing for the benchmark scripts: databases, settings, the emulator, the table.

Not a benchmark itself. Each script configures Django through :mod:`benchmarks.settings`
(environment variables set here), runs one database per process (Django is set up once per
process) and hands its rows back to :mod:`benchmarks.run` as JSON (``--result FILE``).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: Registered with the emulator for its default brand (``<brandID>-<secret>``).
API_KEY = "65f0a1b2c3d4e5f600000001-benchmark-key"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
#: Overridable (``BENCH_PG_DB``) so benchmarks of several checkouts do not share a database.
PG_BENCH_DB = os.environ.get("BENCH_PG_DB") or "omnisend_bench"
#: Every script measures each of these (``--db all``); one that cannot be reached gives SKIP
#: rows with the reason (issue 17: P1-P6 hold on all three).
DATABASES = ("sqlite", "postgresql", "mariadb")
#: Kept for scripts written when only some measured MariaDB/MySQL: now every one does.
WITH_MARIADB = DATABASES
#: The MariaDB/MySQL server (a ``mysql://`` URL, as DATABASE_URL takes it); the benchmark
#: database named in it is dropped and recreated per run.
MARIADB_URL = os.environ.get("BENCH_MARIADB_URL", "mysql://root@127.0.0.1:3306/omnisend_bench")
#: Redis for the shared rate budget (P5); a per-run key prefix keeps runs apart. Overridable
#: (``BENCH_REDIS_URL``) so a run can keep to the Redis database it was given.
REDIS_URL = os.environ.get("BENCH_REDIS_URL") or "redis://127.0.0.1:6379/3"


def log(message: str) -> None:
    """Progress goes to stderr; stdout carries only the table."""
    print(message, file=sys.stderr, flush=True)


# -- databases ------------------------------------------------------------------------------


def postgres_problem() -> str:
    """Why PostgreSQL cannot be used ("" when it can)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed"
    try:
        psycopg.connect(dbname="postgres", connect_timeout=3, **PG).close()
    except Exception as exc:
        return f"PostgreSQL at {PG['host']}:{PG['port']} is unreachable ({exc})".strip()
    return ""


def _mariadb_params() -> dict[str, Any]:
    parts = urlsplit(MARIADB_URL)
    if parts.scheme not in ("mysql", "mysql2") or not parts.path.strip("/"):
        raise ValueError("BENCH_MARIADB_URL must be mysql://user[:password]@host[:port]/name")
    return {
        "NAME": parts.path.strip("/"),
        "USER": unquote(parts.username or "root"),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "127.0.0.1",
        "PORT": parts.port or 3306,
    }


def mariadb_problem() -> str:
    """Why MariaDB/MySQL cannot be used ("" when it can)."""
    try:
        import MySQLdb
    except ImportError:
        return "mysqlclient is not installed (pip install django-omnisend[mysql])"
    p = _mariadb_params()
    try:
        MySQLdb.connect(
            host=p["HOST"],
            port=p["PORT"],
            user=p["USER"],
            password=p["PASSWORD"],
            connect_timeout=3,
        ).close()
    except Exception as exc:
        return f"MariaDB at {p['HOST']}:{p['PORT']} is unreachable ({exc})".strip()
    return ""


def _mariadb_admin(sql: str) -> None:
    import MySQLdb

    p = _mariadb_params()
    conn = MySQLdb.connect(host=p["HOST"], port=p["PORT"], user=p["USER"], password=p["PASSWORD"])
    try:
        conn.cursor().execute(sql)
    finally:
        conn.close()


def kind_problem(kind: str) -> str:
    """Why database ``kind`` cannot be measured here ("" when it can)."""
    if kind == "postgresql":
        return postgres_problem()
    if kind == "mariadb":
        return mariadb_problem()
    return ""


def _pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def database(kind: str) -> Iterator[dict[str, Any]]:
    """A fresh, empty database for one benchmark; yields its ``DATABASES`` entry."""
    if kind == "sqlite":
        folder = tempfile.mkdtemp(prefix="omnisend-bench-")
        try:
            yield {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(folder, "bench.sqlite3"),
                # Drain processes share the file; wait for a lock instead of failing.
                "OPTIONS": {"timeout": 60},
            }
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    elif kind == "postgresql":
        _pg_admin(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
        _pg_admin(f'CREATE DATABASE "{PG_BENCH_DB}"')
        try:
            yield {
                "ENGINE": "django.db.backends.postgresql",
                "NAME": PG_BENCH_DB,
                "USER": PG["user"],
                "HOST": PG["host"],
                "PORT": PG["port"],
            }
        finally:
            with contextlib.suppress(Exception):
                _pg_admin(f'DROP DATABASE IF EXISTS "{PG_BENCH_DB}" WITH (FORCE)')
    elif kind == "mariadb":
        p = _mariadb_params()
        _mariadb_admin(f"DROP DATABASE IF EXISTS `{p['NAME']}`")
        _mariadb_admin(f"CREATE DATABASE `{p['NAME']}` CHARACTER SET utf8mb4")
        try:
            yield {"ENGINE": "django.db.backends.mysql", **p, "OPTIONS": {"charset": "utf8mb4"}}
        finally:
            with contextlib.suppress(Exception):
                _mariadb_admin(f"DROP DATABASE IF EXISTS `{p['NAME']}`")
    else:
        raise ValueError(f"unknown database {kind!r}")


def recreate_database(db: dict[str, Any]) -> None:
    """Empty ``db`` (made by :func:`database`) by dropping and recreating it, then migrate.

    A fresh database per measurement: dead rows and statistics left by an earlier run in the
    same database must not change the next one.
    """
    from django.core.management import call_command
    from django.db import connections

    connections.close_all()
    if db["ENGINE"].endswith("sqlite3"):
        for suffix in ("", "-journal", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(db["NAME"] + suffix)
    elif db["ENGINE"].endswith("mysql"):
        _mariadb_admin(f"DROP DATABASE IF EXISTS `{db['NAME']}`")
        _mariadb_admin(f"CREATE DATABASE `{db['NAME']}` CHARACTER SET utf8mb4")
    else:
        _pg_admin(f'DROP DATABASE IF EXISTS "{db["NAME"]}" WITH (FORCE)')
        _pg_admin(f'CREATE DATABASE "{db["NAME"]}"')
    call_command("migrate", verbosity=0, skip_checks=True)


def bench_env(
    db: dict[str, Any],
    omnisend: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The environment a benchmark process (or a drain worker) needs."""
    env = dict(os.environ)
    env["DJANGO_SETTINGS_MODULE"] = "benchmarks.settings"
    env["BENCH_DATABASE"] = json.dumps(db)
    env["BENCH_OMNISEND"] = json.dumps(omnisend or {})
    if cache:
        env["BENCH_CACHE"] = json.dumps(cache)
    else:
        env.pop("BENCH_CACHE", None)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def setup_django(
    db: dict[str, Any],
    omnisend: dict[str, Any] | None = None,
    cache: dict[str, Any] | None = None,
    *,
    migrate: bool = False,
) -> None:
    """Configure and set up Django in this process (once), optionally migrating."""
    os.environ.update(bench_env(db, omnisend, cache))
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0, skip_checks=True)


def set_omnisend(**values: Any) -> None:
    """Change ``settings.OMNISEND`` keys at run time (the app reads them on every access)."""
    from django.conf import settings

    settings.OMNISEND = {**settings.OMNISEND, **values}


def create_users(count: int, *, start: int = 0, batch: int = 5000) -> None:
    """``count`` users with distinct e-mails, through ``bulk_create`` (no signals)."""
    from django.contrib.auth import get_user_model

    user_model = get_user_model()
    for first in range(start, start + count, batch):
        user_model.objects.bulk_create(
            [
                user_model(
                    username=f"user{n}",
                    email=f"user{n}@example.com",
                    first_name=f"First{n}",
                    last_name=f"Last{n % 97}",
                    password="!",  # unusable, as set_unusable_password() stores it
                )
                for n in range(first, min(first + batch, start + count))
            ],
            batch_size=batch,
        )


# -- the emulator ---------------------------------------------------------------------------


class EmulatorProcess:
    """The bundled emulator in its own process (its own GIL and memory), driven over HTTP."""

    def __init__(self, *, api_key: str = API_KEY, seed: int = 1) -> None:
        self.api_key = api_key
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "django_omnisend.emulator",
                "--port",
                "0",
                "--seed",
                str(seed),
                "--api-key",
                api_key,
            ],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO_ROOT,
        )
        self.base_url = ""
        deadline = time.monotonic() + 30
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            found = re.search(r"API:\s+(http://\S+)/api\b", line)
            if found:
                self.base_url = found.group(1)
            if line.startswith("Serving") or time.monotonic() > deadline:
                break
        if not self.base_url:
            self.stop()
            raise RuntimeError("the emulator did not start")
        # Keep draining the pipe so the child never blocks on (or dies writing to) it.
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        import requests

        self.session = requests.Session()

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api"

    def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(
            method, f"{self.base_url}/__emulator__{path}", timeout=120, **kwargs
        )
        response.raise_for_status()
        return response.json()

    def configure(self, **fields: Any) -> dict[str, Any]:
        return self._control("POST", "/config", json=fields)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self._control("POST", "/faults", json=rule)

    def ledger(self, path_prefix: str = "/api", method: str | None = None) -> list[dict]:
        params = {"path_prefix": path_prefix}
        if method:
            params["method"] = method
        return self._control("GET", "/ledger", params=params)

    def clear_ledger(self) -> None:
        self._control("DELETE", "/ledger")

    def contacts(self) -> list[dict[str, Any]]:
        return self._control("GET", "/contacts")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def emulator(**config: Any) -> Iterator[EmulatorProcess]:
    emu = EmulatorProcess()
    try:
        if config:
            emu.configure(**config)
        yield emu
    finally:
        emu.stop()


def omnisend_for(emu: EmulatorProcess, **extra: Any) -> dict[str, Any]:
    """The ``OMNISEND`` dict that points the app at ``emu`` with its API key."""
    return {
        "API_URL": emu.api_url,
        "API_KEY": emu.api_key,
        "TASK_BACKEND": None,
        "MAX_RETRIES": 0,
        **extra,
    }


# -- measuring ------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def paired_ratio(
    baseline: Callable[[int], float], measured: Callable[[int], float], pairs: int
) -> tuple[float, float, float, list[float]]:
    """Time ``baseline(i)`` and ``measured(i)`` back to back, ``pairs`` times.

    The order alternates (ABBA) and each pair is compared on its own, so drift and bursts of
    load from other processes hit both sides of a pair alike. Returns the median baseline
    time, the median measured time, the median of the per-pair ratios, and those ratios.
    """
    base, meas, ratios = [], [], []
    for i in range(pairs):
        if i % 2 == 0:
            b = baseline(i)
            m = measured(i)
        else:
            m = measured(i)
            b = baseline(i)
        base.append(b)
        meas.append(m)
        ratios.append(m / b)
    return median(base), median(meas), median(ratios), ratios


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


def max_rss_bytes() -> int:
    """This process's peak resident set size so far (``VmHWM`` in ``/proc/self/status``).

    Not ``getrusage().ru_maxrss``: Linux keeps that across ``fork``/``exec``, so a child's
    figure starts at its parent's size when it was started (here the benchmark's parent,
    which grows from run to run), while ``VmHWM`` belongs to the child's own address space.
    """
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    import resource  # pragma: no cover - not Linux

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# -- machine --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """What the figures were taken on."""
    import sqlite3

    import django

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "django": django.get_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": None,
        "mariadb": None,
    }
    with contextlib.suppress(OSError):
        mem = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()[1]
        info["memory_gb"] = round(int(mem) / 1024 / 1024, 1)
    if not postgres_problem():
        import psycopg

        with psycopg.connect(dbname="postgres", **PG) as conn:
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    if not mariadb_problem():
        import MySQLdb

        p = _mariadb_params()
        conn = MySQLdb.connect(
            host=p["HOST"], port=p["PORT"], user=p["USER"], password=p["PASSWORD"]
        )
        try:
            cursor = conn.cursor()
            cursor.execute("SELECT VERSION()")
            info["mariadb"] = cursor.fetchone()[0]
        finally:
            conn.close()
    return info


def machine_line(info: dict[str, Any]) -> str:
    pg = f"PostgreSQL {info['postgresql']}" if info.get("postgresql") else "no PostgreSQL"
    if info.get("mariadb"):
        pg += f", MariaDB {info['mariadb']}"
    mem = f", {info['memory_gb']} GB" if info.get("memory_gb") else ""
    return (
        f"{info['cpu']}, {info['cores']} cores{mem}, {info['os']}; Python {info['python']}, "
        f"Django {info['django']}, SQLite {info['sqlite']}, {pg}"
    )


# -- rows and the table ---------------------------------------------------------------------


def row(
    pid: str,
    db: str,
    name: str,
    what: str,
    measured: str,
    baseline: str,
    figure: str,
    target: str,
    ok: bool | str | None,
    **values: Any,
) -> dict[str, Any]:
    """One line of the table; ``name`` keys it in the JSON under ``pid`` and ``db``;
    ``values`` are the raw numbers kept there."""
    return {
        "id": pid,
        "db": db,
        "name": name,
        "what": what,
        "measured": measured,
        "baseline": baseline,
        "figure": figure,
        "target": target,
        "pass": ok,
        "values": values,
    }


COLUMNS = (
    ("id", "id"),
    ("db", "db"),
    ("what", "what"),
    ("measured", "measured"),
    ("baseline", "baseline"),
    ("figure", "ratio/figure"),
    ("target", "target"),
    ("result", "result"),
)


def verdict(ok: bool | str | None) -> str:
    """PASS/FAIL against a target; "info" for context rows without one; SKIP."""
    return {True: "PASS", False: "FAIL", None: "info", "skip": "SKIP"}[ok]


def format_table(rows: list[dict[str, Any]]) -> str:
    cells = [[title for _, title in COLUMNS]]
    for r in rows:
        cells.append(
            [verdict(r["pass"]) if key == "result" else str(r.get(key, "")) for key, _ in COLUMNS]
        )
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)) for line in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def skipped_rows(
    pids: Sequence[str], db: str, reason: str, ok: bool | str = "skip"
) -> list[dict[str, Any]]:
    """Placeholder rows: SKIP (``ok="skip"``) or FAIL (``ok=False``, a crashed run)."""
    return [
        row(p, db, f"not_run_{i}", f"not run: {reason}", "", "", "", "", ok)
        for i, p in enumerate(pids)
    ]


# -- one process per database ---------------------------------------------------------------


def add_common_arguments(parser: Any, kinds: Sequence[str] = DATABASES) -> None:
    parser.add_argument(
        "--db",
        choices=(*kinds, "all"),
        default="all",
        help="database to measure (default: all of them, each in its own process)",
    )
    parser.add_argument("--quick", action="store_true", help="reduced sizes (run.py --quick)")
    parser.add_argument("--result", help="also write the rows as JSON to this file")


def main_per_database(
    script: str,
    argv: Sequence[str],
    options: Any,
    measure: Callable[[str, Any], list[dict[str, Any]]],
    pids: Sequence[str],
    kinds: Sequence[str] = DATABASES,
) -> int:
    """``--db all``: run ``script`` once per database of ``kinds`` in a child process; else
    measure here.

    Prints the rows as a table on stdout and writes them to ``--result`` when given.
    """
    if options.db == "all":
        rows: list[dict[str, Any]] = []
        for kind in kinds:
            if problem := kind_problem(kind):
                log(f"Skipping {kind}: {problem}")
                rows += skipped_rows(pids, kind, f"{kind} unreachable")
                continue
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
                out = handle.name
            try:
                args = _without_options(list(argv), ("--db", "--result"))
                code = subprocess.call(
                    [sys.executable, script, *args, "--db", kind, "--result", out],
                    cwd=REPO_ROOT,
                    stdout=subprocess.DEVNULL,
                )
                if code != 0:
                    log(f"{Path(script).name} --db {kind} exited with {code}")
                    rows += skipped_rows(pids, kind, f"the run crashed (exit {code})", False)
                else:
                    rows += json.loads(Path(out).read_text())
            finally:
                with contextlib.suppress(OSError):
                    os.unlink(out)
    else:
        if problem := kind_problem(options.db):
            log(f"Skipping {options.db}: {problem}")
            rows = skipped_rows(pids, options.db, f"{options.db} unreachable")
        else:
            rows = measure(options.db, options)
    if options.result:
        Path(options.result).write_text(json.dumps(rows, indent=2))
    print(format_table(rows))
    return 0


def _without_options(argv: list[str], names: Sequence[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in names:
            skip = True
            continue
        if any(arg.startswith(f"{n}=") for n in names):
            continue
        out.append(arg)
    return out


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms" if seconds < 0.01 else f"{seconds * 1000:.1f} ms"

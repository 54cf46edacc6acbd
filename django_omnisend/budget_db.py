"""The rate budget's counters in the database: :class:`DatabaseBudget` (``RateBudgetSlot`` rows).

Used by :class:`~django_omnisend.ratelimit.RateLimiter` when its cache is not shared between
processes (no Redis or Memcached), so that every worker of the site draws on one budget. It
keeps the limiter's algorithm (sub-window counters, see the ratelimit module docstring); only
where the counters live, and whose clock cuts time into sub-windows, differ.

*Whose clock.* On PostgreSQL and MariaDB/MySQL the sub-window of a request is read from the
database server's clock (``clock_timestamp()``, ``UTC_TIMESTAMP(6)``) in the very statement
that counts it, and cooldown deadlines are set and compared on that clock too: every host
shares one budget however far apart their clocks are. Indexed by each host's clock, a host
running ahead counted in sub-windows the others never read (two budgets), and deleted their
current sub-windows as old ones (fault matrix M20). SQLite has no server: the database lives
in the processes of one host, which share its clock, so there the process clock is used; a
process clock ahead (a ``faketime``, a time namespace) can then only split the budget, never
erase another's counts, because old sub-windows are deleted only once they are
:data:`SKEW_HORIZON` old. A limiter given its own ``clock`` (tests) uses that clock.

Two ways to admit a request, both giving the same bound:

*One statement* (SQLite): an ``INSERT ... SELECT ... WHERE <room> ON CONFLICT DO UPDATE SET
count = count + 1 RETURNING count`` that counts the request only if the sub-windows
``b-k .. b+1`` hold fewer than ``budget`` and no cooldown is running. SQLite runs one writing
statement at a time over the whole database (a statement that read a stale snapshot cannot
commit), so these statements are totally ordered and each sees every earlier one: the last
admitted request of any span saw all the others, as the proof in the ratelimit module needs.

*Increment, then read* (PostgreSQL, MariaDB/MySQL, or SQLite with ``conditional=False``):
an atomic upsert ``count = count + 1`` committed on its own (which also reads the clock and
returns the sub-window it counted in), then one ``SELECT`` of the sub-windows and the
cooldown; over budget, a third statement takes the count back. This is the cache algorithm
itself and holds under READ COMMITTED: a request's increment is committed before its read, so
the last one to increment reads everyone's. A single statement cannot do this there: its
snapshot is taken before it starts, so two concurrent ones would miss each other.

Statements run on the connection the router picks for writing ``RateBudgetSlot``, in
autocommit. Inside a transaction (``atomic``), a count must still be visible to other
processes at once (and must not hold a row lock until the caller commits, nor vanish if it
rolls back), so PostgreSQL and MySQL open a second connection of the same alias for that one
operation and close it when the operation ends: a few milliseconds per request made inside a
transaction (e.g. with ``ATOMIC_REQUESTS``), and no connection left open behind a thread or
process. SQLite keeps the same connection (a second one would wait for the transaction's own
write lock), so there a request made inside a transaction counts when it commits.

Old sub-windows are deleted by the request that opens a new one (its upsert returned 1): on
the server's clock those before ``b-k-2``, so a key keeps about ``k + 3`` rows; on a process
clock those older than :data:`SKEW_HORIZON` (an hour: about 1,800 rows per key at the default
2 s sub-windows). A key nobody uses any more keeps its last rows.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

#: ``slot_index`` of the row holding a key's cooldown deadline (Unix ms in ``count``).
COOLDOWN_SLOT = -1
#: The vendors whose SQL this module speaks.
VENDORS = ("sqlite", "postgresql", "mysql")
#: ``RateBudgetSlot.key`` max_length; longer keys are hashed.
KEY_LENGTH = 200
#: On a process clock (SQLite), seconds a sub-window is kept: more than two processes' clocks
#: can plausibly disagree, so a process ahead never deletes what another still counts in.
SKEW_HORIZON = 3600.0
#: The database server's clock, Unix seconds (a float), per vendor. PostgreSQL's
#: ``clock_timestamp()`` is the moment of reading; MySQL's ``UTC_TIMESTAMP(6)`` the start of
#: the statement, in UTC whatever the session's time zone.
SERVER_CLOCK = {
    "postgresql": "EXTRACT(EPOCH FROM clock_timestamp())::float8",
    "mysql": "TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) / 1e6",
}
#: MySQL session variables: the upsert leaves its clock reading and sub-window there for the
#: read that follows on the same connection (MySQL's upsert has no ``RETURNING``).
MYSQL_NOW, MYSQL_SLOT = "@django_omnisend_budget_now", "@django_omnisend_budget_slot"


def database_budget_alias(using: str | None = None) -> str | None:
    """The database alias that would hold the budget, or None when none can.

    None when settings are not configured, the app is not installed (or the registry is not
    ready), or the database is not SQLite, PostgreSQL or MariaDB/MySQL.
    """
    from django.apps import apps
    from django.conf import settings

    if not settings.configured or not apps.ready or not apps.is_installed("django_omnisend"):
        return None
    from django.db import connections, router

    from .models import RateBudgetSlot

    alias = using or router.db_for_write(RateBudgetSlot)
    if alias not in connections.settings or connections[alias].vendor not in VENDORS:
        return None
    return alias


def row_key(key: str) -> str:
    """``key`` as stored: unchanged, or hashed when longer than the column."""
    if len(key) <= KEY_LENGTH:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


class Taken(NamedTuple):
    """What :meth:`DatabaseBudget.take` did."""

    #: Whether the request was counted.
    admitted: bool
    #: Refused: the sub-windows ``subwindow-k .. subwindow+1`` without this request (else
    #: empty).
    counts: dict[int, int]
    #: Refused during a cooldown: its deadline, in seconds on the clock of ``now``.
    cooldown_until: float | None
    #: The sub-window the request was counted (or refused) in.
    subwindow: int
    #: The clock reading ``subwindow`` came from, in seconds: the server's, or the one passed in.
    now: float


class DatabaseBudget:
    """Sub-window counters and cooldowns in the ``RateBudgetSlot`` table.

    :param using: database alias; default the router's choice for writing ``RateBudgetSlot``.
    :param conditional: admit with one conditional statement (default: on SQLite only, the
        one database where that is safe; see the module docstring).
    :param server_clock: cut time by the database server's clock (default: on PostgreSQL and
        MariaDB/MySQL; SQLite has none), not by the ``now`` each call passes in.
    """

    def __init__(
        self,
        using: str | None = None,
        conditional: bool | None = None,
        server_clock: bool | None = None,
    ) -> None:
        alias = database_budget_alias(using)
        if alias is None:
            raise ValueError("no database can hold the rate budget (see database_budget_alias)")
        self.alias = alias
        from django.db import connections

        vendor = connections[alias].vendor
        self.vendor = vendor
        self.conditional = vendor == "sqlite" if conditional is None else bool(conditional)
        if self.conditional and vendor != "sqlite":
            raise ValueError("the one-statement budget is only safe on SQLite")
        self.server_clock = vendor != "sqlite" if server_clock is None else bool(server_clock)
        if self.server_clock and vendor == "sqlite":
            raise ValueError(
                "SQLite has no server clock: the budget there follows the process clock "
                "(pass server_clock=None or False)"
            )

    # -- plumbing -------------------------------------------------------------------------

    @contextmanager
    def _session(self) -> Iterator[Any]:
        """The connection for one operation's statements (module docstring: which, and why).

        Inside ``atomic`` on PostgreSQL or MySQL that is a connection of its own, opened for
        this operation and closed when it ends: nothing outlives the call, so no connection
        is left open for a thread or process that never comes back (and a test database
        can be dropped).
        """
        from django.db import connections

        conn = connections[self.alias]
        if not conn.in_atomic_block or conn.vendor == "sqlite":
            yield conn
            return
        own = connections.create_connection(self.alias)
        try:
            yield own
        finally:
            own.close()

    def _sql(
        self, conn: Any, sql: str, params: list[Any], fetch: bool = False, **parts: str
    ) -> list[tuple]:
        """Run ``sql`` with the table's quoted names, the clock and ``parts`` filled in.

        ``parts`` are SQL fragments of this module (never data: data goes in ``params``).
        """
        from .models import RateBudgetSlot

        ops = conn.ops
        names = {
            "t": ops.quote_name(RateBudgetSlot._meta.db_table),
            "key": ops.quote_name("key"),
            "slot": ops.quote_name("slot_index"),
            "count": ops.quote_name("count"),
            "clock": SERVER_CLOCK.get(self.vendor, ""),
            "now": MYSQL_NOW,
            "index": MYSQL_SLOT,
        }
        names.update({name: part.format(**names) for name, part in parts.items()})
        with conn.cursor() as cursor:
            cursor.execute(sql.format(**names), params)
            return list(cursor.fetchall()) if fetch else [(cursor.rowcount,)]

    def _keep(self, slot: float, subwindows: int) -> int:
        """How many sub-windows before the current one survive pruning (module docstring)."""
        if self.server_clock:
            return subwindows + 2
        return max(subwindows + 2, math.ceil(SKEW_HORIZON / slot))

    def clock(self, now: float) -> float:
        """The budget's clock in seconds: the server's, or ``now`` (the process's)."""
        if not self.server_clock:
            return now
        with self._session() as conn:
            return self._clock(conn, now)

    def _clock(self, conn: Any, now: float) -> float:
        if not self.server_clock:
            return now
        return float(self._sql(conn, "SELECT {clock}", [], fetch=True)[0][0])

    def _increment(self, conn: Any, key: str, slot: float, now: float) -> tuple[int, int, float]:
        """Add one to ``key``'s current sub-window (creating it): ``(index, count, now)``.

        ``count`` is the new count (only 1 versus more is known on MySQL); ``index`` and
        ``now`` come from the server's clock, read by this statement, or from ``now``.
        """
        if self.vendor == "mysql":
            if self.server_clock:
                # The clock and sub-window go to session variables, read by _read_mysql.
                value = "({index} := CAST(FLOOR(({now} := {clock}) / %s) AS SIGNED))"
                params = [key, slot]
                index = 0
            else:
                value, params, index = "%s", [key, math.floor(now / slot)], math.floor(now / slot)
            # rowcount: 1 for an insert, 2 for an update.
            ((rows,),) = self._sql(
                conn,
                "INSERT INTO {t} ({key}, {slot}, {count}) VALUES (%s, {value}, 1) "
                "ON DUPLICATE KEY UPDATE {count} = {count} + 1",
                params,
                value=value,
            )
            return index, 1 if rows == 1 else 2, now
        upsert = (
            "ON CONFLICT ({key}, {slot}) DO UPDATE SET {count} = {t}.{count} + 1 "
            "RETURNING {slot}, {count}"
        )
        if self.server_clock:
            ((index, count, server_now),) = self._sql(
                conn,
                "WITH clock AS (SELECT {clock} AS now) "
                "INSERT INTO {t} ({key}, {slot}, {count}) "
                "SELECT %s, CAST(FLOOR(clock.now / %s) AS BIGINT), 1 FROM clock "
                "{upsert}, (SELECT now FROM clock)",
                [key, slot],
                fetch=True,
                upsert=upsert,
            )
            return int(index), int(count), float(server_now)
        ((index, count),) = self._sql(
            conn,
            "INSERT INTO {t} ({key}, {slot}, {count}) VALUES (%s, %s, 1) {upsert}",
            [key, math.floor(now / slot)],
            fetch=True,
            upsert=upsert,
        )
        return int(index), int(count), now

    # -- budget ---------------------------------------------------------------------------

    def take(
        self,
        key: str,
        cooldown_key: str,
        slot: float,
        subwindows: int,
        budget: int,
        now: float,
    ) -> Taken:
        """Count one request of ``key`` in its current sub-window if there is room.

        ``slot``: the sub-window length in seconds; ``now``: the process's clock (unused on
        the server's clock). Refused during a cooldown, the budget is not read.
        """
        with self._session() as conn:
            return self._take(
                conn, row_key(key), row_key(cooldown_key), slot, subwindows, budget, now
            )

    def _take(
        self,
        conn: Any,
        key: str,
        cooldown_key: str,
        slot: float,
        subwindows: int,
        budget: int,
        now: float,
    ) -> Taken:
        if self.conditional:
            return self._take_conditional(conn, key, cooldown_key, slot, subwindows, budget, now)
        index, count, now = self._increment(conn, key, slot, now)
        if self.vendor == "mysql" and self.server_clock:
            index, now, counts, until = self._read_mysql(conn, key, cooldown_key, subwindows)
        else:
            counts, until = self._read(conn, key, cooldown_key, index - subwindows, index + 1)
        if count == 1:
            self._prune(conn, key, index - self._keep(slot, subwindows))
        cooling = until is not None and until > now * 1000
        if not cooling and sum(counts.values()) <= budget:
            return Taken(True, {}, None, index, now)
        self._sql(
            conn,
            "UPDATE {t} SET {count} = {count} - 1 WHERE {key} = %s AND {slot} = %s",
            [key, index],
        )
        counts[index] = counts.get(index, 1) - 1
        deadline = until / 1000 if cooling and until is not None else None
        return Taken(False, counts, deadline, index, now)

    def _take_conditional(
        self,
        conn: Any,
        key: str,
        cooldown_key: str,
        slot: float,
        subwindows: int,
        budget: int,
        now: float,
    ) -> Taken:
        index = math.floor(now / slot)
        low, high = index - subwindows, index + 1
        now_ms = math.floor(now * 1000)
        rows = self._sql(
            conn,
            "INSERT INTO {t} ({key}, {slot}, {count}) SELECT %s, %s, 1 WHERE "
            "(SELECT COALESCE(SUM({count}), 0) FROM {t} "
            " WHERE {key} = %s AND {slot} BETWEEN %s AND %s) < %s "
            "AND NOT EXISTS (SELECT 1 FROM {t} WHERE {key} = %s AND {slot} = %s "
            " AND {count} > %s) "
            "ON CONFLICT ({key}, {slot}) DO UPDATE SET {count} = {count} + 1 "
            "RETURNING {count}",
            [key, index, key, low, high, budget, cooldown_key, COOLDOWN_SLOT, now_ms],
            fetch=True,
        )
        if rows:
            if int(rows[0][0]) == 1:
                self._prune(conn, key, index - self._keep(slot, subwindows))
            return Taken(True, {}, None, index, now)
        counts, until = self._read(conn, key, cooldown_key, low, high)
        deadline = until / 1000 if until is not None and until > now_ms else None
        return Taken(False, counts, deadline, index, now)

    def _read(
        self, conn: Any, key: str, cooldown_key: str, low: int, high: int
    ) -> tuple[dict[int, int], int | None]:
        rows = self._sql(
            conn,
            "SELECT {key}, {slot}, {count} FROM {t} WHERE ({key} = %s AND {slot} BETWEEN %s AND %s)"
            " OR ({key} = %s AND {slot} = %s)",
            [key, low, high, cooldown_key, COOLDOWN_SLOT],
            fetch=True,
        )
        return _counts(rows, cooldown_key)

    def _read_mysql(
        self, conn: Any, key: str, cooldown_key: str, subwindows: int
    ) -> tuple[int, float, dict[int, int], int | None]:
        """:meth:`_read` around the sub-window the last upsert left in the session.

        Also returns that sub-window and the clock reading, as a last row whose key is NULL.
        """
        rows = self._sql(
            conn,
            "SELECT {key}, {slot}, {count} FROM {t} WHERE "
            "({key} = %s AND {slot} BETWEEN {index} - %s AND {index} + 1) "
            "OR ({key} = %s AND {slot} = %s) "
            "UNION ALL SELECT NULL, {index}, {now}",
            [key, subwindows, cooldown_key, COOLDOWN_SLOT],
            fetch=True,
        )
        (index, now) = next((r[1], r[2]) for r in rows if r[0] is None)
        counts, until = _counts([r for r in rows if r[0] is not None], cooldown_key)
        return int(index), float(now), counts, until

    def counts(self, key: str, slot: float, subwindows: int, now: float) -> dict[int, int]:
        """The counters of ``key`` that a request at ``now`` would read (read only)."""
        with self._session() as conn:
            index = math.floor(self._clock(conn, now) / slot)
            return self._read(conn, row_key(key), "", index - subwindows, index + 1)[0]

    def _prune(self, conn: Any, key: str, before: int) -> None:
        self._sql(
            conn,
            "DELETE FROM {t} WHERE {key} = %s AND {slot} >= 0 AND {slot} < %s",
            [key, before],
        )

    # -- cooldown -------------------------------------------------------------------------

    def set_cooldown(self, cooldown_key: str, seconds: float, now: float) -> None:
        """Make ``cooldown_key``'s deadline at least ``seconds`` from now (never earlier).

        ``now``: the process's clock (unused on the server's clock).
        """
        if self.server_clock:
            cast = "SIGNED" if self.vendor == "mysql" else "BIGINT"
            until, params = "CAST(FLOOR(({clock} + %s) * 1000) AS " + cast + ")", [seconds]
        else:
            until, params = "%s", [math.ceil((now + seconds) * 1000)]
        if self.vendor == "mysql":
            # VALUES(): MariaDB has no row alias; MySQL 8 still accepts it (deprecated).
            sql = (
                "INSERT INTO {t} ({key}, {slot}, {count}) VALUES (%s, %s, {until}) "
                "ON DUPLICATE KEY UPDATE {count} = GREATEST({count}, VALUES({count}))"
            )
        else:
            sql = (
                # WHERE: SQLite reads "ON" after a bare SELECT as a join constraint.
                "INSERT INTO {t} ({key}, {slot}, {count}) SELECT %s, %s, {until} WHERE 1 = 1 "
                "ON CONFLICT ({key}, {slot}) DO UPDATE SET {count} = CASE "
                "WHEN excluded.{count} > {t}.{count} THEN excluded.{count} ELSE {t}.{count} END"
            )
        with self._session() as conn:
            self._sql(conn, sql, [row_key(cooldown_key), COOLDOWN_SLOT, *params], until=until)

    def cooldown_remaining(self, cooldown_key: str, now: float) -> float:
        """Seconds left of ``cooldown_key``'s cooldown (0.0 when none), on the budget's clock."""
        clock = "{clock}" if self.server_clock else "%s"
        with self._session() as conn:
            rows = self._sql(
                conn,
                "SELECT {count}, {current} FROM {t} WHERE {key} = %s AND {slot} = %s",
                [*([] if self.server_clock else [now]), row_key(cooldown_key), COOLDOWN_SLOT],
                fetch=True,
                current=clock,
            )
        if not rows:
            return 0.0
        until_ms, current = rows[0]
        return max(0.0, int(until_ms) / 1000 - float(current))

    def forget(self, key: str, cooldown_key: str) -> None:
        """Delete every counter of ``key`` and the cooldown of ``cooldown_key``."""
        with self._session() as conn:
            self._sql(
                conn,
                "DELETE FROM {t} WHERE {key} = %s OR ({key} = %s AND {slot} = %s)",
                [row_key(key), row_key(cooldown_key), COOLDOWN_SLOT],
            )


def _counts(rows: list[tuple], cooldown_key: str) -> tuple[dict[int, int], int | None]:
    """``(key, slot_index, count)`` rows as sub-window counts and a cooldown deadline (ms)."""
    counts: dict[int, int] = {}
    until = None
    for key, index, count in rows:
        if key == cooldown_key and index == COOLDOWN_SLOT:
            until = int(count)
        else:
            counts[int(index)] = int(count)
    return counts, until

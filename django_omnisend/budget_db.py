"""The rate budget's counters in the database: :class:`DatabaseBudget` (``RateBudgetSlot`` rows).

Used by :class:`~django_omnisend.ratelimit.RateLimiter` when its cache is not shared between
processes (no Redis or Memcached), so that every worker of the site draws on one budget. It
keeps the limiter's algorithm (sub-window counters, see the ratelimit module docstring); only
where the counters live differs. Two ways to admit a request, both giving the same bound:

*One statement* (SQLite): an ``INSERT ... SELECT ... WHERE <room> ON CONFLICT DO UPDATE SET
count = count + 1 RETURNING count`` that counts the request only if the sub-windows
``b-k .. b+1`` hold fewer than ``budget`` and no cooldown is running. SQLite runs one writing
statement at a time over the whole database (a statement that read a stale snapshot cannot
commit), so these statements are totally ordered and each sees every earlier one: the last
admitted request of any span saw all the others, as the proof in the ratelimit module needs.

*Increment, then read* (PostgreSQL, MariaDB/MySQL, or SQLite with ``conditional=False``):
an atomic upsert ``count = count + 1`` committed on its own, then one ``SELECT`` of the
sub-windows and the cooldown; over budget, a third statement takes the count back. This is the
cache algorithm itself and holds under READ COMMITTED: a request's increment is committed
before its read, so the last one to increment reads everyone's. A single statement cannot do
this there: its snapshot is taken before it starts, so two concurrent ones would miss each other.

Statements run on the connection the router picks for writing ``RateBudgetSlot``, in
autocommit. Inside a transaction (``atomic``), a count must still be visible to other
processes at once (and must not hold a row lock until the caller commits, nor vanish if it
rolls back), so PostgreSQL and MySQL open a second connection of the same alias for that one
operation and close it when the operation ends: a few milliseconds per request made inside a
transaction (e.g. with ``ATOMIC_REQUESTS``), and no connection left open behind a thread or
process. SQLite keeps the same connection (a second one would wait for the transaction's own
write lock), so there a request made inside a transaction counts when it commits.

Old sub-windows are deleted by the request that opens a new one (its upsert returned 1), so a
key keeps about ``k + 3`` rows; a key nobody uses any more keeps its last few rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: ``slot_index`` of the row holding a key's cooldown deadline (Unix ms in ``count``).
COOLDOWN_SLOT = -1
#: The vendors whose SQL this module speaks.
VENDORS = ("sqlite", "postgresql", "mysql")
#: ``RateBudgetSlot.key`` max_length; longer keys are hashed.
KEY_LENGTH = 200


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


class DatabaseBudget:
    """Sub-window counters and cooldowns in the ``RateBudgetSlot`` table.

    :param using: database alias; default the router's choice for writing ``RateBudgetSlot``.
    :param conditional: admit with one conditional statement (default: on SQLite only, the
        one database where that is safe; see the module docstring).
    """

    def __init__(self, using: str | None = None, conditional: bool | None = None) -> None:
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

    def _sql(self, conn: Any, sql: str, params: list[Any], fetch: bool = False) -> list[tuple]:
        from .models import RateBudgetSlot

        ops = conn.ops
        names = {
            "t": ops.quote_name(RateBudgetSlot._meta.db_table),
            "key": ops.quote_name("key"),
            "slot": ops.quote_name("slot_index"),
            "count": ops.quote_name("count"),
        }
        with conn.cursor() as cursor:
            cursor.execute(sql.format(**names), params)
            return list(cursor.fetchall()) if fetch else [(cursor.rowcount,)]

    def _increment(self, conn: Any, key: str, index: int) -> int:
        """Add one to ``(key, index)`` (creating it); return the new count."""
        if self.vendor == "mysql":
            # rowcount: 1 for an insert, 2 for an update (MySQL's upsert has no RETURNING).
            ((rows,),) = self._sql(
                conn,
                "INSERT INTO {t} ({key}, {slot}, {count}) VALUES (%s, %s, 1) "
                "ON DUPLICATE KEY UPDATE {count} = {count} + 1",
                [key, index],
            )
            return 1 if rows == 1 else 2
        rows = self._sql(
            conn,
            "INSERT INTO {t} ({key}, {slot}, {count}) VALUES (%s, %s, 1) "
            "ON CONFLICT ({key}, {slot}) DO UPDATE SET {count} = {t}.{count} + 1 "
            "RETURNING {count}",
            [key, index],
            fetch=True,
        )
        return int(rows[0][0])

    # -- budget ---------------------------------------------------------------------------

    def take(
        self, key: str, cooldown_key: str, index: int, subwindows: int, budget: int, now_ms: int
    ) -> tuple[bool, dict[int, int], int | None]:
        """Count one request of ``key`` in sub-window ``index`` if there is room.

        Returns ``(admitted, counts, cooldown_until_ms)``. Admitted: ``counts`` is empty (not
        read). Refused: ``counts`` are the sub-windows ``index-k .. index+1`` without this
        request, and the cooldown deadline if one is running (then the budget was not read).
        """
        with self._session() as conn:
            return self._take(
                conn, row_key(key), row_key(cooldown_key), index, subwindows, budget, now_ms
            )

    def _take(
        self,
        conn: Any,
        key: str,
        cooldown_key: str,
        index: int,
        subwindows: int,
        budget: int,
        now_ms: int,
    ) -> tuple[bool, dict[int, int], int | None]:
        low, high = index - subwindows, index + 1
        if self.conditional:
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
                    self._prune(conn, key, index - subwindows - 2)
                return True, {}, None
            counts, until = self._read(conn, key, cooldown_key, low, high)
            return False, counts, until if until is not None and until > now_ms else None
        if self._increment(conn, key, index) == 1:
            self._prune(conn, key, index - subwindows - 2)
        counts, until = self._read(conn, key, cooldown_key, low, high)
        cooling = until is not None and until > now_ms
        if not cooling and sum(counts.values()) <= budget:
            return True, {}, None
        self._sql(
            conn,
            "UPDATE {t} SET {count} = {count} - 1 WHERE {key} = %s AND {slot} = %s",
            [key, index],
        )
        counts[index] = counts.get(index, 1) - 1
        return False, counts, until if cooling else None

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
        counts: dict[int, int] = {}
        until = None
        for row_key_, index, count in rows:
            if row_key_ == cooldown_key and index == COOLDOWN_SLOT:
                until = int(count)
            else:
                counts[int(index)] = int(count)
        return counts, until

    def counts(self, key: str, low: int, high: int) -> dict[int, int]:
        """The counters of ``key`` in sub-windows ``low .. high`` (read only)."""
        with self._session() as conn:
            return self._read(conn, row_key(key), "", low, high)[0]

    def prune(self, key: str, before: int) -> None:
        """Delete the sub-windows of ``key`` older than ``before`` (not its cooldown)."""
        with self._session() as conn:
            self._prune(conn, row_key(key), before)

    def _prune(self, conn: Any, key: str, before: int) -> None:
        self._sql(
            conn,
            "DELETE FROM {t} WHERE {key} = %s AND {slot} >= 0 AND {slot} < %s",
            [key, before],
        )

    # -- cooldown -------------------------------------------------------------------------

    def set_cooldown(self, cooldown_key: str, until_ms: int) -> None:
        """Make ``cooldown_key``'s deadline at least ``until_ms`` (never earlier)."""
        with self._session() as conn:
            self._set_cooldown(conn, row_key(cooldown_key), until_ms)

    def _set_cooldown(self, conn: Any, cooldown_key: str, until_ms: int) -> None:
        raise_it = (
            "UPDATE {t} SET {count} = %s WHERE {key} = %s AND {slot} = %s AND {count} < %s",
            [until_ms, cooldown_key, COOLDOWN_SLOT, until_ms],
        )
        ((updated,),) = self._sql(conn, *raise_it)
        if updated:
            return
        ignore = "INSERT IGNORE INTO" if self.vendor == "mysql" else "INSERT INTO"
        conflict = "" if self.vendor == "mysql" else " ON CONFLICT ({key}, {slot}) DO NOTHING"
        self._sql(
            conn,
            ignore + " {t} ({key}, {slot}, {count}) VALUES (%s, %s, %s)" + conflict,
            [cooldown_key, COOLDOWN_SLOT, until_ms],
        )
        # Another process may have inserted an earlier deadline between the two statements.
        self._sql(conn, *raise_it)

    def cooldown_until(self, cooldown_key: str) -> int | None:
        """The cooldown deadline of ``cooldown_key`` (Unix ms), or None."""
        with self._session() as conn:
            rows = self._sql(
                conn,
                "SELECT {count} FROM {t} WHERE {key} = %s AND {slot} = %s",
                [row_key(cooldown_key), COOLDOWN_SLOT],
                fetch=True,
            )
        return int(rows[0][0]) if rows else None

    def forget(self, key: str, cooldown_key: str) -> None:
        """Delete every counter of ``key`` and the cooldown of ``cooldown_key``."""
        with self._session() as conn:
            self._sql(
                conn,
                "DELETE FROM {t} WHERE {key} = %s OR ({key} = %s AND {slot} = %s)",
                [row_key(key), row_key(cooldown_key), COOLDOWN_SLOT],
            )

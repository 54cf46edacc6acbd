"""Marking users from a database trigger, so the mark commits with the save itself.

With ``OMNISEND["MARK_WITH"] = "trigger"`` the user table carries ``AFTER INSERT`` / ``AFTER
UPDATE`` triggers writing the mark of :func:`django_omnisend.sync.marking.mark_dirty` in the
save's own statement. They keep the receiver's rules (``NOISE_FIELDS``, fixture loads, the
default connection key), are named after a hash of their SQL (:mod:`.trigger_sql`), and are
installed, replaced or removed after every ``migrate``; while they are missing or stale the
receiver marks saves as well. The reasons are in the docs (guides/syncing.rst).
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import omnisend_settings
from ..models import MarkSuppression, SyncState
from .trigger_sql import PREFIX, SKIP_SETTING, _definition, signature

logger = logging.getLogger("django_omnisend.triggers")


VENDORS = ("sqlite", "postgresql", "mysql")
#: Seconds a process trusts its answer to "are current triggers installed?". A ``migrate``
#: run by another process (a deploy) adds or drops the triggers without telling this one, so
#: the answer is asked again this often: one query per database per process every 30 s.
ACTIVE_TTL = 30.0
#: Monotonic seconds for :data:`ACTIVE_TTL` (tests move a clock of their own in its place).
clock: Callable[[], float] = time.monotonic
#: Per database alias and NOISE_FIELDS: (current triggers installed?, when it was asked).
_ACTIVE: dict[tuple[str, tuple[str, ...]], tuple[bool, float]] = {}


def wanted() -> bool:
    """Do the settings ask for database triggers (``MARK_WITH = "trigger"``, sync on)?"""
    return omnisend_settings.mark_with == "trigger" and omnisend_settings.sync_users


def problems(using: str = "default") -> list[str]:
    """Why trigger marking cannot work on database ``using`` with these settings."""
    from ..adapter import ContactAdapter, get_adapter

    found = []
    vendor = connections[using].vendor
    if vendor not in VENDORS:
        found.append(
            f"the {vendor} database backend has no trigger marking "
            "(SQLite, PostgreSQL, MariaDB/MySQL)"
        )
    if type(get_adapter()).get_connection_key is not ContactAdapter.get_connection_key:
        found.append(
            "the adapter overrides get_connection_key(), which a trigger cannot call "
            "(one connection key per user needs the signal receiver)"
        )
    user_model = get_user_model()
    if user_model._meta.parents:
        found.append("the user model uses multi-table inheritance (its fields span two tables)")
    if router.db_for_write(SyncState) != router.db_for_write(user_model):
        found.append("the database router puts the sync tables and the user table apart")
    if vendor in ("sqlite", "mysql") and not settings.USE_TZ:
        name = "SQLite" if vendor == "sqlite" else "MariaDB/MySQL"
        found.append(f"{name} triggers write UTC timestamps, which needs USE_TZ = True")
    return found


# -- what the database holds --------------------------------------------------------------


def _tables(conn: BaseDatabaseWrapper) -> set[str]:
    with conn.cursor() as cursor:
        return set(conn.introspection.table_names(cursor))


def installed(conn: BaseDatabaseWrapper, *, disabled_too: bool = False) -> list[str]:
    """Names of our triggers on the user table (any definition), sorted.

    A trigger disabled with ``ALTER TABLE … DISABLE TRIGGER`` (PostgreSQL) marks nothing, so
    it is left out unless ``disabled_too``.
    """
    table = get_user_model()._meta.db_table
    with conn.cursor() as cursor:
        if conn.vendor == "postgresql":
            cursor.execute(
                "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal "
                "AND tgrelid = to_regclass(%s) AND tgname LIKE %s AND (%s OR tgenabled <> 'D')",
                [conn.ops.quote_name(table), PREFIX.replace("_", r"\_") + "%", disabled_too],
            )
        elif conn.vendor == "sqlite":
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s "
                "AND name LIKE %s ESCAPE '\\'",
                [table, PREFIX.replace("_", r"\_") + "%"],
            )
        elif conn.vendor == "mysql":
            cursor.execute(
                "SELECT trigger_name FROM information_schema.triggers "
                "WHERE event_object_schema = DATABASE() AND event_object_table = %s "
                "AND trigger_name LIKE %s",
                [table, PREFIX.replace("_", r"\_") + "%"],
            )
        else:
            return []
        return sorted(row[0] for row in cursor.fetchall())


def is_current(conn: BaseDatabaseWrapper) -> bool:
    """Are this definition's triggers, and only they, on the user table?"""
    tag = signature(conn)
    return installed(conn) == sorted([f"{PREFIX}ins_{tag}", f"{PREFIX}upd_{tag}"])


def functions(conn: BaseDatabaseWrapper) -> list[str]:
    """Names of our trigger functions (PostgreSQL; SQLite triggers have none), sorted."""
    if conn.vendor != "postgresql":
        return []
    with conn.cursor() as cursor:
        cursor.execute(
            "SELECT proname FROM pg_proc WHERE proname LIKE %s AND pronamespace IN "
            "(SELECT oid FROM pg_namespace WHERE nspname = ANY (current_schemas(false)))",
            [PREFIX.replace("_", r"\_") + "%"],
        )
        return sorted(row[0] for row in cursor.fetchall())


def _drop(conn: BaseDatabaseWrapper) -> int:
    quote = conn.ops.quote_name
    table = quote(get_user_model()._meta.db_table)
    names = installed(conn, disabled_too=True)
    with conn.cursor() as cursor:
        for name in names:
            on = f" ON {table}" if conn.vendor == "postgresql" else ""
            cursor.execute(f"DROP TRIGGER IF EXISTS {quote(name)}{on}")
        for function in functions(conn):
            cursor.execute(f"DROP FUNCTION IF EXISTS {quote(function)}()")
    return len(names)


def install(using: str = "default") -> None:
    """Create the triggers these settings ask for on ``using``, replacing any older ones."""
    conn = connections[using]
    found = problems(using)
    if found:
        raise RuntimeError("Trigger marking cannot be used: " + "; ".join(found) + ".")
    tag = signature(conn)
    with _ddl(conn), conn.cursor() as cursor:
        _drop(conn)
        for statement in _definition(conn, tag):
            cursor.execute(statement)
    forget()


def _ddl(conn: BaseDatabaseWrapper) -> Any:
    """A transaction for trigger DDL where the database can roll it back.

    MariaDB/MySQL commit the open transaction at every ``CREATE``/``DROP TRIGGER``: there,
    the statements run as they are (each is atomic), and never inside a caller's
    ``atomic()`` block, whose earlier writes they would commit behind its back.
    """
    if conn.features.can_rollback_ddl:
        return transaction.atomic(using=conn.alias)
    if conn.in_atomic_block:
        raise RuntimeError(
            f"{conn.display_name} commits the open transaction when a trigger is created or "
            "dropped: install or remove the mark triggers outside transaction.atomic() "
            '(as "manage.py migrate" does).'
        )
    return contextlib.nullcontext()


def uninstall(using: str = "default") -> int:
    """Remove our triggers (and function) from ``using``; returns how many triggers went."""
    conn = connections[using]
    if conn.vendor not in VENDORS:
        return 0
    with _ddl(conn):
        removed = _drop(conn)
    forget()
    return removed


def before_migrate(using: str = "default", plan: Any = None, **kwargs: Any) -> None:
    """``pre_migrate``: take SQLite's triggers off while our own migrations run.

    SQLite alters a table by building a copy and renaming it, and a rename fails while a
    trigger names the table being replaced (``django_omnisend_syncstate``). The receiver
    marks saves meanwhile; :func:`after_migrate` installs the triggers again.
    """
    conn = connections[using]
    ours = any(migration.app_label == "django_omnisend" for migration, _ in plan or ())
    if not ours or conn.vendor != "sqlite":
        return
    if get_user_model()._meta.db_table not in _tables(conn):
        return
    if installed(conn, disabled_too=True):
        uninstall(using)


def after_migrate(
    using: str = "default", verbosity: int = 1, stdout: Any = None, **kwargs: Any
) -> None:
    """``post_migrate``: make the database's triggers match ``MARK_WITH`` and the model."""
    stdout = stdout or sys.stdout
    conn = connections[using]
    if conn.vendor not in VENDORS or not router.allow_migrate_model(using, SyncState):
        return
    tables = _tables(conn)
    needed = {
        get_user_model()._meta.db_table,
        SyncState._meta.db_table,
        MarkSuppression._meta.db_table,
    }
    if not needed <= tables:
        # A table the trigger writes or reads is gone (e.g. ``migrate django_omnisend
        # zero``): a trigger left behind would make every user save fail.
        if get_user_model()._meta.db_table in tables and installed(conn, disabled_too=True):
            uninstall(using)
        return
    if wanted() and not problems(using):
        if not is_current(conn):
            try:
                install(using)
            except DatabaseError as exc:
                # Never fail a deploy's migrate over this: the receiver keeps marking, and the
                # warning (plus check W007) says what to fix.
                logger.error("Could not install the user mark triggers on %r: %s", using, exc)
                stdout.write(
                    f"  django_omnisend: could not install the user mark triggers on {using!r} "
                    f"({exc}); saves are marked by the post_save receiver until a migrate "
                    "succeeds.\n"
                )
                return
            if verbosity >= 1:
                stdout.write(f"  django_omnisend: installed the user mark triggers on {using!r}.\n")
    elif installed(conn, disabled_too=True):
        uninstall(using)
        if verbosity >= 1:
            stdout.write(f"  django_omnisend: removed the user mark triggers from {using!r}.\n")


# -- what saves consult -----------------------------------------------------------------------


def forget() -> None:
    """Drop the cached answers of :func:`active` (after installing, removing, new settings)."""
    _ACTIVE.clear()


def active(using: str) -> bool:
    """Do current triggers mark this database's users? (False unless ``MARK_WITH`` says so.)

    Asked on every user save, so the answer is cached per process for :data:`ACTIVE_TTL`
    seconds; ``migrate`` and :func:`install` / :func:`uninstall` in this process, and settings
    changes, refresh it at once. A ``migrate`` elsewhere that drops the triggers is noticed
    within the TTL, after which the receiver marks again (see the README's rolling deploys).
    """
    if not wanted():
        return False
    key = (using, tuple(omnisend_settings.noise_fields))
    now = clock()
    cached = _ACTIVE.get(key)
    if cached is not None and now - cached[1] < ACTIVE_TTL:
        return cached[0]
    conn = connections[using]
    current = conn.vendor in VENDORS and not problems(using) and is_current(conn)
    if not current and (cached is None or cached[0]):
        # Once per change, not every TTL: a process without triggers would repeat it forever.
        logger.warning(
            'OMNISEND["MARK_WITH"] is "trigger" but the user table of database %r has no '
            "current mark triggers: saves are marked by the signal receiver until "
            '"manage.py migrate" installs them (see "manage.py check --database %s").',
            using,
            using,
        )
    _ACTIVE[key] = (current, now)
    return current


def suppress(using: str, user_pk: Any) -> bool:
    """Keep the triggers off this fixture save until :func:`release`; False if they cannot be.

    PostgreSQL: a transaction-local setting (loaddata saves inside a transaction; a raw save
    in autocommit cannot be covered). SQLite, MariaDB/MySQL: a :class:`MarkSuppression` row
    for ``user_pk`` (none without a primary key).
    """
    conn = connections[using]
    if conn.vendor == "postgresql":
        if not conn.in_atomic_block:
            return False
        with conn.cursor() as cursor:
            cursor.execute("SELECT set_config(%s, 'on', true)", [SKIP_SETTING])
        return True
    if user_pk is None:
        return False
    MarkSuppression.objects.using(using).bulk_create(
        [MarkSuppression(user_id=user_pk)], ignore_conflicts=True
    )
    return True


def release(using: str, user_pk: Any, created: bool) -> None:
    """End :func:`suppress`; undo the mark of a new fixture user it could not cover."""
    conn = connections[using]
    if conn.vendor == "postgresql":
        covered = conn.in_atomic_block
        if covered:
            with conn.cursor() as cursor:
                cursor.execute("SELECT set_config(%s, '', true)", [SKIP_SETTING])
    else:
        covered = MarkSuppression.objects.using(using).filter(user_id=user_pk).delete()[0] > 0
    if not covered and created:
        # The trigger marked a user this save created, so the row it wrote is the only one
        # this user has: removing it leaves the state a covered load leaves.
        SyncState.objects.using(using).filter(user_id=user_pk).delete()

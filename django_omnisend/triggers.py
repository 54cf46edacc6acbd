"""Marking users from a database trigger, so the mark commits with the save itself.

With ``OMNISEND["MARK_WITH"] = "trigger"`` the user table carries two ``AFTER INSERT`` /
``AFTER UPDATE`` row triggers that write the same mark as
:func:`django_omnisend.outbox.mark_dirty` (its ``INSERT … ON CONFLICT DO UPDATE``; PostgreSQL's
function tries a plain ``UPDATE`` first). Why: a ``post_save`` receiver's statement is a
second round trip, and in autocommit a second durable commit, on every save; the trigger's
write is part of the save's own statement. It also sees writes that send no signal
(``QuerySet.update()``, raw SQL, other programs).

Rules kept from the receiver: an update that changes only ``NOISE_FIELDS`` columns marks
nothing (compared by value, so ``save()`` without ``update_fields`` is covered too); fixture
loads mark nothing (their ``pre_save`` holds the triggers off until ``post_save``: a
transaction-local setting on PostgreSQL, a :class:`MarkSuppression` row on SQLite and
MariaDB/MySQL); the
connection key is the adapter's default one. Triggers are asked for only while
``SYNC_USERS`` is on; turning it off removes them at the next ``migrate``.

Triggers are named after a hash of their SQL, so a definition that no longer matches the
settings (``NOISE_FIELDS``, new columns) is visible and replaced. They are installed,
replaced or removed after every ``migrate`` (:func:`after_migrate`), according to
``MARK_WITH``. While ``MARK_WITH`` asks for triggers that are missing or stale, saves are
marked by the receiver as well, so nothing is lost before ``migrate`` runs.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import sys
import time
from collections.abc import Callable
from typing import Any, cast

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connections, router, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from . import outbox
from .conf import omnisend_settings
from .models import MarkSuppression, SyncState

logger = logging.getLogger(__name__)

#: Databases whose triggers can run the upsert (the same ones ``outbox`` upserts on).
VENDORS = ("sqlite", "postgresql", "mysql")
PREFIX = "django_omnisend_mark_"
#: PostgreSQL setting that holds the triggers off while a fixture load saves users.
SKIP_SETTING = "django_omnisend.skip_mark"
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
    from .adapter import ContactAdapter
    from .adapters import get_adapter

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


# -- the SQL ----------------------------------------------------------------------------------


def _literal(value: Any, vendor: str) -> str:
    """A constant of the sync row's defaults as SQL (only the simple types they use)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        if vendor == "postgresql":
            return "TRUE" if value else "FALSE"
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if vendor == "mysql":  # a backslash escapes there (unless NO_BACKSLASH_ESCAPES)
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"No SQL literal for a {type(value).__name__} default.")


def _pieces(conn: BaseDatabaseWrapper) -> dict[str, str]:
    """The parts both vendors' definitions are built from."""
    quote = conn.ops.quote_name
    user_model = get_user_model()
    user_pk = f"NEW.{quote(cast(str, user_model._meta.pk.column))}"
    if conn.vendor == "postgresql":
        now = "clock_timestamp()"
    elif conn.vendor == "mysql":  # Django stores aware datetimes as UTC, without a zone
        now = "UTC_TIMESTAMP(6)"
    else:  # the text form Django stores for an aware datetime (UTC, no offset)
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    columns, template, slots = outbox.new_row_template(conn)
    values = [_literal(v, conn.vendor) for v in template]
    key = _literal("default", conn.vendor)  # the adapter's only key (see problems())
    per_call = (user_pk, key, now, now, now, now)
    for slot, expression in zip(slots, per_call, strict=True):
        values[slot] = expression
    noise_names = set(omnisend_settings.noise_fields)
    kept: list[str] = []
    noise: list[str] = []
    for field in user_model._meta.concrete_fields:
        (noise if field.name in noise_names else kept).append(quote(cast(str, field.column)))
    if conn.vendor == "mysql":  # <=> is MySQL's NULL-safe equality

        def differs(c: str) -> str:
            return f"NOT (OLD.{c} <=> NEW.{c})"

    else:
        operator = "IS DISTINCT FROM" if conn.vendor == "postgresql" else "IS NOT"

        def differs(c: str) -> str:
            return f"OLD.{c} {operator} NEW.{c}"

    def changed(cols: list[str]) -> str:
        return " OR ".join(differs(c) for c in cols) or "FALSE"

    # Mark unless the update changed noise columns and nothing else (a save that changes
    # nothing still marks, as a save does through the receiver).
    when = f"({changed(kept)}) OR NOT ({changed(noise)})" if noise else ""
    if conn.vendor == "postgresql":
        # A transaction-local setting: a plain expression in the trigger's WHEN, far cheaper
        # per save than a query (and no function call at all while it holds).
        suppressed = f"current_setting('{SKIP_SETTING}', true) = 'on'"
    else:
        # SQLite has no session settings (and a MySQL user variable outlives the
        # transaction); the table is read by primary key.
        table = MarkSuppression._meta
        suppressed = (
            f"EXISTS (SELECT 1 FROM {quote(table.db_table)} "  # noqa: S608
            f"WHERE {quote(cast(str, table.pk.column))} = {user_pk})"
        )
    state = SyncState._meta
    c = {f.name: quote(cast(str, f.column)) for f in state.concrete_fields}
    return {
        "table": quote(user_model._meta.db_table),
        "upsert": outbox.upsert_sql(quote, columns, values, vendor=conn.vendor),
        # What the upsert does to an existing row, as a plain UPDATE.
        "update": (
            f"UPDATE {quote(state.db_table)} SET "  # noqa: S608
            + outbox.mark_assignments(quote, dirty="TRUE", dirtied_at=now, updated_at=now)
            + f" WHERE {c['user']} = {user_pk} AND {c['connection_key']} = {key}"
        ),
        "not_suppressed": f"NOT coalesce({suppressed}, FALSE)",
        "when": when,
    }


def _definition(conn: BaseDatabaseWrapper, tag: str) -> list[str]:
    """``CREATE`` statements for the triggers (and PostgreSQL's function) named with ``tag``."""
    p = _pieces(conn)
    quote = conn.ops.quote_name
    ins, upd = quote(f"{PREFIX}ins_{tag}"), quote(f"{PREFIX}upd_{tag}")
    on_insert = p["not_suppressed"]
    on_update = f"({p['when']}) AND {on_insert}" if p["when"] else on_insert
    if conn.vendor == "postgresql":
        function = quote(f"{PREFIX}{tag}")
        return [
            # UPDATE first: for the usual case (the row exists) it skips the upsert's row
            # lock, about a fifth of the trigger's cost; the upsert covers new rows and races.
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
            f"BEGIN\n  {p['update']};\n  IF NOT FOUND THEN\n    {p['upsert']};\n  END IF;\n"
            "  RETURN NULL;\nEND\n$body$",
            f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
            f"WHEN ({on_insert}) EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
            f"WHEN ({on_update}) EXECUTE FUNCTION {function}()",
        ]
    if conn.vendor == "mysql":
        # No WHEN clause there: the condition is an IF in the body.
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
            f"BEGIN IF {on_insert} THEN {p['upsert']}; END IF; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
            f"BEGIN IF {on_update} THEN {p['upsert']}; END IF; END",
        ]
    return [
        f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
        f"WHEN {on_insert} BEGIN {p['upsert']}; END",
        f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
        f"WHEN {on_update} BEGIN {p['upsert']}; END",
    ]


def signature(conn: BaseDatabaseWrapper) -> str:
    """A short hash of the definition these settings ask for (it names the triggers)."""
    text = "\n".join(_definition(conn, "TAG"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


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

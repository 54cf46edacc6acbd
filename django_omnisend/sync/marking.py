"""Writes into the sync outbox, made from inside the host's transactions.

These run on every save of every user, so each is one cheap statement and never touches
the network: :func:`mark_dirty` is a single ``INSERT … ON CONFLICT DO UPDATE`` on SQLite and
PostgreSQL, ``INSERT … ON DUPLICATE KEY UPDATE`` on MariaDB/MySQL (an update-then-insert
elsewhere).
"""

from __future__ import annotations

from typing import Any, cast

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from ..models import OutboxItem, SyncState
from .identity import address_hash

#: Databases whose upsert (``ON CONFLICT DO UPDATE``, MySQL's ``ON DUPLICATE KEY UPDATE``)
#: makes marking one statement.
UPSERT_VENDORS = {"sqlite", "postgresql", "mysql"}


#: Fields a new row gets per call, in model order; every other column takes its default.
_PER_CALL = ("user", "connection_key", "dirtied_at", "next_attempt_at", "created_at", "updated_at")
#: Per database alias: the upsert SQL and a parameter template (defaults already adapted).
_STATEMENTS: dict[tuple[str, str], tuple[str, list[Any], list[int]]] = {}


def new_row_template(conn) -> tuple[list[str], list[Any], list[int]]:
    """How a new sync row is written on ``conn``: its columns, their values, per-call slots.

    Built from the model, so a column added by a later (additive) migration is filled with its
    default without touching any SQL. ``slots`` are the positions of :data:`_PER_CALL` (user,
    connection key, then four timestamps), left as None for the caller to fill.
    """
    fixed = {"state": SyncState.State.PENDING.value, "dirty": True, "generation": 1}
    columns: list[str] = []
    template: list[Any] = []
    slots: list[int] = []
    for field in SyncState._meta.concrete_fields:
        if field.primary_key:
            continue
        columns.append(cast(str, field.column))  # concrete fields have a column
        if field.name in _PER_CALL:
            slots.append(len(template))
            template.append(None)
        else:
            value = fixed[field.name] if field.name in fixed else field.get_default()
            template.append(field.get_db_prep_save(value, conn))
    return columns, template, slots


def _statement(conn) -> tuple[str, list[Any], list[int]]:
    """The cached upsert for ``conn``: SQL, default parameters, and where the per-call ones go.

    Cached because it runs on every save of every user.
    """
    key = (conn.alias, conn.vendor)
    if key not in _STATEMENTS:
        columns, template, slots = new_row_template(conn)
        sql = upsert_sql(conn.ops.quote_name, columns, vendor=conn.vendor)
        _STATEMENTS[key] = (sql, template, slots)
    return _STATEMENTS[key]


def db_user_pk(user_pk: Any, conn) -> Any:
    """``user_pk`` as the database stores it (a UUID is text on SQLite, for example).

    Raw SQL gets no conversion from the ORM, so every statement here passes keys through the
    foreign key's own ``get_db_prep_value``: any ``AUTH_USER_MODEL`` key type works.
    """
    return SyncState._meta.get_field("user").get_db_prep_value(user_pk, conn)


def _params(template: list[Any], slots: list[int], user_pk: Any, key: str, stamp: Any) -> list:
    values = list(template)
    for slot, value in zip(slots, (user_pk, key, stamp, stamp, stamp, stamp), strict=True):
        values[slot] = value
    return values


def upsert_sql(
    quote, columns: list[str], values: list[str] | None = None, *, vendor: str = "postgresql"
) -> str:
    """``INSERT … ON CONFLICT (user, connection) DO UPDATE`` that marks a row dirty.

    ``values`` are SQL expressions for ``columns`` (the database trigger's body); by default
    every value is a ``%s`` parameter. On MariaDB/MySQL (``vendor="mysql"``) it is ``INSERT …
    ON DUPLICATE KEY UPDATE`` reading the new values with ``VALUES(column)``: MariaDB has no
    row alias (MySQL 8's replacement, which still accepts ``VALUES()``), and a parameter after
    ``VALUES (…)`` would break mysqlclient's multi-row ``executemany``. The only other unique
    key a new row could hit is the address binding's, and a new row binds no address (NULL).

    An existing row only gets ``dirty``, ``generation + 1`` and two timestamps, the least a
    save can write: no indexed column changes, so the statement stays cheap. That is enough
    because a clean row's ``next_attempt_at`` is never in the future (it is due the moment it
    turns dirty) while a row waiting out a backoff keeps its schedule, and a failure streak's
    attempts are counted from ``state`` by the drain.
    """
    table = quote(SyncState._meta.db_table)
    c = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
    names = ", ".join(quote(col) for col in columns)
    placeholders = ", ".join(values if values is not None else ["%s"] * len(columns))
    if vendor == "mysql":
        new = {name: f"VALUES({c[name]})" for name in ("dirty", "dirtied_at", "updated_at")}
        return (
            f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "  # noqa: S608
            "ON DUPLICATE KEY UPDATE " + mark_assignments(quote, **new)
        )
    excluded = {name: f"EXCLUDED.{c[name]}" for name in ("dirty", "dirtied_at", "updated_at")}
    # Only quoted identifiers are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({c['user']}, {c['connection_key']}) DO UPDATE SET "
        + mark_assignments(quote, **excluded)
    )


def mark_assignments(quote, *, dirty: str, dirtied_at: str, updated_at: str) -> str:
    """The ``SET`` list that marks an existing sync row, given SQL for the new values.

    The one definition of what a mark writes (``generation`` always moves by one), shared by
    :func:`upsert_sql` and the database trigger's plain ``UPDATE``.
    """
    table = quote(SyncState._meta.db_table)
    c = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
    return (
        f"{c['dirty']} = {dirty}, {c['generation']} = {table}.{c['generation']} + 1, "
        f"{c['dirtied_at']} = {dirtied_at}, {c['updated_at']} = {updated_at}"
    )


def upsert_statement(conn, rows: list[tuple[Any, str]], now) -> tuple[str, list[list[Any]]]:
    """The SQL and parameter rows that mark ``(user_pk, connection_key)`` pairs dirty."""
    sql, template, slots = _statement(conn)
    stamp = conn.ops.adapt_datetimefield_value(now)
    return sql, [_params(template, slots, db_user_pk(pk, conn), key, stamp) for pk, key in rows]


def mark_dirty(user_pk: Any, connection_key: str = "default") -> None:
    """Record that ``user_pk`` must be (re)sent to ``connection_key``: one statement."""
    using = router.db_for_write(SyncState)
    conn = connections[using]
    now = timezone.now()
    if conn.vendor in UPSERT_VENDORS:
        sql, template, slots = _statement(conn)
        stamp = conn.ops.adapt_datetimefield_value(now)
        with conn.cursor() as cursor:
            cursor.execute(
                sql, _params(template, slots, db_user_pk(user_pk, conn), connection_key, stamp)
            )
        return
    _mark_dirty_portable(user_pk, connection_key, using, now)


def mark_dirty_many(rows: list[tuple[Any, str]], using: str | None = None) -> None:
    """Mark ``(user_pk, connection_key)`` pairs dirty: one batched statement where it can be.

    For many users at once (a backfill, a reconcile): ``executemany`` of the same upsert as
    :func:`mark_dirty` on SQLite, PostgreSQL and MariaDB/MySQL, one call per pair elsewhere.
    Run it inside the caller's transaction, with pairs in primary-key order (the order rows
    get locked in).
    """
    if not rows:
        return
    using = using or router.db_for_write(SyncState)
    conn = connections[using]
    if conn.vendor in UPSERT_VENDORS:
        sql, params = upsert_statement(conn, rows, timezone.now())
        with conn.cursor() as cursor:
            cursor.executemany(sql, params)
        return
    now = timezone.now()
    for user_pk, connection_key in rows:
        _mark_dirty_portable(user_pk, connection_key, using, now)


def _mark_dirty_portable(user_pk: Any, connection_key: str, using: str, now) -> None:
    rows = SyncState.objects.using(using).filter(user_id=user_pk, connection_key=connection_key)
    update = {
        "dirty": True,
        "generation": F("generation") + 1,
        "dirtied_at": now,
        "updated_at": now,
    }
    if rows.update(**update):
        return
    try:
        with transaction.atomic(using=using):
            SyncState.objects.using(using).create(
                user_id=user_pk, connection_key=connection_key, dirtied_at=now
            )
    except IntegrityError:  # a concurrent save created it first
        rows.update(**update)


def add_erasure(
    *,
    connection_key: str,
    email: str,
    contact_id: str = "",
    not_before=None,
    batch_id: str = "",
) -> OutboxItem:
    """Queue the anonymisation of a deleted user's contact (never coalesced away).

    Keeps the address only until the erasure is settled; ``email_hash`` (a keyed HMAC, see
    :func:`django_omnisend.sync.identity.address_hash`) is the lasting record. ``batch_id``: a
    backfill batch carrying the address, which the erasure waits for.
    """
    return OutboxItem.objects.create(
        kind=OutboxItem.Kind.ERASURE,
        connection_key=connection_key,
        email=email,
        email_hash=address_hash(email),
        contact_id=contact_id,
        payload={"batch_id": batch_id} if batch_id else {},
        next_attempt_at=not_before or timezone.now(),
    )


def add_event(*, connection_key: str, user: Any, payload: dict[str, Any]) -> OutboxItem:
    """Queue a customer event exactly as given (each event is sent once, in order)."""
    return OutboxItem.objects.create(
        kind=OutboxItem.Kind.EVENT, connection_key=connection_key, user=user, payload=payload
    )

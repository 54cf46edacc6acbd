"""Writes into the sync outbox, made from inside the host's transactions.

These run on every save of every user, so each is one cheap statement and never touches
the network: :func:`mark_dirty` is a single ``INSERT … ON CONFLICT DO UPDATE`` on SQLite and
PostgreSQL (an update-then-insert elsewhere).
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import IntegrityError, connections, router, transaction
from django.db.models import F
from django.utils import timezone

from .models import OutboxItem, SyncState

#: Databases whose ``INSERT … ON CONFLICT DO UPDATE`` makes marking one statement.
UPSERT_VENDORS = {"sqlite", "postgresql"}


def _insert_values(conn, user_pk: Any, connection_key: str, now) -> dict[str, Any]:
    """Column -> value of a brand-new row: every field's default, plus who and when.

    Built from the model, so a column added by a later (additive) migration is filled in
    without touching the SQL below.
    """
    stamp = conn.ops.adapt_datetimefield_value(now)
    overrides = {
        "user": user_pk,
        "connection_key": connection_key,
        "state": SyncState.State.PENDING.value,
        "dirty": True,
        "generation": 1,
        "dirtied_at": stamp,
        "next_attempt_at": stamp,
        "created_at": stamp,
        "updated_at": stamp,
    }
    values = {}
    for field in SyncState._meta.concrete_fields:
        if field.primary_key:
            continue
        if field.name in overrides:
            values[field.column] = overrides[field.name]
        else:
            values[field.column] = field.get_db_prep_save(field.get_default(), conn)
    return values


def _upsert_sql(quote, columns: list[str]) -> str:
    """``INSERT … ON CONFLICT (user, connection) DO UPDATE`` that marks a row dirty."""
    table = quote(SyncState._meta.db_table)
    c = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
    pending, failed = SyncState.State.PENDING.value, SyncState.State.FAILED.value
    # A row already waiting out a backoff keeps its schedule and attempts (a save storm must
    # not defeat the backoff); any other row becomes due now with a fresh attempt budget.
    keep_backoff = f"{table}.{c['dirty']} AND {table}.{c['state']} = '{failed}'"
    names = ", ".join(quote(col) for col in columns)
    placeholders = ", ".join(["%s"] * len(columns))
    # Only quoted identifiers and our own constants are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "  # noqa: S608
        f"ON CONFLICT ({c['user']}, {c['connection_key']}) DO UPDATE SET "
        f"{c['dirty']} = EXCLUDED.{c['dirty']}, "
        f"{c['generation']} = {table}.{c['generation']} + 1, "
        f"{c['dirtied_at']} = EXCLUDED.{c['dirtied_at']}, "
        f"{c['next_attempt_at']} = CASE WHEN {keep_backoff} "
        f"THEN {table}.{c['next_attempt_at']} ELSE EXCLUDED.{c['next_attempt_at']} END, "
        f"{c['attempts']} = CASE WHEN {keep_backoff} THEN {table}.{c['attempts']} ELSE 0 END, "
        f"{c['state']} = CASE WHEN {keep_backoff} THEN '{failed}' ELSE '{pending}' END, "
        f"{c['updated_at']} = EXCLUDED.{c['updated_at']}"
    )


def upsert_statement(conn, rows: list[tuple[Any, str]], now) -> tuple[str, list[list[Any]]]:
    """The SQL and parameter rows that mark ``(user_pk, connection_key)`` pairs dirty."""
    params = []
    columns: list[str] = []
    for user_pk, key in rows:
        values = _insert_values(conn, user_pk, key, now)
        columns = list(values)
        params.append(list(values.values()))
    return _upsert_sql(conn.ops.quote_name, columns), params


def mark_dirty(user_pk: Any, connection_key: str = "default") -> None:
    """Record that ``user_pk`` must be (re)sent to ``connection_key``: one statement."""
    using = router.db_for_write(SyncState)
    conn = connections[using]
    now = timezone.now()
    if conn.vendor in UPSERT_VENDORS:
        sql, (params,) = upsert_statement(conn, [(user_pk, connection_key)], now)
        with conn.cursor() as cursor:
            cursor.execute(sql, params)
        return
    _mark_dirty_portable(user_pk, connection_key, using, now)


def _mark_dirty_portable(user_pk: Any, connection_key: str, using: str, now) -> None:
    rows = SyncState.objects.using(using).filter(user_id=user_pk, connection_key=connection_key)
    update = {
        "dirty": True,
        "generation": F("generation") + 1,
        "dirtied_at": now,
        "updated_at": now,
    }
    if rows.exclude(state=SyncState.State.FAILED, dirty=True).update(
        **update, next_attempt_at=now, attempts=0, state=SyncState.State.PENDING
    ) or rows.update(**update):
        return
    try:
        with transaction.atomic(using=using):
            SyncState.objects.using(using).create(
                user_id=user_pk, connection_key=connection_key, dirtied_at=now
            )
    except IntegrityError:  # a concurrent save created it first
        rows.update(**update)


def email_hash(email: str) -> str:
    """The SHA-256 of a normalised address: what an erasure keeps once processed."""
    return hashlib.sha256(email.encode()).hexdigest() if email else ""


def add_erasure(
    *, connection_key: str, email: str, contact_id: str = "", not_before=None
) -> OutboxItem:
    """Queue the anonymisation of a deleted user's contact (never coalesced away)."""
    return OutboxItem.objects.create(
        kind=OutboxItem.Kind.ERASURE,
        connection_key=connection_key,
        email=email,
        email_hash=email_hash(email),
        contact_id=contact_id,
        next_attempt_at=not_before or timezone.now(),
    )


def add_event(*, connection_key: str, user: Any, payload: dict[str, Any]) -> OutboxItem:
    """Queue a customer event exactly as given (each event is sent once, in order)."""
    return OutboxItem.objects.create(
        kind=OutboxItem.Kind.EVENT, connection_key=connection_key, user=user, payload=payload
    )

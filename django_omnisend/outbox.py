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

_UPSERT_VENDORS = {"sqlite", "postgresql"}


def _upsert_sql(quote) -> str:
    table = quote(SyncState._meta.db_table)
    cols = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
    c = cols
    pending, failed = SyncState.State.PENDING.value, SyncState.State.FAILED.value
    # A row already waiting out a backoff keeps its schedule and attempts (a save storm must
    # not defeat the backoff); any other row becomes due now with a fresh attempt budget.
    keep_backoff = f"{table}.{c['dirty']} AND {table}.{c['state']} = '{failed}'"
    # Only quoted identifiers and our own constants are interpolated; values are parameters.
    return (
        f"INSERT INTO {table} ({c['user']}, {c['connection_key']}, {c['state']}, "  # noqa: S608
        f"{c['reason']}, {c['dirty']}, {c['generation']}, {c['dirtied_at']}, "
        f"{c['attempts']}, {c['next_attempt_at']}, {c['lease_owner']}, {c['contact_id']}, "
        f"{c['email']}, {c['payload_hash']}, {c['last_error']}, {c['created_at']}, "
        f"{c['updated_at']}) "
        f"VALUES (%s, %s, '{pending}', '', %s, 1, %s, 0, %s, '', '', '', '', '', %s, %s) "
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


def mark_dirty(user_pk: Any, connection_key: str = "default") -> None:
    """Record that ``user_pk`` must be (re)sent to ``connection_key``: one statement."""
    using = router.db_for_write(SyncState)
    conn = connections[using]
    now = timezone.now()
    if conn.vendor in _UPSERT_VENDORS:
        params = [user_pk, connection_key, True, now, now, now, now]
        # Datetimes go through the backend adapter so SQLite stores them as Django does.
        params = [
            conn.ops.adapt_datetimefield_value(p) if hasattr(p, "tzinfo") else p for p in params
        ]
        with conn.cursor() as cursor:
            cursor.execute(_upsert_sql(conn.ops.quote_name), params)
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

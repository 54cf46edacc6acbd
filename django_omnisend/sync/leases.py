"""Claiming due outbox rows with a lease: safe for many drain processes at once.

Where the database has ``SELECT … FOR UPDATE SKIP LOCKED`` (PostgreSQL, MySQL 8, Oracle) the
candidates are locked and leased in one short transaction, so workers never wait on each
other. Elsewhere (SQLite) the candidates are read, then ``UPDATE … WHERE pk IN (…) AND <still
due>`` is the compare-and-set: a row another worker leased in between no longer matches.
Either way the caller then reads back, by primary key, exactly the rows leased to it; every
query walks an index, so a claim costs the same on a table of ten rows or ten million.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connections, router, transaction
from django.db.models import Model, Q, QuerySet

#: Claims are ordered oldest-due first so no row starves, then by key: exactly the columns of
#: the due indexes (``django_omnisend_due_id_idx``, ``django_omnisend_outbox_due_id``), so the
#: first ``limit`` candidates come straight off the index even when 10⁵ rows share one
#: ``next_attempt_at``, with no sort of every due row.
ORDER = ("next_attempt_at", "pk")


def lease_free(now: datetime) -> Q:
    """Rows no live worker holds."""
    return Q(lease_until__isnull=True) | Q(lease_until__lt=now)


def candidates(
    model: type[Model], due: Q, *, now: datetime, limit: int, using: str = ""
) -> QuerySet:
    """The claim's read: primary keys of up to ``limit`` free rows matching ``due``, in order.

    Locked with ``SKIP LOCKED`` where the database has it (evaluate it inside a transaction).
    """
    using = using or router.db_for_write(model)
    query = (
        model._default_manager.db_manager(using)
        .filter(due & lease_free(now))
        .order_by(*ORDER)
        .values_list("pk", flat=True)
    )
    if connections[using].features.has_select_for_update_skip_locked:
        query = query.select_for_update(skip_locked=True)
    return query[:limit]


def claim(
    model: type[Model],
    due: Q,
    *,
    worker: str,
    limit: int,
    now: datetime,
    lease_seconds: float,
) -> list:
    """Lease up to ``limit`` rows of ``model`` matching ``due`` to ``worker``; return them."""
    using = router.db_for_write(model)
    conn = connections[using]
    lease_until = now + timedelta(seconds=lease_seconds)
    manager = model._default_manager.db_manager(using)
    query = candidates(model, due, now=now, limit=limit, using=using)
    if conn.features.has_select_for_update_skip_locked:
        with transaction.atomic(using=using):
            ids = list(query)
            if not ids:
                return []
            manager.filter(pk__in=ids).update(lease_until=lease_until, lease_owner=worker)
    else:
        ids = list(query)
        if not ids or not manager.filter(pk__in=ids).filter(due & lease_free(now)).update(
            lease_until=lease_until, lease_owner=worker
        ):
            return []
    return list(
        manager.filter(pk__in=ids, lease_owner=worker, lease_until=lease_until).order_by(*ORDER)
    )


def extend(obj: Model, *, worker: str, now: datetime, lease_seconds: float) -> bool:
    """Renew ``worker``'s lease on ``obj`` before a request; False if it was lost."""
    lease_until = now + timedelta(seconds=lease_seconds)
    updated = (
        type(obj)
        ._default_manager.filter(pk=obj.pk, lease_owner=worker)
        .update(lease_until=lease_until)
    )
    if updated:
        obj.lease_until = lease_until  # type: ignore[attr-defined]  # both leased models have it
    return bool(updated)


def release(model: type[Model], pks: list, *, worker: str) -> int:
    """Give back leases ``worker`` still holds on ``pks`` (rows it did not get to)."""
    if not pks:
        return 0
    return model._default_manager.filter(pk__in=pks, lease_owner=worker).update(
        lease_until=None, lease_owner=""
    )

"""The claim's query walks the due index in its own order: no scan, no sort (issue 17).

When 10⁵ due rows share one ``next_attempt_at`` (an admin "retry now", a data migration), an
index on ``next_attempt_at`` alone leaves PostgreSQL to read and sort every one of them for
each claim of a hundred. The due indexes are ``(next_attempt_at, id)``, partial on the rows a
claim can take, so the claim reads its first rows straight off the index. These tests EXPLAIN
the exact query :func:`django_omnisend.sync.leases.candidates` builds for the drain, the bulk sync
and the outbox, on a small table with the alternatives priced out (PostgreSQL) or with no
statistics (SQLite, as Django leaves it); MariaDB, which builds no partial index, on an
analysed table where almost no row is due.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from django_omnisend.models import OutboxItem, SyncState
from django_omnisend.sync import leases as claims

pytestmark = pytest.mark.django_db
User = get_user_model()

#: What each claim asks for (sync.py ``_round`` and bulk.py ``_send_round``), with a blocked
#: connection as a drain has after a 401.
CASES = [
    pytest.param(SyncState, Q(dirty=True), "django_omnisend_due_id_idx", id="sync-rows"),
    pytest.param(
        OutboxItem,
        Q(state=OutboxItem.State.PENDING),
        "django_omnisend_outbox_due_id",
        id="outbox",
    ),
]
#: The claim's index on MariaDB/MySQL, where Django builds a partial index as a plain one:
#: the outbox's (state, next_attempt_at, id) still fits (state leads); the sync rows' needs
#: ``dirty`` in front (migration 0006), or a claim walks every clean row in time order.
MARIADB_INDEXES = {
    SyncState: "django_omnisend_due_dirty_idx",
    OutboxItem: "django_omnisend_outbox_due_id",
}


def claim_query(model, due: Q):
    now = timezone.now()
    due = due & Q(next_attempt_at__lte=now) & ~Q(connection_key__in=["blocked"])
    return claims.candidates(model, due, now=now, limit=100)


@pytest.mark.parametrize(("model", "due", "index"), CASES)
def test_sqlite_claim_reads_the_due_index_without_sorting(model, due, index):
    if connection.vendor != "sqlite":
        pytest.skip("EXPLAIN QUERY PLAN is SQLite's; PostgreSQL's test is below")
    plan = claim_query(model, due).explain()
    assert f"USING INDEX {index}" in plan, plan
    assert "TEMP B-TREE" not in plan, plan


@pytest.mark.postgres
@pytest.mark.parametrize(("model", "due", "index"), CASES)
def test_postgresql_claim_is_an_index_scan_without_sort(model, due, index):
    if connection.vendor != "postgresql":
        pytest.skip("runs in tox -e postgres")
    with transaction.atomic(), connection.cursor() as cursor:
        # The test table is tiny, where a scan and sort is rightly cheapest; with both priced
        # out the planner still sorts if the index cannot give the claim's order, so the plan
        # shows whether the index fits the query, whatever the table's size.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        # The older prefix index (kept: migrations are additive) gives the order only up to
        # next_attempt_at; an incremental sort over it would sort each run of equal times.
        cursor.execute("SET LOCAL enable_incremental_sort = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = claim_query(model, due).explain()
    assert f"Index Scan using {index}" in plan, plan
    assert "Sort" not in plan, plan


# ANALYZE TABLE commits the open transaction on MariaDB/MySQL: a transactional test, flushed
# after, so the rows it writes never reach the next test.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("model", "due", "index"), CASES)
def test_mariadb_claim_reads_an_index_in_order_without_filesort(model, due, index):
    """MariaDB/MySQL have no partial index; the claim still reads only due rows, in order.

    Django builds the partial indexes there without their condition, so ``(next_attempt_at,
    id)`` holds every sync row: walked in the claim's order it passes every clean row first.
    The table holds a few thousand rows, nearly all not claimable (synced, or sent) as on a
    live site, and is analysed, so the plan is the one a real table gets: the range read must
    be about the 30 due rows, in index order (no ``filesort``).
    """
    if connection.vendor != "mysql":
        pytest.skip("runs in tox -e mariadb")
    fill_for_plan(model, due)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE TABLE {connection.ops.quote_name(model._meta.db_table)}")
        cursor.fetchall()
    with transaction.atomic():  # the claim locks (FOR UPDATE SKIP LOCKED): a transaction
        plan = json.loads(claim_query(model, due).explain(format="json"))
    if isinstance(plan, str):  # MariaDB's JSON plan reaches Django as a JSON string, quoted
        plan = json.loads(plan)
    text = json.dumps(plan, indent=1)
    tables = find(plan, "table")
    assert [table.get("key") for table in tables] == [MARIADB_INDEXES[model]], text
    assert tables[0]["rows"] <= 300, text
    assert "filesort" not in text, text


def fill_for_plan(model, due: Q) -> None:
    """3,000 rows of ``model``, 30 of them due, the rest as a claim leaves them."""
    if model is SyncState:
        users = User.objects.bulk_create(
            [User(username=f"plan{i}", email=f"plan{i}@example.com") for i in range(3000)]
        )
        SyncState.objects.bulk_create(
            SyncState(user=user, dirty=i % 100 == 0) for i, user in enumerate(users)
        )
    else:
        OutboxItem.objects.bulk_create(
            OutboxItem(
                kind=OutboxItem.Kind.EVENT,
                state=OutboxItem.State.PENDING if i % 100 == 0 else OutboxItem.State.SENT,
            )
            for i in range(3000)
        )
    assert model.objects.filter(due).count() == 30


def find(node, key: str) -> list:
    """Every value under ``key`` anywhere in a JSON plan."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key:
                found.append(value)
            found.extend(find(value, key))
    elif isinstance(node, list):
        for value in node:
            found.extend(find(value, key))
    return found

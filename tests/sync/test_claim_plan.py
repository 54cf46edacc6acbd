"""The claim's query walks the due index in its own order: no scan, no sort (issue 17).

When 10⁵ due rows share one ``next_attempt_at`` (an admin "retry now", a data migration), an
index on ``next_attempt_at`` alone leaves PostgreSQL to read and sort every one of them for
each claim of a hundred. The due indexes are ``(next_attempt_at, id)``, partial on the rows a
claim can take, so the claim reads its first rows straight off the index. These tests EXPLAIN
the exact query :func:`django_omnisend.claims.candidates` builds for the drain, the bulk sync
and the outbox, on a small table with the alternatives priced out (PostgreSQL) or with no
statistics (SQLite, as Django leaves it).
"""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from django_omnisend import claims
from django_omnisend.models import OutboxItem, SyncState

pytestmark = pytest.mark.django_db

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

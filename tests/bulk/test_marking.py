"""The backfill marks users in short transactions, a chunk at a time (issue 14).

One transaction over 1,000 rows held their locks while web saves waited on them (and, on
PostgreSQL, deadlocked with saves that mark in another order). Each chunk now commits on its
own, in primary-key order, before the next is written.
"""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_omnisend.models import SyncState
from django_omnisend.sync.bulk import MARK_CHUNK, mark_users, select_users

from .test_sync_contacts import existing_users

pytestmark = pytest.mark.django_db

TIMES = re.compile(r"^(\d+) times: ")


def transactions(queries) -> list[int]:
    """Rows written to the sync table by each (nested) atomic block, in order.

    The test runs inside the test case's transaction, so each ``atomic()`` of the code under
    test shows as a SAVEPOINT … RELEASE SAVEPOINT pair; a write outside any is a failure.
    """
    blocks: list[int] = []
    open_block = False
    for query in queries:
        sql = query["sql"]
        if sql.startswith("SAVEPOINT"):
            assert not open_block
            open_block = True
            blocks.append(0)
        elif sql.startswith("RELEASE SAVEPOINT"):
            open_block = False
        elif "omnisend_syncstate" in sql and re.search(r"\b(INSERT|UPDATE)\b", sql):
            assert open_block, f"a write outside a short transaction: {sql[:80]}"
            many = TIMES.match(sql)
            blocks[-1] += int(many.group(1)) if many else 1
    return blocks


def test_marking_commits_a_short_chunk_at_a_time(sync_settings):
    existing_users(250)
    with CaptureQueriesContext(connection) as ctx:
        assert mark_users(select_users()) == 250
    blocks = transactions(ctx.captured_queries)
    assert sum(blocks) == 250
    assert max(blocks) <= 100, blocks
    assert len(blocks) == -(-250 // MARK_CHUNK)
    assert SyncState.objects.filter(dirty=True).count() == 250


def test_marking_locks_rows_in_primary_key_order(sync_settings):
    existing_users(30)
    with CaptureQueriesContext(connection) as ctx:
        mark_users(select_users().order_by("-pk"))
    table = get_user_model()._meta.db_table
    reads = [q["sql"] for q in ctx.captured_queries if table in q["sql"]]
    assert reads and all("ORDER BY" in sql and "DESC" not in sql for sql in reads), reads

"""The drain's database work per claimed batch, not per row (issue 13, benchmark P7).

A durable commit costs more than every query of a row together, so a claimed batch reads its
users in one query, binds its addresses in one transaction and saves its outcomes in one
transaction; the lease is renewed only when it is getting short. These tests count
statements (never time them) and check that batching keeps every outcome rule.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_omnisend import exceptions
from django_omnisend.adapter import ContactAdapter
from django_omnisend.models import DeliveryControl, OutboxItem, SyncState
from django_omnisend.sync import drain, identity
from django_omnisend.sync.loop import Drain
from django_omnisend.sync.policy import CLAIM_BATCH

pytestmark = pytest.mark.django_db

User = get_user_model()
#: Statements a fresh row adds to a pass, at most: its binding (one UPDATE for the batch, or
#: a savepoint, an UPDATE and a release each when an address is taken) and its outcome. Not
#: counted: the gate's reads and transactions' BEGINs, whose number depends on the time a
#: batch takes (both are repeated after a second at most).
PER_ROW = 4


def make_users(prefix: str, count: int) -> list:
    return [
        User.objects.create_user(f"{prefix}{n}", f"{prefix}{n}@example.com", "x")
        for n in range(count)
    ]


def drain_counting() -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        result = drain()
    gate = connection.ops.quote_name(DeliveryControl._meta.db_table)
    return result, [
        q["sql"]
        for q in queries.captured_queries
        if q["sql"] != "BEGIN" and not q["sql"].startswith(f"SELECT {gate}.")
    ]


def test_a_fresh_row_costs_a_bounded_number_of_statements(sync_settings, emulator):
    make_users("few", 3)
    few, few_sql = drain_counting()
    many_n = CLAIM_BATCH - 1  # one claimed batch either way
    make_users("many", many_n)
    many, many_sql = drain_counting()
    assert (few.synced, many.synced) == (3, many_n)
    extra = (len(many_sql) - len(few_sql)) / (many_n - 3)
    assert extra <= PER_ROW, many_sql
    table = connection.ops.quote_name
    users = [s for s in many_sql if table(User._meta.db_table) in s.split("WHERE")[0]]
    assert len(users) == 1, users  # the batch's users in one read
    state = table(SyncState._meta.db_table)
    lease = table("lease_until")
    renewals = [s for s in many_sql if s.startswith(f"UPDATE {state} SET {lease} = '")]
    assert len(renewals) == 1, renewals  # the claim's lease; no renewal before each request
    assert not SyncState.objects.filter(dirty=True).exists()
    assert {c["email"] for c in emulator.contacts()} == {u.email for u in User.objects.all()}


def test_one_row_refused_by_the_unique_constraint_leaves_the_others_bound(sync_settings, emulator):
    owner = User.objects.create_user("owner", "b@example.com", "x")
    drain()
    ann, dup, cid = (
        User.objects.create_user(name, f"{address}@example.com", "x")
        for name, address in (("ann", "a"), ("dup", "b"), ("cid", "c"))
    )
    rows = [SyncState.objects.get(user=u) for u in (ann, dup, cid)]
    pairs = [(row, f"{address}@example.com") for row, address in zip(rows, "abc", strict=True)]
    outcomes = identity.bind_many(pairs)
    assert outcomes == [identity.Binding.BOUND, identity.Binding.TAKEN, identity.Binding.BOUND]
    saved = {s.user_id: s for s in SyncState.objects.all()}
    assert saved[ann.pk].address == "a@example.com" and saved[cid.pk].address == "c@example.com"
    assert saved[dup.pk].address is None and saved[dup.pk].wanted_address == "b@example.com"
    assert saved[owner.pk].address == "b@example.com"
    # The drain: the two bound rows are sent, the duplicate waits (retried, not dead).
    drain()
    saved = {s.user_id: s for s in SyncState.objects.all()}
    assert saved[ann.pk].state == saved[cid.pk].state == SyncState.State.SYNCED
    assert (saved[dup.pk].state, saved[dup.pk].reason) == (
        SyncState.State.SKIPPED,
        "duplicate_email",
    )
    assert saved[dup.pk].dirty
    assert emulator.get_contact("a@example.com") and emulator.get_contact("c@example.com")


def test_successes_saved_with_the_batch_never_undo_a_later_failure(sync_settings, emulator):
    # One success, then enough failures to open the breaker, within one batch: the success
    # closes the breaker when saved, so it must be saved before the failures count.
    make_users("breaker", 1 + 5)
    # Claimed, as a round claims them (outcomes are recorded under the claim's token).
    SyncState.objects.update(lease_owner="test#1", lease_until=timezone.now() + timedelta(60))
    rows = list(SyncState.objects.order_by("pk"))
    key = rows[0].connection_key
    worker = Drain(worker="test", deadline=None, max_items=None)
    worker.pending = []  # as inside a claimed batch
    worker.succeeded(key)
    worker.save_outcome(rows[0], clean={"dirty": False}, newer={})
    for row in rows[1:]:
        worker.failed(row, exceptions.TransportError("boom", kind="timeout"))
    worker.flush()
    control = DeliveryControl.objects.get(connection_key=key)
    assert control.consecutive_failures == 5
    assert control.breaker_open_until and control.breaker_open_until > timezone.now()


class DeletingAdapter(ContactAdapter):
    """Deletes the user ``victim`` while the drain plans a later user of the same batch."""

    planned: list[str] = []

    def get_contact_fields(self, user):
        DeletingAdapter.planned.append(user.username)
        if user.username != "victim" and "victim" in DeletingAdapter.planned:
            User.objects.filter(username="victim").delete()
        return super().get_contact_fields(user)


def test_a_user_deleted_before_its_binding_is_never_sent(sync_settings, emulator):
    # Planned (its body built), then deleted before the batch's addresses were bound: it
    # owned nothing, so no erasure follows it, and nothing may be sent for it either.
    User.objects.create_user("victim", "victim@example.com", "x")
    make_users("later", 2)
    DeletingAdapter.planned = []
    adapter = "tests.sync.test_batching.DeletingAdapter"
    with override_settings(OMNISEND={**sync_settings, "ADAPTER": adapter}):
        drain()
    assert DeletingAdapter.planned[0] == "victim"  # planned first, deleted by the next one
    assert not User.objects.filter(username="victim").exists()
    assert emulator.get_contact("victim@example.com") is None
    assert emulator.get_contact("later0@example.com") and emulator.get_contact("later1@example.com")
    assert not OutboxItem.objects.filter(kind=OutboxItem.Kind.ERASURE).exists()

"""Who owns an address: bindings recorded in our own tables (issue 13, DESIGN.md §5 Identity).

Real HTTP to the emulator; every test here reproduces a defect of the old design (ownership
by primary-key order, decided by scanning the user table).
"""

from __future__ import annotations

import contextlib
import json
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_omnisend.models import SyncState
from django_omnisend.sync import drain

from .adapters import Consent, ConsentAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()


def make_user(username, email, **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def state_of(user) -> SyncState:
    return SyncState.objects.get(user=user)


def drain_until_settled(passes: int = 5) -> None:
    """A few drain passes, each at a moment when every backoff is over (no sleeping)."""
    for _ in range(passes):
        SyncState.objects.filter(dirty=True).update(next_attempt_at=timezone.now())
        drain()


def test_first_binding_owns_the_address_not_the_smallest_primary_key(sync_settings, emulator):
    older = make_user("older", "older@example.com", first_name="Older")
    newer = make_user("newer", "shared@example.com", first_name="Newer")
    drain()
    assert state_of(newer).address == "shared@example.com"
    # The older account (smaller pk) now claims the address the newer one bound first.
    older.email = "Shared@Example.com"
    older.save()
    drain()
    drain_until_settled()
    assert emulator.get_contact("shared@example.com")["firstName"] == "Newer"
    dup = state_of(older)
    assert (dup.state, dup.reason) == (SyncState.State.SKIPPED, "duplicate_email")
    assert state_of(newer).state == SyncState.State.SYNCED


def test_ownership_is_checked_without_reading_the_user_table_by_address(sync_settings, emulator):
    make_user("first", "x@example.com")
    second = make_user("second", "X@example.com")
    drain()
    second.first_name = "Edited"
    second.save()
    SyncState.objects.filter(user=second).update(next_attempt_at=timezone.now())
    user_table = connection.ops.quote_name(User._meta.db_table)
    with CaptureQueriesContext(connection) as queries:
        drain()
    on_users = [q["sql"] for q in queries.captured_queries if user_table in q["sql"]]
    # One read of the row's user by primary key; no scan by address (iexact, LIKE, LOWER).
    assert len(on_users) == 1, on_users
    assert "LIKE" not in on_users[0].upper() and "LOWER" not in on_users[0].upper()


def test_a_duplicate_is_retried_not_dead_and_takes_over_when_the_owner_moves(
    sync_settings, emulator, contact_writes
):
    owner = make_user("owner", "x@example.com", first_name="Owner")
    waiting = make_user("waiting", "x@example.com", first_name="Waiting")
    drain()
    row = state_of(waiting)
    assert (row.state, row.reason) == (SyncState.State.SKIPPED, "duplicate_email")
    assert row.dirty and row.wanted_address == "x@example.com"  # still due: retried
    assert contact_writes("x@example.com") == 1
    owner.email = "owner.new@example.com"
    owner.save()
    drain_until_settled()
    row = state_of(waiting)
    assert row.state == SyncState.State.SYNCED and row.address == "x@example.com"
    assert state_of(owner).address == "owner.new@example.com"


def test_the_database_refuses_a_second_owner(sync_settings, emulator):
    first = make_user("first", "x@example.com")
    second = make_user("second", "y@example.com")
    SyncState.objects.filter(user=first).update(address="x@example.com")
    with pytest.raises(IntegrityError), transaction.atomic():
        SyncState.objects.filter(user=second).update(address="x@example.com")
    # Another connection may bind the same address to someone else.
    SyncState.objects.create(user=second, connection_key="tenant-2", address="x@example.com")


@pytest.mark.parametrize(
    "variant",
    [
        "j\u0430ne@example.com",  # Cyrillic small a: a homoglyph local part
        "\uff4aane@example.com",  # full-width j
        "jane@exa\u200bmple.com",  # zero-width space in the domain
    ],
)
def test_homoglyph_variants_are_skipped_with_a_reason(sync_settings, emulator, variant):
    make_user("owner", "jane@example.com", first_name="Owner")
    other = make_user("other", variant, first_name="Other")
    drain()
    row = state_of(other)
    assert (row.state, row.reason) == (SyncState.State.SKIPPED, "invalid_email")
    assert emulator.get_contact("jane@example.com")["firstName"] == "Owner"
    assert len(emulator.contacts()) == 1


# -- consent: the re-subscribe guard fails closed ---------------------------------------------


def test_unsubscribed_without_a_readable_date_is_never_resubscribed(sync_settings, emulator):
    consent = {**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    with override_settings(OMNISEND=consent):
        user = make_user("jane", "jane@example.com")
        drain()
        emulator.unsubscribe("jane@example.com", dated=False)
        ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
        try:
            user.save()
            drain()
        finally:
            ConsentAdapter.decisions.clear()
    row = state_of(user)
    assert row.reason == "consent_conflict"
    assert emulator.get_contact("jane@example.com")["status"] == "unsubscribed"
    for entry in emulator.ledger:
        if entry.method in ("POST", "PATCH"):
            assert '"subscribed"' not in (entry.body or b"").decode()
    out = StringIO()
    with contextlib.suppress(CommandError):  # healthy or not, the reason must be listed
        call_command("omnisend_status", "--json", stdout=out)
    report = json.loads(out.getvalue())
    assert report["reasons"] == {"consent_conflict": 1}

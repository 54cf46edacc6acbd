"""``omnisend_reconcile``: changes that sent no signal become dirty, with no API call (T-DI-15)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_omnisend.models import SyncState
from django_omnisend.sync import drain

from .adapters import RecordingAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()


def reconcile(*args: str) -> str:
    out = StringIO()
    call_command("omnisend_reconcile", *args, stdout=out)
    return out.getvalue()


def make_users(n: int, prefix: str = "user") -> list:
    return [
        User.objects.create_user(
            username=f"{prefix}{i}", email=f"{prefix}{i}@example.com", first_name="Same"
        )
        for i in range(n)
    ]


def contact_writes(emulator) -> list:
    return [
        e
        for e in emulator.ledger
        if e.method in ("POST", "PATCH") and e.path.startswith("/api/contacts")
    ]


def test_queryset_update_marks_exactly_the_changed_users(sync_settings, emulator, api_requests):
    users = make_users(100)
    assert drain().synced == 100
    emulator.clear_ledger()
    changed = [u.pk for u in users[::2]]
    User.objects.filter(pk__in=changed).update(first_name="Changed")  # no post_save

    output = reconcile()

    assert "checked 100, marked dirty 50, unchanged 50" in output
    assert "profile changed 50" in output
    assert api_requests() == []  # reconcile itself never calls the API
    dirty = set(SyncState.objects.filter(dirty=True).values_list("user_id", flat=True))
    assert dirty == set(changed)
    result = drain()
    assert result.synced == 50 and result.unchanged == 0
    writes = contact_writes(emulator)
    assert len(writes) == 50
    assert {w.json["identifiers"][0]["id"] for w in writes} == {
        f"user{i}@example.com" for i in range(0, 100, 2)
    }
    assert emulator.get_contact("user0@example.com")["firstName"] == "Changed"
    assert emulator.get_contact("user1@example.com")["firstName"] == "Same"
    # Nothing left to do: a second reconcile marks nobody.
    assert "marked dirty 0, unchanged 100" in reconcile()


def test_email_fixed_by_update_gets_unskipped(sync_settings, emulator):
    make_users(1)
    broken = User.objects.create_user(username="broken", email="not an address")
    drain()
    state = SyncState.objects.get(user=broken)
    assert state.state == SyncState.State.SKIPPED and state.reason == "invalid_email"
    User.objects.filter(pk=broken.pk).update(email="fixed@example.com")

    output = reconcile()

    assert "marked dirty 1" in output and "no longer skipped 1" in output
    assert drain().synced == 1
    assert SyncState.objects.get(user=broken).state == SyncState.State.SYNCED
    assert emulator.get_contact("fixed@example.com") is not None


def test_email_broken_by_update_is_skipped_without_a_request(sync_settings, emulator):
    (user,) = make_users(1)
    drain()
    User.objects.filter(pk=user.pk).update(email="")
    assert "now skipped: no_email 1" in reconcile()
    emulator.clear_ledger()
    result = drain()
    assert result.skipped == {"no_email": 1} and contact_writes(emulator) == []


def test_dry_run_changes_nothing(sync_settings, emulator):
    users = make_users(3)
    drain()
    User.objects.filter(pk=users[0].pk).update(last_name="New")
    output = reconcile("--dry-run")
    assert "[dry run] checked 3, would mark dirty 1, unchanged 2" in output
    assert not SyncState.objects.filter(dirty=True).exists()


def test_user_id_limits_the_check(sync_settings, emulator):
    users = make_users(3)
    drain()
    User.objects.update(last_name="Everyone")
    output = reconcile("--user-id", str(users[1].pk), "--user-id", str(users[2].pk))
    assert "checked 2, marked dirty 2" in output
    dirty = set(SyncState.objects.filter(dirty=True).values_list("user_id", flat=True))
    assert dirty == {users[1].pk, users[2].pk}


def test_default_checks_every_user_including_ones_never_synced(sync_settings, emulator):
    """The README's "every user": users with no sync row at all are found by default."""
    make_users(2)
    drain()
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        late = User.objects.create_user(username="late", email="late@example.com")
        User.objects.create_user(username="gone", email="gone@example.com", is_active=False)
    # Users that existed before the app: bulk_create sends no post_save.
    User.objects.bulk_create([User(username="old", email="old@example.com")])
    assert not SyncState.objects.filter(user__username__in=["late", "gone", "old"]).exists()

    output = reconcile()

    assert "checked 5, marked dirty 2" in output
    assert "no sync row yet 2" in output and "not synced (no row, excluded) 1" in output
    assert SyncState.objects.get(user=late).dirty
    assert drain().synced == 2
    assert emulator.get_contact("late@example.com") is not None
    assert emulator.get_contact("old@example.com") is not None
    assert emulator.get_contact("gone@example.com") is None
    assert "checked 5, marked dirty 0" in reconcile()


def test_all_is_the_default_spelled_out(sync_settings, emulator):
    make_users(1)
    drain()
    User.objects.bulk_create([User(username="old", email="old@example.com")])
    for args in (["--all"], []):
        output = reconcile("--dry-run", *args)
        assert "checked 2, would mark dirty 1" in output and "no sync row yet 1" in output, args


def test_help_says_every_user(capsys):
    with pytest.raises(SystemExit):
        call_command("omnisend_reconcile", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "every user" in text.lower()
    assert "already have a sync row" not in text


def test_pending_and_dead_rows_are_left_alone(sync_settings, emulator):
    users = make_users(3)
    drain()
    User.objects.update(last_name="Changed")
    SyncState.objects.filter(user=users[0]).update(dirty=True, dirtied_at=timezone.now())
    SyncState.objects.filter(user=users[1]).update(state=SyncState.State.DEAD, reason="validation")
    output = reconcile()
    assert "marked dirty 1, unchanged 2" in output
    assert "already pending 1" in output and "dead (left alone) 1" in output


def test_consent_already_sent_is_not_a_change(recording_settings, emulator, api_requests):
    (user,) = make_users(1)
    RecordingAdapter.statuses[user.pk] = ("subscribed", timezone.now())
    drain()
    state = SyncState.objects.get(user=user)
    assert state.consent_sent_at is not None
    assert emulator.get_contact("user0@example.com")["status"] == "subscribed"
    emulator.clear_ledger()

    assert "marked dirty 0, unchanged 1" in reconcile()

    # A new decision recorded without a save (the site's consent table) is one to send.
    RecordingAdapter.statuses[user.pk] = ("unsubscribed", timezone.now())
    assert "consent to send 1" in reconcile()
    assert api_requests() == []
    drain()
    assert emulator.get_contact("user0@example.com")["status"] == "unsubscribed"


def test_refuses_when_sync_is_off(emulator_settings):
    with pytest.raises(CommandError, match="SYNC_USERS") as excinfo:
        reconcile()
    assert excinfo.value.returncode == 1


def test_reads_users_in_chunks(sync_settings, emulator):
    make_users(30)
    drain()
    User.objects.update(first_name="Everyone")
    with CaptureQueriesContext(connection) as queries:
        assert "checked 30, marked dirty 30" in reconcile("--chunk-size", "10")
    # One sync-row lookup per chunk of 10 users, not one per user nor one for all.
    table = connection.ops.quote_name(SyncState._meta.db_table)
    row_lookups = [
        q["sql"] for q in queries if q["sql"].startswith(f"SELECT {table}") and " IN (" in q["sql"]
    ]
    assert len(row_lookups) == 3


def test_queries_grow_with_chunks_not_with_users(sync_settings, emulator):
    """Reading, comparing and marking cost a few statements per chunk, none per user (issue 17).

    Twice the users in the same number of chunks run the same number of statements, whether
    a user is marked because their profile changed or because they have no sync row yet.
    """

    def run(chunk: int) -> tuple[str, int]:
        User.objects.update(first_name=f"Changed {chunk}")
        # Users that existed before the app: bulk_create sends no post_save, so no row.
        n = User.objects.count()
        User.objects.bulk_create(
            [User(username=f"old{n}-{i}", email=f"old{n}-{i}@example.com") for i in range(2)]
        )
        with CaptureQueriesContext(connection) as queries:
            output = reconcile("--chunk-size", str(chunk))
        assert not SyncState.objects.filter(dirty=False).exists()
        drain()
        return output, len(queries)

    make_users(8, prefix="a")
    drain()
    small_output, small = run(10)
    assert "checked 10, marked dirty 10" in small_output
    make_users(8, prefix="b")
    drain()
    large_output, large = run(20)
    assert "checked 20, marked dirty 20" in large_output
    assert large == small
    # A handful per chunk: users, their sync rows, the marks, the transaction around them.
    assert small <= 8

"""User → contact sync against the emulator over real HTTP (DESIGN.md §5)."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import transaction
from django.test import override_settings
from django.utils import timezone

from django_omnisend.models import DeliveryControl, OutboxItem, SyncState
from django_omnisend.sync import drain
from tests.marking import marking
from tests.users import fixture_fields, fixture_pk, user_label

from .adapters import Consent, ConsentAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()
#: For tests of what only the post_save receiver does (triggers also see QuerySet.update).
signal_marking_only = pytest.mark.parametrize("sync_settings", ["signal"], indirect=True)


@pytest.fixture(params=["signal", "trigger"])
def sync_settings(request, sync_settings):
    """Every test here runs with both OMNISEND["MARK_WITH"] ways of marking users."""
    with marking(sync_settings, request.param) as values:
        yield values


def make_user(username="jane", email="jane@example.com", **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def api_requests(emulator):
    return [e for e in emulator.ledger if e.path.startswith("/api/")]


def test_save_makes_no_request_and_marks_one_dirty_row(sync_settings, emulator):
    user = make_user()
    state = SyncState.objects.get(user=user)
    assert state.dirty and state.state == SyncState.State.PENDING
    assert api_requests(emulator) == []


@signal_marking_only
def test_sync_off_marks_nothing(sync_settings, emulator):
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        make_user()
    assert not SyncState.objects.exists()


def test_rollback_leaves_nothing(sync_settings, emulator):
    with pytest.raises(RuntimeError), transaction.atomic():
        make_user()
        raise RuntimeError("the view failed after saving")
    assert not SyncState.objects.exists()
    drain()
    assert api_requests(emulator) == []


def test_ten_saves_make_one_request_with_the_final_state(sync_settings, emulator, contact_writes):
    user = make_user()
    for n in range(10):
        user.first_name = f"Jane {n}"
        user.save()
    assert SyncState.objects.get(user=user).generation == 11
    result = drain()
    assert result.synced == 1
    assert contact_writes() == 1
    contact = emulator.get_contact("jane@example.com")
    assert contact["firstName"] == "Jane 9"
    assert SyncState.objects.get(user=user).dirty is False


def test_unchanged_user_sends_nothing_again(sync_settings, emulator, contact_writes):
    user = make_user(first_name="Jane")
    drain()
    user.save()  # nothing the contact shows changed
    result = drain()
    assert result.unchanged == 1 and contact_writes() == 1


def test_login_noise_marks_nothing(sync_settings, emulator, client):
    user = make_user()
    drain()
    generation = SyncState.objects.get(user=user).generation
    for _ in range(3):
        assert client.login(username="jane", password="x")
        client.logout()
    state = SyncState.objects.get(user=user)
    assert state.generation == generation and not state.dirty
    assert drain().processed == 0


def test_fixture_loads_mark_nothing(sync_settings, emulator, tmp_path):
    fixture = tmp_path / "users.json"
    fixture.write_text(
        json.dumps(
            [
                {
                    "model": user_label(),
                    "pk": fixture_pk(500),
                    "fields": fixture_fields(
                        username="fixture", email="f@example.com", password="x"
                    ),
                }
            ]
        )
    )
    call_command("loaddata", str(fixture), verbosity=0)
    assert User.objects.filter(pk=fixture_pk(500)).exists()
    assert not SyncState.objects.exists()


def test_contact_request_is_consent_safe_and_welcome_free(sync_settings, emulator):
    make_user(first_name="Jane", last_name="Doe")
    drain()
    (entry,) = [e for e in emulator.ledger if e.method == "POST" and e.path == "/api/contacts"]
    body = entry.json
    identifier = body["identifiers"][0]
    assert identifier["id"] == "jane@example.com"
    assert identifier["sendWelcomeMessage"] is False
    assert "channels" not in identifier
    assert body["firstName"] == "Jane" and "source: django" in body["tags"]
    contact = emulator.get_contact("jane@example.com")
    assert contact["status"] == "nonSubscribed"
    assert contact["_welcome_messages"] == 0


def test_email_is_normalised_before_sending(sync_settings, emulator):
    make_user(email="  Jane@Example.COM ")
    drain()
    assert emulator.get_contact("jane@example.com") is not None
    assert emulator.get_contact("Jane@Example.COM") is None


def test_email_change_binds_a_new_contact_and_tags_the_old_one(sync_settings, emulator):
    user = make_user()
    drain()
    old_id = SyncState.objects.get(user=user).contact_id
    user.email = "jane.new@example.com"
    user.save()
    drain()
    assert not [e for e in emulator.ledger if e.method == "PATCH"]  # nothing is moved
    old = emulator.get_contact("jane@example.com")
    assert old["id"] == old_id and "django:email-changed" in old["tags"]
    new = emulator.get_contact("jane.new@example.com")
    state = SyncState.objects.get(user=user)
    assert (state.email, state.address) == ("jane.new@example.com", "jane.new@example.com")
    assert state.contact_id == new["id"] != old_id


def test_email_flip_flop_between_drains_creates_no_second_contact(sync_settings, emulator):
    user = make_user(email="a@example.com")
    drain()
    for address in ("b@example.com", "a@example.com"):  # both saves before the next drain
        user.email = address
        user.save()
    drain()
    assert [c["email"] for c in emulator.contacts()] == ["a@example.com"]
    assert SyncState.objects.get(user=user).address == "a@example.com"


@pytest.mark.parametrize(
    ("email", "reason"),
    [("", "no_email"), ("not-an-address", "invalid_email"), ("a@@b.com", "invalid_email")],
)
def test_user_without_a_valid_email_is_skipped_then_synced(sync_settings, emulator, email, reason):
    user = make_user(email=email)
    drain()
    state = SyncState.objects.get(user=user)
    assert (state.state, state.reason) == (SyncState.State.SKIPPED, reason)
    assert api_requests(emulator) == []
    user.email = "fixed@example.com"
    user.save()
    drain()
    assert SyncState.objects.get(user=user).state == SyncState.State.SYNCED
    assert emulator.get_contact("fixed@example.com") is not None


def test_duplicate_emails_are_reported_not_overwritten(sync_settings, emulator, contact_writes):
    first = make_user("first", "x@example.com", first_name="First")
    second = make_user("second", "X@example.com", first_name="Second")
    drain()
    second.first_name = "Second edited"
    second.save()
    drain()
    assert SyncState.objects.get(user=first).state == SyncState.State.SYNCED
    dup = SyncState.objects.get(user=second)
    assert (dup.state, dup.reason) == (SyncState.State.SKIPPED, "duplicate_email")
    assert contact_writes() == 1
    assert emulator.get_contact("x@example.com")["firstName"] == "First"


def test_deletion_unsubscribes_and_anonymises_with_no_later_upsert(sync_settings, emulator):
    user = make_user(first_name="Jane", last_name="Doe")
    drain()
    user.first_name = "Pending edit"
    user.save()
    user.delete()
    assert not SyncState.objects.exists()
    (erasure,) = OutboxItem.objects.all()
    assert erasure.kind == OutboxItem.Kind.ERASURE
    result = drain()
    assert result.erasures_sent == 1
    contact = emulator.get_contact("jane@example.com")
    assert contact["status"] == "unsubscribed"
    assert contact["firstName"] == "" and contact["lastName"] == ""
    erasure.refresh_from_db()
    assert erasure.state == OutboxItem.State.SENT and erasure.email == ""
    assert erasure.email_hash
    last = [e for e in api_requests(emulator) if e.method in ("POST", "PATCH")][-1]
    assert last.method == "PATCH"
    drain()
    assert [e for e in api_requests(emulator) if e.method == "POST"].__len__() == 1


def test_unsubscribed_inside_omnisend_stays_unsubscribed(sync_settings, emulator):
    user = make_user()
    drain()
    emulator.unsubscribe("jane@example.com")
    for n in range(5):
        user.first_name = f"Edit {n}"
        user.save()
        drain()
    contact = emulator.get_contact("jane@example.com")
    assert contact["status"] == "unsubscribed"
    assert contact["firstName"] == "Edit 4"
    for entry in api_requests(emulator):
        assert "channels" not in (entry.body or b"").decode()


@override_settings()
def test_opt_in_is_sent_once_with_its_own_date(sync_settings, emulator):
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    ):
        user = make_user()
        opted_in = timezone.now() - timedelta(minutes=5)
        ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=opted_in, ip="1.2.3.4")
        try:
            drain()
            contact = emulator.get_contact("jane@example.com")
            assert contact["status"] == "subscribed"
            user.first_name = "Later edit"
            user.save()
            drain()
        finally:
            ConsentAdapter.decisions.clear()
    posts = [e.json for e in emulator.ledger if e.method == "POST"]
    assert "channels" in posts[0]["identifiers"][0]
    assert "channels" not in posts[-1]["identifiers"][0]


def test_opt_in_older_than_an_omnisend_unsubscribe_is_not_sent(sync_settings, emulator):
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    ):
        user = make_user()
        drain()
        emulator.unsubscribe("jane@example.com")
        ConsentAdapter.decisions[user.pk] = Consent(
            subscribed=True, at=timezone.now() - timedelta(days=1)
        )
        try:
            user.save()
            drain()
        finally:
            ConsentAdapter.decisions.clear()
    state = SyncState.objects.get(user=user)
    assert state.reason == "consent_conflict"
    assert emulator.get_contact("jane@example.com")["status"] == "unsubscribed"
    for entry in emulator.ledger:
        if entry.method in ("POST", "PATCH"):
            assert '"subscribed"' not in (entry.body or b"").decode()


def test_validation_error_fails_one_item_without_blocking_others(sync_settings, emulator):
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.GenderAdapter"}
    ):
        make_user("bad", "bad@example.com", first_name="Poison")
        for n in range(3):
            make_user(f"good{n}", f"good{n}@example.com")
        result = drain()
    assert result.dead == 1 and result.synced == 3
    bad = SyncState.objects.get(user__username="bad")
    assert (bad.state, bad.reason, bad.last_status) == (SyncState.State.DEAD, "validation", 400)
    assert "gender" in bad.last_error
    assert len(emulator.contacts()) == 3


def test_401_pauses_delivery_and_resumes_with_nothing_lost(sync_settings, emulator):
    for n in range(10):
        make_user(f"user{n}", f"user{n}@example.com")
    bad = {**sync_settings, "API_KEY": "revoked-or-wrong-key"}
    with override_settings(OMNISEND=bad):
        result = drain()
    unauthorized = [e for e in api_requests(emulator) if e.status == 401]
    assert unauthorized
    after_first_401 = api_requests(emulator)[api_requests(emulator).index(unauthorized[0]) + 1 :]
    assert len(after_first_401) <= 3
    assert result.paused == ["default"]
    assert DeliveryControl.objects.get(connection_key="default").paused
    assert SyncState.objects.filter(dirty=True).count() == 10
    assert SyncState.objects.filter(attempts__gt=0).count() == 0
    # Still paused: a drain with the same bad key sends nothing more.
    with override_settings(OMNISEND=bad):
        before = len(api_requests(emulator))
        drain()
        assert len(api_requests(emulator)) == before
    # Reconnect: a new credential resumes delivery.
    drain()
    assert SyncState.objects.filter(dirty=True).count() == 0
    assert len(emulator.contacts()) == 10


def test_server_errors_are_retried_with_backoff(sync_settings, emulator):
    user = make_user()
    emulator.add_fault(route="POST /api/contacts", kind="503", rate=1.0)
    result = drain()
    assert result.retried == 1
    state = SyncState.objects.get(user=user)
    assert state.state == SyncState.State.FAILED and state.attempts == 1 and state.dirty
    assert state.next_attempt_at > timezone.now() + timedelta(seconds=10)
    emulator.clear_faults()
    SyncState.objects.filter(pk=state.pk).update(next_attempt_at=timezone.now())
    assert drain().synced == 1
    assert emulator.get_contact("jane@example.com") is not None


def test_429_cools_the_whole_brand_down(sync_settings, emulator):
    for n in range(5):
        make_user(f"user{n}", f"user{n}@example.com")
    emulator.add_fault(route="POST /api/contacts", kind="429", rate=1.0, retry_after=30)
    result = drain()
    assert result.requests == 1  # one 429, then the brand waits
    control = DeliveryControl.objects.get(connection_key="default")
    assert control.cooldown_until > timezone.now() + timedelta(seconds=20)
    assert SyncState.objects.filter(attempts__gt=0).count() == 0
    assert drain().requests == 0


@pytest.mark.parametrize("retry_after", [10**9, 10**12], ids=["1e9", "1e12"])
def test_absurd_retry_after_neither_crashes_nor_parks_the_brand(
    sync_settings, emulator, retry_after
):
    """Issue 15 item 6: retryAfter 10**12 made every drain pass raise OverflowError, 10**9
    cooled the brand down until 2058. Waits are clamped to an hour."""
    from django_omnisend.ratelimit import RateLimiter

    for n in range(3):
        make_user(f"user{n}", f"user{n}@example.com")
    emulator.add_fault(route="POST /api/contacts", kind="429", retry_after=retry_after)
    limit = timezone.now() + timedelta(seconds=3600 + 5)
    for _ in range(2):  # the second pass meets the stored cooldown
        result = drain()
        assert result.synced == 0
    control = DeliveryControl.objects.get(connection_key="default")
    assert timezone.now() < control.cooldown_until <= limit
    assert all(s.next_attempt_at <= limit for s in SyncState.objects.all())
    assert RateLimiter().cooldown_remaining(emulator.default_brand_id) <= 3600 + 5


def test_events_go_through_the_outbox(sync_settings, emulator):
    from django_omnisend.sync.events import send_event

    user = make_user()
    with pytest.raises(RuntimeError), transaction.atomic():
        send_event(user, "rolled back")
        raise RuntimeError
    item = send_event(user, "signed up", {"plan": "pro"})
    assert item is not None and api_requests(emulator) == []
    drain()
    (event,) = emulator.events()
    assert event["eventName"] == "signed up" and event["properties"] == {"plan": "pro"}
    assert event["eventID"] == item.payload["eventID"]
    item.refresh_from_db()
    assert item.state == OutboxItem.State.SENT


def test_drain_command_reports_what_it_did(sync_settings, emulator, capsys):
    make_user()
    call_command("omnisend_drain", "--once")
    out = capsys.readouterr().out
    assert "synced 1" in out and "requests 1" in out


def test_an_adapter_bug_fails_one_user_not_the_drain(sync_settings, emulator, caplog):
    broken = {**sync_settings, "ADAPTER": "tests.sync.adapters.BrokenAdapter"}
    with override_settings(OMNISEND=broken):
        make_user("broken", "broken@example.com", first_name="Broken")
        for n in range(3):
            make_user(f"ok{n}", f"ok{n}@example.com")
        result = drain()
    assert result.synced == 3 and result.retried == 1
    assert len(emulator.contacts()) == 3
    bad = SyncState.objects.get(user__username="broken")
    assert bad.dirty and bad.state == SyncState.State.FAILED and bad.attempts == 1
    assert "adapter bug" in bad.last_error and "adapter failed" in caplog.text


def test_drain_loop_outlives_a_failing_pass(sync_settings, emulator, caplog):
    make_user()
    with override_settings(OMNISEND={**sync_settings, "ADAPTER": "no.such.Adapter"}):
        call_command(
            "omnisend_drain",
            "--loop",
            "--max-seconds",
            "0.5",
            "--idle-sleep",
            "0.05",
            stdout=StringIO(),
        )
    assert "drain pass failed" in caplog.text
    call_command("omnisend_drain", "--once", stdout=StringIO())
    assert emulator.get_contact("jane@example.com") is not None


@signal_marking_only
def test_mark_for_sync_queues_a_user_without_saving_them(sync_settings, emulator):
    from django_omnisend import mark_for_sync

    user = make_user(first_name="Jane")
    drain()
    User.objects.filter(pk=user.pk).update(first_name="Changed elsewhere")  # no signal
    with pytest.raises(RuntimeError), transaction.atomic():
        assert mark_for_sync(user) is True
        raise RuntimeError
    assert drain().requests == 0  # rolled back with the change it belonged to
    assert mark_for_sync(user) is True
    drain()
    assert emulator.get_contact("jane@example.com")["firstName"] == "Changed elsewhere"
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        assert mark_for_sync(user) is False

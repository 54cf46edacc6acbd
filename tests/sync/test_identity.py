"""Who owns an address: bindings recorded in our own tables (issue 13, DESIGN.md §5 Identity).

Real HTTP to the emulator; every test here reproduces a defect of the old design (ownership
by primary-key order, decided by scanning the user table).
"""

from __future__ import annotations

import contextlib
import json
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_omnisend import mark_for_sync
from django_omnisend.models import SyncState
from django_omnisend.sync import drain, identity
from django_omnisend.sync.payloads import parse_rfc3339, rfc3339

from .adapters import Consent, ConsentAdapter, VerifyingAdapter

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


@pytest.fixture
def trusting(sync_settings):
    """``TRUST_EMAILS`` on: every address counts as verified."""
    values = {**sync_settings, "TRUST_EMAILS": True}
    with override_settings(OMNISEND=values):
        yield values


def test_a_duplicate_is_retried_not_dead_and_takes_over_when_the_owner_moves(
    trusting, emulator, contact_writes
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
    consent = {
        **sync_settings,
        "ADAPTER": "tests.sync.adapters.ConsentAdapter",
        "TRUST_EMAILS": True,
    }
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


# -- verified addresses -----------------------------------------------------------------------


@pytest.fixture
def verifying(sync_settings):
    """The VerifyingAdapter, with no user verified and every user wishing a welcome."""
    values = {**sync_settings, "ADAPTER": "tests.sync.adapters.VerifyingAdapter"}
    with override_settings(OMNISEND=values):
        yield VerifyingAdapter
    VerifyingAdapter.verified.clear()
    ConsentAdapter.decisions.clear()


def seed_unsubscribed(emulator, email="victim@example.com"):
    at = rfc3339(timezone.now() + timedelta(seconds=1))
    return emulator.seed_contact(
        identifiers=[
            {
                "type": "email",
                "id": email,
                "channels": {"email": {"status": "unsubscribed", "statusChangedAt": at}},
            }
        ],
        firstName="Victim",
        lastName="Person",
    )


def test_unverified_sign_up_with_an_unsubscribed_address_changes_nothing(verifying, emulator):
    seed_unsubscribed(emulator)
    user = make_user("anon", "victim@example.com", first_name="Typed", last_name="Name")
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
    drain_until_settled()
    contact = emulator.get_contact("victim@example.com")
    assert contact["status"] == "unsubscribed"
    assert (contact["firstName"], contact["lastName"]) == ("Victim", "Person")
    assert contact["_welcome_messages"] == 0
    assert [e for e in emulator.ledger if e.method in ("POST", "PATCH")] == []
    row = state_of(user)
    assert (row.state, row.reason) == (SyncState.State.SKIPPED, "unverified_email")
    assert row.address is None  # an unverified user never owns a contact it did not create


def test_unverified_user_creates_its_own_contact_never_subscribed(verifying, emulator):
    user = make_user("new", "new@example.com", first_name="New")
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
    drain_until_settled()
    contact = emulator.get_contact("new@example.com")
    assert contact["status"] == "nonSubscribed" and contact["firstName"] == "New"
    assert contact["_welcome_messages"] == 0
    (post,) = [e.json for e in emulator.ledger if e.method == "POST"]
    # No subscription; the explicit nonSubscribed is dated before the withheld opt-in.
    sent = post["identifiers"][0]["channels"]["email"]
    assert sent["status"] == "nonSubscribed"
    assert parse_rfc3339(sent["statusChangedAt"]) < ConsentAdapter.decisions[user.pk].at
    assert post["identifiers"][0]["sendWelcomeMessage"] is False
    assert state_of(user).reason == "unverified_email"
    # It keeps updating the contact it created.
    user.first_name = "Renamed"
    user.save()
    drain_until_settled()
    assert emulator.get_contact("new@example.com")["firstName"] == "Renamed"
    # Once verified, the opt-in is sent, and only then: a site with double opt-in records
    # the confirmation as the consent (Omnisend ignores a status older than the one it has).
    VerifyingAdapter.verified.add(user.pk)
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
    mark_for_sync(user)
    drain_until_settled()
    assert emulator.get_contact("new@example.com")["status"] == "subscribed"
    assert state_of(user).reason == ""


def test_welcome_only_for_a_contact_that_did_not_exist(verifying, emulator):
    emulator.configure(welcome_messages="new")
    seed_unsubscribed(emulator, "old@example.com")
    existing = make_user("existing", "old@example.com")
    fresh = make_user("fresh", "fresh@example.com")
    VerifyingAdapter.verified.update({existing.pk, fresh.pk})
    drain_until_settled()
    assert emulator.get_contact("old@example.com")["_welcome_messages"] == 0
    assert emulator.get_contact("fresh@example.com")["_welcome_messages"] == 1
    welcome = {
        e.json["identifiers"][0]["id"]: e.json["identifiers"][0]["sendWelcomeMessage"]
        for e in emulator.ledger
        if e.method == "POST"
    }
    assert welcome == {"old@example.com": False, "fresh@example.com": True}


def test_default_adapter_treats_addresses_as_unverified(sync_settings, emulator):
    seed_unsubscribed(emulator)
    with override_settings(OMNISEND={**sync_settings, "TRUST_EMAILS": False}):
        user = make_user("anon", "victim@example.com", first_name="Typed")
        drain()
    assert state_of(user).reason == "unverified_email"
    assert emulator.get_contact("victim@example.com")["firstName"] == "Victim"
    assert [e for e in emulator.ledger if e.method in ("POST", "PATCH")] == []


@pytest.mark.parametrize(
    ("recorded", "verified", "expected"),
    [
        ("Jane@Example.com", True, "subscribed"),  # allauth keeps the address as typed
        ("jane@example.com", False, "nonSubscribed"),
        ("old@example.com", True, "nonSubscribed"),  # verified, but not the current address
    ],
)
def test_default_adapter_reads_allauths_verified_addresses(
    sync_settings, emulator, recorded, verified, expected
):
    from allauth.account.models import EmailAddress

    values = {
        **sync_settings,
        "TRUST_EMAILS": False,
        "ADAPTER": "tests.sync.adapters.ConsentAdapter",  # the default is_email_verified
    }
    with override_settings(OMNISEND=values):
        user = make_user("jane", "jane@example.com", first_name="Jane")
        EmailAddress.objects.create(user=user, email=recorded, verified=verified, primary=True)
        ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
        try:
            drain_until_settled()
        finally:
            ConsentAdapter.decisions.clear()
    assert emulator.get_contact("jane@example.com")["status"] == expected
    reason = "" if expected == "subscribed" else "unverified_email"
    assert state_of(user).reason == reason


# -- e-mail changes (R-DI-4) --------------------------------------------------------------------


def test_email_change_never_carries_subscribed_to_the_new_address(verifying, emulator):
    user = make_user("jane", "jane@example.com", first_name="Jane")
    VerifyingAdapter.verified.add(user.pk)
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=timezone.now())
    drain_until_settled()
    assert emulator.get_contact("jane@example.com")["status"] == "subscribed"
    user.email = "typo@example.com"  # a new, unverified address
    VerifyingAdapter.verified.discard(user.pk)
    user.save()
    drain_until_settled()
    new = emulator.get_contact("typo@example.com")
    assert new["status"] == "nonSubscribed" and new["firstName"] == "Jane"
    old = emulator.get_contact("jane@example.com")
    assert old["status"] == "subscribed" and "django:email-changed" in old["tags"]
    assert state_of(user).address == "typo@example.com"


def test_two_users_swapping_addresses_converge(trusting, emulator):
    ann = make_user("ann", "ann@example.com", first_name="Ann")
    bob = make_user("bob", "bob@example.com", first_name="Bob")
    drain()
    ann.email, bob.email = "bob@example.com", "ann@example.com"
    ann.save()
    bob.save()
    drain_until_settled(passes=4)
    assert emulator.get_contact("ann@example.com")["firstName"] == "Bob"
    assert emulator.get_contact("bob@example.com")["firstName"] == "Ann"
    assert state_of(ann).address == "bob@example.com"
    assert state_of(bob).address == "ann@example.com"
    assert not SyncState.objects.filter(state=SyncState.State.DEAD).exists()
    assert not SyncState.objects.filter(dirty=True).exists()


def test_moving_to_an_address_omnisend_holds_converges(trusting, emulator):
    emulator.seed_contact(identifiers=[{"type": "email", "id": "held@example.com"}])
    user = make_user("jane", "jane@example.com", first_name="Jane")
    drain()
    user.email = "held@example.com"
    user.save()
    drain_until_settled(passes=3)
    row = state_of(user)
    assert (row.state, row.address) == (SyncState.State.SYNCED, "held@example.com")
    assert emulator.get_contact("held@example.com")["firstName"] == "Jane"


def test_a_waiting_duplicate_does_not_make_the_sync_unhealthy(trusting, emulator):
    make_user("owner", "x@example.com")
    waiting = make_user("waiting", "x@example.com")
    drain()
    SyncState.objects.filter(user=waiting).update(dirtied_at=timezone.now() - timedelta(days=1))
    out = StringIO()
    call_command("omnisend_status", "--json", stdout=out)  # exit 0: healthy
    report = json.loads(out.getvalue())
    assert report["reasons"] == {"duplicate_email": 1}
    assert report["counts"]["skipped"] == 1 and report["counts"]["pending"] == 0


def test_an_opt_in_dated_before_the_contact_existed_still_subscribes(verifying, emulator):
    # The box was ticked at sign-up, a minute before the first (unverified) sync created the
    # contact; the site sends that tick's date once the address is verified. Our own creation
    # is not a decision of the person's, so it must not look newer than theirs.
    user = make_user("new", "new@example.com")
    opted_in = timezone.now() - timedelta(minutes=1)
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=opted_in)
    drain_until_settled()  # unverified: created as nonSubscribed, dated before the tick
    assert emulator.get_contact("new@example.com")["status"] == "nonSubscribed"
    VerifyingAdapter.verified.add(user.pk)
    mark_for_sync(user)
    drain_until_settled()
    assert emulator.get_contact("new@example.com")["status"] == "subscribed"
    assert state_of(user).reason == ""


def test_an_opt_in_made_while_the_first_sync_was_in_flight_subscribes(verifying, emulator):
    # The drain read the user before the opt-in committed, and created the contact after the
    # opt-in's moment: the creation must not outdate it (the example's confirm link did this).
    user = make_user("new", "new@example.com")
    VerifyingAdapter.verified.add(user.pk)
    meanwhile = timezone.now()  # after sign-up, before the contact exists
    drain_until_settled()
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=meanwhile)
    mark_for_sync(user)
    drain_until_settled()
    assert emulator.get_contact("new@example.com")["status"] == "subscribed"
    assert state_of(user).reason == ""


def test_an_opt_in_omnisend_ignores_as_older_is_reported(verifying, emulator):
    user = make_user("new", "new@example.com")
    opted_in = timezone.now()
    drain_until_settled()  # unverified: created as nonSubscribed
    # Someone at the brand resets the contact inside Omnisend after the opt-in was given.
    later = rfc3339(timezone.now() + timedelta(seconds=1))
    emulator.seed_contact(
        identifiers=[
            {
                "type": "email",
                "id": "new@example.com",
                "channels": {"email": {"status": "nonSubscribed", "statusChangedAt": later}},
            }
        ]
    )
    ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=opted_in)
    VerifyingAdapter.verified.add(user.pk)
    mark_for_sync(user)
    drain_until_settled()
    assert emulator.get_contact("new@example.com")["status"] == "nonSubscribed"
    assert state_of(user).reason == "consent_outdated"


@pytest.mark.django_db(transaction=True)
def test_two_users_binding_one_address_at_once_end_with_one_owner(trusting, emulator):
    users = [make_user(f"racer{n}", "race@example.com") for n in range(2)]
    rows = [state_of(user) for user in users]
    barrier = threading.Barrier(2)
    outcomes = []

    def bind(row):
        try:
            barrier.wait()
            outcomes.append(identity.bind(row, "race@example.com"))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=bind, args=(row,)) for row in rows]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(o.value for o in outcomes) == ["bound", "duplicate_email"]
    assert SyncState.objects.filter(address="race@example.com").count() == 1
    loser = SyncState.objects.get(address__isnull=True, user__in=users)
    assert loser.wanted_address == "race@example.com"

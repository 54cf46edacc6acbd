"""Deleting a user erases only the contact that user is bound to (issue 13, R-DI-5).

Real HTTP to the emulator. Each test reproduces one way the old erasure harmed someone else
or left personal data behind.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone

from django_omnisend.models import OutboxItem, SyncState
from django_omnisend.sync import drain, identity
from django_omnisend.sync.payloads import rfc3339

from .adapters import Consent, ConsentAdapter

pytestmark = pytest.mark.django_db

User = get_user_model()


def make_user(username, email, **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def writes_to(emulator, email):
    return [
        e
        for e in emulator.ledger
        if e.method in ("POST", "PATCH", "DELETE") and email in (e.body or b"").decode()
    ]


def drain_until_settled(passes: int = 5) -> None:
    for _ in range(passes):
        now = timezone.now()
        SyncState.objects.filter(dirty=True).update(next_attempt_at=now)
        OutboxItem.objects.filter(state=OutboxItem.State.PENDING).update(next_attempt_at=now)
        drain()


def shop_contact(emulator, email="owner@example.com"):
    """A contact the shop created (or edited) inside Omnisend: subscribed, named, tagged."""
    subscribed_at = rfc3339(timezone.now() + timedelta(seconds=1))
    return emulator.seed_contact(
        identifiers=[
            {
                "type": "email",
                "id": email,
                "channels": {"email": {"status": "subscribed", "statusChangedAt": subscribed_at}},
            }
        ],
        firstName="Real",
        lastName="Owner",
        tags=["vip"],
    )


def assert_untouched(emulator, email="owner@example.com"):
    contact = emulator.get_contact(email)
    assert contact["status"] == "subscribed"
    assert (contact["firstName"], contact["lastName"]) == ("Real", "Owner")
    assert "gdpr-erased" not in contact["tags"]


def test_deleting_a_duplicate_leaves_the_owners_contact_alone(sync_settings, emulator):
    owner = make_user("owner", "owner@example.com")
    duplicate = make_user("dup", "Owner@Example.com")
    drain()
    shop_contact(emulator)  # the owner's contact, as the shop edited it inside Omnisend
    assert SyncState.objects.get(user=duplicate).reason == "duplicate_email"
    duplicate.delete()
    drain_until_settled()
    assert_untouched(emulator)
    assert SyncState.objects.get(user=owner).address == "owner@example.com"


@pytest.mark.parametrize("how", ["never_synced", "inactive"])
def test_deleting_an_account_that_owned_nothing_touches_no_contact(sync_settings, emulator, how):
    shop_contact(emulator)
    user = make_user("stranger", "owner@example.com", is_active=how != "inactive")
    if how == "inactive":
        drain()  # skipped as excluded: never bound, never sent
        assert SyncState.objects.get(user=user).reason == "excluded"
    user.delete()
    drain_until_settled()
    assert_untouched(emulator)
    assert writes_to(emulator, "owner@example.com") == []


def test_erasure_clears_tags_properties_and_names(sync_settings, emulator):
    user = make_user("jane", "jane@example.com", first_name="Jane", last_name="Doe")
    drain()
    emulator.seed_contact(
        identifiers=[{"type": "email", "id": "jane@example.com"}],
        address="1 High St",
        city="London",
        postalCode="SW1A 1AA",
        state="Greater London",
        tags=["vip", "bought: shoes"],
        customProperties={"plan": "pro", "interests": ["shoes", "hats"]},
    )
    user.delete()
    drain_until_settled()
    contact = emulator.get_contact("jane@example.com")
    assert contact["status"] == "unsubscribed"
    assert contact["tags"] == ["gdpr-erased"]
    for name in ("firstName", "lastName", "address", "city", "postalCode", "state"):
        assert contact.get(name, "") == "", name
    assert all(value in ("", []) for value in contact["customProperties"].values())


def test_erasure_is_dated_after_the_contacts_own_status_change(sync_settings, emulator):
    later = timezone.now() + timedelta(hours=1)  # Omnisend's clock is ahead of ours
    with override_settings(
        OMNISEND={**sync_settings, "ADAPTER": "tests.sync.adapters.ConsentAdapter"}
    ):
        user = make_user("jane", "jane@example.com")
        ConsentAdapter.decisions[user.pk] = Consent(subscribed=True, at=later)
        try:
            drain()
        finally:
            ConsentAdapter.decisions.clear()
    assert emulator.get_contact("jane@example.com")["status"] == "subscribed"
    user.delete()
    drain_until_settled()
    assert emulator.get_contact("jane@example.com")["status"] == "unsubscribed"


def test_a_late_erasure_never_wipes_the_re_registered_account(sync_settings, emulator):
    old = make_user("old", "jane@example.com", first_name="Old")
    drain()
    emulator.add_fault(route="PATCH /api/contacts/*", kind="503", rate=1.0)
    old.delete()
    drain()  # the erasure fails and waits out its backoff
    new = make_user("new", "jane@example.com", first_name="New")
    drain_until_settled(passes=1)
    row = SyncState.objects.get(user=new)
    assert (row.state, row.reason) == (SyncState.State.SKIPPED, "erasure_pending")
    emulator.clear_faults()
    drain_until_settled()
    contact = emulator.get_contact("jane@example.com")
    assert contact["firstName"] == "New"
    assert SyncState.objects.get(user=new).state == SyncState.State.SYNCED
    last = [e for e in emulator.ledger if e.method in ("POST", "PATCH")][-1]
    assert last.method == "POST" and last.json["firstName"] == "New"


def test_erasure_records_keep_only_a_keyed_hash(sync_settings, emulator):
    user = make_user("jane", "jane@example.com")
    drain()
    user.delete()
    item = OutboxItem.objects.get(kind=OutboxItem.Kind.ERASURE)
    assert item.email_hash == identity.address_hash("jane@example.com")
    assert item.email_hash != hashlib.sha256(b"jane@example.com").hexdigest()
    with override_settings(OMNISEND={**sync_settings, "HASH_KEY": "another key"}):
        assert identity.address_hash("jane@example.com") != item.email_hash
    drain()
    item.refresh_from_db()
    assert item.state == OutboxItem.State.SENT and item.email == ""


def test_dead_erasures_forget_the_address_after_the_retention_period(sync_settings, emulator):
    old = OutboxItem.objects.create(
        kind=OutboxItem.Kind.ERASURE, state=OutboxItem.State.DEAD, email="old@example.com"
    )
    recent = OutboxItem.objects.create(
        kind=OutboxItem.Kind.ERASURE, state=OutboxItem.State.DEAD, email="recent@example.com"
    )
    OutboxItem.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=31))
    drain()
    old.refresh_from_db()
    recent.refresh_from_db()
    assert old.email == "" and recent.email == "recent@example.com"


def test_a_mass_deletion_stays_within_the_tags_budget(sync_settings, emulator):
    # Every erasure removes the contact's tags through /contacts/tags, which Omnisend limits
    # to 60 a minute on its own, apart from the brand's 400. Time is scaled: a 2 s window.
    window = 2.0
    scaled = {**sync_settings, "RATE_LIMIT_WINDOW": window, "RETRY_AFTER_DEFAULT": 0.05}
    emulator.configure(rate_limit=400, tags_rate_limit=60, window_seconds=window)
    with override_settings(OMNISEND=scaled):
        users = [make_user(f"gone{n}", f"gone{n}@example.com") for n in range(80)]
        drain_until_settled()
        for user in users:
            user.delete()
        for _ in range(200):
            if not OutboxItem.objects.filter(state=OutboxItem.State.PENDING).exists():
                break
            OutboxItem.objects.filter(state=OutboxItem.State.PENDING).update(
                next_attempt_at=timezone.now()
            )
            drain()
    tags = [e for e in emulator.ledger if e.path == "/api/contacts/tags"]
    assert len(tags) >= 80
    assert [e.status for e in tags if e.status == 429] == []
    assert OutboxItem.objects.filter(state=OutboxItem.State.SENT).count() == 80

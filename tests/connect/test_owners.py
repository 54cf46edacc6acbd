"""Connections that belong to an owner (a shop here: an ``auth.Group``), by the service.

Credentials come from the emulator and are probed over HTTP; the views are tested in
``test_owner_views.py``.
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from django.db import connection as django_connection
from django.test import override_settings

import django_omnisend
from django_omnisend import connect
from django_omnisend.connect import binding, owners
from django_omnisend.exceptions import NeedsReconnect, NotConnected
from django_omnisend.models import Connection

from .owner_support import SHOP_A_BRAND, SHOP_B_BRAND, add_shop_brands, bind_by_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def shops(emulator):
    add_shop_brands(emulator)
    return Group.objects.create(name="Shop A"), Group.objects.create(name="Shop B")


def brand_seen(client):
    try:
        return client.brands.current()["brandID"]
    finally:
        client.close()


def test_two_owners_hold_two_brands_and_each_client_reaches_its_own(
    emulator_settings, emulator, shops
):
    shop_a, shop_b = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    b = bind_by_token(emulator, shop_b, SHOP_B_BRAND).connection
    assert (a.status, b.status) == (Connection.Status.ACTIVE, Connection.Status.ACTIVE)
    assert a.owner == shop_a and b.owner == shop_b
    assert brand_seen(connect.get_client(owner=shop_a)) == SHOP_A_BRAND
    assert brand_seen(connect.get_client(owner=shop_b)) == SHOP_B_BRAND
    assert brand_seen(django_omnisend.get_client(owner=shop_a)) == SHOP_A_BRAND
    # The site's own client is not a tenant's: no site row, so the settings API key's brand.
    assert connect.active_connection() is None
    assert brand_seen(connect.get_client()) == emulator.default_brand_id


def test_sync_connection_keys_resolve_through_the_owner(emulator_settings, emulator, shops):
    shop_a, shop_b = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    key = owners.connection_key(shop_a)
    assert key == f"owner:auth.group:{shop_a.pk}"
    assert connect.connection_for_key(key) == a
    assert connect.connection_for_key(owners.connection_key(shop_b)) is None
    assert connect.connection_for_key("owner:nosuch.model:1") is None
    assert brand_seen(connect.client_for_key(key)) == SHOP_A_BRAND
    with pytest.raises(NotConnected):
        connect.client_for_key(owners.connection_key(shop_b))
    # The site's key keeps meaning the site.
    assert connect.connection_for_key("default") is None


def test_an_owner_without_a_connection_never_falls_back_to_the_site(
    emulator_settings, emulator, shops
):
    shop_a, _ = shops
    bind_by_token(emulator, None, emulator.default_brand_id)  # the site is connected
    with pytest.raises(NotConnected, match=r"auth\.group:\d+ has no Omnisend connection"):
        connect.get_client(owner=shop_a)


def test_an_owners_error_names_it_by_key_never_by_personal_data(
    emulator_settings, emulator, monkeypatch
):
    """Errors reach logs: a user who owns a connection is named by model and key, not by the
    e-mail address their ``__str__`` may be."""
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user("jane", "jane@example.com", "x")
    monkeypatch.setattr(type(user), "__str__", lambda self: self.email)  # a common __str__
    with pytest.raises(NotConnected) as raised:
        connect.get_client(owner=user)
    assert "jane@example.com" not in str(raised.value)
    assert owners.owner_key(user) in str(raised.value)


def test_an_owner_waiting_for_a_reconnect_raises_needs_reconnect(
    emulator_settings, emulator, shops
):
    shop_a, _ = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    connect.mark_needs_reconnect(a, "Omnisend rejected the access token (HTTP 401).")
    with pytest.raises(NeedsReconnect):
        connect.get_client(owner=shop_a)
    assert connect.connection_for_key(owners.connection_key(shop_a)) == a


def test_the_site_connection_ignores_owner_rows(emulator_settings, emulator, shops):
    shop_a, _ = shops
    bind_by_token(emulator, shop_a, SHOP_A_BRAND)
    site = bind_by_token(emulator, None, emulator.default_brand_id)
    # A tenant's active brand is no competitor of the site's: no switch to confirm.
    assert not site.needs_confirmation
    assert connect.active_connection() == site.connection
    assert connect.active_connection(shop_a).brand_id == SHOP_A_BRAND


def test_a_brand_held_by_another_owner_is_refused_and_nothing_changes(
    emulator_settings, emulator, shops
):
    shop_a, shop_b = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    before = list(Connection.objects.values_list("pk", "status", "fingerprint", "owner_id"))
    with pytest.raises(binding.BrandHeldElsewhere, match="already connected for another owner"):
        bind_by_token(emulator, shop_b, SHOP_A_BRAND)
    with pytest.raises(binding.BrandHeldElsewhere):
        bind_by_token(emulator, None, SHOP_A_BRAND)  # the site cannot take it either
    assert list(Connection.objects.values_list("pk", "status", "fingerprint", "owner_id")) == before
    assert connect.active_connection(shop_a) == a
    # Waiting for a reconnect still holds the brand.
    connect.mark_needs_reconnect(a, "test")
    with pytest.raises(binding.BrandHeldElsewhere):
        bind_by_token(emulator, shop_b, SHOP_A_BRAND)


def test_a_reconnect_of_the_same_brand_reuses_the_owners_row(emulator_settings, emulator, shops):
    shop_a, _ = shops
    first = bind_by_token(emulator, shop_a, SHOP_A_BRAND)
    connect.mark_needs_reconnect(first.connection, "test")
    again = bind_by_token(emulator, shop_a, SHOP_A_BRAND)
    assert again.existing and again.connection.pk == first.connection.pk
    assert again.connection.status == Connection.Status.ACTIVE
    assert again.stale  # the old tokens are handed back for revocation


def test_a_second_brand_for_one_owner_waits_for_confirmation_without_touching_others(
    emulator_settings, emulator, shops
):
    shop_a, shop_b = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    b = bind_by_token(emulator, shop_b, SHOP_B_BRAND).connection
    switch = bind_by_token(emulator, shop_a, emulator.default_brand_id)
    assert switch.needs_confirmation
    assert switch.connection.status == Connection.Status.PENDING
    assert switch.connection.owner == shop_a
    assert connect.active_connection(shop_a) == a
    assert connect.active_connection(shop_b) == b
    assert list(binding.competing(emulator.default_brand_id, shop_a)) == [a]


@pytest.mark.skipif(
    not django_connection.features.supports_partial_indexes,
    reason="MariaDB/MySQL have no conditional unique constraints (models.W036): there the "
    "binding service alone keeps one active connection per owner",
)
def test_the_database_keeps_one_active_connection_per_owner(emulator_settings, shops):
    shop_a, _ = shops
    lookups = owners.owner_filter(shop_a)
    Connection.objects.create(auth_type="api_key", brand_id="x1", **lookups)
    with pytest.raises(IntegrityError), transaction.atomic():
        Connection.objects.create(auth_type="api_key", brand_id="x2", **lookups)
    # The site's rows (no owner) are not limited by it (pk-keyed tenants keep several).
    Connection.objects.create(auth_type="api_key", brand_id="x3")
    Connection.objects.create(auth_type="api_key", brand_id="x4")


def test_connected_and_disconnected_signals_carry_the_owner(emulator_settings, emulator, shops):
    from django_omnisend.signals import connected, disconnected

    shop_a, _ = shops
    seen = []

    def on_connected(sender, connection, user, **kwargs):  # the documented signature
        seen.append(("connected", connection.brand_id, kwargs["owner"]))

    def on_disconnected(sender, connection, user, **kwargs):
        seen.append(("disconnected", connection.brand_id, kwargs["owner"]))

    connected.connect(on_connected)
    disconnected.connect(on_disconnected)
    try:
        a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
        site = bind_by_token(emulator, None, emulator.default_brand_id).connection
        connect.disconnect(a)
    finally:
        connected.disconnect(on_connected)
        disconnected.disconnect(on_disconnected)
    assert seen == [
        ("connected", SHOP_A_BRAND, shop_a),
        ("connected", site.brand_id, None),
        ("disconnected", SHOP_A_BRAND, shop_a),
    ]


@pytest.mark.parametrize("value", ["", "garbage", "auth.group:1:x", "nosuch.model:1"])
def test_owner_references_must_be_signed_and_name_a_row(db, value):
    group = Group.objects.create(name="Shop")
    ref = owners.sign_owner(group)
    assert owners.load_owner(ref) == group
    assert owners.load_owner(owners.sign_owner(None)) is None
    if value:
        with pytest.raises(owners.InvalidOwner):
            owners.load_owner(value)
        with pytest.raises(owners.InvalidOwner):  # a signature of the right shape, wrong salt
            from django.core import signing

            owners.load_owner(signing.dumps(value))
    group.delete()
    with pytest.raises(owners.InvalidOwner, match="no longer exists"):
        owners.load_owner(ref)


def test_each_shops_members_sync_to_their_shops_brand_only(sync_settings, emulator, shops):
    from django.contrib.auth import get_user_model

    from django_omnisend.models import SyncState
    from django_omnisend.sync import drain

    shop_a, shop_b = shops
    bind_by_token(emulator, shop_a, SHOP_A_BRAND)
    bind_by_token(emulator, shop_b, SHOP_B_BRAND)
    adapter = "tests.connect.owner_support.ShopContactAdapter"
    users = get_user_model().objects
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        ann = users.create_user("ann", "ann@example.com")
        ann.groups.add(shop_a)
        bob = users.create_user("bob", "bob@example.com")
        bob.groups.add(shop_b)
    with override_settings(OMNISEND={**sync_settings, "ADAPTER": adapter}):
        ann.save()  # marked under her shop's key
        bob.save()
        drain()
    emails = {
        brand: {c["identifiers"][0]["id"] for c in emulator.contacts(brand)}
        for brand in (
            SHOP_A_BRAND,
            SHOP_B_BRAND,
            emulator.default_brand_id,
        )
    }
    assert "ann@example.com" in emails[SHOP_A_BRAND]
    assert "bob@example.com" in emails[SHOP_B_BRAND]
    assert "ann@example.com" not in emails[SHOP_B_BRAND] | emails[emulator.default_brand_id]
    assert "bob@example.com" not in emails[SHOP_A_BRAND] | emails[emulator.default_brand_id]
    key = SyncState.objects.get(user=ann, connection_key=owners.connection_key(shop_a))
    assert key.state == SyncState.State.SYNCED


def test_a_401_pauses_only_that_shops_delivery_without_falling_back(sync_settings, emulator, shops):
    """T-OA-27 for a shop: its row needs a reconnect, its key is paused, nothing goes out with
    the site's API key or to another brand, and the other shop keeps syncing."""
    from django.contrib.auth import get_user_model

    from django_omnisend.models import DeliveryControl, SyncState
    from django_omnisend.sync import drain

    shop_a, shop_b = shops
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    bind_by_token(emulator, shop_b, SHOP_B_BRAND)
    # Both of shop A's tokens die at Omnisend (consent withdrawn): no refresh can save it.
    emulator.revoke_token(a.access_token)
    emulator.revoke_token(a.refresh_token)
    users = get_user_model().objects
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        ann = users.create_user("ann", "ann@example.com")
        ann.groups.add(shop_a)
        bob = users.create_user("bob", "bob@example.com")
        bob.groups.add(shop_b)
    adapter = "tests.connect.owner_support.ShopContactAdapter"
    with override_settings(OMNISEND={**sync_settings, "ADAPTER": adapter}):
        ann.save()
        bob.save()
        result = drain()
        a_key = owners.connection_key(shop_a)
        assert result.paused == [a_key]
        assert DeliveryControl.objects.get(connection_key=a_key).paused
        a.refresh_from_db()
        assert a.status == Connection.Status.NEEDS_RECONNECT
        assert SyncState.objects.get(user=ann).dirty  # kept for after the reconnect
        assert not SyncState.objects.get(user=bob).dirty
        before = len(emulator.ledger)
        drain()  # still paused: nothing more for shop A
        assert len(emulator.ledger) == before
    api_key = sync_settings["API_KEY"]
    assert all(api_key not in str(e.headers) for e in emulator.ledger)
    assert emulator.contacts(emulator.default_brand_id) == []
    assert emulator.contacts(SHOP_A_BRAND) == []
    assert [c["identifiers"][0]["id"] for c in emulator.contacts(SHOP_B_BRAND)] == [
        "bob@example.com"
    ]


@pytest.mark.django_db
def test_an_owners_signed_reference_is_the_same_whenever_it_is_made():
    """Pages compare and link an owner's URLs: a reference carrying its signing time changed
    from one second to the next, so a page rendered across a second boundary disagreed with
    itself (and every render made a new URL)."""
    import time
    from unittest import mock

    shop = Group.objects.create(name="Shop A")
    first = owners.sign_owner(shop)
    with mock.patch("time.time", return_value=time.time() + 5):
        assert owners.sign_owner(shop) == first
    assert owners.load_owner(first) == shop
    with pytest.raises(owners.InvalidOwner):
        owners.load_owner(first[:-1] + ("A" if first[-1] != "A" else "B"))

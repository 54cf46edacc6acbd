"""Connecting an owner's brand from the site's own pages, over real HTTP to the emulator.

Two shops (``auth.Group`` rows) whose members manage their shop's connection
(``ShopConnectionAdapter``). Each connects its own brand on the emulator's consent page; one
shop's staff can neither connect, reconnect nor disconnect the other's; a state is bound to
the owner it was started for, and a flow whose owner went away (or whose right to manage it
was taken away) stores nothing.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.models import Group
from django.test import Client, override_settings

from django_omnisend import connect
from django_omnisend.connect import owners
from django_omnisend.models import Connection

from .conftest import CALLBACK_URL, make_manager, token_requests
from .owner_support import SHOP_A_BRAND, SHOP_B_BRAND, add_shop_brands, approve_as_brand

pytestmark = pytest.mark.django_db

SHOP_PAGE = "/shops/mine/"


@pytest.fixture
def shop_settings(oauth_settings):
    values = {
        **oauth_settings,
        "CONNECTION_ADAPTER": "tests.connect.owner_support.ShopConnectionAdapter",
    }
    with override_settings(OMNISEND=values):
        yield values


@pytest.fixture
def shops(emulator, django_user_model):
    """Shop A with its staff member ann, shop B with bob (neither is Django staff)."""
    add_shop_brands(emulator)
    shop_a, shop_b = Group.objects.create(name="Shop A"), Group.objects.create(name="Shop B")
    ann = django_user_model.objects.create_user("ann", "ann@example.com", "pw")
    bob = django_user_model.objects.create_user("bob", "bob@example.com", "pw")
    ann.groups.add(shop_a)
    bob.groups.add(shop_b)
    return shop_a, shop_b, ann, bob


def client_for(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def url(action: str, owner: Any) -> str:
    return f"/omnisend/{action}/{owners.sign_owner(owner)}/"


def start_for(client: Client, owner: Any, action: str = "connect", **query: str):
    response = client.post(url(action, owner), {"next": SHOP_PAGE})
    assert response.status_code == 302, response.content[:500]
    location = response["Location"]
    state = parse_qs(urlsplit(location).query)["state"][0]
    return location, state


def connect_shop(
    client: Client, emulator: Any, owner: Any, brand_id: str, extra: dict | None = None
):
    location, _ = start_for(client, owner)
    query = approve_as_brand(emulator, location, brand_id)
    return client.get(CALLBACK_URL, {**query, **(extra or {})})


def snapshot():
    return list(
        Connection.objects.order_by("pk").values_list(
            "pk", "status", "fingerprint", "brand_id", "owner_type_id", "owner_id"
        )
    )


def brand_reached(owner: Any) -> str:
    client = connect.get_client(owner=owner)
    try:
        return client.brands.current()["brandID"]
    finally:
        client.close()


def test_two_shops_connect_two_brands_from_their_own_pages(shop_settings, emulator, shops):
    shop_a, shop_b, ann, bob = shops
    response = connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    assert response.status_code == 302 and response["Location"] == SHOP_PAGE
    response = connect_shop(client_for(bob), emulator, shop_b, SHOP_B_BRAND)
    assert response.status_code == 302 and response["Location"] == SHOP_PAGE
    a = connect.active_connection(shop_a)
    b = connect.active_connection(shop_b)
    assert (a.brand_id, a.connected_by, a.owner) == (SHOP_A_BRAND, ann, shop_a)
    assert (b.brand_id, b.connected_by, b.owner) == (SHOP_B_BRAND, bob, shop_b)
    assert brand_reached(shop_a) == SHOP_A_BRAND
    assert brand_reached(shop_b) == SHOP_B_BRAND
    assert connect.active_connection() is None  # the site's own stays unconnected


def test_the_connect_page_of_an_owner_posts_back_to_itself(shop_settings, emulator, shops):
    shop_a, _, ann, _ = shops
    client = client_for(ann)
    page = client.get(url("connect", shop_a), {"next": SHOP_PAGE})
    assert page.status_code == 200
    html = page.content.decode()
    assert f'action="{url("connect", shop_a)}"' in html
    assert f'value="{SHOP_PAGE}"' in html and "csrfmiddlewaretoken" in html
    assert "omnisend_oauth" not in client.session


def test_another_shops_staff_cannot_connect_reconnect_or_disconnect_it(
    shop_settings, emulator, shops
):
    shop_a, shop_b, ann, bob = shops
    connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    connect_shop(client_for(bob), emulator, shop_b, SHOP_B_BRAND)
    before = snapshot()
    ledger = len(emulator.ledger)
    intruder = client_for(ann)
    for action in ("connect", "reconnect", "disconnect"):
        response = intruder.post(url(action, shop_b), {"next": SHOP_PAGE})
        assert response.status_code == 403, action
        assert "You may not connect or disconnect the Omnisend brand of Shop B" in (
            response.content.decode()
        )
        assert "Location" not in response
    assert intruder.get(url("connect", shop_b)).status_code == 403
    # Naming B's row on A's own disconnect URL does not reach it either.
    b = connect.active_connection(shop_b)
    response = intruder.post(url("disconnect", shop_a), {"connection": b.pk})
    assert response.status_code == 302
    assert snapshot() == before
    assert "omnisend_oauth" not in intruder.session
    assert len(emulator.ledger) == ledger  # not one request to Omnisend
    assert brand_reached(shop_b) == SHOP_B_BRAND


def test_the_default_adapter_lets_nobody_manage_an_owners_connection(
    oauth_settings, emulator, shops, django_user_model
):
    shop_a, _, ann, _ = shops
    manager = make_manager(django_user_model)
    for user in (ann, manager):
        client = client_for(user)
        assert client.post(url("connect", shop_a)).status_code == 403
        assert "omnisend_oauth" not in client.session
    # The site's own connection stays the site manager's.
    assert client_for(manager).post(url("connect", None)).status_code == 302
    assert client_for(ann).post("/omnisend/connect/").status_code == 302  # to the admin login
    assert Connection.objects.count() == 0


def test_forged_or_stale_owner_references_are_refused(shop_settings, emulator, shops):
    shop_a, _, ann, _ = shops
    client = client_for(ann)
    forged = url("connect", shop_a)[:-3] + "xx/"
    response = client.post(forged)
    assert response.status_code == 404
    assert "does not name a connection of this site" in response.content.decode()
    anonymous = Client().post(url("connect", shop_a))
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]
    assert token_requests(emulator) == []


def test_a_state_for_owner_a_cannot_complete_for_owner_b(
    shop_settings, emulator, shops, django_user_model
):
    shop_a, shop_b, ann, bob = shops
    carol = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    carol.groups.add(shop_a, shop_b)  # manages both shops
    client = client_for(carol)
    # The callback connects the owner the flow was started for; an owner in the query is noise.
    response = connect_shop(
        client, emulator, shop_a, SHOP_A_BRAND, extra={"owner": owners.sign_owner(shop_b)}
    )
    assert response.status_code == 302
    assert connect.active_connection(shop_a).brand_id == SHOP_A_BRAND
    assert connect.active_connection(shop_b) is None
    # A state started by ann for shop A cannot be finished by bob (shop B) in his session.
    ann_client = client_for(ann)
    location, state = start_for(ann_client, shop_a)
    query = approve_as_brand(emulator, location, SHOP_B_BRAND)
    bob_client = client_for(bob)
    session = bob_client.session
    session["omnisend_oauth"] = {state: ann_client.session["omnisend_oauth"][state]}
    session.save()
    before, tokens = snapshot(), len(token_requests(emulator))
    assert bob_client.get(CALLBACK_URL, query).status_code == 403  # T-OA-05
    # A record rewritten to name shop B, in the session of ann who manages only shop A.
    ann_client = client_for(ann)
    location, state = start_for(ann_client, shop_a)
    query = approve_as_brand(emulator, location, SHOP_B_BRAND)
    session = ann_client.session
    session["omnisend_oauth"][state]["owner"] = owners.owner_key(shop_b)
    session.save()
    response = ann_client.get(CALLBACK_URL, query)
    assert response.status_code == 403
    assert "Nothing was changed" in response.content.decode()
    assert snapshot() == before
    assert len(token_requests(emulator)) == tokens  # refused before the code was exchanged


def test_the_callback_for_a_revoked_owner_does_nothing(shop_settings, emulator, shops):
    shop_a, shop_b, ann, bob = shops
    # ann loses her place in shop A while she is at Omnisend.
    client = client_for(ann)
    location, _ = start_for(client, shop_a)
    query = approve_as_brand(emulator, location, SHOP_A_BRAND)
    ann.groups.remove(shop_a)
    response = client.get(CALLBACK_URL, query)
    assert response.status_code == 403
    # Shop B is deleted while bob is at Omnisend.
    client = client_for(bob)
    location, _ = start_for(client, shop_b)
    query = approve_as_brand(emulator, location, SHOP_B_BRAND)
    shop_b.delete()
    response = client.get(CALLBACK_URL, query)
    assert response.status_code == 400
    assert "no longer exists, so nothing was stored" in response.content.decode()
    assert Connection.objects.count() == 0
    assert token_requests(emulator) == []


def test_a_brand_another_shop_holds_is_refused_with_a_message(shop_settings, emulator, shops):
    shop_a, shop_b, ann, bob = shops
    connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    before = snapshot()
    response = connect_shop(client_for(bob), emulator, shop_b, SHOP_A_BRAND)
    assert response.status_code == 409
    html = response.content.decode()
    assert "already connected for another owner" in html and "nothing was changed" in html
    assert snapshot() == before
    # The refused tokens were revoked at Omnisend.
    assert len(emulator.ledger_for("/oauth2/revoke")) >= 1
    assert brand_reached(shop_a) == SHOP_A_BRAND


def test_a_shop_disconnects_and_reconnects_its_own_brand(shop_settings, emulator, shops):
    shop_a, shop_b, ann, bob = shops
    connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    connect_shop(client_for(bob), emulator, shop_b, SHOP_B_BRAND)
    client = client_for(ann)
    response = client.post(url("disconnect", shop_a), {"next": SHOP_PAGE})
    assert response.status_code == 302 and response["Location"] == SHOP_PAGE
    assert connect.active_connection(shop_a) is None
    assert connect.active_connection(shop_b).brand_id == SHOP_B_BRAND
    location, _ = start_for(client, shop_a, action="reconnect")
    response = client.get(CALLBACK_URL, approve_as_brand(emulator, location, SHOP_A_BRAND))
    assert response.status_code == 302
    assert brand_reached(shop_a) == SHOP_A_BRAND


def test_a_brand_switch_of_a_shop_is_confirmed_within_the_shop(shop_settings, emulator, shops):
    shop_a, shop_b, ann, bob = shops
    connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    connect_shop(client_for(bob), emulator, shop_b, SHOP_B_BRAND)
    client = client_for(ann)
    response = connect_shop(client, emulator, shop_a, emulator.default_brand_id)
    assert response.status_code == 302 and "/omnisend/confirm/" in response["Location"]
    confirm_url = response["Location"]
    assert client_for(bob).post(confirm_url, {"action": "confirm"}).status_code == 403
    assert connect.active_connection(shop_a).brand_id == SHOP_A_BRAND
    page = client.get(confirm_url)
    assert page.status_code == 200 and "Shop B brand" not in page.content.decode()
    response = client.post(confirm_url, {"action": "confirm"})
    assert response.status_code == 302 and response["Location"] == SHOP_PAGE
    assert connect.active_connection(shop_a).brand_id == emulator.default_brand_id
    assert connect.active_connection(shop_b).brand_id == SHOP_B_BRAND


def test_owner_connect_needs_a_post_with_a_csrf_token(shop_settings, emulator, shops):
    """T-OA-07 for an owner: a GET starts nothing, a POST without the token is refused."""
    shop_a, _, ann, _ = shops
    client = Client(enforce_csrf_checks=True)
    client.force_login(ann)
    assert client.post(url("connect", shop_a)).status_code == 403
    page = client.get(url("connect", shop_a))
    assert page.status_code == 200 and "omnisend_oauth" not in client.session
    token = str(page.context["csrf_token"])
    response = client.post(url("connect", shop_a), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert response["Location"].startswith(shop_settings["AUTHORIZE_URL"])


@pytest.mark.parametrize(
    "next_url",
    ["https://evil.com", "//evil.com", "/\\evil.com", "http://testserver@evil.com", "/%2F%2Fevil"],
)
def test_owner_flows_return_only_to_pages_of_this_site(shop_settings, emulator, shops, next_url):
    """T-OA-13 for an owner: an off-site ``next`` becomes ``/``."""
    shop_a, _, ann, _ = shops
    client = client_for(ann)
    response = client.post(url("connect", shop_a), {"next": next_url})
    state = parse_qs(urlsplit(response["Location"]).query)["state"][0]
    assert client.session["omnisend_oauth"][state]["next"] == "/"


def test_a_shops_tokens_are_stored_encrypted(shop_settings, emulator, shops):
    """T-ST-1 for an owner's row: the raw column never holds the plaintext."""
    from django.db import connection as db

    shop_a, _, ann, _ = shops
    connect_shop(client_for(ann), emulator, shop_a, SHOP_A_BRAND)
    row = connect.active_connection(shop_a)
    with db.cursor() as cursor:
        cursor.execute(
            f"SELECT access_token, refresh_token FROM {Connection._meta.db_table} WHERE id = %s",
            [row.pk],
        )
        raw = cursor.fetchone()
    assert row.access_token and row.access_token not in raw[0]
    assert row.refresh_token and row.refresh_token not in raw[1]

"""``{% omnisend_connect owner %}``: the Connect/Reconnect/Disconnect control on a host's page."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.middleware.csrf import get_token
from django.template import RequestContext, Template
from django.test import RequestFactory, override_settings

from django_omnisend import connect
from django_omnisend.connect import owners

from .owner_support import SHOP_A_BRAND, add_shop_brands, bind_by_token

pytestmark = pytest.mark.django_db

TEMPLATE = Template("{% load omnisend %}{% omnisend_connect owner %}")


@pytest.fixture
def shop(emulator, oauth_settings, django_user_model):
    add_shop_brands(emulator)
    shop = Group.objects.create(name="Shop A")
    ann = django_user_model.objects.create_user("ann", "ann@example.com", "pw")
    ann.groups.add(shop)
    adapter = "tests.connect.owner_support.ShopConnectionAdapter"
    with override_settings(OMNISEND={**oauth_settings, "CONNECTION_ADAPTER": adapter}):
        yield shop, ann


def render(owner, user):
    request = RequestFactory().get("/shops/a/?tab=omnisend")
    request.user = user
    get_token(request)
    return TEMPLATE.render(RequestContext(request, {"owner": owner}))


def actions(html):
    return re.findall(r'<form method="post" action="([^"]+)"', html)


def test_an_unconnected_owner_gets_a_connect_form(shop):
    owner, ann = shop
    html = render(owner, ann)
    ref = owners.sign_owner(owner)
    assert actions(html) == [f"/omnisend/connect/{ref}/"]
    assert "csrfmiddlewaretoken" in html
    assert 'name="next" value="/shops/a/?tab=omnisend"' in html
    assert "Not connected" in html


def test_a_connected_owner_gets_its_status_reconnect_and_disconnect(shop, emulator):
    owner, ann = shop
    connection = bind_by_token(emulator, owner, SHOP_A_BRAND).connection
    html = render(owner, ann)
    ref = owners.sign_owner(owner)
    assert actions(html) == [f"/omnisend/reconnect/{ref}/", f"/omnisend/disconnect/{ref}/"]
    assert "Shop A brand" in html and "Active" in html
    connect.mark_needs_reconnect(connection, "Omnisend rejected the access token (HTTP 401).")
    html = render(owner, ann)
    assert "Needs reconnect" in html and "HTTP 401" in html
    assert connection.access_token not in html and connection.fingerprint not in html


def test_people_who_may_not_manage_it_see_the_status_only(shop, emulator, django_user_model):
    owner, _ = shop
    bind_by_token(emulator, owner, SHOP_A_BRAND)
    stranger = django_user_model.objects.create_user("eve", "eve@example.com", "pw")
    for user in (stranger, AnonymousUser()):
        html = render(owner, user)
        assert actions(html) == []
        assert "Shop A brand" in html

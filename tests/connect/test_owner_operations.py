"""Operations per owner: ``omnisend_status --owner/--all`` and the admin's owner column/filter."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.contrib.auth.models import Group
from django.core.management import CommandError, call_command

from django_omnisend import connect
from django_omnisend.connect import owners
from django_omnisend.models import Connection

from .owner_support import SHOP_A_BRAND, SHOP_B_BRAND, add_shop_brands, bind_by_token

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/django_omnisend/connection/"


@pytest.fixture
def shops(emulator_settings, emulator):
    add_shop_brands(emulator)
    shop_a, shop_b = Group.objects.create(name="Shop A"), Group.objects.create(name="Shop B")
    a = bind_by_token(emulator, shop_a, SHOP_A_BRAND).connection
    b = bind_by_token(emulator, shop_b, SHOP_B_BRAND).connection
    site = bind_by_token(emulator, None, emulator.default_brand_id).connection
    return shop_a, shop_b, a, b, site


def status(*args):
    out = StringIO()
    try:
        call_command("omnisend_status", *args, stdout=out)
        code = 0
    except CommandError as exc:
        code = exc.returncode
        out.write(str(exc))
    return code, out.getvalue()


def test_status_all_lists_every_owner_brand_and_state(shops):
    shop_a, shop_b, a, b, site = shops
    code, text = status("--all")
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0].split()[:3] == ["Owner", "Brand", "State"]
    row_a = next(line for line in lines if line.startswith(owners.owner_key(shop_a)))
    row_b = next(line for line in lines if line.startswith(owners.owner_key(shop_b)))
    row_site = next(line for line in lines if line.startswith("site"))
    assert SHOP_A_BRAND in row_a and "active" in row_a and a.fingerprint in row_a
    assert SHOP_B_BRAND in row_b and b.fingerprint in row_b
    assert site.brand_id in row_site
    assert a.access_token not in text


def test_status_of_one_owner_and_its_problem(shops):
    shop_a, shop_b, _a, b, _site = shops
    connect.mark_needs_reconnect(b, "Omnisend rejected the access token (HTTP 401).")
    code, text = status("--owner", owners.owner_key(shop_a), "--json")
    assert code == 0
    report = json.loads(text)
    assert [r["brand_id"] for r in report["owners"]] == [SHOP_A_BRAND]
    assert report["owners"][0]["connection_key"] == owners.connection_key(shop_a)
    code, text = status("--owner", owners.owner_key(shop_b))
    assert code == 2
    assert "needs a reconnect" in text and SHOP_B_BRAND in text
    code, text = status("--all")
    assert code == 2 and owners.owner_key(shop_b) in text.split("unhealthy:")[1]


def test_status_refuses_an_unknown_owner_with_what_to_do(shops):
    with pytest.raises(CommandError, match=r"app_label.model:pk"):
        call_command("omnisend_status", "--owner", "nosuch.thing:1")


def test_admin_lists_and_filters_connections_by_owner(shops, admin_client):
    _shop_a, _shop_b, a, _b, site = shops
    html = admin_client.get(CHANGELIST).content.decode()
    assert "group: Shop A" in html and "group: Shop B" in html and "The site" in html
    html = admin_client.get(CHANGELIST, {"owner": "site"}).content.decode()
    assert site.brand_id in html and SHOP_A_BRAND not in html
    ct = Connection.objects.get(pk=a.pk).owner_type_id
    html = admin_client.get(CHANGELIST, {"owner": str(ct)}).content.decode()
    assert SHOP_A_BRAND in html and SHOP_B_BRAND in html and site.brand_id not in html

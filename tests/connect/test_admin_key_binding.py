"""An API key entered in the admin follows the brand rules of the OAuth callback (issue 15, item 3).

A credential for brand X arriving by either door goes through one service: the same brand's row
takes it, another brand waits for the same confirmation page, and a row never changes brand.
Before, a key for another brand made two active brands, a key for the active brand was an
``IntegrityError`` (500), and a row's key replaced by another brand's silently rebound it.
"""

from __future__ import annotations

import pytest
from django.contrib.messages import get_messages

from django_omnisend.models import Connection
from django_omnisend.signals import connected, disconnected

from .conftest import CHANGELIST_URL, connect, form

pytestmark = pytest.mark.django_db

ADD_URL = f"{CHANGELIST_URL}add/"


@pytest.fixture
def events():
    seen = []

    def on_connected(sender, connection, user, **kwargs):
        seen.append(("connected", connection.brand_id))

    def on_disconnected(sender, connection, user, **kwargs):
        seen.append(("disconnected", connection.brand_id))

    connected.connect(on_connected)
    disconnected.connect(on_disconnected)
    yield seen
    connected.disconnect(on_connected)
    disconnected.disconnect(on_disconnected)


def _messages(response):
    return " ".join(str(m) for m in get_messages(response.wsgi_request))


def _add_key(client, key):
    return client.post(ADD_URL, {"new_api_key": key})


def test_key_for_another_brand_waits_for_the_oauth_confirmation(
    manager_client, oauth_settings, emulator, events
):
    assert connect(manager_client, emulator).status_code == 302
    old = Connection.objects.get()
    other = emulator.add_brand(name="Other brand")
    key = emulator.issue_api_key(other["brandID"])

    response = _add_key(manager_client, key)
    pending = Connection.objects.get(brand_id=other["brandID"])
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == f"/omnisend/confirm/{pending.pk}/"
    assert pending.status == "pending" and pending.auth_type == "api_key"
    assert pending.api_key == key
    assert list(Connection.objects.active()) == [old]  # nothing switched yet
    assert events == [("connected", old.brand_id)]

    page = manager_client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Other brand" in html and old.brand_id in html and key not in html

    done = manager_client.post(response["Location"], {"action": "confirm"})
    assert done.status_code == 302
    pending.refresh_from_db()
    old.refresh_from_db()
    assert pending.status == "active" and old.status == "revoked"
    assert list(Connection.objects.active()) == [pending]
    assert events[1:] == [("disconnected", old.brand_id), ("connected", other["brandID"])]


def test_cancelling_a_key_for_another_brand_keeps_the_current_one(
    manager_client, oauth_settings, emulator
):
    assert connect(manager_client, emulator).status_code == 302
    old = Connection.objects.get()
    other = emulator.add_brand(name="Other brand")
    response = _add_key(manager_client, emulator.issue_api_key(other["brandID"]))
    assert response.status_code == 302
    manager_client.post(response["Location"], {"action": "cancel"})
    assert list(Connection.objects.all()) == [old]
    old.refresh_from_db()
    assert old.status == "active"


def test_key_for_the_active_api_key_brand_replaces_its_key(
    manager_client, emulator_settings, emulator
):
    first = emulator.issue_api_key()
    assert _add_key(manager_client, first).status_code == 302
    row = Connection.objects.get()
    second = emulator.issue_api_key()
    response = _add_key(manager_client, second)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == CHANGELIST_URL
    assert "already connected" in _messages(response)
    assert list(Connection.objects.all()) == [row]
    row.refresh_from_db()
    assert row.api_key == second and row.status == "active"


def test_key_for_the_active_oauth_brand_replaces_the_tokens(
    manager_client, oauth_settings, emulator, django_capture_on_commit_callbacks
):
    assert connect(manager_client, emulator).status_code == 302
    row = Connection.objects.get()
    tokens = {row.access_token, row.refresh_token}
    key = emulator.issue_api_key(row.brand_id)
    with django_capture_on_commit_callbacks(execute=True):  # revoked after the commit
        response = _add_key(manager_client, key)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert "already connected" in _messages(response)
    assert Connection.objects.count() == 1
    row.refresh_from_db()
    assert row.auth_type == "api_key" and row.api_key == key and row.status == "active"
    assert row.access_token == "" and row.refresh_token == ""
    # The replaced tokens do not stay alive at Omnisend.
    assert {form(e)["token"] for e in emulator.ledger_for("/oauth2/revoke")} == tokens


def test_a_rows_key_is_never_replaced_by_another_brands(
    manager_client, emulator_settings, emulator
):
    key = emulator.issue_api_key()
    assert _add_key(manager_client, key).status_code == 302
    row = Connection.objects.get()
    other = emulator.add_brand(name="Other brand")
    foreign = emulator.issue_api_key(other["brandID"])
    response = manager_client.post(f"{CHANGELIST_URL}{row.pk}/change/", {"new_api_key": foreign})
    assert response.status_code == 200
    html = response.content.decode()
    assert "another Omnisend brand" in html and foreign not in html
    row.refresh_from_db()
    assert row.brand_id == emulator.default_brand_id and row.api_key == key
    assert Connection.objects.count() == 1


def test_a_new_key_reconnects_a_flagged_row(manager_client, emulator_settings, emulator, events):
    key = emulator.issue_api_key()
    assert _add_key(manager_client, key).status_code == 302
    row = Connection.objects.get()
    Connection.objects.filter(pk=row.pk).update(status="needs_reconnect", status_reason="401")
    fresh = emulator.issue_api_key()
    response = manager_client.post(f"{CHANGELIST_URL}{row.pk}/change/", {"new_api_key": fresh})
    assert response.status_code == 302
    row.refresh_from_db()
    assert row.status == "active" and row.api_key == fresh and row.status_reason == ""
    assert events == [("connected", row.brand_id), ("connected", row.brand_id)]


def test_a_key_typed_into_a_retired_row_of_another_brand_asks_first(
    manager_client, emulator_settings, emulator
):
    other = emulator.add_brand(name="Other brand")
    assert _add_key(manager_client, emulator.issue_api_key(other["brandID"])).status_code == 302
    retired = Connection.objects.get()
    manager_client.post(CHANGELIST_URL, {"action": "disconnect", "_selected_action": [retired.pk]})
    assert _add_key(manager_client, emulator.issue_api_key()).status_code == 302
    current = Connection.objects.get(status="active")
    assert current.brand_id == emulator.default_brand_id

    key = emulator.issue_api_key(other["brandID"])
    response = manager_client.post(f"{CHANGELIST_URL}{retired.pk}/change/", {"new_api_key": key})
    assert response.status_code == 302
    assert response["Location"] == f"/omnisend/confirm/{retired.pk}/"
    retired.refresh_from_db()
    assert retired.status == "pending" and retired.api_key == key
    assert list(Connection.objects.active()) == [current]


def test_a_multi_tenant_site_adds_a_brand_key_alongside(
    manager_client, emulator_settings, emulator
):
    """An adapter that routes users per connection (README, "Multi-tenant") keeps one row per
    tenant brand: a key for another brand is added next to the others, retiring nothing."""
    from django.test import override_settings

    values = {**emulator_settings, "ADAPTER": "tests.sync.adapters.TenantKeyAdapter"}
    with override_settings(OMNISEND=values):
        assert _add_key(manager_client, emulator.issue_api_key()).status_code == 302
        other = emulator.add_brand(name="Tenant two")
        response = _add_key(manager_client, emulator.issue_api_key(other["brandID"]))
    assert response.status_code == 302 and response["Location"] == CHANGELIST_URL
    assert sorted(c.brand_id for c in Connection.objects.active()) == sorted(
        [emulator.default_brand_id, other["brandID"]]
    )

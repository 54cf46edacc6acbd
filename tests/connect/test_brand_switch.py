"""Reconnecting: same brand replaces tokens, a different brand waits for a POST (T-OA-22);
the disconnect view. Each test runs for the site's connection and for a shop's (``flow``)."""

from __future__ import annotations

import pytest
from django.test import Client

from django_omnisend.models import Connection
from django_omnisend.signals import connected, disconnected

from .conftest import REDIRECT_URI, each_flow, form

pytestmark = [pytest.mark.django_db, each_flow]


def use_brand(emulator, brand_id):
    """Make the emulator's consent grant tokens for ``brand_id``."""
    emulator.add_client(
        emulator.demo_client_id,
        emulator.demo_client_secret,
        redirect_uris=[REDIRECT_URI],
        brand_id=brand_id,
    )


@pytest.fixture
def events():
    seen = []

    def on_connected(sender, connection, user, owner=None, **kwargs):
        assert owner == connection.owner  # signals carry the connection's owner
        seen.append(("connected", connection.brand_id))

    def on_disconnected(sender, connection, user, owner=None, **kwargs):
        assert owner == connection.owner
        seen.append(("disconnected", connection.brand_id))

    connected.connect(on_connected)
    disconnected.connect(on_disconnected)
    yield seen
    connected.disconnect(on_connected)
    disconnected.disconnect(on_disconnected)


def test_reconnect_to_the_same_brand_replaces_the_tokens(flow, oauth_settings, emulator):
    assert flow.connect(emulator).status_code == 302
    first = Connection.objects.get()
    old_token = first.access_token
    Connection.objects.filter(pk=first.pk).update(status="needs_reconnect", status_reason="401")
    assert flow.connect(emulator).status_code == 302
    again = Connection.objects.get()
    assert again.pk == first.pk
    assert again.status == "active" and again.status_reason == ""
    assert again.access_token != old_token


def test_different_brand_needs_confirmation(flow, oauth_settings, emulator, events):
    assert flow.connect(emulator).status_code == 302
    old = Connection.objects.get()
    other = emulator.add_brand(name="Other brand")
    use_brand(emulator, other["brandID"])
    response = flow.connect(emulator)
    assert response.status_code == 302
    pending = Connection.objects.get(status="pending")
    assert response["Location"] == f"/omnisend/confirm/{pending.pk}/"
    assert response["Referrer-Policy"] == "no-referrer"
    assert pending.brand_id == other["brandID"]
    old.refresh_from_db()
    assert old.status == "active"  # still in use until confirmed
    assert events == [("connected", old.brand_id)]

    page = flow.client.get(response["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Other brand" in html and old.brand_name in html
    assert old.brand_id in html and other["brandID"] in html
    assert "no-store" in page["Cache-Control"]

    revokes_before = len(emulator.ledger_for("/oauth2/revoke"))
    done = flow.client.post(response["Location"], {"action": "confirm"})
    assert done.status_code == 302 and done["Location"] == flow.default_next
    pending.refresh_from_db()
    old.refresh_from_db()
    assert pending.status == "active"
    assert old.status == "revoked" and old.access_token == ""
    assert len(emulator.ledger_for("/oauth2/revoke")) > revokes_before
    assert events[1:] == [("disconnected", old.brand_id), ("connected", other["brandID"])]


def test_switch_away_from_a_connection_needing_reconnect_asks_first(
    flow, oauth_settings, emulator, events
):
    """Issue 15 #2: a flagged connection is still the site's; another brand must be confirmed."""
    assert flow.connect(emulator).status_code == 302
    old = Connection.objects.get()
    Connection.objects.filter(pk=old.pk).update(status="needs_reconnect", status_reason="401")
    other = emulator.add_brand(name="Other brand")
    use_brand(emulator, other["brandID"])

    response = flow.connect(emulator)
    pending = Connection.objects.get(brand_id=other["brandID"])
    assert pending.status == "pending"
    assert response["Location"] == f"/omnisend/confirm/{pending.pk}/"
    old.refresh_from_db()
    assert old.status == "needs_reconnect" and old.refresh_token  # untouched until confirmed
    assert events == [("connected", old.brand_id)]
    page = flow.client.get(response["Location"]).content.decode()
    assert old.brand_id in page and other["brandID"] in page and "Needs reconnect" in page

    old_refresh = old.refresh_token
    done = flow.client.post(response["Location"], {"action": "confirm"})
    assert done.status_code == 302
    old.refresh_from_db()
    pending.refresh_from_db()
    assert pending.status == "active"
    assert old.status == "revoked" and old.refresh_token == ""  # the switch retires it
    assert old_refresh in {form(e)["token"] for e in emulator.ledger_for("/oauth2/revoke")}
    assert events[1:] == [("disconnected", old.brand_id), ("connected", other["brandID"])]


def test_cancelling_a_brand_switch_keeps_the_old_one(flow, oauth_settings, emulator):
    assert flow.connect(emulator).status_code == 302
    old = Connection.objects.get()
    other = emulator.add_brand(name="Other brand")
    use_brand(emulator, other["brandID"])
    response = flow.connect(emulator)
    pending = Connection.objects.get(status="pending")
    token = pending.access_token
    done = flow.client.post(response["Location"], {"action": "cancel"})
    assert done.status_code == 302
    assert not Connection.objects.filter(pk=pending.pk).exists()
    old.refresh_from_db()
    assert old.status == "active"
    assert token in {form(e)["token"] for e in emulator.ledger_for("/oauth2/revoke")}


def test_confirm_requires_post_and_the_same_user(flow, oauth_settings, emulator):
    assert flow.connect(emulator).status_code == 302
    other = emulator.add_brand(name="Other brand")
    use_brand(emulator, other["brandID"])
    response = flow.connect(emulator)
    url = response["Location"]
    stranger = flow.client_for(flow.outsider)
    # Another site manager finds no switch of theirs; shop B's staff may not manage shop A.
    refused = 404 if flow.kind == "site" else 403
    assert stranger.post(url, {"action": "confirm"}).status_code == refused
    assert stranger.get(url).status_code == refused
    assert flow.client.post(url, {"action": "bogus"}).status_code == 400
    assert Connection.objects.filter(status="pending").count() == 1
    assert Connection.objects.filter(status="active").count() == 1


def test_disconnect_view(flow, oauth_settings, emulator, events):
    assert flow.connect(emulator).status_code == 302
    connection = Connection.objects.get()
    assert flow.client.get(flow.disconnect_url).status_code == 405
    response = flow.client.post(flow.disconnect_url)
    assert response.status_code == 302 and response["Location"] == flow.default_next
    connection.refresh_from_db()
    assert connection.status == "revoked"
    assert connection.access_token == "" and connection.refresh_token == ""
    assert emulator.ledger_for("/oauth2/revoke")
    assert events[-1] == ("disconnected", connection.brand_id)


def test_disconnect_view_refuses_non_managers(flow, django_user_model, oauth_settings, emulator):
    assert flow.connect(emulator).status_code == 302
    before = list(Connection.objects.values_list("pk", "status", "fingerprint"))
    revokes = len(emulator.ledger_for("/oauth2/revoke"))
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    for intruder in (user, flow.outsider if flow.kind == "owner" else user):
        client = Client()
        client.force_login(intruder)
        assert client.post(flow.disconnect_url).status_code == 403
    assert list(Connection.objects.values_list("pk", "status", "fingerprint")) == before
    assert len(emulator.ledger_for("/oauth2/revoke")) == revokes

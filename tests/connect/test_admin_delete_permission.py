"""Deleting a connection ends it (its tokens are revoked), so it takes the manage permission.

A staff member with only Django's ``delete_connection`` permission must not be able to end a
connection through the admin's delete view or its "delete selected" action (issue 15, item 7).
"""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from django_omnisend.models import Connection

from .conftest import CHANGELIST_URL

pytestmark = pytest.mark.django_db


@pytest.fixture
def deleter(django_user_model):
    """Staff with view and delete permissions on connections, not the manage permission."""
    user = django_user_model.objects.create_user("deleter", password="pw", is_staff=True)
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="django_omnisend",
            codename__in=["view_connection", "delete_connection"],
        )
    )
    client = Client()
    client.force_login(django_user_model.objects.get(pk=user.pk))
    return client


def _connection(emulator):
    token = emulator.issue_token(client_id=emulator.demo_client_id)
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Shop")
    connection.set_tokens(token["access_token"], token.get("refresh_token"), expires_in=3600)
    connection.save()
    return connection


def test_delete_view_needs_the_manage_permission(deleter, emulator, emulator_settings):
    connection = _connection(emulator)
    url = f"{CHANGELIST_URL}{connection.pk}/delete/"
    assert deleter.get(url).status_code == 403
    assert deleter.post(url, {"post": "yes"}).status_code == 403
    connection.refresh_from_db()
    assert connection.status == "active" and connection.access_token
    assert emulator.ledger_for("/oauth2/revoke") == []


def test_delete_action_needs_the_manage_permission(deleter, emulator, emulator_settings):
    connection = _connection(emulator)
    page = deleter.get(CHANGELIST_URL)
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()
    deleter.post(
        CHANGELIST_URL,
        {"action": "delete_selected", "_selected_action": [connection.pk], "post": "yes"},
    )
    assert Connection.objects.filter(pk=connection.pk, status="active").exists()
    assert emulator.ledger_for("/oauth2/revoke") == []

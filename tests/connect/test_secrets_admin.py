"""Secrets at rest and in the admin (T-ST-1..7), key rotation, the admin's actions and button.

T-ST-1, 2, 3, 5 and 7 run for the site's rows and a shop's (``flow_kind``/``owner``). T-ST-6
(``check --deploy`` without keys) is a settings check and T-ST-8 (the logging filter) sees no
rows, so neither has an owner variant; T-ST-4 for owners is in test_client_tokens.py.
"""

from __future__ import annotations

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import LogEntry
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import connection as db
from django.test import override_settings

from django_omnisend.models import Connection

from .conftest import CHANGELIST_URL, CONNECT_URL, each_flow, form

pytestmark = pytest.mark.django_db

ACCESS = "plain-access-token-0123456789abcdef"
REFRESH = "plain-refresh-token-fedcba9876543210"
KEY = "65f0a1b2c3d4e5f600000001-plainapikeysecret0123456789"


def stored(access=ACCESS, refresh=REFRESH, owner=None, **fields):
    connection = Connection(brand_id=fields.pop("brand_id", "brand-1"), brand_name="Shop", **fields)
    connection.owner = owner
    connection.set_tokens(access, refresh, expires_in=3600)
    connection.save()
    return connection


def raw_rows():
    table = db.ops.quote_name(Connection._meta.db_table)
    with db.cursor() as cursor:
        cursor.execute(f"SELECT access_token, refresh_token, api_key FROM {table}")
        return cursor.fetchall()


def with_keys(*keys):
    from django.conf import settings

    return override_settings(OMNISEND={**settings.OMNISEND, "ENCRYPTION_KEYS": list(keys)})


@each_flow
def test_raw_column_never_holds_plaintext(owner):
    """T-ST-1."""
    stored(owner=owner)
    api = Connection(brand_id="brand-2")
    # One active connection per owner: a shop's key row belongs to a second shop.
    api.owner = owner and type(owner).objects.create(name="Shop B")
    api.set_api_key(KEY)
    api.save()
    rows = raw_rows()
    text = repr(rows)
    for secret in (ACCESS, REFRESH, KEY):
        assert secret not in text
    assert all(v.startswith("gAAAAA") for row in rows for v in row if v)


@each_flow
def test_dumpdata_has_no_plaintext_and_loaddata_round_trips(tmp_path, owner):
    """T-ST-2."""
    connection = stored(owner=owner)
    out = io.StringIO()
    call_command("dumpdata", "django_omnisend.connection", stdout=out)
    dump = out.getvalue()
    assert ACCESS not in dump and REFRESH not in dump
    fixture = tmp_path / "connections.json"
    fixture.write_text(dump)
    Connection.objects.all().delete()
    call_command("loaddata", str(fixture), verbosity=0)
    again = Connection.objects.get(pk=connection.pk)
    assert again.access_token == ACCESS and again.refresh_token == REFRESH
    assert again.owner == owner
    assert ACCESS not in repr(raw_rows())
    assert json.loads(dump)[0]["fields"]["access_token"].startswith("gAAAAA")


def test_str_and_repr_show_no_secret():
    connection = stored()
    for text in (str(connection), repr(connection)):
        assert ACCESS not in text and ACCESS[-4:] not in text
        assert REFRESH not in text


@each_flow
def test_rotation_with_two_keys(owner):
    """T-ST-3 plus the command's idempotence and its report of undecryptable rows."""
    old, new, lost = (Fernet.generate_key().decode() for _ in range(3))
    with with_keys(old):
        first = stored(owner=owner)
        second = stored(access="second-access", refresh="", brand_id="brand-2")
        empty = Connection.objects.create(brand_id="brand-3", auth_type="oauth", status="revoked")
    with with_keys(lost):
        broken = stored(access="lost-access", refresh="lost-refresh", brand_id="brand-4")
    before = raw_rows()
    with with_keys(new, old):
        assert Connection.objects.get(pk=first.pk).access_token == ACCESS  # old still opens
        out, err = io.StringIO(), io.StringIO()
        call_command("omnisend_rotate_keys", "--batch-size", "1", stdout=out, stderr=err)
        assert "Re-encrypted 3 secret(s) in 2 connection(s)" in out.getvalue()
        assert "1 undecryptable" in out.getvalue()
        assert f"Connection {broken.pk}" in err.getvalue()
        assert "lost" not in err.getvalue() and "gAAAAA" not in err.getvalue()
    assert raw_rows() != before
    with with_keys(new):  # the old key is gone: everything still opens
        assert Connection.objects.get(pk=first.pk).access_token == ACCESS
        assert Connection.objects.get(pk=first.pk).refresh_token == REFRESH
        assert Connection.objects.get(pk=second.pk).access_token == "second-access"
        assert Connection.objects.get(pk=empty.pk).access_token == ""
        again = io.StringIO()
        call_command("omnisend_rotate_keys", stdout=again, stderr=io.StringIO())
        assert "Re-encrypted 3 secret(s) in 2 connection(s)" in again.getvalue()
        assert Connection.objects.get(pk=first.pk).access_token == ACCESS
    assert Connection.objects.get(pk=broken.pk).status == Connection.Status.NEEDS_RECONNECT
    with with_keys(lost):  # the broken row's ciphertext was left alone
        assert Connection.objects.get(pk=broken.pk).access_token == "lost-access"


def test_check_deploy_errors_without_encryption_keys():
    """T-ST-6."""
    no_keys = override_settings(DEBUG=False, OMNISEND={"API_KEY": "k", "ENCRYPTION_KEYS": []})
    with no_keys, pytest.raises(SystemCheckError) as exc:
        call_command("check", "--deploy")
    assert "django_omnisend.E006" in str(exc.value)


# -- admin ----------------------------------------------------------------------------------


@each_flow
def test_admin_pages_show_no_secret(admin_client, owner):
    """T-ST-5 for OAuth rows: list, change page, history."""
    connection = stored(scopes=["contacts.read"], owner=owner)
    pages = [
        admin_client.get(CHANGELIST_URL),
        admin_client.get(f"{CHANGELIST_URL}{connection.pk}/change/"),
        admin_client.get(f"{CHANGELIST_URL}{connection.pk}/history/"),
    ]
    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        for secret in (ACCESS, REFRESH):
            assert secret not in html and secret[-6:] not in html
        assert "gAAAAA" not in html
    assert connection.fingerprint in pages[0].content.decode()


def test_admin_api_key_is_write_only_and_probed(manager_client, emulator, emulator_settings):
    """T-ST-5/T-ST-7: add with a key (probed), change with an empty key keeps it, history."""
    key = emulator.issue_api_key()
    response = manager_client.post(f"{CHANGELIST_URL}add/", {"new_api_key": key})
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = Connection.objects.get()
    assert connection.auth_type == "api_key" and connection.api_key == key
    assert connection.brand_id == emulator.default_brand_id and connection.status == "active"
    assert emulator.ledger_for("/api/brands/current")

    change_url = f"{CHANGELIST_URL}{connection.pk}/change/"
    page = manager_client.get(change_url).content.decode()
    assert key not in page and key[-8:] not in page
    assert 'type="password"' in page

    # Empty = keep.
    assert manager_client.post(change_url, {"new_api_key": ""}).status_code == 302
    connection.refresh_from_db()
    assert connection.api_key == key

    # A new key replaces it; a bad key is refused without being echoed.
    other = emulator.issue_api_key()
    assert manager_client.post(change_url, {"new_api_key": other}).status_code == 302
    connection.refresh_from_db()
    assert connection.api_key == other
    bad = manager_client.post(change_url, {"new_api_key": "nope-invalidkey123"})
    assert bad.status_code == 200
    assert "nope-invalidkey123" not in bad.content.decode()
    assert "401" in bad.content.decode()

    history = manager_client.get(f"{change_url.rsplit('change/', 1)[0]}history/")
    messages = " ".join(e.get_change_message() for e in LogEntry.objects.all())
    messages += " ".join(e.change_message for e in LogEntry.objects.all())
    for secret in (key, other):
        assert secret not in messages and secret not in history.content.decode()
        assert secret[-6:] not in messages
    assert LogEntry.objects.count() >= 3


@each_flow
def test_admin_keeps_an_empty_key_of_an_existing_row(
    manager_client, emulator, emulator_settings, owner
):
    """T-ST-5/T-ST-7 on a row that exists (an owner's rows are made by its own flow, never
    added in the admin): an empty key keeps the key, a new key stays with the row's owner."""
    from django_omnisend import binding, connect

    key = emulator.issue_api_key()
    brand = connect.probe_credentials(api_key=key)
    row = binding.bind(binding.Credential.from_api_key(key), brand, None, owner=owner).connection
    change_url = f"{CHANGELIST_URL}{row.pk}/change/"
    page = manager_client.get(change_url)
    assert page.status_code == 200 and 'type="password"' in page.content.decode()
    assert key not in page.content.decode() and key[-8:] not in page.content.decode()
    assert manager_client.post(change_url, {"new_api_key": ""}).status_code == 302
    row.refresh_from_db()
    assert row.api_key == key and row.owner == owner
    other = emulator.issue_api_key()
    assert manager_client.post(change_url, {"new_api_key": other}).status_code == 302
    row.refresh_from_db()
    assert row.api_key == other and row.owner == owner
    assert Connection.objects.count() == 1
    messages = " ".join(e.get_change_message() + e.change_message for e in LogEntry.objects.all())
    history = manager_client.get(f"{CHANGELIST_URL}{row.pk}/history/").content.decode()
    for secret in (key, other):
        assert secret not in messages and secret[-6:] not in messages
        assert secret not in history
    assert str(row) and key[-4:] not in str(row) and other[-4:] not in str(row)


@each_flow
def test_wrong_key_admin_pages_do_not_500(admin_client, owner):
    """T-ST-4 in the admin: the list and the change page render and show "needs reconnect"."""
    connection = stored(owner=owner)
    with with_keys(Fernet.generate_key().decode()):
        page = admin_client.get(CHANGELIST_URL)
        assert page.status_code == 200
        assert "needs a reconnect" in page.content.decode()
        change = admin_client.get(f"{CHANGELIST_URL}{connection.pk}/change/")
        assert change.status_code == 200
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT


def test_connect_button_on_the_changelist(admin_client, oauth_settings):
    html = admin_client.get(CHANGELIST_URL).content.decode()
    assert f'action="{CONNECT_URL}"' in html
    assert 'method="post"' in html
    assert "Connect Omnisend" in html


def test_no_connect_button_without_permission(db, django_user_model, oauth_settings):
    from django.contrib.auth.models import Permission
    from django.test import Client

    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client = Client()
    client.force_login(user)
    html = client.get(CHANGELIST_URL).content.decode()
    assert CONNECT_URL not in html


def _action(client, action, *connections):
    return client.post(
        CHANGELIST_URL,
        {"action": action, "_selected_action": [c.pk for c in connections]},
        follow=True,
    )


def _emulator_connection(emulator, **kwargs):
    token = emulator.issue_token(client_id=emulator.demo_client_id)
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Old name")
    connection.set_tokens(token["access_token"], token.get("refresh_token"), expires_in=3600)
    connection.scopes = token["scope"].split()
    for k, v in kwargs.items():
        setattr(connection, k, v)
    connection.save()
    return connection, token


def test_action_test_connection(admin_client, emulator, emulator_settings):
    connection, token = _emulator_connection(emulator, status="needs_reconnect")
    response = _action(admin_client, "test_connection", connection)
    assert "works" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == "active" and connection.checked_at is not None
    assert connection.brand_name != "Old name"
    emulator.revoke_token(token["access_token"])
    emulator.revoke_token(token["refresh_token"])
    response = _action(admin_client, "test_connection", connection)
    assert "401" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == "needs_reconnect"


def test_action_refresh_token(admin_client, emulator, emulator_settings):
    connection, token = _emulator_connection(emulator)
    response = _action(admin_client, "refresh_token", connection)
    assert "Refreshed" in response.content.decode()
    connection.refresh_from_db()
    assert connection.access_token != token["access_token"]
    assert [form(e)["grant_type"] for e in emulator.ledger_for("/oauth2/token")] == [
        "refresh_token"
    ]


def test_action_disconnect(admin_client, emulator, emulator_settings):
    connection, _token = _emulator_connection(emulator)
    response = _action(admin_client, "disconnect", connection)
    assert "Disconnected 1" in response.content.decode()
    connection.refresh_from_db()
    assert connection.status == "revoked" and connection.access_token == ""
    assert len(emulator.ledger_for("/oauth2/revoke")) == 2


def test_view_only_user_sees_an_api_key_row_without_the_key(db, django_user_model):
    from django.contrib.auth.models import Permission
    from django.test import Client

    connection = Connection(brand_id="brand-9", brand_name="Keyed")
    connection.set_api_key(KEY)
    connection.save()
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_connection"))
    client = Client()
    client.force_login(user)
    page = client.get(f"{CHANGELIST_URL}{connection.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert KEY not in html and KEY[-6:] not in html
    assert (
        client.post(f"{CHANGELIST_URL}{connection.pk}/change/", {"new_api_key": "x"}).status_code
        == 403
    )


def test_deleting_a_connection_in_the_admin_revokes_its_tokens(
    admin_client, emulator, emulator_settings
):
    connection, token = _emulator_connection(emulator)
    response = admin_client.post(f"{CHANGELIST_URL}{connection.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Connection.objects.exists()
    revoked = {form(e)["token"] for e in emulator.ledger_for("/oauth2/revoke")}
    assert revoked == {token["access_token"], token["refresh_token"]}

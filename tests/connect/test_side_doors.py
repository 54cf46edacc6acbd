"""Side doors around the connect flow (issue 15, item 10).

* Our connect, confirm and callback pages forbid framing themselves (``X-Frame-Options: DENY``)
  instead of relying on the host project's clickjacking middleware.
* ``django_omnisend.W008`` warns when sessions live in signed cookies: the PKCE verifier of a
  started flow would sit in the browser.
* A pickled ``Connection`` (a cache, a task queue) carries no secret.
"""

from __future__ import annotations

import io
import pickle

import pytest
from django.conf import settings
from django.core.management import call_command
from django.test import override_settings

from django_omnisend.models import Connection

from .conftest import CALLBACK_URL, each_flow
from .test_brand_switch import use_brand

pytestmark = pytest.mark.django_db

ACCESS = "plain-access-token-0123456789abcdef"
REFRESH = "plain-refresh-token-fedcba9876543210"
KEY = "65f0a1b2c3d4e5f600000001-plainapikeysecret0123456789"


# -- clickjacking ---------------------------------------------------------------------------


@each_flow
def test_connect_confirm_and_callback_pages_deny_framing(flow, oauth_settings, emulator):
    """For the site's connection and a shop's; the 403 of another shop's staff too."""
    # The test settings have no XFrameOptionsMiddleware: the header must come from the views.
    assert not any("XFrameOptions" in m for m in settings.MIDDLEWARE)
    responses = {
        "connect page": flow.client.get(flow.connect_url),
        "connect start": flow.start().response,
        "callback error": flow.client.get(CALLBACK_URL, {"state": "nope", "code": "x"}),
    }
    assert flow.connect(emulator).status_code == 302
    other = emulator.add_brand(name="Other brand")
    use_brand(emulator, other["brandID"])
    switch = flow.connect(emulator)
    responses["callback redirect"] = switch
    responses["confirm page"] = flow.client.get(switch["Location"])
    responses["confirm nothing"] = flow.client.get("/omnisend/confirm/999999/")
    if flow.kind == "owner":
        outsider = flow.client_for(flow.outsider)
        responses["refused"] = outsider.get(flow.connect_url)
        assert responses["refused"].status_code == 403
    responses["confirm post"] = flow.client.post(switch["Location"], {"action": "cancel"})
    for name, response in responses.items():
        assert response.get("X-Frame-Options") == "DENY", name


# -- signed-cookie sessions -----------------------------------------------------------------


def _check_output(**overrides):
    values = {
        **settings.OMNISEND,
        "CLIENT_ID": "client",
        "CLIENT_SECRET": "secret",
        "REDIRECT_URI": "https://testserver/omnisend/callback/",
    }
    err = io.StringIO()
    with override_settings(OMNISEND=values, **overrides):
        call_command("check", stdout=io.StringIO(), stderr=err)
    return err.getvalue()


def test_signed_cookie_sessions_warn():
    signed = "django.contrib.sessions.backends.signed_cookies"
    assert "django_omnisend.W008" in _check_output(SESSION_ENGINE=signed)
    assert "django_omnisend.W008" not in _check_output(
        SESSION_ENGINE="django.contrib.sessions.backends.db"
    )


def test_signed_cookie_sessions_do_not_warn_without_oauth():
    err = io.StringIO()
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        call_command("check", stdout=io.StringIO(), stderr=err)
    assert "django_omnisend.W008" not in err.getvalue()


# -- pickling -------------------------------------------------------------------------------


def test_pickled_connection_holds_no_secret():
    oauth = Connection(brand_id="brand-1", brand_name="Shop")
    oauth.set_tokens(ACCESS, REFRESH, expires_in=3600)
    oauth.save()
    keyed = Connection(brand_id="brand-2", brand_name="Keyed")
    keyed.set_api_key(KEY)
    keyed.save()
    for connection in (oauth, keyed, Connection.objects.get(pk=oauth.pk)):
        data = pickle.dumps(connection)
        for secret in (ACCESS, REFRESH, KEY):
            assert secret.encode() not in data
        assert b"gAAAAA" not in data  # nor its ciphertext

    # Unpickled, the row reads its secrets again from the database when asked for them.
    again = pickle.loads(pickle.dumps(oauth))
    assert again.pk == oauth.pk and again.brand_id == "brand-1"
    assert again.access_token == ACCESS and again.refresh_token == REFRESH
    keyed_again = pickle.loads(pickle.dumps(keyed))
    assert keyed_again.api_key == KEY
    # Saving an unpickled row does not wipe what it did not carry.
    fresh = pickle.loads(pickle.dumps(oauth))
    fresh.brand_name = "Renamed"
    fresh.save()
    stored = Connection.objects.get(pk=oauth.pk)
    assert stored.brand_name == "Renamed" and stored.access_token == ACCESS

"""The ``products.*`` scopes: requested only with catalog sync on; a missing grant is named."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import checks
from django.test import override_settings

from django_omnisend.api.oauth import build_authorization_request
from django_omnisend.conf import omnisend_settings
from django_omnisend.models import Connection

CATALOG_SCOPES = {"products.read", "products.write"}


def requested_scopes(settings_dict) -> set[str]:
    with override_settings(OMNISEND=settings_dict):
        request = build_authorization_request(
            settings_dict["REDIRECT_URI"], client_id=settings_dict["CLIENT_ID"]
        )
    return set(parse_qs(urlsplit(request.url).query)["scope"][0].split())


def test_products_scopes_only_when_catalog_sync_is_on(emulator_settings):
    off = requested_scopes(emulator_settings)
    assert not off & CATALOG_SCOPES and "contacts.write" in off
    on = requested_scopes(
        {**emulator_settings, "PRODUCT_ADAPTER": "tests.shop.omnisend.ShopProductAdapter"}
    )
    assert on == off | CATALOG_SCOPES
    # Scopes a site lists itself are not repeated.
    listed = {
        **emulator_settings,
        "PRODUCT_ADAPTER": "tests.shop.omnisend.ShopProductAdapter",
        "SCOPES": [*omnisend_settings.get("SCOPES"), "products.read"],
    }
    with override_settings(OMNISEND=listed):
        assert omnisend_settings.scopes.count("products.read") == 1


@pytest.mark.django_db
def test_a_connection_without_the_scope_is_reported(emulator_settings):
    adapter = "tests.shop.omnisend.ShopProductAdapter"
    Connection.objects.create(
        auth_type=Connection.AuthType.OAUTH,
        brand_id="b1",
        scopes=["contacts.read", "contacts.write", "events.write", "brands.read"],
    )
    with override_settings(OMNISEND={**emulator_settings, "PRODUCT_ADAPTER": adapter}):
        messages = checks.run_checks(databases=["default"])
    (warning,) = [m for m in messages if "products.write" in m.msg]
    assert warning.id == "django_omnisend.W009" and "reconnect" in warning.hint.lower()
    with override_settings(OMNISEND=emulator_settings):
        messages = checks.run_checks(databases=["default"])
    assert not [m for m in messages if "products.write" in m.msg]


def test_the_check_names_a_bad_adapter(emulator_settings):
    with override_settings(OMNISEND={**emulator_settings, "PRODUCT_ADAPTER": "nowhere.Adapter"}):
        messages = checks.run_checks()
    (error,) = [m for m in messages if "PRODUCT_ADAPTER" in m.msg]
    assert error.id == "django_omnisend.E017"

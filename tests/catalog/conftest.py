"""Catalog sync fixtures: the test shop's adapter on, and every catalog request checked.

``catalog_settings`` is ``sync_settings`` with ``PRODUCT_ADAPTER`` naming the test shop's
adapter (tests/shop/omnisend.py). ``catalog_requests()`` lists the emulator's product,
category and batch requests, each request body validated against Omnisend's facts-only
OpenAPI (tests/openapi.py) as it is read, so a test that looks at them checks them all.
"""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.openapi import validate_request, validate_response

ADAPTER = "tests.shop.omnisend.ShopProductAdapter"
CATALOG_PATHS = ("/api/products", "/api/product-categories", "/api/batches")


@pytest.fixture
def catalog_settings(sync_settings):
    omnisend = {**sync_settings, "PRODUCT_ADAPTER": ADAPTER}
    with override_settings(OMNISEND=omnisend):
        yield omnisend


@pytest.fixture
def catalog_requests(emulator):
    def requests():
        entries = [e for e in emulator.ledger if e.path.startswith(CATALOG_PATHS)]
        for entry in entries:
            if entry.method in ("POST", "PUT", "PATCH"):
                validate_request(entry.method, entry.path, entry.json)
            if entry.status:
                validate_response(entry.method, entry.path, entry.status, entry.response_body)
        return entries

    return requests

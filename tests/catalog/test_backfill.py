"""``omnisend_sync_products``: the whole catalog through product and category batches."""

from __future__ import annotations

import math
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command

from tests.shop.models import Category, Product

pytestmark = pytest.mark.django_db(transaction=True)


def shop(n: int) -> None:
    """``n`` products in two categories, written without signals (a legacy import)."""
    shoes = Category.objects.create(slug="shoes", title="Shoes")
    Category.objects.create(slug="bags", title="Bags")
    Product.objects.bulk_create(
        Product(sku=f"p{i:04d}", title=f"Product {i}", price=Decimal("9.99"), category=shoes)
        for i in range(n)
    )


def batch_posts(catalog_requests, endpoint):
    return [
        e
        for e in catalog_requests()
        if e.method == "POST" and e.path == "/api/batches" and e.json["endpoint"] == endpoint
    ]


@pytest.mark.parametrize("n", [1, 100, 250])
def test_backfill_sends_n_products_in_ceil_n_over_100_batches(
    catalog_settings, emulator, catalog_requests, n
):
    shop(n)
    out = StringIO()
    call_command("omnisend_sync_products", stdout=out)
    assert len(batch_posts(catalog_requests, "products")) == math.ceil(n / 100)
    assert len(batch_posts(catalog_requests, "categories")) == 1
    assert sorted(p["id"] for p in emulator.products()) == [f"p{i:04d}" for i in range(n)]
    assert sorted(c["categoryID"] for c in emulator.categories()) == ["bags", "shoes"]
    assert f"{n} products sent" in out.getvalue()


def test_a_second_backfill_replaces_what_exists(catalog_settings, emulator, catalog_requests):
    shop(3)
    call_command("omnisend_sync_products", stdout=StringIO())
    Product.objects.filter(sku="p0001").update(title="Renamed")
    Category.objects.filter(slug="bags").update(title="Handbags")
    out = StringIO()
    call_command("omnisend_sync_products", stdout=out)
    assert len(emulator.products()) == 3
    assert next(p for p in emulator.products() if p["id"] == "p0001")["title"] == "Renamed"
    assert {c["categoryID"]: c["title"] for c in emulator.categories()}["bags"] == "Handbags"
    puts = [e for e in catalog_requests() if e.path == "/api/batches" and e.json["method"] == "PUT"]
    assert [e.json["endpoint"] for e in puts] == ["categories", "products"]
    assert "3 products sent" in out.getvalue()


def test_dry_run_sends_nothing_and_names_invalid_products(
    catalog_settings, emulator, catalog_requests
):
    shop(2)
    Product.objects.create(sku="bad", title="t" * 300, price=Decimal("1.00"))
    out = StringIO()
    call_command("omnisend_sync_products", "--dry-run", stdout=out)
    assert catalog_requests() == []
    text = out.getvalue()
    assert "2 products would be sent" in text and "2 categories" in text
    assert "bad" in text and "title" in text


def test_invalid_products_are_left_out_and_reported(catalog_settings, emulator):
    shop(2)
    Product.objects.create(sku="bad", title="t" * 300, price=Decimal("1.00"))
    out = StringIO()
    call_command("omnisend_sync_products", stdout=out)
    assert sorted(p["id"] for p in emulator.products()) == ["p0000", "p0001"]
    assert "1 invalid" in out.getvalue() and "bad" in out.getvalue()


def test_backfill_refuses_without_an_adapter(sync_settings):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="PRODUCT_ADAPTER"):
        call_command("omnisend_sync_products", stdout=StringIO())

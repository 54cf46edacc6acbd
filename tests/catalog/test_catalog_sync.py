"""Catalog sync through the outbox: saves and deletes of shop models reach the emulator.

Every test drives real saves of the test shop's models (tests/shop) and a real drain over
HTTP to the emulator; every product/category request body is validated against Omnisend's
spec by ``catalog_requests``.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from django.utils import timezone

from django_omnisend import exceptions
from django_omnisend.connect import get_client
from django_omnisend.models import OutboxItem
from django_omnisend.sync import drain
from tests.shop.models import Category, Product, Variant

pytestmark = pytest.mark.django_db(transaction=True)


def make_product(sku="shoe-1", title="Runner", **fields) -> Product:
    with transaction.atomic():
        shoes, _ = Category.objects.get_or_create(slug="shoes", defaults={"title": "Shoes"})
        product = Product.objects.create(
            sku=sku, title=title, price=Decimal("59.90"), category=shoes, **fields
        )
        Variant.objects.create(product=product, sku=f"{sku}-42", title="42", price="59.90", stock=3)
        Variant.objects.create(product=product, sku=f"{sku}-43", title="43", price="61.50", stock=0)
    return product


def catalog_items(**filters):
    kinds = [OutboxItem.Kind.PRODUCT_UPSERT, OutboxItem.Kind.PRODUCT_DELETE]
    return OutboxItem.objects.filter(kind__in=kinds, **filters)


def stored(emulator, sku):
    return next((p for p in emulator.products() if p["id"] == sku), None)


def test_a_saved_product_reaches_the_catalog(catalog_settings, emulator, catalog_requests):
    make_product()
    assert catalog_items(state=OutboxItem.State.PENDING).count() == 1
    result = drain()
    assert result.catalog_sent == 2  # the category and the product
    product = stored(emulator, "shoe-1")
    assert product["title"] == "Runner" and product["currency"] == "EUR"
    assert product["url"] == "https://shop.example.com/p/shoe-1/"
    assert product["categoryIDs"] == ["shoes"] and product["status"] == "inStock"
    assert [(v["id"], v["price"], v["status"]) for v in product["variants"]] == [
        ("shoe-1-42", 59.9, "inStock"),
        ("shoe-1-43", 61.5, "outOfStock"),
    ]
    assert [c["categoryID"] for c in emulator.categories()] == ["shoes"]
    methods = [(e.method, e.path, e.status) for e in catalog_requests()]
    assert ("POST", "/api/products", 201) in methods
    assert ("POST", "/api/product-categories", 201) in methods
    assert catalog_items(state=OutboxItem.State.SENT).count() == 1


def test_an_edit_replaces_the_product_with_one_put(catalog_settings, emulator, catalog_requests):
    product = make_product()
    drain()
    before = len(catalog_requests())
    product.title = "Runner 2"
    product.save()
    variant = product.variants.get(sku="shoe-1-43")
    variant.stock = 5
    variant.save()  # a variant's save re-sends its product (coalesced with the edit)
    assert catalog_items(state=OutboxItem.State.PENDING).count() == 1
    drain()
    updated = stored(emulator, "shoe-1")
    assert updated["title"] == "Runner 2"
    assert updated["variants"][1]["status"] == "inStock"
    sent = [(e.method, e.path, e.status) for e in catalog_requests()[before:]]
    assert sent == [("PUT", "/api/products/shoe-1", 200)]


def test_a_delete_removes_the_product(catalog_settings, emulator, catalog_requests):
    product = make_product()
    drain()
    product.delete()
    drain()
    with get_client() as client, pytest.raises(exceptions.NotFound):
        client.products.get("shoe-1")
    assert stored(emulator, "shoe-1") is None
    assert ("DELETE", "/api/products/shoe-1", 204) in [
        (e.method, e.path, e.status) for e in catalog_requests()
    ]
    assert catalog_items(state=OutboxItem.State.PENDING).count() == 0


def test_unpublishing_removes_the_product(catalog_settings, emulator, catalog_requests):
    product = make_product()
    drain()
    product.published = False
    product.save()
    drain()
    assert stored(emulator, "shoe-1") is None


def test_a_rolled_back_save_sends_nothing(catalog_settings, emulator, catalog_requests):
    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction.atomic():
        make_product()
        raise Abort
    assert OutboxItem.objects.count() == 0
    drain()
    assert catalog_requests() == []
    assert emulator.products() == []


def test_many_saves_coalesce_into_one_request(catalog_settings, emulator, catalog_requests):
    product = make_product()
    for n in range(10):
        product.title = f"Runner v{n}"
        product.save()
    assert catalog_items(state=OutboxItem.State.PENDING).count() == 1
    drain()
    product_requests = [e for e in catalog_requests() if e.path.startswith("/api/products")]
    assert [(e.method, e.status) for e in product_requests] == [("POST", 201)]
    assert stored(emulator, "shoe-1")["title"] == "Runner v9"


def test_a_delete_after_pending_upserts_wins(catalog_settings, emulator, catalog_requests):
    product = make_product()
    product.title = "Changed"
    product.save()
    product.delete()
    (item,) = catalog_items(state=OutboxItem.State.PENDING)
    assert item.kind == OutboxItem.Kind.PRODUCT_DELETE
    drain()
    product_requests = [e for e in catalog_requests() if e.path.startswith("/api/products")]
    # Never created in Omnisend: the delete finds nothing (404), which is done.
    assert [(e.method, e.status) for e in product_requests] == [("DELETE", 404)]
    assert emulator.products() == []
    assert catalog_items(state=OutboxItem.State.SENT).count() == 1


@pytest.mark.parametrize("fault", ["503", "reset_after"])
def test_a_failed_create_is_retried_without_a_duplicate(
    catalog_settings, emulator, catalog_requests, fault
):
    make_product()
    emulator.add_fault(route="POST /api/products", kind=fault, times=1)
    result = drain()
    assert result.retried == 1
    (item,) = catalog_items(state=OutboxItem.State.PENDING)
    assert item.attempts == 1 and item.next_attempt_at > timezone.now()
    OutboxItem.objects.filter(pk=item.pk).update(next_attempt_at=timezone.now())
    drain()
    assert [p["id"] for p in emulator.products()] == ["shoe-1"]
    item.refresh_from_db()
    assert item.state == OutboxItem.State.SENT
    # A create that Omnisend applied before the connection broke answers 409: replaced.
    product_requests = [(e.method, e.status) for e in catalog_requests() if "/products" in e.path]
    expected = {"503": [("POST", 503), ("POST", 201)]}.get(
        fault, [("POST", 0), ("POST", 409), ("PUT", 200)]
    )
    assert product_requests == expected


def test_an_invalid_product_fails_with_a_clear_error(catalog_settings, emulator, catalog_requests):
    make_product(title="x" * 300)
    drain()
    (item,) = catalog_items()
    assert item.state == OutboxItem.State.DEAD
    assert "title" in item.last_error and "255" in item.last_error
    assert "ProductAdapter" in item.last_error
    assert [e for e in catalog_requests() if "/products" in e.path] == []


def test_a_category_edit_is_sent(catalog_settings, emulator, catalog_requests):
    make_product()
    drain()
    shoes = Category.objects.get(slug="shoes")
    shoes.title = "Trainers"
    shoes.save()
    drain()
    assert [c["title"] for c in emulator.categories()] == ["Trainers"]
    methods = [(e.method, e.status) for e in catalog_requests() if "categories" in e.path]
    assert methods == [("POST", 201), ("PATCH", 200)]


def test_nothing_is_queued_when_catalog_sync_is_off(sync_settings, emulator):
    make_product()
    assert OutboxItem.objects.count() == 0


def test_marking_costs_two_statements_per_save(catalog_settings, emulator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    product = make_product()
    for _ in range(2):  # with a pending item (changed in place), then without one
        with CaptureQueriesContext(connection) as queries:
            product.title += "!"
            product.save()
        outbox = [q["sql"] for q in queries if "django_omnisend_outboxitem" in q["sql"]]
        assert len(queries) == 3 and len(outbox) == 2, [q["sql"] for q in queries]
        drain()


def test_a_save_while_the_product_is_in_flight_waits_for_its_lease(catalog_settings, emulator):
    product = make_product()
    until = timezone.now() + timedelta(seconds=120)
    catalog_items().update(lease_owner="other-worker#1", lease_until=until)
    product.title = "Edited in flight"
    product.save()
    old, new = catalog_items(state=OutboxItem.State.PENDING).order_by("pk")
    assert old.payload["create"] and old.lease_owner == "other-worker#1"
    assert new.next_attempt_at > until and new.kind == OutboxItem.Kind.PRODUCT_UPSERT

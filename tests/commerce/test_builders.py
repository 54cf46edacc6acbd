"""Each recommended-event builder against Omnisend's documented schema and version."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from django.utils import timezone

from django_omnisend import commerce as c
from tests.event_facts.schemas import documented_version, facts, validate_properties

from . import shop

NOW = timezone.now()


def _every_event() -> list[c.RecommendedEvent]:
    fulfilled = shop.order(
        fulfillment_status="fulfilled",
        tracking=c.Tracking("https://track.example.com/1", code="T1", courier_title="DHL"),
    )
    refunded = shop.order(
        payment_status="refunded",
        total_refunded_amount=Decimal("43.97"),
        total_refunded_tax_amount=Decimal("7.63"),
        refunded_line_items=[shop.line(1)],
    )
    return [
        c.placed_order(shop.order()),
        c.paid_for_order(shop.order(), at=NOW),
        c.order_fulfilled(fulfilled, at=NOW),
        c.order_canceled(shop.order(cancel_reason="Changed mind"), at=NOW),
        c.order_refunded(refunded, at=NOW),
        *c.ordered_products(shop.order()),
        c.started_checkout(shop.cart(), at=NOW),
        c.added_product_to_cart(shop.cart(), shop.line(1), at=NOW),
        c.viewed_product(shop.product(), at=NOW),
    ]


def test_every_recommended_event_has_a_builder():
    assert {e.name for e in _every_event()} == set(facts()["events"])


@pytest.mark.parametrize("event", _every_event(), ids=lambda e: e.name)
def test_builder_output_matches_the_documented_schema_and_version(event):
    validate_properties(event.name, event.properties)
    assert event.version == documented_version(event.name)


def test_minimal_order_matches_the_schema():
    minimal = c.Order("9", "USD", 10, [c.LineItem("sku9", "Mug", 10)], created_at=NOW)
    for event in c.order_events(minimal):
        validate_properties(event.name, event.properties)


def test_the_schema_check_catches_a_wrong_shape():
    """The facts are strict enough to fail: a float-string price, a lower-case currency."""
    props = c.placed_order(shop.order()).properties
    with pytest.raises(AssertionError, match="totalPrice"):
        validate_properties("placed order", {**props, "totalPrice": "43.97"})
    with pytest.raises(AssertionError, match="currency"):
        validate_properties("placed order", {**props, "currency": "eur"})


def test_amounts_are_decimals_in_and_numbers_out():
    props = c.placed_order(shop.order()).properties
    assert props["totalPrice"] == 43.97 and isinstance(props["totalPrice"], float)
    assert props["shippingPrice"] == 0 and isinstance(props["shippingPrice"], int)
    assert props["lineItems"][0]["productPrice"] == 19.99
    assert props["subTotalPrice"] == 44.98  # 2 * 19.99 + 5


@pytest.mark.parametrize(
    ("build", "field", "advice"),
    [
        (lambda: shop.order(total_price=43.97), "total_price", "Decimal"),
        (lambda: shop.order(currency="eur"), "currency", "ISO 4217"),
        (lambda: shop.order(line_items=[]), "line_items", "at least one"),
        (lambda: shop.order(payment_status="done"), "payment_status", "awaitingPayment"),
        (lambda: shop.order(line_items=[shop.line(quantity=0)]), "line_items[0].quantity", "1"),
        (lambda: shop.order(line_items=[shop.line(url="/p/1")]), "line_items[0].url", "absolute"),
        (lambda: shop.order(created_at=datetime(2026, 1, 1)), "created_at", "timezone-aware"),
        (lambda: shop.order(order_id=" "), "order_id", "required"),
        (lambda: shop.order(order_number="A-1"), "order_number", "whole number"),
    ],
)
def test_invalid_shop_data_names_the_field_and_what_to_do(build, field, advice):
    with pytest.raises(c.CommerceError) as caught:
        c.placed_order(build())
    assert caught.value.field == field
    assert advice in str(caught.value)


def test_refund_without_amount_is_refused():
    with pytest.raises(c.CommerceError, match="total_refunded_amount"):
        c.order_refunded(shop.order(), at=NOW)


def test_event_ids_are_fixed_per_order_and_event():
    first, again = c.order_events(shop.order("1001")), c.order_events(shop.order("1001"))
    assert [e.event_id for e in first] == [e.event_id for e in again]
    other = c.order_events(shop.order("1002"))
    ids = {e.event_id for e in first} | {e.event_id for e in other}
    assert len(ids) == len(first) + len(other)  # distinct per event name, order and line

"""Sample shop data for the commerce tests: one of every optional part, amounts as Decimals."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from django_omnisend import commerce as c


def line(n: int = 1, **fields) -> c.LineItem:
    values = {
        "product_id": f"p{n}",
        "title": f"Product {n}",
        "price": Decimal("19.99"),
        "quantity": 2,
        "variant_id": f"p{n}-blue",
        "variant_title": "Blue",
        "sku": f"SKU-{n}",
        "url": f"https://shop.example.com/p/{n}",
        "image_url": f"https://shop.example.com/p/{n}.jpg",
        "description": "A product",
        "vendor": "ACME",
        "discount": Decimal("1.00"),
        "strike_through_price": Decimal("24.99"),
        "weight": Decimal("0.5"),
        "tags": ["new"],
        "categories": [c.Category("shoes", "Shoes")],
    }
    values.update(fields)
    return c.LineItem(**values)


def order(order_id: str = "1001", **fields) -> c.Order:
    address = c.Address(
        first_name="Jane",
        last_name="Doe",
        address1="1 Main St",
        city="Vilnius",
        zip="01100",
        country="Lithuania",
        country_code="LT",
    )
    values = {
        "order_id": order_id,
        "currency": "EUR",
        "total_price": Decimal("43.97"),
        "line_items": [line(1), line(2, quantity=1, price=Decimal("5"))],
        "created_at": timezone.now() - timedelta(minutes=1),
        "order_number": 1001,
        "payment_status": "paid",
        "payment_method": "card",
        "total_tax": Decimal("7.63"),
        "total_discount": Decimal("1.00"),
        "shipping_price": Decimal("0"),
        "shipping_method": "Courier",
        "status_url": "https://shop.example.com/orders/1001",
        "note": "Leave at the door",
        "tags": ["web"],
        "discounts": [c.Discount("SUMMER", Decimal("1.00"), "fixedAmount")],
        "billing_address": address,
        "shipping_address": address,
    }
    values.update(fields)
    return c.Order(**values)


def cart(**fields) -> c.Cart:
    values = {
        "cart_id": "cart-7",
        "currency": "EUR",
        "value": Decimal("39.98"),
        "checkout_url": "https://shop.example.com/cart/cart-7",
        "line_items": [line(1)],
    }
    values.update(fields)
    return c.Cart(**values)


def product(**fields) -> c.Product:
    values = {
        "product_id": "p1",
        "title": "Product 1",
        "url": "https://shop.example.com/p/1",
        "currency": "EUR",
        "price": Decimal("19.99"),
        "old_price": Decimal("24.99"),
        "image_url": "https://shop.example.com/p/1.jpg",
        "categories": [c.Category("shoes", "Shoes")],
    }
    values.update(fields)
    return c.Product(**values)

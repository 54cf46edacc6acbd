"""The store's carts, orders and products as Omnisend's recommended events describe them.

Only ``django_omnisend.commerce`` builders are used: they check every field before anything
is queued, and give each event a fixed id (an order's ``placed order`` is the same event
however often it is queued).
"""

from __future__ import annotations

from decimal import Decimal

from django.urls import reverse

from django_omnisend import commerce

from .cart import Cart, CartLine
from .models import CURRENCY, Order, OrderLine, Product, Variant
from .omnisend import absolute


def _categories(product: Product) -> list[commerce.Category]:
    category = product.category
    return [commerce.Category(category.slug, category.title)] if category else []


def cart_line(variant: Variant, quantity: int) -> commerce.LineItem:
    """A cart line: ``productID`` is the catalog's product id, the variant its SKU."""
    product = variant.product
    return commerce.LineItem(
        product_id=product.slug,
        title=product.title,
        price=variant.price,
        quantity=quantity,
        variant_id=variant.sku,
        variant_title=variant.title,
        sku=variant.sku,
        url=absolute(product.get_absolute_url()),
        categories=_categories(product),
    )


def commerce_cart(cart: Cart, lines: list[CartLine]) -> commerce.Cart:
    """The session cart; its checkout URL is the cart page (the cart lives in the session)."""
    return commerce.Cart(
        cart_id=cart.id,
        currency=CURRENCY,
        value=sum((line.total for line in lines), Decimal(0)),
        checkout_url=absolute(reverse("store:cart")),
        line_items=[cart_line(line.variant, line.quantity) for line in lines],
    )


def _order_line(line: OrderLine) -> commerce.LineItem:
    # From the line's copy, not the variant: the product may have changed or gone since.
    return commerce.LineItem(
        product_id=line.product_slug,
        title=line.title,
        price=line.unit_price,
        quantity=line.quantity,
        variant_id=line.variant_sku,
        variant_title=line.variant_title,
        sku=line.variant_sku,
        url=absolute(reverse("store:product", args=[line.product_slug])),
    )


def commerce_order(order: Order) -> commerce.Order:
    """The placed order (paid at once: the demo has no payment step)."""
    return commerce.Order(
        order_id=order.pk,
        order_number=order.pk,
        currency=order.currency,
        total_price=order.total,
        created_at=order.created,
        payment_status="paid",
        line_items=[_order_line(line) for line in order.lines.all()],
    )


def viewed(product: Product) -> commerce.Product:
    """The product page's ``viewed product``: the lowest price of its variants."""
    variants = list(product.variants.all())
    return commerce.Product(
        product_id=product.slug,
        title=product.title,
        url=absolute(product.get_absolute_url()),
        currency=CURRENCY,
        price=min((v.price for v in variants), default=0),
        description=product.description[:1000],
        status="inStock" if any(v.stock > 0 for v in variants) else "outOfStock",
        categories=_categories(product),
    )

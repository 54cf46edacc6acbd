"""Omnisend's recommended e-commerce events, built from typed shop data.

Describe an order or a cart with the dataclasses here (amounts as :class:`~decimal.Decimal`),
then build the event Omnisend documents for it (``placed order`` v2, ``ordered product`` v2,
``added product to cart`` …). Each builder checks its input and raises
:class:`CommerceError` naming the field and what to do, so a bad order fails in the shop's
code, not in a worker an hour later. Everything is importable from here
(``from django_omnisend import commerce``). :func:`queue_order` puts ``placed order`` and one
``ordered product`` per line into the durable outbox.

Event ids are fixed: a UUID derived from the event name and the order (or cart) it is about,
so building the same event twice gives the same ``eventID`` and a re-queued or retried event
is recognised as the same event (see :func:`event_id`).
"""

from __future__ import annotations

from .events import (
    RecommendedEvent,
    added_product_to_cart,
    as_request,
    event_id,
    order_canceled,
    order_events,
    order_fulfilled,
    order_refunded,
    ordered_products,
    paid_for_order,
    placed_order,
    started_checkout,
    viewed_product,
)
from .orders import Cart, ImportedOrder, Order, Product
from .shop import Address, Category, Discount, LineItem, Tracking
from .validation import (
    EVENT_NAMESPACE,
    EVENT_VERSIONS,
    FULFILLMENT_STATUSES,
    PAYMENT_STATUSES,
    PRODUCT_STATUSES,
    CommerceError,
    number,
)

__all__ = [
    "EVENT_NAMESPACE",
    "EVENT_VERSIONS",
    "FULFILLMENT_STATUSES",
    "PAYMENT_STATUSES",
    "PRODUCT_STATUSES",
    "Address",
    "Cart",
    "Category",
    "CommerceError",
    "Discount",
    "ImportedOrder",
    "LineItem",
    "Order",
    "Product",
    "RecommendedEvent",
    "Tracking",
    "added_product_to_cart",
    "as_request",
    "event_id",
    "number",
    "order_canceled",
    "order_events",
    "order_fulfilled",
    "order_refunded",
    "ordered_products",
    "paid_for_order",
    "placed_order",
    "started_checkout",
    "viewed_product",
]

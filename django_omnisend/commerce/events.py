"""Builders of Omnisend's recommended events (``placed order`` v2, ``ordered product``
v2, ``added product to cart``...), with fixed event ids, and the request body of one.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.utils import timezone

from ..sync.payloads import rfc3339

# -- events -------------------------------------------------------------------------------
from .orders import Cart, Order, Product
from .shop import LineItem
from .validation import (
    EVENT_NAMESPACE,
    EVENT_VERSIONS,
    CommerceError,
    check_aware,
    check_money,
    check_text,
    number,
)


@dataclass(frozen=True)
class RecommendedEvent:
    """One recommended event, ready to queue: name, version, fixed id and time, properties."""

    name: str
    properties: dict[str, Any]
    event_id: str
    event_time: datetime

    @property
    def version(self) -> str:
        """Omnisend's documented ``eventVersion`` for :attr:`name`."""
        return EVENT_VERSIONS[self.name]


def event_id(name: str, *key: Any) -> str:
    """The fixed ``eventID`` of event ``name`` about ``key`` (e.g. the order id).

    A version-5 UUID (Omnisend accepts v4-v7): the same order always gives the same id, so a
    retry or a second queueing of its ``placed order`` is the same event to Omnisend.
    """
    return str(uuid.uuid5(EVENT_NAMESPACE, ":".join([name, *(str(k) for k in key)])))


def _order_event(name: str, order: Order, at: datetime | None, *key: Any) -> RecommendedEvent:
    properties = order.as_json()
    when = check_aware("at", at) if at is not None else check_aware("created_at", order.created_at)
    return RecommendedEvent(name, properties, event_id(name, properties["orderID"], *key), when)


def placed_order(order: Order) -> RecommendedEvent:
    """``placed order`` v2, timed at the order's ``created_at``."""
    return _order_event("placed order", order, None)


def paid_for_order(order: Order, at: datetime | None = None) -> RecommendedEvent:
    """``paid for order`` v2 (once per order)."""
    return _order_event("paid for order", order, at or timezone.now())


def order_fulfilled(order: Order, at: datetime | None = None) -> RecommendedEvent:
    """``order fulfilled`` v2 (once per order)."""
    return _order_event("order fulfilled", order, at or timezone.now())


def order_canceled(order: Order, at: datetime | None = None) -> RecommendedEvent:
    """``order canceled`` v2 (once per order)."""
    return _order_event("order canceled", order, at or timezone.now())


def order_refunded(order: Order, at: datetime | None = None) -> RecommendedEvent:
    """``order refunded`` v2; one per refunded total, so partial refunds are each an event."""
    if order.total_refunded_amount is None:
        raise CommerceError("total_refunded_amount", "an 'order refunded' event needs it.")
    refunded = number(check_money("total_refunded_amount", order.total_refunded_amount))  # type: ignore[arg-type]
    return _order_event("order refunded", order, at or timezone.now(), refunded)


def ordered_products(order: Order) -> list[RecommendedEvent]:
    """One ``ordered product`` v2 per line of ``order``, timed like its ``placed order``."""
    order_id = check_text("order_id", order.order_id)
    when = check_aware("created_at", order.created_at)
    events = []
    for i, line in enumerate(order.line_items):
        product = line.as_json(f"line_items[{i}]")
        events.append(
            RecommendedEvent(
                "ordered product",
                {"orderID": order_id, "product": product},
                event_id("ordered product", order_id, i, product["productVariantID"]),
                when,
            )
        )
    return events


def started_checkout(cart: Cart, at: datetime | None = None) -> RecommendedEvent:
    """``started checkout`` (documented version: empty)."""
    properties = cart.as_json()
    when = check_aware("at", at)
    return RecommendedEvent(
        "started checkout",
        properties,
        event_id("started checkout", properties["cartID"], rfc3339(when)),
        when,
    )


def added_product_to_cart(
    cart: Cart, added: LineItem, at: datetime | None = None
) -> RecommendedEvent:
    """``added product to cart`` (documented version: empty); ``cart`` includes ``added``."""
    properties = {**cart.as_json(), "addedItem": added.as_json("added")}
    if not properties["lineItems"]:
        raise CommerceError("cart.line_items", "list every line of the cart, the added one too.")
    when = check_aware("at", at)
    key = (properties["cartID"], properties["addedItem"]["productVariantID"], rfc3339(when))
    return RecommendedEvent(
        "added product to cart", properties, event_id("added product to cart", *key), when
    )


def viewed_product(product: Product, at: datetime | None = None) -> RecommendedEvent:
    """``viewed product`` v4 (Omnisend documents it for its JavaScript snippet)."""
    properties = {"product": product.as_json()}
    when = check_aware("at", at)
    key = (properties["product"]["id"], rfc3339(when))
    return RecommendedEvent("viewed product", properties, event_id("viewed product", *key), when)


def order_events(order: Order) -> list[RecommendedEvent]:
    """``placed order`` then one ``ordered product`` per line: what a new order sends."""
    return [placed_order(order), *ordered_products(order)]


def as_request(event: RecommendedEvent, contact: dict[str, str], origin: str) -> dict[str, Any]:
    """The ``POST /events`` body (``EventRequest``) for ``event`` about ``contact``."""
    return {
        "eventName": event.name,
        "eventVersion": event.version,
        "origin": origin,
        "eventID": event.event_id,
        "eventTime": rfc3339(event.event_time),
        "contact": dict(contact),
        "properties": event.properties,
    }

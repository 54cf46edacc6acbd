"""Omnisend's recommended e-commerce events, built from typed shop data.

Describe an order or a cart with the dataclasses here (amounts as :class:`~decimal.Decimal`),
then build the event Omnisend documents for it (``placed order`` v2, ``ordered product`` v2,
``added product to cart`` …). Each builder checks its input and raises
:class:`CommerceError` naming the field and what to do, so a bad order fails in the shop's
code, not in a worker an hour later. :func:`queue_order` puts ``placed order`` and one
``ordered product`` per line into the durable outbox.

Event ids are fixed: a UUID derived from the event name and the order (or cart) it is about,
so building the same event twice gives the same ``eventID`` and a re-queued or retried event
is recognised as the same event (see :func:`event_id`).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

from .sync.payloads import rfc3339

#: Namespace of every recommended event id (uuid5 of the event name and the thing it is about).
EVENT_NAMESPACE = uuid.UUID("3f4c1a52-9b7e-5d0a-8c61-2e9f0d4b7a13")

#: Omnisend's ``eventVersion`` per recommended event (API 2026-03-15, recommended events pages).
EVENT_VERSIONS: dict[str, str] = {
    "placed order": "v2",
    "paid for order": "v2",
    "order fulfilled": "v2",
    "order canceled": "v2",
    "order refunded": "v2",
    "ordered product": "v2",
    "started checkout": "",
    "added product to cart": "",
    "viewed product": "v4",
}
PAYMENT_STATUSES = (
    "awaitingPayment",
    "partiallyPaid",
    "paid",
    "partiallyRefunded",
    "refunded",
    "voided",
)
FULFILLMENT_STATUSES = ("unfulfilled", "inProgress", "fulfilled", "delivered", "restocked")
PRODUCT_STATUSES = ("inStock", "outOfStock", "notAvailable")
_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")


class CommerceError(ValueError):
    """Shop data that cannot become an Omnisend recommended event; names the field."""

    def __init__(self, field_name: str, problem: str) -> None:
        self.field = field_name
        super().__init__(f"{field_name}: {problem}")


# -- checks -------------------------------------------------------------------------------


def _text(name: str, value: Any, *, required: bool = True) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        if value is None and not required:
            return ""
        raise CommerceError(name, f"must be text (got {type(value).__name__}).")
    text = str(value).strip()
    if required and not text:
        raise CommerceError(name, "is required; give the shop's own value.")
    return text


def _url(name: str, value: str, *, required: bool = False) -> str:
    value = _text(name, value, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommerceError(
                name, "must be an absolute http(s) URL, e.g. request.build_absolute_uri(path)."
            )
    return value


def _money(name: str, value: Any, *, required: bool = True) -> Decimal | None:
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise CommerceError(
            name, f"must be a Decimal or an int (got {type(value).__name__}); floats lose cents."
        )
    amount = Decimal(value)
    if not amount.is_finite():
        raise CommerceError(name, "must be a finite amount.")
    return amount


def _currency(name: str, value: Any) -> str:
    code = _text(name, value)
    if not _CURRENCY_RE.match(code):
        raise CommerceError(
            name, f"must be an upper-case ISO 4217 code such as 'EUR' (got {code!r})."
        )
    return code


def _choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise CommerceError(name, f"must be one of {', '.join(choices)} (got {value!r}).")
    return value


def _aware(name: str, value: datetime | None) -> datetime:
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise CommerceError(name, "must be a timezone-aware datetime (USE_TZ = True).")
    return value


def number(amount: Decimal) -> int | float:
    """An amount as the JSON number Omnisend expects: ``Decimal('19.90')`` → ``19.9``."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def _drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}


# -- shop data ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Category:
    """A product category: the shop's id and its title."""

    id: str
    title: str

    def as_json(self) -> dict[str, str]:
        """``{id, title}``."""
        return {"id": _text("category.id", self.id), "title": _text("category.title", self.title)}


@dataclass(frozen=True)
class LineItem:
    """One product line of an order or a cart (unit ``price``, after ``discount``)."""

    product_id: str | int
    title: str
    price: Decimal | int
    quantity: int = 1
    #: The variant bought; a product without variants uses its own id (the default).
    variant_id: str | int = ""
    variant_title: str = ""
    sku: str = ""
    url: str = ""
    image_url: str = ""
    variant_image_url: str = ""
    description: str = ""
    vendor: str = ""
    #: Discount on this line, as a positive amount.
    discount: Decimal | int | None = None
    #: The price before a sale, shown struck through.
    strike_through_price: Decimal | int | None = None
    weight: Decimal | int | None = None
    tags: Sequence[str] = ()
    categories: Sequence[Category] = ()

    def as_json(self, where: str = "lineItems[]") -> dict[str, Any]:
        """The documented line item shape (``productID``, ``productPrice`` …)."""
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int):
            raise CommerceError(f"{where}.quantity", "must be a whole number.")
        if self.quantity < 1:
            raise CommerceError(f"{where}.quantity", "must be at least 1.")
        product_id = _text(f"{where}.product_id", self.product_id)
        discount = _money(f"{where}.discount", self.discount, required=False)
        if discount is not None and discount < 0:
            raise CommerceError(f"{where}.discount", "is a positive amount taken off.")
        optional = {
            "productStrikeThroughPrice": _money(
                f"{where}.strike_through_price", self.strike_through_price, required=False
            ),
            "productWeight": _money(f"{where}.weight", self.weight, required=False),
            "productDiscount": discount,
        }
        return _drop_empty(
            {
                "productID": product_id,
                "productVariantID": _text(f"{where}.variant_id", self.variant_id, required=False)
                or product_id,
                "productTitle": _text(f"{where}.title", self.title),
                "productPrice": number(_money(f"{where}.price", self.price)),  # type: ignore[arg-type]
                "productQuantity": self.quantity,
                "productVariantTitle": _text(
                    f"{where}.variant_title", self.variant_title, required=False
                ),
                "productSKU": _text(f"{where}.sku", self.sku, required=False),
                "productURL": _url(f"{where}.url", self.url),
                "productImageURL": _url(f"{where}.image_url", self.image_url),
                "productVariantImageURL": _url(
                    f"{where}.variant_image_url", self.variant_image_url
                ),
                "productDescription": _text(
                    f"{where}.description", self.description, required=False
                ),
                "productVendor": _text(f"{where}.vendor", self.vendor, required=False),
                "productTags": [_text(f"{where}.tags[]", t) for t in self.tags],
                "productCategories": [c.as_json() for c in self.categories],
                **{k: number(v) for k, v in optional.items() if v is not None},
            }
        )

    @property
    def total(self) -> Decimal:
        """``price * quantity``."""
        return Decimal(self.price) * self.quantity


@dataclass(frozen=True)
class Address:
    """A billing or shipping address (every field optional)."""

    first_name: str = ""
    last_name: str = ""
    company: str = ""
    address1: str = ""
    address2: str = ""
    city: str = ""
    state: str = ""
    state_code: str = ""
    zip: str = ""
    country: str = ""
    country_code: str = ""
    phone: str = ""

    def as_json(self) -> dict[str, str]:
        """The documented address shape (``address1``, ``zip``, ``countryCode`` …)."""
        names = {
            "firstName": self.first_name,
            "lastName": self.last_name,
            "company": self.company,
            "address1": self.address1,
            "address2": self.address2,
            "city": self.city,
            "state": self.state,
            "stateCode": self.state_code,
            "zip": self.zip,
            "country": self.country,
            "countryCode": self.country_code,
            "phone": self.phone,
        }
        return _drop_empty({k: _text(f"address.{k}", v, required=False) for k, v in names.items()})


@dataclass(frozen=True)
class Discount:
    """A discount applied to the order: its code, amount and kind (free text)."""

    code: str
    amount: Decimal | int
    type: str = ""

    def as_json(self) -> dict[str, Any]:
        """``{code, amount, type}``."""
        return _drop_empty(
            {
                "code": _text("discounts[].code", self.code),
                "amount": number(_money("discounts[].amount", self.amount)),  # type: ignore[arg-type]
                "type": _text("discounts[].type", self.type, required=False),
            }
        )


@dataclass(frozen=True)
class Tracking:
    """Parcel tracking of a fulfilled order."""

    courier_url: str
    code: str = ""
    courier_title: str = ""

    def as_json(self) -> dict[str, str]:
        """``{courierURL, code, courierTitle}``."""
        return _drop_empty(
            {
                "courierURL": _url("tracking.courier_url", self.courier_url, required=True),
                "code": _text("tracking.code", self.code, required=False),
                "courierTitle": _text("tracking.courier_title", self.courier_title, required=False),
            }
        )


@dataclass(frozen=True)
class Order:
    """An order as Omnisend's order events describe it; amounts are Decimals in ``currency``."""

    order_id: str | int
    currency: str
    total_price: Decimal | int
    line_items: Sequence[LineItem]
    created_at: datetime | None = None
    #: The number shown to the customer, when it is a whole number.
    order_number: int | None = None
    payment_status: str = "awaitingPayment"
    fulfillment_status: str = "unfulfilled"
    payment_method: str = ""
    #: Sum of the lines; computed from them when None.
    subtotal_price: Decimal | int | None = None
    subtotal_tax_included: bool = False
    total_discount: Decimal | int = 0
    total_tax: Decimal | int = 0
    shipping_price: Decimal | int | None = None
    shipping_method: str = ""
    status_url: str = ""
    note: str = ""
    tags: Sequence[str] = ()
    discounts: Sequence[Discount] = ()
    billing_address: Address | None = None
    shipping_address: Address | None = None
    tracking: Tracking | None = None
    cancel_reason: str = ""
    total_refunded_amount: Decimal | int | None = None
    total_refunded_tax_amount: Decimal | int | None = None
    refunded_line_items: Sequence[LineItem] = field(default_factory=tuple)

    def as_json(self) -> dict[str, Any]:
        """The documented order properties, after checking every field."""
        if not self.line_items:
            raise CommerceError("line_items", "an order needs at least one line.")
        if self.order_number is not None and (
            isinstance(self.order_number, bool) or not isinstance(self.order_number, int)
        ):
            raise CommerceError(
                "order_number", "Omnisend takes a whole number; leave it None otherwise."
            )
        subtotal = _money("subtotal_price", self.subtotal_price, required=False)
        if subtotal is None:
            subtotal = sum((line.total for line in self.line_items), Decimal(0))
        amounts = {
            "totalPrice": _money("total_price", self.total_price),
            "subTotalPrice": subtotal,
            "totalDiscount": _money("total_discount", self.total_discount),
            "totalTax": _money("total_tax", self.total_tax),
            "shippingPrice": _money("shipping_price", self.shipping_price, required=False),
            "totalRefundedAmount": _money(
                "total_refunded_amount", self.total_refunded_amount, required=False
            ),
            "totalRefundedTaxAmount": _money(
                "total_refunded_tax_amount", self.total_refunded_tax_amount, required=False
            ),
        }
        return _drop_empty(
            {
                "orderID": _text("order_id", self.order_id),
                "orderNumber": self.order_number,
                "currency": _currency("currency", self.currency),
                "createdAt": rfc3339(_aware("created_at", self.created_at)),
                "paymentStatus": _choice("payment_status", self.payment_status, PAYMENT_STATUSES),
                "fulfillmentStatus": _choice(
                    "fulfillment_status", self.fulfillment_status, FULFILLMENT_STATUSES
                ),
                "paymentMethod": _text("payment_method", self.payment_method, required=False),
                "subtotalTaxIncluded": bool(self.subtotal_tax_included),
                "shippingMethod": _text("shipping_method", self.shipping_method, required=False),
                "orderStatusURL": _url("status_url", self.status_url),
                "note": _text("note", self.note, required=False),
                "tags": [_text("tags[]", t) for t in self.tags],
                "discounts": [d.as_json() for d in self.discounts],
                "lineItems": [
                    line.as_json(f"line_items[{i}]") for i, line in enumerate(self.line_items)
                ],
                "refundedLineItems": [
                    line.as_json(f"refunded_line_items[{i}]")
                    for i, line in enumerate(self.refunded_line_items)
                ],
                "billingAddress": self.billing_address.as_json() if self.billing_address else None,
                "shippingAddress": self.shipping_address.as_json()
                if self.shipping_address
                else None,
                "tracking": self.tracking.as_json() if self.tracking else None,
                "cancelReason": _text("cancel_reason", self.cancel_reason, required=False),
                **{k: number(v) for k, v in amounts.items() if v is not None},
            }
        )


@dataclass(frozen=True)
class Cart:
    """A cart: its id, the page that restores it, its value and lines."""

    cart_id: str | int
    currency: str
    value: Decimal | int
    #: Absolute URL that brings the shopper back to this cart (cart-abandonment messages).
    checkout_url: str
    line_items: Sequence[LineItem] = ()

    def as_json(self) -> dict[str, Any]:
        """``{cartID, currency, value, abandonedCheckoutURL, lineItems}``."""
        return {
            "cartID": _text("cart_id", self.cart_id),
            "currency": _currency("currency", self.currency),
            "value": number(_money("value", self.value)),  # type: ignore[arg-type]
            "abandonedCheckoutURL": _url("checkout_url", self.checkout_url, required=True),
            "lineItems": [
                line.as_json(f"line_items[{i}]") for i, line in enumerate(self.line_items)
            ],
        }


@dataclass(frozen=True)
class Product:
    """A product page being viewed (``viewed product``)."""

    product_id: str | int
    title: str
    url: str
    currency: str
    price: Decimal | int
    old_price: Decimal | int | None = None
    image_url: str = ""
    description: str = ""
    status: str = "inStock"
    categories: Sequence[Category] = ()

    def as_json(self) -> dict[str, Any]:
        """The documented ``product`` object of ``viewed product``."""
        old = _money("old_price", self.old_price, required=False)
        return _drop_empty(
            {
                "id": _text("product_id", self.product_id),
                "title": _text("title", self.title),
                "url": _url("url", self.url, required=True),
                "currency": _currency("currency", self.currency),
                "price": number(_money("price", self.price)),  # type: ignore[arg-type]
                "oldPrice": number(old) if old is not None else None,
                "imageUrl": _url("image_url", self.image_url),
                "description": _text("description", self.description, required=False),
                "status": _choice("status", self.status, PRODUCT_STATUSES),
                "categories": [c.as_json() for c in self.categories],
            }
        )


@dataclass(frozen=True)
class ImportedOrder:
    """A past order for ``omnisend_import_orders``: the order and who placed it."""

    order: Order
    email: str = ""
    phone: str = ""


# -- events -------------------------------------------------------------------------------


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
    when = _aware("at", at) if at is not None else _aware("created_at", order.created_at)
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
    refunded = number(_money("total_refunded_amount", order.total_refunded_amount))  # type: ignore[arg-type]
    return _order_event("order refunded", order, at or timezone.now(), refunded)


def ordered_products(order: Order) -> list[RecommendedEvent]:
    """One ``ordered product`` v2 per line of ``order``, timed like its ``placed order``."""
    order_id = _text("order_id", order.order_id)
    when = _aware("created_at", order.created_at)
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
    when = _aware("at", at)
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
    when = _aware("at", at)
    key = (properties["cartID"], properties["addedItem"]["productVariantID"], rfc3339(when))
    return RecommendedEvent(
        "added product to cart", properties, event_id("added product to cart", *key), when
    )


def viewed_product(product: Product, at: datetime | None = None) -> RecommendedEvent:
    """``viewed product`` v4 (Omnisend documents it for its JavaScript snippet)."""
    properties = {"product": product.as_json()}
    when = _aware("at", at)
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

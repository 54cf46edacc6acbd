"""Orders, carts, products and imported past orders, as the builders take them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..sync.payloads import rfc3339
from .shop import Address, Category, Discount, LineItem, Tracking
from .validation import (
    FULFILLMENT_STATUSES,
    PAYMENT_STATUSES,
    PRODUCT_STATUSES,
    CommerceError,
    check_aware,
    check_choice,
    check_currency,
    check_money,
    check_text,
    check_url,
    drop_empty,
    number,
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
        subtotal = check_money("subtotal_price", self.subtotal_price, required=False)
        if subtotal is None:
            subtotal = sum((line.total for line in self.line_items), Decimal(0))
        amounts = {
            "totalPrice": check_money("total_price", self.total_price),
            "subTotalPrice": subtotal,
            "totalDiscount": check_money("total_discount", self.total_discount),
            "totalTax": check_money("total_tax", self.total_tax),
            "shippingPrice": check_money("shipping_price", self.shipping_price, required=False),
            "totalRefundedAmount": check_money(
                "total_refunded_amount", self.total_refunded_amount, required=False
            ),
            "totalRefundedTaxAmount": check_money(
                "total_refunded_tax_amount", self.total_refunded_tax_amount, required=False
            ),
        }
        return drop_empty(
            {
                "orderID": check_text("order_id", self.order_id),
                "orderNumber": self.order_number,
                "currency": check_currency("currency", self.currency),
                "createdAt": rfc3339(check_aware("created_at", self.created_at)),
                "paymentStatus": check_choice(
                    "payment_status", self.payment_status, PAYMENT_STATUSES
                ),
                "fulfillmentStatus": check_choice(
                    "fulfillment_status", self.fulfillment_status, FULFILLMENT_STATUSES
                ),
                "paymentMethod": check_text("payment_method", self.payment_method, required=False),
                "subtotalTaxIncluded": bool(self.subtotal_tax_included),
                "shippingMethod": check_text(
                    "shipping_method", self.shipping_method, required=False
                ),
                "orderStatusURL": check_url("status_url", self.status_url),
                "note": check_text("note", self.note, required=False),
                "tags": [check_text("tags[]", t) for t in self.tags],
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
                "cancelReason": check_text("cancel_reason", self.cancel_reason, required=False),
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
            "cartID": check_text("cart_id", self.cart_id),
            "currency": check_currency("currency", self.currency),
            "value": number(check_money("value", self.value)),  # type: ignore[arg-type]
            "abandonedCheckoutURL": check_url("checkout_url", self.checkout_url, required=True),
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
        old = check_money("old_price", self.old_price, required=False)
        return drop_empty(
            {
                "id": check_text("product_id", self.product_id),
                "title": check_text("title", self.title),
                "url": check_url("url", self.url, required=True),
                "currency": check_currency("currency", self.currency),
                "price": number(check_money("price", self.price)),  # type: ignore[arg-type]
                "oldPrice": number(old) if old is not None else None,
                "imageUrl": check_url("image_url", self.image_url),
                "description": check_text("description", self.description, required=False),
                "status": check_choice("status", self.status, PRODUCT_STATUSES),
                "categories": [c.as_json() for c in self.categories],
            }
        )


@dataclass(frozen=True)
class ImportedOrder:
    """A past order for ``omnisend_import_orders``: the order and who placed it."""

    order: Order
    email: str = ""
    phone: str = ""

"""The parts of an order: categories, line items, addresses, discounts, tracking."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# -- shop data ----------------------------------------------------------------------------
from .validation import CommerceError, check_money, check_text, check_url, drop_empty, number


@dataclass(frozen=True)
class Category:
    """A product category: the shop's id and its title."""

    id: str
    title: str

    def as_json(self) -> dict[str, str]:
        """``{id, title}``."""
        return {
            "id": check_text("category.id", self.id),
            "title": check_text("category.title", self.title),
        }


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
        product_id = check_text(f"{where}.product_id", self.product_id)
        discount = check_money(f"{where}.discount", self.discount, required=False)
        if discount is not None and discount < 0:
            raise CommerceError(f"{where}.discount", "is a positive amount taken off.")
        optional = {
            "productStrikeThroughPrice": check_money(
                f"{where}.strike_through_price", self.strike_through_price, required=False
            ),
            "productWeight": check_money(f"{where}.weight", self.weight, required=False),
            "productDiscount": discount,
        }
        return drop_empty(
            {
                "productID": product_id,
                "productVariantID": check_text(
                    f"{where}.variant_id", self.variant_id, required=False
                )
                or product_id,
                "productTitle": check_text(f"{where}.title", self.title),
                "productPrice": number(check_money(f"{where}.price", self.price)),  # type: ignore[arg-type]
                "productQuantity": self.quantity,
                "productVariantTitle": check_text(
                    f"{where}.variant_title", self.variant_title, required=False
                ),
                "productSKU": check_text(f"{where}.sku", self.sku, required=False),
                "productURL": check_url(f"{where}.url", self.url),
                "productImageURL": check_url(f"{where}.image_url", self.image_url),
                "productVariantImageURL": check_url(
                    f"{where}.variant_image_url", self.variant_image_url
                ),
                "productDescription": check_text(
                    f"{where}.description", self.description, required=False
                ),
                "productVendor": check_text(f"{where}.vendor", self.vendor, required=False),
                "productTags": [check_text(f"{where}.tags[]", t) for t in self.tags],
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
        return drop_empty(
            {k: check_text(f"address.{k}", v, required=False) for k, v in names.items()}
        )


@dataclass(frozen=True)
class Discount:
    """A discount applied to the order: its code, amount and kind (free text)."""

    code: str
    amount: Decimal | int
    type: str = ""

    def as_json(self) -> dict[str, Any]:
        """``{code, amount, type}``."""
        return drop_empty(
            {
                "code": check_text("discounts[].code", self.code),
                "amount": number(check_money("discounts[].amount", self.amount)),  # type: ignore[arg-type]
                "type": check_text("discounts[].type", self.type, required=False),
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
        return drop_empty(
            {
                "courierURL": check_url("tracking.courier_url", self.courier_url, required=True),
                "code": check_text("tracking.code", self.code, required=False),
                "courierTitle": check_text(
                    "tracking.courier_title", self.courier_title, required=False
                ),
            }
        )

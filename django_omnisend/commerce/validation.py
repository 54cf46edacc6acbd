"""Checks every shop value goes through (text, URLs, money, currency, choices, aware
datetimes), the error they raise, and Omnisend's event names, versions and statuses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.utils import timezone

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


def check_text(name: str, value: Any, *, required: bool = True) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int):
        if value is None and not required:
            return ""
        raise CommerceError(name, f"must be text (got {type(value).__name__}).")
    text = str(value).strip()
    if required and not text:
        raise CommerceError(name, "is required; give the shop's own value.")
    return text


def check_url(name: str, value: str, *, required: bool = False) -> str:
    value = check_text(name, value, required=required)
    if value:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CommerceError(
                name, "must be an absolute http(s) URL, e.g. request.build_absolute_uri(path)."
            )
    return value


def check_money(name: str, value: Any, *, required: bool = True) -> Decimal | None:
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


def check_currency(name: str, value: Any) -> str:
    code = check_text(name, value)
    if not _CURRENCY_RE.match(code):
        raise CommerceError(
            name, f"must be an upper-case ISO 4217 code such as 'EUR' (got {code!r})."
        )
    return code


def check_choice(name: str, value: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise CommerceError(name, f"must be one of {', '.join(choices)} (got {value!r}).")
    return value


def check_aware(name: str, value: datetime | None) -> datetime:
    if value is None:
        return timezone.now()
    if not isinstance(value, datetime) or timezone.is_naive(value):
        raise CommerceError(name, "must be a timezone-aware datetime (USE_TZ = True).")
    return value


def number(amount: Decimal) -> int | float:
    """An amount as the JSON number Omnisend expects: ``Decimal('19.90')`` → ``19.9``."""
    return int(amount) if amount == amount.to_integral_value() else float(amount)


def drop_empty(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v not in (None, "", [], {})}

"""Omnisend's recommended events as the strict emulator checks them (API 2026-03-15).

The documented ``eventVersion`` of each and the properties each needs (Omnisend's recommended
events pages and its WordPress SDK): only strict mode checks them, since Omnisend's API
accepts any properties and reports problems only in automations and reports.
"""

from __future__ import annotations

from typing import Any

from .validation import Checker

VERSIONS = {
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
_ORDER = ("orderID", "currency", "totalPrice", "lineItems")
_CART = ("cartID", "currency", "value", "abandonedCheckoutURL")
REQUIRED: dict[str, tuple[str, ...]] = {
    "placed order": _ORDER,
    "paid for order": _ORDER,
    "order fulfilled": _ORDER,
    "order canceled": _ORDER,
    "order refunded": (*_ORDER, "totalRefundedAmount"),
    "ordered product": ("orderID", "product"),
    "started checkout": _CART,
    "added product to cart": (*_CART, "addedItem", "lineItems"),
    "viewed product": ("product",),
}
LINE_ITEM = ("productID", "productTitle", "productPrice", "productQuantity")


def check(c: Checker, body: dict[str, Any]) -> None:
    """Add a problem for a wrong ``eventVersion`` or a missing documented property."""
    name = body.get("eventName")
    if name not in VERSIONS:
        return
    if body.get("eventVersion", "") != VERSIONS[name]:
        c.add(
            "eventVersion",
            "invalid_value",
            f"'{name}' is documented with eventVersion {VERSIONS[name]!r}.",
        )
    props = body.get("properties")
    if not isinstance(props, dict):
        c.add("properties", "required", f"'{name}' needs its documented properties.")
        return
    for key in REQUIRED[name]:
        if props.get(key) in (None, "", []):
            c.add(f"properties.{key}", "required", "Field is required.")
    lines = list(props.get("lineItems") or [])
    lines += [props[k] for k in ("product", "addedItem") if name != "viewed product" and k in props]
    for i, line in enumerate(lines):
        if not isinstance(line, dict):
            c.add(f"properties.lineItems[{i}]", "invalid_type", "Must be an object.")
            continue
        for key in LINE_ITEM:
            if line.get(key) in (None, ""):
                c.add(f"properties.lineItems[{i}].{key}", "required", "Field is required.")

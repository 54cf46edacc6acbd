"""The shopping cart, kept in the visitor's session: an id and quantities per variant."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.sessions.backends.base import SessionBase

from .models import Variant

SESSION_KEY = "store_cart"
#: Most of one variant a cart may hold (a demo, not a warehouse).
MAX_QUANTITY = 20


@dataclass
class CartLine:
    variant: Variant
    quantity: int

    @property
    def total(self) -> Decimal:
        return self.variant.price * self.quantity


class Cart:
    """The session's cart. ``id`` is stable until the order is placed (Omnisend's cartID)."""

    def __init__(self, session: SessionBase) -> None:
        self.session = session
        data = session.get(SESSION_KEY) or {}
        self.id: str = data.get("id") or uuid.uuid4().hex
        self.quantities: dict[str, int] = dict(data.get("lines") or {})

    def add(self, variant: Variant, quantity: int) -> None:
        key = str(variant.pk)
        self.quantities[key] = min(MAX_QUANTITY, self.quantities.get(key, 0) + quantity)
        self._save()

    def lines(self) -> list[CartLine]:
        """The cart's lines, for variants that still exist."""
        variants = Variant.objects.select_related("product__category").in_bulk(
            [int(k) for k in self.quantities]
        )
        return [
            CartLine(variants[int(k)], q) for k, q in self.quantities.items() if int(k) in variants
        ]

    @property
    def total(self) -> Decimal:
        return sum((line.total for line in self.lines()), Decimal(0))

    def clear(self) -> None:
        """Empty the cart; the next one gets a new id."""
        self.session.pop(SESSION_KEY, None)
        self.id = uuid.uuid4().hex
        self.quantities = {}

    def _save(self) -> None:
        self.session[SESSION_KEY] = {"id": self.id, "lines": self.quantities}

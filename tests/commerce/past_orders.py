"""``--source`` callables for the import command tests."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from django_omnisend.commerce import ImportedOrder, LineItem, Order

ORDERS = 150
#: Fixed once, as a past order's time is: a re-run must send the same eventTime.
PLACED = timezone.now() - timedelta(days=10)


def orders():
    """150 one-line orders placed ten days ago, one of them by nobody identifiable."""
    for n in range(ORDERS):
        order = Order(
            f"old-{n}",
            "EUR",
            Decimal("12.50"),
            [LineItem(f"p{n % 7}", f"Product {n % 7}", Decimal("12.50"))],
            created_at=PLACED + timedelta(minutes=n),
        )
        yield ImportedOrder(order, email="" if n == 0 else f"buyer{n}@example.com")


def broken():
    """An order with a float amount."""
    yield ImportedOrder(Order("x", "EUR", 1.5, [LineItem("p", "P", 1)]), email="a@example.com")

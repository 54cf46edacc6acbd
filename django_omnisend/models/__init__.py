"""Database models, one module per subsystem; all importable from ``django_omnisend.models``.

``DeliveryControl.paused`` is the one source of truth for "paused" (whether anything is sent
to a connection); ``SyncState.State.PAUSED`` and ``Connection.status`` say narrower things
(see CONTRIBUTING.rst, 'Where "paused" lives').
"""

from .connections import (
    MAX_STORED_LIFETIME,
    SECRET_FIELDS,
    ClientRegistration,
    Connection,
    ConnectionQuerySet,
    expires_at_from,
)
from .delivery import DeliveryControl, MarkSuppression, RateBudgetSlot
from .sync import OutboxItem, SyncState, SyncStateQuerySet

__all__ = [
    "MAX_STORED_LIFETIME",
    "SECRET_FIELDS",
    "ClientRegistration",
    "Connection",
    "ConnectionQuerySet",
    "DeliveryControl",
    "MarkSuppression",
    "OutboxItem",
    "RateBudgetSlot",
    "SyncState",
    "SyncStateQuerySet",
    "expires_at_from",
]

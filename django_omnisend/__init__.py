"""django-omnisend: connect a Django site to Omnisend and keep its users in sync as contacts.

The public API is importable from here (``from django_omnisend import send_event``). The
root stays import-light (no models, no settings access) so that ``import django_omnisend``
works before Django is configured: every name but :func:`get_client` and
:func:`mark_for_sync` is imported on first use (PEP 562), once the app registry is ready.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .adapter import Consent, ContactAdapter
    from .api.client import OmnisendClient
    from .catalog.adapter import ProductAdapter
    from .commerce.orders import Order
    from .commerce.shop import LineItem
    from .connect.permissions import ConnectionAdapter
    from .event_declarations import register_event
    from .exceptions import NotConnected, OmnisendError
    from .sync.events import send_event, send_order
    from .sync.health import Health, health
    from .sync.loop import drain
    from .sync.results import DrainResult
    from .tracking import TrackingAdapter

__version__ = "0.1.0"

#: Public name -> the module that defines it (imported when the name is first used).
_LAZY = {
    "send_event": "sync.events",
    "send_order": "sync.events",
    "register_event": "event_declarations",
    "drain": "sync.loop",
    "DrainResult": "sync.results",
    "health": "sync.health",
    "Health": "sync.health",
    "OmnisendClient": "api.client",
    "ContactAdapter": "adapter",
    "Consent": "adapter",
    "ConnectionAdapter": "connect.permissions",
    "ProductAdapter": "catalog.adapter",
    "TrackingAdapter": "tracking",
    "Order": "commerce.orders",
    "LineItem": "commerce.shop",
    "OmnisendError": "exceptions",
    "NotConnected": "exceptions",
}

__all__ = [
    "ConnectionAdapter",
    "Consent",
    "ContactAdapter",
    "DrainResult",
    "Health",
    "LineItem",
    "NotConnected",
    "OmnisendClient",
    "OmnisendError",
    "Order",
    "ProductAdapter",
    "TrackingAdapter",
    "__version__",
    "drain",
    "get_client",
    "health",
    "mark_for_sync",
    "register_event",
    "send_event",
    "send_order",
]


def __getattr__(name: str) -> Any:
    """Import a public name from its module on first use (PEP 562)."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


def get_client(connection: Any = None, *, owner: Any = None) -> OmnisendClient:
    """Return an :class:`~django_omnisend.api.OmnisendClient` for the site's Omnisend brand.

    With no argument, the site's active connection is used (an OAuth connection made in the
    admin, else ``OMNISEND["API_KEY"]``); pass a ``Connection`` to pick one explicitly, or
    ``owner=`` (a shop, a team...) for that owner's connection, which never falls back to the
    site's. An OAuth token that is about to expire is refreshed first. Raises
    :class:`~django_omnisend.exceptions.NotConnected` when there is nothing to connect with.
    """
    from .connect import get_client as _get_client

    return _get_client(connection, owner=owner)


def mark_for_sync(user: Any) -> bool:
    """Queue ``user`` for sync without saving the user row; returns whether it was queued.

    For data the adapter reads from other models (a consent record, a profile): call it in
    the same transaction as that change, and the drain sends the user's current state. One
    cheap statement, no network; does nothing while ``OMNISEND["SYNC_USERS"]`` is off.
    """
    from .conf import omnisend_settings

    if not omnisend_settings.sync_users:
        return False
    from .adapter import get_adapter
    from .sync.marking import mark_dirty
    from .tasks import nudge_drain_on_commit

    mark_dirty(user.pk, get_adapter().get_connection_key(user))
    nudge_drain_on_commit()
    return True

"""django-omnisend: connect a Django site to Omnisend and keep its users in sync as contacts.

The package root stays import-light (no models, no settings access) so that
``import django_omnisend`` works before Django is configured. Host code uses
:func:`get_client` for a ready-to-use API client bound to the site's connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .api import OmnisendClient

__version__ = "0.1.0"

__all__ = ["__version__", "get_client", "mark_for_sync"]


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

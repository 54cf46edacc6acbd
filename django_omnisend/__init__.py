"""django-omnisend: connect a Django site to Omnisend and keep its users in sync as contacts.

The package root stays import-light (no models, no settings access) so that
``import django_omnisend`` works before Django is configured. Host code uses
:func:`get_client` for a ready-to-use API client bound to the site's connection.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .client import OmnisendClient

__version__ = "0.1.0"

__all__ = ["__version__", "get_client"]


def get_client(connection: Any = None) -> OmnisendClient:
    """Return an :class:`~django_omnisend.client.OmnisendClient` for the site's Omnisend brand.

    With no argument, the site's active connection is used (an OAuth connection made in the
    admin, else ``OMNISEND["API_KEY"]``); pass a ``Connection`` to pick one explicitly. An OAuth
    token that is about to expire is refreshed first. Raises
    :class:`~django_omnisend.exceptions.NotConnected` when there is nothing to connect with.
    """
    from .connections import get_client as _get_client

    return _get_client(connection)

"""``ConnectionAdapter``: who may connect, reconnect and disconnect which owner's Omnisend brand.

Point ``OMNISEND["CONNECTION_ADAPTER"]`` at a subclass to let a tenant's own staff manage the
connection of their shop, team or account (see :mod:`~django_omnisend.owners`). The default
allows only staff with the ``django_omnisend.manage_connection`` permission, and only for the
site's own connection: a site that names owners must say who manages them.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

from .conf import omnisend_settings

__all__ = ["PERMISSION", "ConnectionAdapter", "can_manage", "get_connection_adapter"]

PERMISSION = "django_omnisend.manage_connection"


def can_manage(user: Any) -> bool:
    """Whether ``user`` may manage the site's connection (staff with the app permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PERMISSION)
    )


class ConnectionAdapter:
    """Default permission rules of the connect, callback, confirm and disconnect views."""

    def can_manage_connection(self, request: HttpRequest, owner: Any) -> bool:
        """Whether ``request.user`` may connect, reconnect or disconnect ``owner``'s brand.

        ``owner`` is a model instance, or None for the site's own connection. Asked when a
        flow starts and again when Omnisend sends the person back, so a right taken away
        meanwhile stops the flow. Keep it cheap (a query or two, no network).
        """
        return owner is None and can_manage(request.user)


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> ConnectionAdapter:
    return import_string(path)()


def get_connection_adapter() -> ConnectionAdapter:
    """The instance named by ``OMNISEND["CONNECTION_ADAPTER"]`` (one per dotted path)."""
    return _adapter_for(omnisend_settings.connection_adapter)

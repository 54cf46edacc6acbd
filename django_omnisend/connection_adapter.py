"""Kept for compatibility: the adapter lives in :mod:`django_omnisend.connect.permissions`.

``OMNISEND["CONNECTION_ADAPTER"]`` may keep naming
``django_omnisend.connection_adapter.ConnectionAdapter`` (the default) or a subclass of it.
"""

from .connect.permissions import PERMISSION, ConnectionAdapter, can_manage, get_connection_adapter

__all__ = ["PERMISSION", "ConnectionAdapter", "can_manage", "get_connection_adapter"]

"""Django admin pages: connections, sync states and outbox, client registrations.

Importing the package registers them all (Django's admin autodiscovery imports it).
"""

from ..connect.permissions import PERMISSION
from . import registration, sync  # noqa: F401  (registers their admins)
from .connections import ConnectionAdmin
from .forms import ConnectionForm

__all__ = ["PERMISSION", "ConnectionAdmin", "ConnectionForm"]

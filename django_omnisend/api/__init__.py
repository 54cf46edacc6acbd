"""The HTTP layer: Omnisend's REST API and OAuth endpoints, with no Django models.

``ruff.toml`` in this folder bans importing ``django_omnisend.models`` and ``django.db`` here.
"""

from .auth import ApiKeyAuth, BearerAuth
from .client import OmnisendClient
from .contacts import ContactResult, Contacts
from .resources import Batches, Brands, Categories, EventMetadata, Events, Products
from .wire import INTEGRATION_NAME, USER_AGENT, ApiResponse

__all__ = [
    "INTEGRATION_NAME",
    "USER_AGENT",
    "ApiKeyAuth",
    "ApiResponse",
    "Batches",
    "BearerAuth",
    "Brands",
    "Categories",
    "ContactResult",
    "Contacts",
    "EventMetadata",
    "Events",
    "OmnisendClient",
    "Products",
]

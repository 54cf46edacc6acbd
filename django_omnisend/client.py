"""Kept for compatibility: the client now lives in :mod:`django_omnisend.api`.

``from django_omnisend.client import OmnisendClient, ApiKeyAuth`` keeps working.
"""

from .api import (  # noqa: F401
    INTEGRATION_NAME,
    USER_AGENT,
    ApiKeyAuth,
    ApiResponse,
    Batches,
    BearerAuth,
    Brands,
    Categories,
    ContactResult,
    Contacts,
    EventMetadata,
    Events,
    OmnisendClient,
    Products,
)

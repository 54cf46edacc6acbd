"""Catalog sync: the shop's products and categories to Omnisend's catalog.

``adapter`` (``ProductAdapter``: which models, mapped how), ``marking`` (saves and deletes
queue outbox items), ``sending`` (the drain sends them), ``backfill`` (``omnisend_sync_products``).
The names below are what the rest of the package and host code use
(``django_omnisend.catalog.mark_product``).
"""

from __future__ import annotations

from .marking import (
    CATEGORY_KINDS,
    DELETES,
    KINDS,
    PRODUCT_KINDS,
    Kind,
    category_deleted,
    category_saved,
    connect_receivers,
    mark_category,
    mark_product,
    part_changed,
    product_deleted,
    product_saved,
)
from .sending import deliver, missing_scopes, superseded

__all__ = [
    "CATEGORY_KINDS",
    "DELETES",
    "KINDS",
    "PRODUCT_KINDS",
    "Kind",
    "category_deleted",
    "category_saved",
    "connect_receivers",
    "deliver",
    "mark_category",
    "mark_product",
    "missing_scopes",
    "part_changed",
    "product_deleted",
    "product_saved",
    "superseded",
]

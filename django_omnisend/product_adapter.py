"""Kept for compatibility: ``ProductAdapter`` lives in :mod:`django_omnisend.catalog.adapter`."""

from .catalog.adapter import (  # noqa: F401
    CATEGORY_LENGTHS,
    IN_STOCK,
    MAX_VARIANTS,
    NOT_AVAILABLE,
    OUT_OF_STOCK,
    PRODUCT_LENGTHS,
    PRODUCT_LISTS,
    STOCK_STATUSES,
    VARIANT_LENGTHS,
    Category,
    InvalidProduct,
    Product,
    ProductAdapter,
    Variant,
    get_product_adapter,
    resolve_models,
    stock_status,
    validate_category,
    validate_product,
    validate_product_id,
)

"""Kept for compatibility: the brand rules live in :mod:`django_omnisend.connect.binding`."""

from .connect.binding import (  # noqa: F401
    Bound,
    BrandHeldElsewhere,
    BrandMismatch,
    Credential,
    bind,
    check_brand_free,
    check_target,
    competing,
    multi_tenant,
)

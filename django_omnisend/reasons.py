"""Kept for compatibility: the reason texts live in :mod:`django_omnisend.sync.reasons`."""

from .sync.reasons import REASONS, describe  # noqa: F401

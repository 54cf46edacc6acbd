"""Kept for compatibility: :func:`get_adapter` lives in :mod:`django_omnisend.adapter`."""

from .adapter import get_adapter  # noqa: F401

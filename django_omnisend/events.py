"""Kept for compatibility: events live in :mod:`django_omnisend.sync.events`."""

from .sync.events import send_event, send_order, send_recommended  # noqa: F401

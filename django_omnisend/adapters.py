"""Loading the configured :class:`~django_omnisend.adapter.ContactAdapter`."""

from __future__ import annotations

from functools import lru_cache

from django.utils.module_loading import import_string

from .adapter import ContactAdapter
from .conf import omnisend_settings


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> ContactAdapter:
    return import_string(path)()


def get_adapter() -> ContactAdapter:
    """The adapter instance named by ``OMNISEND["ADAPTER"]`` (one instance per dotted path)."""
    return _adapter_for(omnisend_settings.adapter)

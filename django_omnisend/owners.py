"""Kept for compatibility: owners live in :mod:`django_omnisend.connect.owners`."""

from .connect.owners import (  # noqa: F401
    OWNER_KEY_PREFIX,
    InvalidOwner,
    connection_key,
    describe,
    key_filter,
    load_owner,
    owner_filter,
    owner_from_key,
    owner_key,
    sign_owner,
    unsign_owner,
)

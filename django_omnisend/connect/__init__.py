"""Connecting the site (or an owner) to an Omnisend brand: lookup, tokens, binding, views.

The names below are the connection service host code and the rest of the package use
(``connect.get_client(...)``); each lives in the module named in the docs' layout page.
"""

from .brand_check import describe_probe_error, probe, probe_credentials
from .lifecycle import (
    Revocable,
    disconnect,
    mark_needs_reconnect,
    refresh_connection,
    retire,
    revoke_tokens,
    tokens_to_revoke,
)
from .lookup import (
    DEFAULT_KEY,
    active_connection,
    client_for,
    client_for_key,
    connection_for_key,
    credential_fingerprint,
    get_client,
    mark_key_needs_reconnect,
    owner_connection,
)

__all__ = [
    "DEFAULT_KEY",
    "Revocable",
    "active_connection",
    "client_for",
    "client_for_key",
    "connection_for_key",
    "credential_fingerprint",
    "describe_probe_error",
    "disconnect",
    "get_client",
    "mark_key_needs_reconnect",
    "mark_needs_reconnect",
    "owner_connection",
    "probe",
    "probe_credentials",
    "refresh_connection",
    "retire",
    "revoke_tokens",
    "tokens_to_revoke",
]

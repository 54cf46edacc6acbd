"""Credentials as ``requests`` auth objects: an API key or an OAuth bearer token.

Their ``repr`` shows only a fingerprint and they refuse to be pickled, so a credential never
reaches a log line, a queue or a cache.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.auth import AuthBase


def _fingerprint(secret: str) -> str:
    import hashlib

    return hashlib.sha256(secret.encode()).hexdigest()[:8]


class SecretAuth(AuthBase):
    """An ``Authorization`` header built from one secret; ``repr`` shows only a fingerprint."""

    __slots__ = ("_secret",)
    scheme = ""

    def __init__(self, secret: str) -> None:
        if not secret:
            raise ValueError(f"{type(self).__name__} needs a non-empty secret")
        self._secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"{self.scheme} {self._secret}"
        return request

    def with_secret(self, secret: str) -> SecretAuth:
        """A new auth of the same kind carrying ``secret`` (used after a refresh)."""
        return type(self)(secret)

    @property
    def fingerprint(self) -> str:
        """First 8 hex digits of the secret's SHA-256: enough to tell secrets apart in logs."""
        return _fingerprint(self._secret)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fingerprint={self.fingerprint!r})"

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Pickling would write the secret into queues and caches; credentials stay in memory.
        raise TypeError(f"{type(self).__name__} is not picklable (it holds a credential)")


class BearerAuth(SecretAuth):
    """``Authorization: Bearer <token>`` for an OAuth connection."""

    __slots__ = ()
    scheme = "Bearer"


class ApiKeyAuth(SecretAuth):
    """``Authorization: Omnisend-API-Key <key>`` for API-key mode."""

    __slots__ = ()
    scheme = "Omnisend-API-Key"

    @property
    def brand_id(self) -> str:
        """The brand id keys start with (``<brandID>-<secret>``), or ``""`` if it has none."""
        head, sep, _ = self._secret.partition("-")
        return head if sep and head.isalnum() else ""

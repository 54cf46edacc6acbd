"""Encryption of stored secrets with ``cryptography``'s MultiFernet.

Keys come from ``OMNISEND["ENCRYPTION_KEYS"]`` (newest first): the first encrypts, any
decrypts, and :func:`rotate` re-encrypts with the first. With no keys and ``DEBUG=True`` a
development key is derived from ``SECRET_KEY`` by HKDF (the W003 check says so); outside
DEBUG, encrypting without keys is a configuration error (E006).
"""

from __future__ import annotations

import base64
import hashlib
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .conf import omnisend_settings
from .exceptions import ImproperlyConfigured

__all__ = [
    "InvalidToken",
    "configuration_error",
    "decrypt",
    "encrypt",
    "fingerprint",
    "looks_encrypted",
    "rotate",
]

#: Every Fernet token starts with version byte 0x80, which base64url-encodes to "gAAAAA".
_FERNET_PREFIX = "gAAAAA"


def _dev_key(secret_key: str) -> bytes:
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"django_omnisend.v1"
    ).derive(secret_key.encode())
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=8)
def _multifernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(k) for k in keys])


def _keys() -> tuple[str, ...]:
    keys = tuple(omnisend_settings.encryption_keys)
    if keys:
        return keys
    if settings.DEBUG:
        return (_dev_key(settings.SECRET_KEY).decode(),)
    raise ImproperlyConfigured(
        'OMNISEND["ENCRYPTION_KEYS"] is empty, so Omnisend credentials cannot be stored. '
        "Set it to a list of Fernet keys (newest first); see the README's security notes."
    )


def configuration_error() -> str:
    """Why a new secret cannot be stored now ("" when it can): for a form error, not a 500."""
    try:
        _keys()
    except ImproperlyConfigured as exc:
        return str(exc)
    return ""


def encrypt(plaintext: str) -> str:
    """Encrypt ``plaintext`` with the newest key; returns an ASCII Fernet token."""
    return _multifernet(_keys()).encrypt(plaintext.encode()).decode("ascii")


def decrypt(token: str) -> str:
    """Decrypt a token made by :func:`encrypt` with any configured key.

    Raises :class:`cryptography.fernet.InvalidToken` when no key opens it.
    """
    return _multifernet(_keys()).decrypt(token.encode("ascii")).decode()


def rotate(token: str) -> str:
    """Re-encrypt ``token`` with the newest key (raises ``InvalidToken`` if none opens it)."""
    return _multifernet(_keys()).rotate(token.encode("ascii")).decode("ascii")


def looks_encrypted(value: str) -> bool:
    """Whether ``value`` has the shape of a Fernet token (it may still be undecryptable)."""
    return value.startswith(_FERNET_PREFIX) and len(value) >= 100


def fingerprint(secret: str) -> str:
    """A short, non-reversible label for a secret: the first 8 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:8] if secret else ""

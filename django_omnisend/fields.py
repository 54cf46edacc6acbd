"""``EncryptedTextField``: a text column that holds only Fernet ciphertext.

* Python code sees plaintext; the database, ``dumpdata`` and fixtures see ciphertext
  (``value_to_string`` re-encrypts, ``to_python`` accepts ciphertext so ``loaddata``
  round-trips).
* A value that no configured key opens loads as :class:`Undecryptable`, an empty string that
  remembers its ciphertext: reading it never raises (so no 500), ``Connection`` turns it into
  "needs reconnect", and saving the row writes the original ciphertext back unchanged. The same
  holds when no key is configured at all (``DEBUG`` off, empty ``ENCRYPTION_KEYS``): reading
  must not raise ``ImproperlyConfigured`` into an admin page; only storing a new secret does.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import models

from . import crypto
from .exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)


class Undecryptable(str):
    """An empty string standing for ciphertext that no configured key decrypts."""

    ciphertext: str

    def __new__(cls, ciphertext: str) -> Undecryptable:
        obj = super().__new__(cls, "")
        obj.ciphertext = ciphertext
        return obj

    def __repr__(self) -> str:
        return "<Undecryptable secret>"


class EncryptedTextField(models.TextField):
    """A ``TextField`` encrypted at rest with ``OMNISEND["ENCRYPTION_KEYS"]``."""

    description = "Text encrypted with Fernet"

    def from_db_value(self, value: Any, expression: Any, connection: Any) -> Any:
        if not value:
            return value
        try:
            return crypto.decrypt(value)
        except (crypto.InvalidToken, ImproperlyConfigured):
            # Log which column, never the ciphertext: a reconnect (or the right keys) is the fix.
            logger.warning(
                "A stored %s.%s value cannot be decrypted with OMNISEND['ENCRYPTION_KEYS'].",
                self.model.__name__,
                self.name,
            )
            return Undecryptable(value)

    def to_python(self, value: Any) -> Any:
        if isinstance(value, Undecryptable) or not isinstance(value, str) or not value:
            return value
        if crypto.looks_encrypted(value):
            try:
                return crypto.decrypt(value)
            except (crypto.InvalidToken, ImproperlyConfigured):
                return Undecryptable(value)
        return value

    def get_prep_value(self, value: Any) -> Any:
        value = super().get_prep_value(value)
        if isinstance(value, Undecryptable):
            return value.ciphertext
        if not value:
            return value
        return crypto.encrypt(value)

    def value_to_string(self, obj: models.Model) -> str:
        # Serializers (dumpdata) must never see plaintext.
        value = self.value_from_object(obj)
        if isinstance(value, Undecryptable):
            return value.ciphertext
        return crypto.encrypt(str(value)) if value else ""

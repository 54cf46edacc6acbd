"""Helpers that keep tests independent of ``AUTH_USER_MODEL`` (see tests/custom_users/).

The sync suites run with ``auth.User``, a UUID-keyed user and a user without an e-mail
column; fixtures written as JSON need the model's label, a key of its type and its columns.
"""

from __future__ import annotations

import uuid
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import models


def user_label() -> str:
    """``app_label.model`` of ``AUTH_USER_MODEL``, as fixtures name it."""
    return get_user_model()._meta.label_lower


def fixture_pk(n: int) -> Any:
    """A primary key value of the user model's type, different for each ``n``."""
    if isinstance(get_user_model()._meta.pk, models.UUIDField):
        return str(uuid.UUID(int=n))
    return n


def fixture_fields(**fields: Any) -> dict[str, Any]:
    """User ``fields`` for a fixture: ``email`` goes to the column that holds the address."""
    user_model = get_user_model()
    if "email" in fields:
        try:
            user_model._meta.get_field("email")
        except FieldDoesNotExist:
            fields["contact_address"] = fields.pop("email")  # tests/custom_users/no_email
    return fields

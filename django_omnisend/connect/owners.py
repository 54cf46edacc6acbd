"""Who a connection belongs to: the site (``None``) or any model instance (a shop, a team, a user).

An owner is stored on :class:`~django_omnisend.models.Connection` as a content type and a primary
key (both NULL for the site). Three spellings of an owner travel elsewhere:

* :func:`owner_key` — ``"app_label.model:pk"`` (``""`` for the site): plain, for the session's
  state record and log lines; never accepted from a request.
* :func:`sign_owner` — the key signed with ``django.core.signing``, for URLs and forms: a
  request can only name an owner a page of this site named, and the permission hook
  (:mod:`~django_omnisend.connect.permissions`) still decides who may act for it.
* :func:`connection_key` — the sync's connection key, ``"owner:app_label.model:pk"``
  (``"default"`` for the site): stable across reconnects and brand switches of the owner.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.core import signing

__all__ = [
    "OWNER_KEY_PREFIX",
    "InvalidOwner",
    "connection_key",
    "describe",
    "key_filter",
    "load_owner",
    "owner_filter",
    "owner_from_key",
    "owner_key",
    "sign_owner",
    "unsign_owner",
]

#: Prefix of the sync connection keys that name an owner.
OWNER_KEY_PREFIX = "owner:"
#: Salt of signed owner references (a signature made for anything else never verifies).
SIGNING_SALT = "django_omnisend.owner"


class InvalidOwner(ValueError):
    """An owner reference that is malformed, forged, or names a row that no longer exists."""


def owner_key(owner: Any) -> str:
    """``"app_label.model:pk"`` for a saved model instance, ``""`` for the site (None)."""
    if owner is None:
        return ""
    if getattr(owner, "pk", None) is None:
        raise InvalidOwner("An Omnisend connection owner must be a saved model instance.")
    meta = owner._meta
    return f"{meta.app_label}.{meta.model_name}:{owner.pk}"


def owner_filter(owner: Any) -> dict[str, Any]:
    """Field lookups selecting the connections of ``owner`` (None: the site's own rows)."""
    if owner is None:
        return {"owner_type__isnull": True, "owner_id__isnull": True}
    return {
        "owner_type": ContentType.objects.get_for_model(owner),
        "owner_id": str(owner.pk),
    }


def key_filter(key: str) -> dict[str, Any] | None:
    """:func:`owner_filter` for an :func:`owner_key`, without reading the owner's row.

    None when the key names no installed model (then no connection can belong to it).
    """
    if not key:
        return owner_filter(None)
    label, sep, pk = str(key).partition(":")
    app_label, dot, model = label.partition(".")
    if not (sep and pk and dot):
        return None
    try:
        content_type = ContentType.objects.get_by_natural_key(app_label, model)
    except ContentType.DoesNotExist:
        return None
    return {"owner_type": content_type, "owner_id": pk}


def owner_from_key(key: str) -> Any:
    """The instance an :func:`owner_key` names (None for ``""``); raises :class:`InvalidOwner`."""
    if not key:
        return None
    label, sep, pk = str(key).partition(":")
    try:
        model = apps.get_model(label) if sep and pk else None
    except (LookupError, ValueError):
        model = None
    if model is None:
        raise InvalidOwner(f"{key!r} does not name a model instance.")
    try:
        return model._default_manager.get(pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise InvalidOwner(f"The owner {key!r} no longer exists.") from None
    except Exception as exc:  # e.g. a UUID field given a non-UUID
        raise InvalidOwner(f"{key!r} does not name a model instance.") from exc


def sign_owner(owner: Any) -> str:
    """A URL-safe signed reference to ``owner`` (``"site"`` signed for None).

    Signed without a timestamp: the reference names the owner, it grants nothing (every view
    asks the connection adapter), so it never expires and is the same at every render.
    """
    return signing.Signer(salt=SIGNING_SALT).sign_object(owner_key(owner) or "site")


def unsign_owner(value: str) -> str:
    """The :func:`owner_key` inside a :func:`sign_owner` value; raises :class:`InvalidOwner`."""
    try:
        key = signing.Signer(salt=SIGNING_SALT).unsign_object(value)
    except (signing.BadSignature, ValueError):
        raise InvalidOwner("The Omnisend owner reference is not valid.") from None
    if not isinstance(key, str):
        raise InvalidOwner("The Omnisend owner reference is not valid.")
    return "" if key == "site" else key


def load_owner(value: str | None) -> Any:
    """The owner a signed reference names (None: no reference, or the site)."""
    if not value:
        return None
    return owner_from_key(unsign_owner(value))


def connection_key(owner: Any) -> str:
    """The sync connection key of ``owner``'s connection (``"default"`` for the site)."""
    key = owner_key(owner)
    return f"{OWNER_KEY_PREFIX}{key}" if key else "default"


def describe(owner: Any) -> str:
    """A short label for messages and tables: ``str(owner)``, or "the site"."""
    return "the site" if owner is None else str(owner)

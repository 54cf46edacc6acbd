"""Sending a catalog item (called by the drain): the payload is built from the rows as they
are now; an upsert is ``POST`` or ``PUT`` (falling back on 409/404), a delete ``DELETE`` (404
means done); categories ``POST`` then ``PATCH`` the title on 409.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any

from django.apps import apps

from .. import exceptions
from ..conf import omnisend_settings
from ..models import OutboxItem
from .adapter import (
    InvalidProduct,
    ProductAdapter,
    get_product_adapter,
    validate_category,
    validate_product,
)
from .marking import DELETES, PRODUCT_KINDS

logger = logging.getLogger("django_omnisend.catalog")


# -- sending --------------------------------------------------------------------------------


def _load(item: OutboxItem) -> Any:
    """The row the item names as it is now, or None when it is gone."""
    model = apps.get_model(item.payload["model"])
    return model._default_manager.filter(pk=item.payload["pk"]).first()


def superseded(item: OutboxItem) -> bool:
    """Whether a newer pending item of the same subject will send instead of ``item``."""
    return OutboxItem.objects.filter(
        subject=item.subject,
        connection_key=item.connection_key,
        state=OutboxItem.State.PENDING,
        pk__gt=item.pk,
    ).exists()


def deliver(item: OutboxItem, client: Any, send: Any) -> bool:
    """Send one catalog item; False when there was nothing to send (superseded).

    ``send(item, call, *args)`` is the drain's: one request under the item's lease.
    Raises what the request raised, or :class:`InvalidProduct` before any request.
    """
    if superseded(item):
        return False
    adapter = get_product_adapter()
    if adapter is None:
        raise exceptions.ImproperlyConfigured(
            'Catalog sync is off (OMNISEND["PRODUCT_ADAPTER"] is empty) but catalog items are '
            "pending: set PRODUCT_ADAPTER again, or delete the pending catalog outbox items."
        )
    product_id = item.payload["id"]
    if item.kind in PRODUCT_KINDS:
        instance = None if item.kind in DELETES else _load(item)
        if instance is None or not adapter.should_sync(instance):
            return _delete(send, item, client.products.delete, product_id)
        _upsert_product(item, client, send, adapter, instance)
        return True
    instance = None if item.kind in DELETES else _load(item)
    if instance is None:
        return _delete(send, item, client.categories.delete, product_id)
    _upsert_category(item, client, send, adapter, instance)
    return True


def _delete(send: Any, item: OutboxItem, call: Any, object_id: str) -> bool:
    # Not found: never created, or removed already; either way the delete is done.
    with contextlib.suppress(exceptions.NotFound):
        send(item, call, object_id)
    return True


def _upsert_product(item, client, send, adapter: ProductAdapter, instance: Any) -> None:
    body = adapter.get_product(instance).as_body()
    problems = validate_product(body)
    if body.get("id") != item.payload["id"]:
        problems.append(
            f"id: get_product() says {body.get('id')!r} but get_product_id() "
            f"{item.payload['id']!r}; they must agree"
        )
    if problems:
        raise InvalidProduct(f"Product {item.payload['id']!r}", problems)
    products = client.products
    if item.payload.get("create"):
        try:
            send(item, products.create, body)
        except exceptions.Conflict:  # it exists (a create that landed before a timeout)
            send(item, products.replace, body["id"], body)
        return
    try:
        send(item, products.replace, body["id"], body)
    except exceptions.NotFound:  # never created (catalog sync turned on after it)
        try:
            send(item, products.create, body)
        except exceptions.Conflict:  # created meanwhile by someone else
            send(item, products.replace, body["id"], body)


def _upsert_category(item, client, send, adapter: ProductAdapter, instance: Any) -> None:
    body = adapter.get_category(instance).as_body()
    problems = validate_category(body)
    if problems:
        raise InvalidProduct(f"Category {item.payload['id']!r}", problems)
    categories = client.categories
    category_id, title = body["categoryID"], body["title"]
    if item.payload.get("create"):
        try:
            send(item, categories.create, category_id, title)
        except exceptions.Conflict:
            send(item, categories.update, category_id, title)
        return
    try:
        send(item, categories.update, category_id, title)
    except exceptions.NotFound:
        try:
            send(item, categories.create, category_id, title)
        except exceptions.Conflict:
            send(item, categories.update, category_id, title)


def missing_scopes(connection: Any) -> list[str]:
    """The ``products.*`` scopes an OAuth ``connection`` was not granted (catalog sync on)."""
    from ..conf import CATALOG_SCOPES

    if not omnisend_settings.catalog_sync or connection is None:
        return []
    if connection.auth_type != connection.AuthType.OAUTH:
        return []  # an API key's scopes are not known here
    granted = set(connection.scopes or [])
    return [s for s in CATALOG_SCOPES if s not in granted]

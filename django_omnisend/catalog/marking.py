"""Catalog marking: saves and deletes of the shop's models queue product and category
writes in the outbox, in the caller's transaction, coalesced per product (ten saves are one
request). The payload is built when the item is sent (:mod:`.sending`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.db.models import Q
from django.db.models.signals import post_delete, post_save
from django.utils import timezone

from ..models import OutboxItem
from ..tasks import nudge_drain_on_commit
from .adapter import (
    InvalidProduct,
    get_product_adapter,
    resolve_models,
    validate_product_id,
)

logger = logging.getLogger("django_omnisend.catalog")


Kind = OutboxItem.Kind
PRODUCT_KINDS = (Kind.PRODUCT_UPSERT, Kind.PRODUCT_DELETE)
CATEGORY_KINDS = (Kind.CATEGORY_UPSERT, Kind.CATEGORY_DELETE)
#: Every outbox kind this module sends.
KINDS = (*PRODUCT_KINDS, *CATEGORY_KINDS)
DELETES = (Kind.PRODUCT_DELETE, Kind.CATEGORY_DELETE)


# -- marking ------------------------------------------------------------------------------


def _queue(kind: str, connection_key: str, subject: str, payload: dict[str, Any]) -> None:
    """Queue a catalog write for ``subject``, coalesced with a pending one of it.

    A pending item that no drain holds is changed in place (its kind, its payload); one in
    flight is left alone and the new item waits until its lease is over, so two requests for
    one product are never in flight together. ``payload["create"]`` stays True once set: a
    creation that was never sent is still a creation.
    """
    now = timezone.now()
    pending = (
        OutboxItem.objects.filter(
            subject=subject, connection_key=connection_key, state=OutboxItem.State.PENDING
        )
        .order_by("-pk")
        .first()
    )
    not_before = now
    if pending is not None:
        free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
        create = bool(payload.get("create") or pending.payload.get("create"))
        if pending.kind in DELETES and kind not in DELETES:
            create = True  # back after a delete: it may be gone from Omnisend
        merged = {**payload, "create": create}
        if (
            OutboxItem.objects.filter(free, pk=pending.pk, state=OutboxItem.State.PENDING).update(
                kind=kind, payload=merged
            )
            == 1
        ):
            return
        if pending.lease_until is not None:  # in flight: go after it
            not_before = max(now, pending.lease_until + timedelta(seconds=1))
    OutboxItem.objects.create(
        kind=kind,
        connection_key=connection_key,
        subject=subject,
        payload=payload,
        next_attempt_at=not_before,
    )


def _reference(instance: Any) -> dict[str, Any]:
    return {"model": instance._meta.label_lower, "pk": str(instance.pk)}


def _checked_id(value: Any, what: str) -> str:
    problems = validate_product_id(value)
    if problems:
        raise InvalidProduct(what, problems)
    return value


def mark_product(instance: Any, *, created: bool = False, deleted: bool = False) -> None:
    """Queue ``instance`` (a product model row) to be sent, or removed when ``deleted``.

    The receivers call it; call it yourself after writes that send no signals
    (``QuerySet.update()``, raw SQL). Raises :class:`InvalidProduct` for an id Omnisend
    cannot take (the adapter's ``get_product_id``). Does nothing with catalog sync off.
    """
    adapter = get_product_adapter()
    if adapter is None:
        return
    product_id = _checked_id(adapter.get_product_id(instance), f"Product {instance!r}")
    kind = Kind.PRODUCT_DELETE if deleted else Kind.PRODUCT_UPSERT
    payload = {"id": product_id, **_reference(instance), "create": bool(created)}
    _queue(kind, adapter.get_connection_key(instance), f"product:{product_id}", payload)
    nudge_drain_on_commit()


def mark_category(instance: Any, *, created: bool = False, deleted: bool = False) -> None:
    """Queue a category model row to be sent, or removed when ``deleted``."""
    adapter = get_product_adapter()
    if adapter is None:
        return
    category_id = _checked_id(adapter.get_category_id(instance), f"Category {instance!r}")
    kind = Kind.CATEGORY_DELETE if deleted else Kind.CATEGORY_UPSERT
    payload = {"id": category_id, **_reference(instance), "create": bool(created)}
    _queue(kind, adapter.get_connection_key(instance), f"category:{category_id}", payload)
    nudge_drain_on_commit()


# -- receivers ------------------------------------------------------------------------------


def product_saved(sender: Any, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    """``post_save`` of a product model."""
    if not raw:
        mark_product(instance, created=created)


def product_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` of a product model: the delete replaces any pending upsert."""
    mark_product(instance, deleted=True)


def part_changed(sender: Any, instance: Any, raw: bool = False, **kwargs: Any) -> None:
    """``post_save``/``post_delete`` of a related model (a variant): re-send its products."""
    adapter = get_product_adapter()
    if raw or adapter is None:
        return
    try:
        products = list(adapter.get_products_of(instance))
    except ObjectDoesNotExist:
        # A product deleted in the same cascade is gone already: its own delete is queued.
        products = []
    for product in products:
        mark_product(product)


def category_saved(sender: Any, instance: Any, created: bool, raw: bool, **kwargs: Any) -> None:
    """``post_save`` of a category model."""
    if not raw:
        mark_category(instance, created=created)


def category_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    """``post_delete`` of a category model."""
    mark_category(instance, deleted=True)


#: (signal, receiver, model) connected now, to disconnect when the adapter changes.
_connected: list[tuple[Any, Any, type]] = []


def connect_receivers() -> None:
    """Connect the receivers to the models the current ``PRODUCT_ADAPTER`` names.

    Called from ``AppConfig.ready`` and again whenever ``OMNISEND`` changes
    (``override_settings``), so only the catalog's models pay for a receiver.
    """
    for signal, receiver, model in _connected:
        signal.disconnect(receiver, sender=model)
    _connected.clear()
    try:
        adapter = get_product_adapter()
        if adapter is None:
            return
        resolve_models([*adapter.product_models, *adapter.related_models])
        resolve_models(adapter.category_models)
    except (ImportError, LookupError, ValueError):
        # Check E017 names the problem; saves must not fail because of it meanwhile.
        logger.warning(
            'OMNISEND["PRODUCT_ADAPTER"] or its models cannot be loaded: catalog sync is '
            "off until it is fixed (manage.py check says why).",
            exc_info=True,
        )
        return
    plan: list[tuple[Any, Callable[..., None], Callable[..., None]]] = [
        (adapter.product_models, product_saved, product_deleted),
        (adapter.related_models, part_changed, part_changed),
        (adapter.category_models, category_saved, category_deleted),
    ]
    for models, on_save, on_delete in plan:
        for model in resolve_models(models):
            for signal, receiver in ((post_save, on_save), (post_delete, on_delete)):
                signal.connect(receiver, sender=model, weak=False)
                _connected.append((signal, receiver, model))

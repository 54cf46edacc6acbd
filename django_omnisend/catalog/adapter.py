"""``ProductAdapter``: the class a shop subclasses to map its models to Omnisend's catalog.

Point ``OMNISEND["PRODUCT_ADAPTER"]`` at a subclass to turn catalog sync on. It names the
models that are products, categories, or parts of a product (variants, stock rows), and maps
an instance to a :class:`Product` or :class:`Category`; :func:`validate_product` checks the
result against Omnisend's documented limits before anything is sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.apps import apps
from django.db.models import Model
from django.utils.module_loading import import_string

from ..conf import omnisend_settings
from ..exceptions import OmnisendError

IN_STOCK = "inStock"
OUT_OF_STOCK = "outOfStock"
NOT_AVAILABLE = "notAvailable"
STOCK_STATUSES = (IN_STOCK, OUT_OF_STOCK, NOT_AVAILABLE)

#: Omnisend's limits (Products API 2026-03-15): string lengths and list sizes.
PRODUCT_LENGTHS = {
    "id": 100,
    "title": 255,
    "url": 1000,
    "defaultImageUrl": 1000,
    "description": 1000,
    "type": 100,
    "vendor": 100,
}
VARIANT_LENGTHS = {
    "id": 100,
    "title": 255,
    "url": 1000,
    "sku": 255,
    "defaultImageUrl": 1000,
    "description": 1000,
}
PRODUCT_LISTS = {"categoryIDs": 100, "images": 300, "tags": 100}
MAX_VARIANTS = 500
CATEGORY_LENGTHS = {"categoryID": 100, "title": 255}


class InvalidProduct(OmnisendError):
    """What the ``ProductAdapter`` made is not a product (or category) Omnisend accepts.

    Never retried: the same instance maps to the same body until the site's data or adapter
    changes (a later save queues it again).
    """

    retryable = False

    def __init__(self, what: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"{what} is not valid for Omnisend: {'; '.join(problems)}. Fix the data or the "
            'ProductAdapter named by OMNISEND["PRODUCT_ADAPTER"]; the next save sends it again.'
        )


def _number(value: Any) -> float | int:
    """A price as JSON wants it: Decimal and int become float/int, never a string."""
    if isinstance(value, Decimal):
        return float(value)
    return value


def _put(body: dict[str, Any], key: str, value: Any) -> None:
    """Set ``key`` unless ``value`` is empty (Omnisend takes a missing field, not "")."""
    if value not in (None, "", [], ()):
        body[key] = list(value) if isinstance(value, tuple) else value


@dataclass
class Variant:
    """One buyable variant: its own id, title, URL and price (and stock status)."""

    id: str
    title: str
    url: str
    price: Decimal | float | int
    sku: str = ""
    status: str = ""
    strike_through_price: Decimal | float | int | None = None
    images: Sequence[str] = ()
    default_image_url: str = ""
    description: str = ""

    def as_body(self) -> dict[str, Any]:
        """The ``Variant`` object of Omnisend's Products API."""
        body: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "price": _number(self.price),
        }
        _put(body, "sku", self.sku)
        _put(body, "status", self.status)
        _put(body, "strikeThroughPrice", _number(self.strike_through_price))
        _put(body, "images", list(self.images))
        _put(body, "defaultImageUrl", self.default_image_url)
        _put(body, "description", self.description)
        return body


@dataclass
class Product:
    """A catalog product; ``id`` must stay the same for the life of the product."""

    id: str
    title: str
    url: str
    currency: str
    status: str = IN_STOCK
    variants: Sequence[Variant] = ()
    images: Sequence[str] = ()
    category_ids: Sequence[str] = ()
    default_image_url: str = ""
    description: str = ""
    vendor: str = ""
    type: str = ""
    tags: Sequence[str] = field(default_factory=list)

    def as_body(self) -> dict[str, Any]:
        """The ``Product`` object of Omnisend's Products API."""
        body: dict[str, Any] = {
            "id": self.id,
            "title": self.title,
            "url": self.url,
            "currency": self.currency,
            "status": self.status,
        }
        _put(body, "variants", [v.as_body() for v in self.variants])
        _put(body, "images", list(self.images))
        _put(body, "categoryIDs", list(self.category_ids))
        _put(body, "defaultImageUrl", self.default_image_url)
        _put(body, "description", self.description)
        _put(body, "vendor", self.vendor)
        _put(body, "type", self.type)
        _put(body, "tags", list(self.tags))
        return body


@dataclass
class Category:
    """A product category: ``id`` (Omnisend's ``categoryID``) and its title."""

    id: str
    title: str

    def as_body(self) -> dict[str, Any]:
        """``CreateCategoryRequest``."""
        return {"categoryID": self.id, "title": self.title}


def stock_status(quantity: int | None) -> str:
    """``inStock`` for a positive quantity or an untracked one (None), else ``outOfStock``."""
    return IN_STOCK if quantity is None or quantity > 0 else OUT_OF_STOCK


def _check_strings(body: dict, limits: dict[str, int], prefix: str, problems: list[str]) -> None:
    for key, limit in limits.items():
        if key not in body:
            continue
        value = body[key]
        if not isinstance(value, str):
            problems.append(f"{prefix}{key}: must be text, not {type(value).__name__}")
        elif len(value) > limit:
            problems.append(f"{prefix}{key}: {len(value)} characters, at most {limit} allowed")


def _check_url(body: dict, key: str, prefix: str, problems: list[str]) -> None:
    value = body.get(key)
    if isinstance(value, str) and not value.startswith(("https://", "http://")):
        problems.append(f"{prefix}{key}: must be an absolute http(s) URL, not {value[:60]!r}")


def validate_product(body: dict[str, Any]) -> list[str]:
    """Every way ``body`` breaks Omnisend's ``Product`` schema (an empty list when none)."""
    problems: list[str] = []
    for key in ("id", "title", "url", "currency", "status"):
        if not body.get(key):
            problems.append(f"{key}: required")
    _check_strings(body, PRODUCT_LENGTHS, "", problems)
    _check_url(body, "url", "", problems)
    if body.get("status") and body["status"] not in STOCK_STATUSES:
        problems.append(f"status: {body['status']!r} is not one of {', '.join(STOCK_STATUSES)}")
    for key, limit in PRODUCT_LISTS.items():
        values = body.get(key, [])
        if len(values) > limit:
            problems.append(f"{key}: {len(values)} items, at most {limit} allowed")
        if any(not isinstance(v, str) or not v for v in values):
            problems.append(f"{key}: every item must be non-empty text")
    variants = body.get("variants", [])
    if len(variants) > MAX_VARIANTS:
        problems.append(f"variants: {len(variants)} items, at most {MAX_VARIANTS} allowed")
    for i, variant in enumerate(variants):
        prefix = f"variants[{i}]."
        for key in ("id", "title", "url"):
            if not variant.get(key):
                problems.append(f"{prefix}{key}: required")
        _check_strings(variant, VARIANT_LENGTHS, prefix, problems)
        _check_url(variant, "url", prefix, problems)
        for key in ("price", "strikeThroughPrice"):
            value = variant.get(key)
            if key in variant and (isinstance(value, bool) or not isinstance(value, int | float)):
                problems.append(f"{prefix}{key}: must be a number")
        if "price" not in variant:
            problems.append(f"{prefix}price: required")
        if variant.get("status") and variant["status"] not in STOCK_STATUSES:
            problems.append(f"{prefix}status: {variant['status']!r} is not a stock status")
    return problems


def validate_category(body: dict[str, Any]) -> list[str]:
    """Every way ``body`` breaks Omnisend's ``CreateCategoryRequest``."""
    problems = [f"{key}: required" for key in ("categoryID", "title") if not body.get(key)]
    _check_strings(body, CATEGORY_LENGTHS, "", problems)
    return problems


def validate_product_id(product_id: Any) -> list[str]:
    """Problems of a product or category id (text of 1 to 100 characters)."""
    if not isinstance(product_id, str) or not product_id:
        return [f"id: must be non-empty text, not {product_id!r}"]
    if len(product_id) > PRODUCT_LENGTHS["id"]:
        return [f"id: {len(product_id)} characters, at most {PRODUCT_LENGTHS['id']} allowed"]
    return []


class ProductAdapter:
    """Maps the site's models to Omnisend products and categories (subclass it).

    Model lists hold ``"app_label.ModelName"`` strings or model classes. Saves and deletes of
    ``product_models`` queue the product; of ``related_models`` (variants, images, stock
    rows) queue the products :meth:`get_products_of` returns; of ``category_models`` queue
    the category. Payloads are built when they are sent, from the rows as they are then.
    """

    product_models: Sequence[str | type] = ()
    related_models: Sequence[str | type] = ()
    category_models: Sequence[str | type] = ()

    def get_product(self, instance: Any) -> Product:
        """The :class:`Product` for ``instance`` (required)."""
        raise NotImplementedError(
            f"{type(self).__name__}.get_product(instance) must return a Product."
        )

    def get_product_id(self, instance: Any) -> str:
        """The product's id in Omnisend: stable for its whole life (default: the pk)."""
        return str(instance.pk)

    def should_sync(self, instance: Any) -> bool:
        """Whether the product belongs in the catalog; False removes it (unpublished)."""
        return True

    def get_products_of(self, instance: Any) -> Iterable[Any]:
        """The products a ``related_models`` instance is part of (a variant's product)."""
        return ()

    def get_category(self, instance: Any) -> Category:
        """The :class:`Category` for ``instance`` (default: the id and ``str(instance)``)."""
        return Category(id=self.get_category_id(instance), title=str(instance))

    def get_category_id(self, instance: Any) -> str:
        """The category's id in Omnisend (default: the pk)."""
        return str(instance.pk)

    def get_connection_key(self, instance: Any) -> str:
        """Which connection (brand) the product or category goes to (default: the site's)."""
        return "default"

    def get_products(self) -> Iterable[Any]:
        """Every product instance, for the backfill (default: each product model's rows)."""
        for model in resolve_models(self.product_models):
            yield from model._default_manager.order_by("pk").iterator(chunk_size=500)

    def get_categories(self) -> Iterable[Any]:
        """Every category instance, for the backfill."""
        for model in resolve_models(self.category_models):
            yield from model._default_manager.order_by("pk").iterator(chunk_size=500)


def resolve_models(models: Iterable[str | type]) -> list[type[Model]]:
    """Model classes from ``"app_label.ModelName"`` strings or classes."""
    return [apps.get_model(m) if isinstance(m, str) else m for m in models]


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> ProductAdapter:
    return import_string(path)()


def get_product_adapter() -> ProductAdapter | None:
    """The adapter named by ``OMNISEND["PRODUCT_ADAPTER"]``; None when catalog sync is off."""
    path = omnisend_settings.product_adapter
    return _adapter_for(path) if path else None

"""``TrackingAdapter``: where Omnisend's JavaScript snippet may run, and what products look like.

Point ``OMNISEND["TRACKING_ADAPTER"]`` at a subclass. :meth:`TrackingAdapter.tracking_allowed`
is the cookie-consent hook: until it answers True for a request, ``{% omnisend_snippet %}``
and ``{% omnisend_viewed_product %}`` render nothing at all (Omnisend's script sets tracking
cookies as soon as it loads). The default answers False, so installing the app never starts
tracking by itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from django.http import HttpRequest
from django.utils.module_loading import import_string

#: Keys of Omnisend's ``viewed product`` ``properties.product`` (event version v4).
PRODUCT_FIELDS = (
    "id",
    "variantID",
    "title",
    "description",
    "url",
    "imageUrl",
    "price",
    "oldPrice",
    "currency",
    "status",
    "vendor",
    "categories",
    "tags",
)


class TrackingAdapter:
    """Default: no tracking until a subclass says the visitor consented."""

    def tracking_allowed(self, request: HttpRequest) -> bool:
        """Whether this visitor agreed to marketing cookies (default False: never).

        Read your consent banner's record here, e.g. ``request.COOKIES.get("consent") ==
        "marketing"``. Keep it cheap: it runs on every page with the snippet.
        """
        return False

    def get_product(self, product: Any, request: HttpRequest) -> Mapping[str, Any] | None:
        """``product`` as Omnisend's ``viewed product`` product (``id``, ``title``, ``url``...).

        Default: a mapping is taken as it is (only Omnisend's keys); a model instance gives
        ``id`` (its pk), ``title`` (``str()``) and ``url`` (``get_absolute_url()``, made
        absolute). Return None to send nothing for this product.
        """
        if isinstance(product, Mapping):
            return {k: product[k] for k in PRODUCT_FIELDS if k in product}
        if getattr(product, "pk", None) is None:
            return None
        data: dict[str, Any] = {"id": str(product.pk), "title": str(product)}
        if hasattr(product, "get_absolute_url"):
            data["url"] = request.build_absolute_uri(product.get_absolute_url())
        return data


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> TrackingAdapter:
    return import_string(path)()


def get_tracking_adapter() -> TrackingAdapter:
    """The adapter named by ``OMNISEND["TRACKING_ADAPTER"]`` (one instance per dotted path)."""
    from .conf import omnisend_settings

    return _adapter_for(omnisend_settings.tracking_adapter)

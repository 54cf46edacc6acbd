"""The store's catalog as Omnisend sees it: the ``ProductAdapter`` named by
``OMNISEND["PRODUCT_ADAPTER"]``.

Products and categories are known to Omnisend by their slugs, which never change; a variant's
save re-sends its product. The drain worker builds the payload when it sends it, so product
URLs come from the ``SITE_URL`` setting (there is no request then).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from django_omnisend.product_adapter import Category, Product, ProductAdapter, Variant, stock_status

from .models import CURRENCY


def absolute(path: str) -> str:
    """``path`` on the site's public address (``SITE_URL``)."""
    return settings.SITE_URL.rstrip("/") + path


class StoreProductAdapter(ProductAdapter):
    product_models = ["store.Product"]
    related_models = ["store.Variant"]
    category_models = ["store.Category"]

    def get_product_id(self, instance: Any) -> str:
        return instance.slug

    def get_category_id(self, instance: Any) -> str:
        return instance.slug

    def should_sync(self, instance: Any) -> bool:
        # Unpublishing removes the product from Omnisend's catalog (DELETE /products/{id}).
        return instance.published

    def get_products_of(self, instance: Any) -> list[Any]:
        return [instance.product]

    def get_product(self, instance: Any) -> Product:
        url = absolute(instance.get_absolute_url())
        variants = [
            Variant(
                id=v.sku,
                title=v.title,
                url=f"{url}?variant={v.sku}",
                price=v.price,
                sku=v.sku,
                status=stock_status(v.stock),
            )
            for v in instance.variants.all()
        ]
        in_stock = any(v.stock > 0 for v in instance.variants.all())
        return Product(
            id=instance.slug,
            title=instance.title,
            url=url,
            currency=CURRENCY,
            status=stock_status(1 if in_stock else 0),
            description=instance.description[:1000],
            category_ids=[instance.category.slug] if instance.category_id else [],
            variants=variants,
        )

    def get_category(self, instance: Any) -> Category:
        return Category(id=instance.slug, title=instance.title)

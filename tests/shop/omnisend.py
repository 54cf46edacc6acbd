"""The test shop's ``ProductAdapter``: products by SKU, variants, categories by slug."""

from __future__ import annotations

from django_omnisend.catalog.adapter import Category, Product, ProductAdapter, Variant, stock_status

SITE = "https://shop.example.com"


class ShopProductAdapter(ProductAdapter):
    product_models = ["shop.Product"]
    related_models = ["shop.Variant"]
    category_models = ["shop.Category"]

    def get_product_id(self, instance) -> str:
        return instance.sku

    def get_category_id(self, instance) -> str:
        return instance.slug

    def should_sync(self, instance) -> bool:
        return instance.published

    def get_products_of(self, instance):
        return [instance.product]

    def get_product(self, instance) -> Product:
        url = SITE + instance.get_absolute_url()
        variants = [
            Variant(
                id=v.sku,
                title=v.title,
                url=f"{url}?v={v.sku}",
                price=v.price,
                sku=v.sku,
                status=stock_status(v.stock),
            )
            for v in instance.variants.order_by("pk")
        ]
        return Product(
            id=instance.sku,
            title=instance.title,
            url=url,
            currency="EUR",
            status=stock_status(instance.stock),
            description=instance.description,
            images=[f"{SITE}/img/{instance.sku}.jpg"],
            category_ids=[instance.category.slug] if instance.category_id else [],
            variants=variants
            or [Variant(id=instance.sku, title=instance.title, url=url, price=instance.price)],
        )

    def get_category(self, instance) -> Category:
        return Category(id=instance.slug, title=instance.title)

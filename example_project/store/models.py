"""The example store's data: a catalog (categories, products, variants with prices and stock)
and the orders placed at checkout, whose lines keep what was bought even after a product goes.

The store is the *site's* own shop: its catalog and orders go to the site's Omnisend brand
(the ``default`` connection), not to a tenant's (``members.Shop``) brand.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.urls import reverse

#: Every price of the store is in this currency (ISO 4217, as Omnisend takes it).
CURRENCY = "EUR"


class Category(models.Model):
    slug = models.SlugField(unique=True, help_text="The category's id in Omnisend: keep it.")
    title = models.CharField(max_length=255)

    class Meta:
        ordering = ["title"]
        verbose_name_plural = "categories"

    def __str__(self) -> str:
        return self.title


class Product(models.Model):
    slug = models.SlugField(unique=True, help_text="The product's id in Omnisend: keep it.")
    title = models.CharField(max_length=255)
    description = models.TextField(blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    #: Unpublished products are hidden here and removed from Omnisend's catalog.
    published = models.BooleanField(default=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("store:product", args=[self.slug])

    @property
    def lowest_price(self) -> Decimal | None:
        prices = [v.price for v in self.variants.all()]
        return min(prices) if prices else None


class Variant(models.Model):
    """What is bought: a size or colour of a product, with its own price and stock."""

    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="variants")
    sku = models.CharField("SKU", max_length=100, unique=True)
    title = models.CharField(max_length=255)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.product} - {self.title}"


class Order(models.Model):
    """An order placed at checkout by a member (``user``) or a guest (``email`` only)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    email = models.EmailField()
    currency = models.CharField(max_length=3, default=CURRENCY)
    total = models.DecimalField(max_digits=12, decimal_places=2)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"Order {self.pk}"


class OrderLine(models.Model):
    """One line of an order: a copy of the product's data at the time of the order."""

    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="lines")
    variant = models.ForeignKey(Variant, null=True, on_delete=models.SET_NULL)
    product_slug = models.CharField(max_length=100)
    title = models.CharField(max_length=255)
    variant_sku = models.CharField(max_length=100)
    variant_title = models.CharField(max_length=255)
    unit_price = models.DecimalField(max_digits=10, decimal_places=2)
    quantity = models.PositiveIntegerField()

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.quantity} x {self.title} ({self.variant_title})"

"""A small shop's catalog, the host models the catalog sync tests map to Omnisend."""

from django.db import models


class Category(models.Model):
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=300)

    def __str__(self) -> str:
        return self.title


class Product(models.Model):
    sku = models.CharField(max_length=150, unique=True)
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    #: None: not tracked (always in stock).
    stock = models.IntegerField(null=True, blank=True)
    category = models.ForeignKey(Category, null=True, blank=True, on_delete=models.SET_NULL)
    published = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return f"/p/{self.sku}/"


class Variant(models.Model):
    product = models.ForeignKey(Product, related_name="variants", on_delete=models.CASCADE)
    sku = models.CharField(max_length=150)
    title = models.CharField(max_length=200)
    price = models.DecimalField(max_digits=10, decimal_places=2)
    stock = models.IntegerField(default=0)

    def __str__(self) -> str:
        return self.title

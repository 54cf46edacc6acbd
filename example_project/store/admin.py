from django.contrib import admin

from .models import Category, Order, OrderLine, Product, Variant


@admin.register(Category)
class CategoryAdmin(admin.ModelAdmin):
    list_display = ["title", "slug"]
    prepopulated_fields = {"slug": ["title"]}


class VariantInline(admin.TabularInline):
    model = Variant
    extra = 0


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "category", "published"]
    list_filter = ["published", "category"]
    prepopulated_fields = {"slug": ["title"]}
    inlines = [VariantInline]


@admin.register(Variant)
class VariantAdmin(admin.ModelAdmin):
    list_display = ["sku", "product", "title", "price", "stock"]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    extra = 0
    readonly_fields = [f.name for f in OrderLine._meta.fields]
    can_delete = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["pk", "email", "total", "created"]
    readonly_fields = ["user", "email", "currency", "total", "created"]
    inlines = [OrderLineInline]

from django.contrib import admin

from .models import NewsletterConsent, Shop, ShopMembership


@admin.register(NewsletterConsent)
class NewsletterConsentAdmin(admin.ModelAdmin):
    list_display = ["user", "subscribed", "at", "ip", "source"]
    list_filter = ["subscribed"]
    raw_id_fields = ["user"]


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
    list_display = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    filter_horizontal = ["staff"]


@admin.register(ShopMembership)
class ShopMembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "shop"]
    list_filter = ["shop"]
    raw_id_fields = ["user"]

from django.contrib import admin

from .models import NewsletterConsent


@admin.register(NewsletterConsent)
class NewsletterConsentAdmin(admin.ModelAdmin):
    list_display = ["user", "subscribed", "at", "ip", "source"]
    list_filter = ["subscribed"]
    raw_id_fields = ["user"]

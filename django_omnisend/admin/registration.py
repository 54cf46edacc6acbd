"""Admin page for the site's own OAuth client registrations (issue 18): read-only, no secret.

Deleting a row is allowed (the next Connect registers the site again, for example after
Omnisend revoked the client); adding and editing are not, and the encrypted secret is never
a field of any form or list.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from ..models import ClientRegistration


@admin.register(ClientRegistration)
class ClientRegistrationAdmin(admin.ModelAdmin):
    list_display = ("client_id", "redirect_uri", "registration_endpoint", "created_at")
    search_fields = ("client_id", "redirect_uri")
    ordering = ("-created_at",)
    # Every field but the secret, shown read-only (``fields`` keeps the secret off the form).
    fields = readonly_fields = (
        "client_id",
        "redirect_uri",
        "registration_endpoint",
        "metadata",
        "secret_expires_at",
        "created_at",
        "secret_status",
    )

    @admin.display(description=_("client secret"))
    def secret_status(self, obj: ClientRegistration) -> str:
        """Whether a secret is stored and usable, never the secret itself."""
        if obj.usable:
            return str(_("stored, encrypted"))
        return str(
            _("not usable (expired or cannot be decrypted): the next Connect registers again")
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

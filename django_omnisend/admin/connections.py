"""Admin for Omnisend connections: list, add or change (an API key), delete.

No secret is ever rendered (docs: guides/security.rst, 'Secrets are never shown'); a new key
follows the OAuth callback's brand rules
(:mod:`django_omnisend.connect.binding`). The actions are in
:mod:`~django_omnisend.admin.connection_actions`.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from .. import connect
from ..conf import omnisend_settings
from ..connect import binding
from ..connect.permissions import can_manage
from ..models import SECRET_FIELDS, Connection
from .connection_actions import ConnectionActions
from .forms import ConnectionForm, OwnerFilter


@admin.register(Connection)
class ConnectionAdmin(ConnectionActions, admin.ModelAdmin):
    form = ConnectionForm
    list_display = (
        "__str__",
        "owner_label",
        "brand_id",
        "status",
        "auth_type",
        "scope_list",
        "expires_at",
        "connected_by",
        "fingerprint",
        "checked_at",
    )
    list_filter = (OwnerFilter, "status", "auth_type")
    search_fields = ("brand_name", "brand_id", "fingerprint", "owner_id")
    exclude = SECRET_FIELDS
    readonly_fields = (
        "owner_label",
        "brand_name",
        "brand_id",
        "brand_website",
        "auth_type",
        "status",
        "status_reason",
        "fingerprint",
        "token_type",
        "scope_list",
        "expires_at",
        "connected_by",
        "created_at",
        "updated_at",
        "refreshed_at",
        "checked_at",
    )
    actions = ["test_connection", "refresh_token", "disconnect"]

    @admin.display(description=_("owner"), ordering="owner_type")
    def owner_label(self, obj: Connection) -> str:
        if obj.owner_type_id is None:
            return str(_("The site"))
        owner = obj.owner
        kind = obj.owner_type.name if obj.owner_type else "?"
        return f"{kind}: {owner}" if owner is not None else f"{kind} #{obj.owner_id} (deleted)"

    @admin.display(description=_("scopes"))
    def scope_list(self, obj: Connection) -> str:
        return " ".join(str(s) for s in obj.scopes or []) or "—"

    def get_fields(  # type: ignore[override]  # a list of names is one form of the spec
        self, request: HttpRequest, obj: Connection | None = None
    ) -> list[str]:
        # The key field only where a key makes sense: new rows and API-key rows.
        fields = list(self.readonly_fields)
        if obj is None:
            return ["new_api_key"]
        if obj.auth_type == Connection.AuthType.API_KEY:
            fields.insert(0, "new_api_key")
        return fields

    def get_readonly_fields(self, request: HttpRequest, obj: Connection | None = None) -> Any:
        return self.readonly_fields if obj is not None else ()

    def has_manage_permission(self, request: HttpRequest) -> bool:
        return can_manage(request.user)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return super().has_add_permission(request) and can_manage(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        # Others with the view permission get a read-only page.
        return super().has_change_permission(request, obj) and can_manage(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Connection | None = None) -> bool:
        # Deleting ends the connection (its tokens are revoked at Omnisend), like "Disconnect":
        # Django's delete permission alone must not be enough (the view and the bulk action).
        return super().has_delete_permission(request, obj) and can_manage(request.user)

    # -- a new API key: the same brand rules as the OAuth callback ---------------------------

    @sensitive_variables()
    def save_model(
        self, request: HttpRequest, obj: Connection, form: ConnectionForm, change: bool
    ) -> None:
        key = form.cleaned_data.get("new_api_key")
        if not key or form.brand is None:
            super().save_model(request, obj, form, change)
            return
        bound = binding.bind(
            binding.Credential.from_api_key(key),
            form.brand,
            request.user,
            row=obj if change else None,
            # One brand per tenant: a new brand's key joins the others instead of replacing them.
            alongside=binding.multi_tenant(),
        )
        # Tokens the key replaced are revoked once the admin's transaction has committed.
        stale = bound.stale
        transaction.on_commit(lambda: connect.revoke_tokens(stale))
        request._omnisend_bound = bound  # type: ignore[attr-defined]
        # Did the key land on another row than the one added or edited (the brand's own)?
        request._omnisend_moved = bound.existing and bound.connection.pk != (  # type: ignore[attr-defined]
            obj.pk if change else None
        )
        # The history entry and the redirect name the row that holds the key now.
        obj.pk = bound.connection.pk
        obj.refresh_from_db()

    def log_addition(self, request: HttpRequest, obj: Any, message: Any) -> Any:
        if getattr(request, "_omnisend_moved", False):  # the brand's existing row took the key
            return self.log_change(request, obj, [{"changed": {"fields": [str(_("API key"))]}}])
        return super().log_addition(request, obj, message)

    def response_add(
        self, request: HttpRequest, obj: Connection, post_url_continue: str | None = None
    ) -> HttpResponse:
        return self._bound_response(request) or super().response_add(
            request, obj, post_url_continue
        )

    def response_change(self, request: HttpRequest, obj: Connection) -> HttpResponse:
        return self._bound_response(request) or super().response_change(request, obj)

    def _bound_response(self, request: HttpRequest) -> HttpResponse | None:
        """Where a key that did not simply land on the edited row leads: the confirm page
        (another brand is in use), or the list (the brand's existing row took it)."""
        bound = getattr(request, "_omnisend_bound", None)
        if bound is None:
            return None
        if bound.needs_confirmation:
            self.message_user(
                request,
                _(
                    "This API key belongs to the Omnisend brand %(brand)s, not to the one this "
                    "site uses. Nothing has changed yet: confirm or cancel the switch."
                )
                % {"brand": bound.connection},
                messages.WARNING,
            )
            return HttpResponseRedirect(
                reverse("django_omnisend:confirm", args=[bound.connection.pk])
            )
        if getattr(request, "_omnisend_moved", False):
            self.message_user(
                request,
                _(
                    "The Omnisend brand %(brand)s was already connected; this API key now "
                    "replaces its credentials."
                )
                % {"brand": bound.connection},
                messages.SUCCESS,
            )
            return HttpResponseRedirect(reverse("admin:django_omnisend_connection_changelist"))
        return None

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        # Deleting the row must not leave live tokens behind at Omnisend.
        tokens = connect.tokens_to_revoke(obj)
        super().delete_model(request, obj)
        connect.revoke_tokens(tokens)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        tokens = [t for c in queryset for t in connect.tokens_to_revoke(c)]
        super().delete_queryset(request, queryset)
        connect.revoke_tokens(tokens)

    # -- list page --------------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        self._flag_undecryptable()
        for connection in Connection.objects.filter(status=Connection.Status.NEEDS_RECONNECT):
            messages.warning(
                request,
                _(
                    "%(connection)s needs a reconnect: %(reason)s Nothing is sent to this brand "
                    "until you connect again (OAuth) or enter the API key again."
                )
                % {
                    "connection": connection,
                    "reason": connection.status_reason or _("its credentials stopped working."),
                },
            )
        extra_context = dict(extra_context or {})
        extra_context["omnisend_can_connect"] = (
            can_manage(request.user) and omnisend_settings.oauth_mode
        )
        return super().changelist_view(request, extra_context)

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        self._flag_undecryptable()
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self._flag_undecryptable()
        return super().delete_view(request, object_id, extra_context)

    def history_view(
        self, request: HttpRequest, object_id: str, extra_context: Any = None
    ) -> HttpResponse:
        self._flag_undecryptable()
        return super().history_view(request, object_id, extra_context)

    @staticmethod
    def _flag_undecryptable() -> None:
        """Rows whose secrets no configured key opens become "needs reconnect"
        (docs: guides/security.rst, 'Unreadable secrets').

        Also when no key is configured at all: the field then loads every secret as
        ``Undecryptable`` instead of raising, so every admin page renders.
        """
        candidates = Connection.objects.exclude(
            status__in=[Connection.Status.NEEDS_RECONNECT, Connection.Status.REVOKED]
        )
        for connection in candidates:
            if connection.undecryptable:
                connect.mark_needs_reconnect(
                    connection,
                    "The stored credentials cannot be decrypted with OMNISEND['ENCRYPTION_KEYS'].",
                )

"""Admin for Omnisend connections: list, "Connect Omnisend", test, refresh and disconnect.

No secret is ever rendered: the encrypted fields are excluded from every form, list and
read-only view; an API key is entered through a write-only ``PasswordInput`` where empty means
"keep"; only the non-reversible :attr:`~django_omnisend.models.Connection.fingerprint` is shown.
History (``LogEntry``) messages name changed fields, never values, and no URL carries a secret
(docs: guides/security.rst, 'Secrets are never shown'). A new key follows the OAuth callback's
brand rules (:mod:`~django_omnisend.binding`):
the brand's existing row takes it, another brand waits for the confirm page, and a row never
changes brand. Deleting a row ends it, so it takes the manage permission like disconnecting.
Sync-state admins live in another module.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.debug import sensitive_variables

from . import binding, connections, crypto
from .conf import omnisend_settings
from .exceptions import NeedsReconnect, OAuthError, OmnisendError
from .models import SECRET_FIELDS, Connection
from .views import PERMISSION, can_manage


class ConnectionForm(forms.ModelForm):
    """The change form: the only writable secret is a new API key, never shown back."""

    new_api_key = forms.CharField(
        label=_("API key"),
        required=False,
        strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text=_(
            "Write-only. Leave empty to keep the stored key. A new key is checked with "
            "Omnisend (GET /brands/current) before it is saved."
        ),
    )

    class Meta:
        model = Connection
        fields: list[str] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The brand Omnisend answered for the new key (set by ``clean_new_api_key``).
        self.brand: dict[str, Any] | None = None
        if self.instance.pk is None:
            self.fields["new_api_key"].required = True
            self.fields["new_api_key"].help_text = _(
                "The key from Omnisend (Store settings → API keys). It is checked with Omnisend "
                "before it is saved, and stored encrypted."
            )

    @sensitive_variables()
    def clean_new_api_key(self) -> str:
        key = self.cleaned_data.get("new_api_key") or ""
        if not key:
            return ""
        if self.instance.pk and self.instance.auth_type == Connection.AuthType.OAUTH:
            raise forms.ValidationError(
                _("This is an OAuth connection; connect an API key as a new connection.")
            )
        # Before asking Omnisend: a key that cannot be stored must be a form error, not a 500.
        unconfigured = crypto.configuration_error()
        if unconfigured:
            raise forms.ValidationError(unconfigured)
        try:
            brand = connections.probe_credentials(api_key=key)
        except (OmnisendError, OAuthError) as exc:
            raise forms.ValidationError(connections.describe_probe_error(exc)) from None
        try:
            # A row never changes brand (refused here, before anything is stored).
            binding.check_target(self.instance, str(brand["brandID"]))
        except binding.BrandMismatch as exc:
            raise forms.ValidationError(str(exc)) from None
        self.brand = brand
        return key


class OwnerFilter(admin.SimpleListFilter):
    """Filter connections by owner: the site's own, or one kind of owner (shops, teams...)."""

    title = _("owner")
    parameter_name = "owner"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from django.contrib.contenttypes.models import ContentType

        kinds = (
            Connection.objects.exclude(owner_type=None)
            .values_list("owner_type", flat=True)
            .distinct()
        )
        choices = [("site", str(_("The site")))]
        for ct in ContentType.objects.filter(pk__in=list(kinds)).order_by("model"):
            model = ct.model_class()
            label = model._meta.verbose_name_plural if model is not None else ct.model
            choices.append((str(ct.pk), str(label)))
        return choices

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if value == "site":
            return queryset.filter(owner_type=None)
        if value and value.isdigit():
            return queryset.filter(owner_type_id=int(value))
        return queryset


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
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
        transaction.on_commit(lambda: connections.revoke_tokens(stale))
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
        tokens = connections._tokens_to_revoke(obj)
        super().delete_model(request, obj)
        connections.revoke_tokens(tokens)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        tokens = [t for c in queryset for t in connections._tokens_to_revoke(c)]
        super().delete_queryset(request, queryset)
        connections.revoke_tokens(tokens)

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
                connections.mark_needs_reconnect(
                    connection,
                    "The stored credentials cannot be decrypted with OMNISEND['ENCRYPTION_KEYS'].",
                )

    # -- actions ----------------------------------------------------------------------------

    @admin.action(description=_("Test connection"), permissions=["manage"])
    def test_connection(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset:
            if connection.status in (Connection.Status.REVOKED, Connection.Status.PENDING):
                self.message_user(
                    request,
                    _("%(c)s is not in use; nothing to test.") % {"c": connection},
                    messages.WARNING,
                )
                continue
            try:
                client = connections.client_for(connection, require_active=False)
            except OmnisendError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            try:
                brand = connections.probe(client)
            except (OmnisendError, OAuthError) as exc:
                connection.refresh_from_db()
                self.message_user(
                    request,
                    f"{connection}: {connections.describe_probe_error(exc)}",
                    messages.ERROR,
                )
                continue
            finally:
                client.close()
            connection.refresh_from_db()
            if brand["brandID"] != connection.brand_id and connection.brand_id:
                self.message_user(
                    request,
                    _("%(c)s now answers for the brand %(b)s; connect again to switch brands.")
                    % {"c": connection, "b": brand["brandID"]},
                    messages.ERROR,
                )
                continue
            connection.brand_name = str(brand.get("name") or connection.brand_name)[:255]
            connection.brand_website = str(brand.get("website") or connection.brand_website)[:500]
            connection.checked_at = timezone.now()
            connection.status = Connection.Status.ACTIVE
            connection.status_reason = ""
            connection.save(
                update_fields=[
                    "brand_name",
                    "brand_website",
                    "checked_at",
                    "status",
                    "status_reason",
                    "updated_at",
                ]
            )
            self.message_user(request, _("%(c)s works.") % {"c": connection}, messages.SUCCESS)

    @admin.action(description=_("Refresh token"), permissions=["manage"])
    def refresh_token(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        for connection in queryset:
            if connection.auth_type != Connection.AuthType.OAUTH or not (connection.refresh_token):
                self.message_user(
                    request,
                    _("%(c)s has no refresh token.") % {"c": connection},
                    messages.WARNING,
                )
                continue
            try:
                connections.refresh_connection(connection, force=True)
            except NeedsReconnect as exc:
                self.message_user(request, str(exc), messages.ERROR)
            except OmnisendError as exc:
                self.message_user(request, f"{connection}: {exc}", messages.ERROR)
            else:
                self.message_user(request, _("Refreshed the token of %(c)s.") % {"c": connection})

    @admin.action(description=_("Disconnect (revoke tokens)"), permissions=["manage"])
    def disconnect(self, request: HttpRequest, queryset: QuerySet[Connection]) -> None:
        count = 0
        for connection in queryset.exclude(status=Connection.Status.REVOKED):
            connections.disconnect(connection, request.user)
            count += 1
        self.message_user(
            request,
            ngettext(
                "Disconnected %(n)d Omnisend connection.",
                "Disconnected %(n)d Omnisend connections.",
                count,
            )
            % {"n": count},
        )


__all__ = ["PERMISSION", "ConnectionAdmin", "ConnectionForm"]

# The sync pages (states, outbox, health) and client registrations live in their own modules.
from . import admin_registration, admin_sync  # noqa: E402, F401

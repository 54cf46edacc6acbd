"""The connection admin's change form (a write-only API key, checked with Omnisend before
it is saved) and its owner list filter.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _
from django.views.decorators.debug import sensitive_variables

from .. import connect, crypto
from ..connect import binding
from ..exceptions import OAuthError, OmnisendError
from ..models import Connection


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
            brand = connect.probe_credentials(api_key=key)
        except (OmnisendError, OAuthError) as exc:
            raise forms.ValidationError(connect.describe_probe_error(exc)) from None
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

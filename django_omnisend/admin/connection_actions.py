"""The connection admin's actions: test the connection, refresh its token, disconnect."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from .. import connect
from ..exceptions import NeedsReconnect, OAuthError, OmnisendError
from ..models import Connection


class ConnectionActions:
    """Mixin for :class:`~django_omnisend.admin.connect.ConnectionAdmin`: its actions."""

    if TYPE_CHECKING:  # provided by the ModelAdmin it is mixed into

        def message_user(self, request: Any, message: Any, *args: Any, **kwargs: Any) -> None: ...

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
                client = connect.client_for(connection, require_active=False)
            except OmnisendError as exc:
                self.message_user(request, str(exc), messages.ERROR)
                continue
            try:
                brand = connect.probe(client)
            except (OmnisendError, OAuthError) as exc:
                connection.refresh_from_db()
                self.message_user(
                    request,
                    f"{connection}: {connect.describe_probe_error(exc)}",
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
                connect.refresh_connection(connection, force=True)
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
            connect.disconnect(connection, request.user)
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

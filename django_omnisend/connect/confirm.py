"""The confirm page of a brand switch: show the active and the new brand; POST
``confirm`` switches, ``cancel`` drops the new one (:mod:`~django_omnisend.connect.switch`).
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.http import require_http_methods

from ..models import Connection

# -- confirm a brand switch -------------------------------------------------------------------
from .pages import changelist_url, error_page, flash, harden, page_context
from .permissions import forbidden, get_connection_adapter, manager_required
from .state import PENDING_SESSION_KEY
from .switch import cancel, same_owner, switch


@xframe_options_deny
@require_http_methods(["GET", "POST"])
def confirm(request: HttpRequest, pk: int) -> HttpResponse:
    """Show the active and the new brand; POST ``confirm`` switches, ``cancel`` drops the new.

    The switch is within the pending row's owner; the user must still be allowed to manage it.
    """
    pending = Connection.objects.filter(pk=pk, status=Connection.Status.PENDING).first()
    if pending is None or pending.owner_type_id is None:
        return _confirm_site(request, pending)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    owner = pending.owner
    if owner is None:  # what it belonged to is gone: nothing to confirm
        return _confirm_page(request, None)
    if not get_connection_adapter().can_manage_connection(request, owner):
        return forbidden(request, owner)
    return _confirm_page(request, pending)


@manager_required
def _confirm_site(request: HttpRequest, pending: Connection | None, owner: Any) -> HttpResponse:
    return _confirm_page(request, pending)


def _confirm_page(request: HttpRequest, pending: Connection | None) -> HttpResponse:
    if pending is None or (
        pending.connected_by_id != request.user.pk and not request.user.is_superuser
    ):
        return harden(
            error_page(
                request,
                _("Nothing to confirm"),
                _("There is no brand switch waiting for your confirmation."),
                status=404,
            )
        )
    stored = request.session.get(PENDING_SESSION_KEY)
    stored = stored if isinstance(stored, dict) else {}
    if request.method == "GET":
        response = render(
            request,
            "django_omnisend/confirm.html",
            page_context(
                request,
                title=_("Switch Omnisend brand?"),
                pending=pending,
                current_connections=list(
                    same_owner(pending).in_use().exclude(pk=pending.pk).order_by("-created_at")
                ),
            ),
        )
        return harden(response)

    next_url = stored.pop(str(pending.pk), None) or changelist_url()
    request.session[PENDING_SESSION_KEY] = stored
    if request.POST.get("action") == "confirm":
        retired = switch(pending, request.user)
        flash(
            request,
            messages.SUCCESS,
            _("Connected to the Omnisend brand %(brand)s.") % {"brand": pending},
        )
        for old in retired:
            flash(
                request,
                messages.INFO,
                _("Disconnected the Omnisend brand %(brand)s.") % {"brand": old},
            )
    elif request.POST.get("action") == "cancel":
        cancel(pending)
        flash(request, messages.INFO, _("Kept the current Omnisend brand."))
    else:
        stored[str(pending.pk)] = next_url
        request.session[PENDING_SESSION_KEY] = stored
        return harden(
            error_page(request, _("Choose an action"), _("Confirm or cancel the switch."))
        )
    return harden(HttpResponseRedirect(next_url))

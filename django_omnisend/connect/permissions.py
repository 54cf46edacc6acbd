"""Who may manage a connection: the app permission, the connection adapter
(``OMNISEND["CONNECTION_ADAPTER"]``, :class:`ConnectionAdapter` by default: staff with
``django_omnisend.manage_connection``, for the site's own connection only), and the view
decorator that asks it.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache, wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.utils.module_loading import import_string
from django.utils.translation import gettext as _

from ..conf import omnisend_settings
from . import owners
from .pages import error_page, harden

PERMISSION = "django_omnisend.manage_connection"


def can_manage(user: Any) -> bool:
    """Whether ``user`` may manage the site's connection (staff with the app permission)."""
    return bool(
        user is not None
        and user.is_authenticated
        and user.is_active
        and user.is_staff
        and user.has_perm(PERMISSION)
    )


class ConnectionAdapter:
    """Default permission rules of the connect, callback, confirm and disconnect views."""

    def can_manage_connection(self, request: HttpRequest, owner: Any) -> bool:
        """Whether ``request.user`` may connect, reconnect or disconnect ``owner``'s brand.

        ``owner`` is a model instance, or None for the site's own connection. Asked when a
        flow starts and again when Omnisend sends the person back, so a right taken away
        meanwhile stops the flow. Keep it cheap (a query or two, no network).
        """
        return owner is None and can_manage(request.user)


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> ConnectionAdapter:
    return import_string(path)()


def get_connection_adapter() -> ConnectionAdapter:
    """The instance named by ``OMNISEND["CONNECTION_ADAPTER"]`` (one per dotted path)."""
    return _adapter_for(omnisend_settings.connection_adapter)


def manager_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Resolve the owner (URL ``owner``: a signed reference; none: the site) and ask the
    :class:`~django_omnisend.connection_adapter.ConnectionAdapter` whether the user may manage
    its connection; the view then gets ``owner`` (None: the site).

    For the site: anonymous and non-staff users go to the admin login. For an owner: anonymous
    users go to ``LOGIN_URL``. Refused: 403 with a page that says so, nothing changed.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, owner: str | None = None, **kwargs: Any):
        user = request.user
        if owner is None:
            if not (user.is_authenticated and user.is_active and user.is_staff):
                return redirect_to_login(request.get_full_path(), reverse("admin:login"))
            target = None
        else:
            try:
                target = owners.load_owner(owner)
            except owners.InvalidOwner:
                return harden(
                    error_page(
                        request,
                        _("Unknown Omnisend connection"),
                        _(
                            "This link does not name a connection of this site, or what it "
                            "belonged to no longer exists. Nothing was changed; go back and "
                            "reload the page."
                        ),
                        status=404,
                    )
                )
            if not user.is_authenticated:
                return redirect_to_login(request.get_full_path())
        if not get_connection_adapter().can_manage_connection(request, target):
            return forbidden(request, target)
        return view(request, *args, owner=target, **kwargs)

    return wrapper


def forbidden(request: HttpRequest, owner: Any) -> HttpResponse:
    return harden(
        error_page(
            request,
            _("Not allowed"),
            _(
                "You may not connect or disconnect the Omnisend brand of %(owner)s, so nothing "
                "was changed. Ask a person who manages it."
            )
            % {"owner": owners.describe(owner)},
            status=403,
        )
    )

"""Template tags of django-omnisend: ``{% load omnisend %}``.

``{% omnisend_connect owner %}`` renders an owner's connection status and, for people the
:class:`~django_omnisend.connect.permissions.ConnectionAdapter` lets manage it, POST forms (with
the CSRF token) to connect, reconnect or disconnect. ``owner`` is any model instance, or None for
the site's own connection; the control returns to the page it is on.
"""

from __future__ import annotations

from typing import Any

from django import template

from .. import connect
from ..connect import owners
from ..connect.permissions import get_connection_adapter
from ..models import Connection

register = template.Library()


@register.inclusion_tag("django_omnisend/connect_control.html", takes_context=True)
def omnisend_connect(context: template.Context, owner: Any = None) -> dict[str, Any]:
    """The context of the control: status, and which actions the current user may take."""
    request = context.get("request")
    connection = connect.owner_connection(owner)
    may_manage = request is not None and get_connection_adapter().can_manage_connection(
        request, owner
    )
    ref = owners.sign_owner(owner)
    return {
        "request": request,
        "csrf_token": context.get("csrf_token"),
        "owner_label": owners.describe(owner),
        "connection": connection,
        "needs_reconnect": connection is not None
        and connection.status == Connection.Status.NEEDS_RECONNECT,
        "may_manage": may_manage,
        "owner_ref": ref,
        "next_url": request.get_full_path() if request is not None else "",
    }


# -- on-site tracking: Omnisend's JavaScript snippet (see django_omnisend.snippet) -------------


@register.inclusion_tag("django_omnisend/tracking/snippet.html", takes_context=True)
def omnisend_snippet(context: template.Context, owner: Any = None) -> dict[str, Any]:
    """Omnisend's snippet for ``owner``'s brand (None: the site's), before ``</body>``.

    Renders nothing until ``TrackingAdapter.tracking_allowed(request)`` is True or when there
    is no brand; identifies only the logged-in user (see :mod:`django_omnisend.snippet`).
    Every value reaches the page through ``json_script``; the script carries the CSP nonce.
    """
    from .. import snippet

    request = context.get("request")
    state = snippet.tracking_state(request, owner)
    if state is None:
        return {"state": None}
    return {
        "state": state,
        "config": snippet.snippet_config(state),
        "element_id": snippet.element_id("snippet"),
        "nonce": snippet.csp_nonce(context, request),
    }


@register.inclusion_tag("django_omnisend/tracking/viewed_product.html", takes_context=True)
def omnisend_viewed_product(
    context: template.Context, product: Any, owner: Any = None
) -> dict[str, Any]:
    """A ``viewed product`` event for ``product`` (a mapping or a model instance).

    The product goes through ``TrackingAdapter.get_product``; nothing renders when the
    snippet would not (no consent, no brand). The event is sent after the visitor is
    identified, so it may come before or after ``{% omnisend_snippet %}`` in the page.
    """
    from .. import snippet

    request = context.get("request")
    if request is None or snippet.tracking_state(request, owner) is None:
        return {"event": None}
    return {
        "event": snippet.viewed_product_event(product, request),
        "element_id": snippet.element_id("viewed-product"),
        "nonce": snippet.csp_nonce(context, request),
    }

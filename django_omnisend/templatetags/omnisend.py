"""Template tags of django-omnisend: ``{% load omnisend %}``.

``{% omnisend_connect owner %}`` renders an owner's connection status and, for people the
:class:`~django_omnisend.connection_adapter.ConnectionAdapter` lets manage it, POST forms (with
the CSRF token) to connect, reconnect or disconnect. ``owner`` is any model instance, or None for
the site's own connection; the control returns to the page it is on.
"""

from __future__ import annotations

from typing import Any

from django import template

from .. import connections, owners
from ..connection_adapter import get_connection_adapter
from ..models import Connection

register = template.Library()


@register.inclusion_tag("django_omnisend/connect_control.html", takes_context=True)
def omnisend_connect(context: template.Context, owner: Any = None) -> dict[str, Any]:
    """The context of the control: status, and which actions the current user may take."""
    request = context.get("request")
    connection = connections.owner_connection(owner)
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

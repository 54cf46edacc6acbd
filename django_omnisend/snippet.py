"""What Omnisend's on-site snippet may know on one request: brand, contact, CSP nonce.

Omnisend's snippet: ``omnisend.push(["brandID", id])``, ``push(["track", "$pageViewed"])``,
then the launcher script (``OMNISEND["SNIPPET_URL"]``); once it has loaded,
``omnisend.identifyContact({email})`` ties the browser to a contact, and
``push(["track", "viewed product", {...}])`` sends product views.

:func:`tracking_state` answers once per request and owner (memoised on the request):

* nothing (None) until ``TrackingAdapter.tracking_allowed(request)`` says yes, or when the
  owner has no brand to track for;
* the brand id of ``owner``'s connection (None: the site's; the site without a connection row
  uses the brand prefix of ``OMNISEND["API_KEY"]``);
* the contact to identify: only the logged-in user, only when the :class:`ContactAdapter`
  syncs them *to this brand*, their address is verified and they have not opted out of
  e-mail marketing. Nobody else's data ever reaches the page.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.http import HttpRequest

from . import connect
from .adapter import get_adapter
from .conf import omnisend_settings
from .connect import owners
from .tracking import get_tracking_adapter

#: ``eventVersion`` of Omnisend's ``viewed product`` for the JavaScript API.
VIEWED_PRODUCT_VERSION = "v4"
#: ``origin`` Omnisend documents for events sent through the JavaScript API.
JS_ORIGIN = "api"


@dataclass(frozen=True)
class TrackingState:
    """The facts the snippet templates render (all of them safe to show this visitor)."""

    brand_id: str
    contact: dict[str, str] | None


def csp_nonce(context: Any, request: HttpRequest | None) -> str | None:
    """The CSP nonce of this response, if the site uses one.

    Django 6.0+'s ``csp`` context processor (``csp_nonce``), else its middleware's nonce on
    the request, else ``request.csp_nonce`` (django-csp).
    """
    nonce = context.get("csp_nonce") if context is not None else None
    if nonce is None and request is not None:
        try:
            from django.middleware.csp import get_nonce  # Django 6.0+
        except ImportError:  # pragma: no cover - Django 5.2
            pass
        else:
            nonce = get_nonce(request)
        if nonce is None:
            nonce = getattr(request, "csp_nonce", None)
    # Django's LazyNonce is falsy until first read: str() generates it (the middleware then
    # puts the same value in the header).
    return str(nonce) or None if nonce is not None else None


def _brand_id(owner: Any) -> str:
    row = connect.owner_connection(owner)
    if row is not None:
        return row.brand_id or ""
    if owner is None and omnisend_settings.api_key:
        from .api import ApiKeyAuth

        return ApiKeyAuth(omnisend_settings.api_key).brand_id
    return ""


def _same_connection(user_key: str, owner: Any) -> bool:
    """Whether a user synced under ``user_key`` is a contact of ``owner``'s brand."""
    target = owners.connection_key(owner)
    if str(user_key) == target:
        return True
    mine = connect.connection_for_key(str(user_key))
    theirs = connect.connection_for_key(target)
    return mine is not None and theirs is not None and mine.pk == theirs.pk


def _contact(request: HttpRequest, owner: Any) -> dict[str, str] | None:
    user = getattr(request, "user", None)
    if user is None or not getattr(user, "is_authenticated", False):
        return None
    adapter = get_adapter()
    if not adapter.should_sync(user):
        return None
    if not _same_connection(adapter.get_connection_key(user), owner):
        return None  # a contact of another brand: never hand their address to this one
    consent = adapter.get_consent(user)
    if consent is not None and not consent.subscribed:
        return None
    email = adapter.get_email(user)
    if not email or not adapter.is_email_verified(user):
        return None  # an unverified address could be someone else's
    return {"email": email}


def tracking_state(request: HttpRequest | None, owner: Any = None) -> TrackingState | None:
    """The snippet's facts for this request and ``owner``, or None to render nothing."""
    if request is None:
        return None
    memo = request.__dict__.setdefault("_omnisend_tracking", {})
    key = owners.owner_key(owner)
    if key not in memo:
        state = None
        if get_tracking_adapter().tracking_allowed(request):
            brand_id = _brand_id(owner)
            if brand_id:
                state = TrackingState(brand_id, _contact(request, owner))
        memo[key] = state
    return memo[key]


def element_id(kind: str) -> str:
    """A fresh id for a ``json_script`` element (several snippets may share a page)."""
    return f"omnisend-{kind}-{uuid.uuid4().hex[:12]}"


def snippet_config(state: TrackingState) -> dict[str, Any]:
    """The data ``{% omnisend_snippet %}`` hands its script through ``json_script``."""
    return {
        "brandID": state.brand_id,
        "loader": omnisend_settings.snippet_url,
        "contact": state.contact,
    }


def viewed_product_event(product: Any, request: HttpRequest) -> dict[str, Any] | None:
    """Omnisend's ``viewed product`` event for ``product`` (the page is added in the browser)."""
    data = get_tracking_adapter().get_product(product, request)
    if not data:
        return None
    return {
        "eventID": str(uuid.uuid4()),
        "eventVersion": VIEWED_PRODUCT_VERSION,
        "origin": JS_ORIGIN,
        "properties": {"product": dict(data)},
    }

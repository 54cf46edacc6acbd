"""What the connect views render and where they send people: the error page, the admin
context, hardened responses (no referrer, no store) and safe ``next`` URLs.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme

from ..conf import omnisend_settings
from ..exceptions import ImproperlyConfigured


def changelist_url() -> str:
    """The admin list of connections: where every flow ends by default."""
    try:
        return reverse("admin:django_omnisend_connection_changelist")
    except NoReverseMatch:  # the host project does not mount the admin
        return "/"


def safe_next(request: HttpRequest, value: str | None, default: str | None = None) -> str:
    """``value`` when it is a path on this site, else ``default`` (the admin list)
    (docs: guides/security.rst, 'Return URLs (next)').

    Only absolute paths (``/...``) are accepted, and they must pass Django's
    ``url_has_allowed_host_and_scheme`` both as given and percent-decoded, so encoded forms
    such as ``/%5Cevil.com`` or ``%2F%2Fevil.com`` are refused too.
    """
    fallback = default or changelist_url()
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return fallback
    allowed = {request.get_host()}
    secure = request.is_secure()
    if all(
        url_has_allowed_host_and_scheme(candidate, allowed_hosts=allowed, require_https=secure)
        for candidate in (value, unquote(value))
    ):
        return value
    return fallback


def redirect_uri_for(request: HttpRequest) -> str:
    """``OMNISEND["REDIRECT_URI"]``; only in DEBUG, the callback URL built from the request."""
    from django.conf import settings

    configured = omnisend_settings.redirect_uri
    if configured:
        return configured
    if settings.DEBUG:
        return request.build_absolute_uri(reverse("django_omnisend:callback"))
    raise ImproperlyConfigured(
        'OMNISEND["REDIRECT_URI"] is not set. Set it to the exact callback URL registered with '
        "Omnisend (it is only derived from the request when DEBUG is on)."
    )


def harden(response: HttpResponse) -> HttpResponse:
    response["Referrer-Policy"] = "no-referrer"
    add_never_cache_headers(response)  # includes no-store
    return response


def page_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    context = dict(admin.site.each_context(request))
    # Every variable admin/base.html looks up is defined: a failed lookup is logged at DEBUG
    # with the whole context, request included.
    context.setdefault("subtitle", None)
    context.update(extra)
    return context


def error_page(
    request: HttpRequest,
    title: str,
    message: str,
    *,
    status: int = 400,
    description: str = "",
    back_url: str = "",
) -> HttpResponse:
    """The error (or cancelled) page: ``message`` and ``description`` are auto-escaped; its
    link leads to ``back_url`` (where the flow started), else to the admin list."""
    return render(
        request,
        "django_omnisend/error.html",
        page_context(
            request,
            title=title,
            message=message,
            description=description,
            changelist_url=back_url or changelist_url(),
        ),
        status=status,
    )


def flash(request: HttpRequest, level: int, text: str) -> None:
    messages.add_message(request, level, text, fail_silently=True)


# -- connect ----------------------------------------------------------------------------------

"""The "Connect Omnisend" flow: connect (POST), callback (GET), disconnect (POST).

The security rules these views follow (staff only, CSRF-protected POST to start, one-time
``state``, probe before activating, no framing, no referrer, errors that never reach Django's
report) are stated in the docs: guides/security.rst, 'OAuth rules'. The confirm page of a
brand switch is :mod:`~django_omnisend.connect.confirm`.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from ..api import oauth
from ..api.tokens import SAFE_ERROR_CODE
from ..conf import omnisend_settings
from ..exceptions import ImproperlyConfigured, OAuthError, OmnisendError
from ..models import Connection
from . import binding, brand_check, lifecycle, lookup, owners, registration
from .pages import (
    changelist_url,
    error_page,
    flash,
    harden,
    page_context,
    redirect_uri_for,
    safe_next,
)
from .permissions import get_connection_adapter, manager_required
from .state import PENDING_SESSION_KEY, STATE_TTL, age, pop_state, remember
from .switch import bind_tokens, revocable

logger = logging.getLogger("django_omnisend.views")


#: Characters of Omnisend's ``error_description`` shown to staff.
MAX_DESCRIPTION = 200


@xframe_options_deny
@require_http_methods(["GET", "POST"])
@manager_required
def connect(request: HttpRequest, owner: Any = None) -> HttpResponse:
    """GET: a page with the "Connect Omnisend" POST form. POST: start the authorization.

    The GET never starts the flow (no state, no redirect), so a link or an ``<img>`` cannot
    connect the site to somebody else's brand
    (docs: guides/security.rst, 'Only staff start a connection, by POST'). With an owner (the URL's
    signed
    reference) the connection is that owner's: the state record remembers it, so the callback
    completes the flow for that owner only, whatever else it is sent.
    """
    next_url = safe_next(
        request,
        request.POST.get("next") or request.GET.get("next"),
        None if owner is None else "/",
    )
    if request.method == "GET":
        response = render(
            request,
            "django_omnisend/connect.html",
            page_context(
                request,
                title=_("Connect Omnisend"),
                next_url=next_url,
                action_url=request.path,
                owner_label=owners.describe(owner),
                configured=bool(omnisend_settings.client_id)
                or omnisend_settings.client_registration,
                registers=omnisend_settings.client_registration,
                active=lookup.active_connection(owner),
                scopes=omnisend_settings.scopes,
            ),
        )
        return harden(response)

    try:
        redirect_uri = redirect_uri_for(request)
        auth = oauth.build_authorization_request(redirect_uri)
    except ImproperlyConfigured as exc:
        return harden(error_page(request, _("Omnisend is not configured"), str(exc)))

    remember(
        request,
        auth.state,
        {
            "user_id": str(request.user.pk),
            "verifier": auth.code_verifier,
            "redirect_uri": auth.redirect_uri,
            "client_id": auth.client_id,
            "authorize_url": auth.authorize_url,
            "token_url": auth.token_url,
            "scopes": list(auth.scopes),
            "created_at": time.time(),
            "next": next_url,
            "owner": owners.owner_key(owner),
        },
    )
    logger.info(
        "User %s started connecting Omnisend for %s.",
        request.user.pk,
        owners.owner_key(owner) or "the site",
    )
    return harden(HttpResponseRedirect(auth.url))


# -- callback ---------------------------------------------------------------------------------


@xframe_options_deny
@require_GET
def callback(request: HttpRequest) -> HttpResponse:
    """Omnisend sends the browser back here with ``code`` and ``state`` (or ``error``)."""
    # Read the query once, then scrub it from the request: whatever logs or reports the request
    # later (django.request, error e-mails, DEBUG template logging of the context, a host's
    # middleware) sees neither the code nor the state.
    params = request.GET.copy()
    request.GET = QueryDict()
    request.META["QUERY_STRING"] = ""
    try:
        response = _callback(request, params)
    except Exception:
        # Never let it reach Django's handler: its error report would include the request.
        logger.exception("The Omnisend callback failed unexpectedly; nothing was activated.")
        response = error_page(
            request,
            _("Connecting Omnisend failed"),
            _(
                "Something went wrong while finishing the connection, and nothing was "
                "activated. Start again from the admin; the server log has the details."
            ),
        )
    return harden(response)


@sensitive_variables()
def _callback(request: HttpRequest, params: QueryDict) -> HttpResponse:
    record = pop_state(request, params)
    user = request.user
    if not user.is_authenticated:
        return error_page(
            request,
            _("Please sign in"),
            _("Sign in to the admin and start connecting Omnisend again."),
            status=403,
        )
    if record is None or age(record, time.time()) > STATE_TTL:
        return error_page(
            request,
            _("This link cannot be used"),
            _(
                "This Omnisend sign-in is unknown, was already used or has expired, so it was "
                'ignored. Start again with "Connect Omnisend" in the admin.'
            ),
        )
    refused = error_page(
        request,
        _("Not your connection"),
        _(
            "This Omnisend sign-in was started by another user, or you may not manage the "
            "Omnisend connection. Nothing was changed."
        ),
        status=403,
    )
    if str(record.get("user_id")) != str(user.pk):
        return refused
    # The owner is the one the flow was started for (the session's record, never the query),
    # and the right to manage it is asked again: it may have been taken away meanwhile.
    try:
        owner = owners.owner_from_key(str(record.get("owner") or ""))
    except owners.InvalidOwner:
        return error_page(
            request,
            _("Nothing to connect"),
            _(
                "What this Omnisend connection was started for no longer exists, so nothing "
                "was stored."
            ),
        )
    if not get_connection_adapter().can_manage_connection(request, owner):
        return refused
    # From here on the person may manage the owner's connection: failures lead back to the
    # page the flow started from (a tenant's staff may have no admin to start again from).
    back = str(record.get("next") or "") or changelist_url()
    again = (
        _("Start again from the admin.")
        if owner is None
        else _("Start again from the page you connected from.")
    )
    # Deploy-time endpoints must not have changed since the flow began (mix-up;
    # docs: guides/security.rst, 'Endpoints are deploy-time only (mix-up)').
    if (record.get("authorize_url"), record.get("token_url")) != (
        omnisend_settings.authorize_url,
        omnisend_settings.token_url,
    ):
        return error_page(
            request,
            _("Start again"),
            _("The Omnisend endpoints changed while connecting.") + " " + again,
            back_url=back,
        )
    iss = params.get("iss")
    if iss is not None and iss.rstrip("/") != oauth.expected_issuer(record["authorize_url"]).rstrip(
        "/"
    ):
        logger.warning("Omnisend callback carried an unexpected issuer; aborted.")
        return error_page(
            request,
            _("Connecting Omnisend failed"),
            _("The answer came from an unexpected authorization server; nothing was stored."),
            back_url=back,
        )

    error = params.get("error")
    if error:
        description = (params.get("error_description") or "")[:MAX_DESCRIPTION]
        if error == "access_denied":
            return error_page(
                request,
                _("Connection cancelled"),
                _("The connection was not approved in Omnisend, so nothing was changed."),
                status=200,
                description=description,
                back_url=back,
            )
        shown = error[:64] if SAFE_ERROR_CODE.match(error[:64]) else "?"
        return error_page(
            request,
            _("Connecting Omnisend failed"),
            _("Omnisend answered with the error “%(error)s”.") % {"error": shown} + " " + again,
            description=description,
            back_url=back,
        )

    code = params.get("code")
    if not code:
        return error_page(
            request,
            _("Connecting Omnisend failed"),
            _("Omnisend sent no authorization code.") + " " + again,
            back_url=back,
        )
    try:
        # The client that asked for the code exchanges it (and is remembered for refreshes),
        # even if OMNISEND["CLIENT_ID"] was set while the person was on Omnisend's page.
        client = registration.credentials_for_client(
            str(record.get("client_id") or "")
        ) or oauth.client_credentials(record.get("redirect_uri") or None)
        tokens = oauth.exchange_code(
            code,
            record.get("verifier", ""),
            record.get("redirect_uri", ""),
            required_scopes=record.get("scopes"),
            token_url=record.get("token_url"),
            credentials=client,
        )
    except (OAuthError, ImproperlyConfigured) as exc:
        logger.warning("Omnisend code exchange failed: %s", exc)
        return error_page(request, _("Connecting Omnisend failed"), str(exc), back_url=back)

    try:
        brand = brand_check.probe_credentials(access_token=tokens.access_token)
    except (OmnisendError, OAuthError) as exc:
        logger.warning("Omnisend brand check of a new token failed: %s", type(exc).__name__)
        lifecycle.revoke_tokens(revocable(tokens, client.client_id))
        return error_page(
            request,
            _("Connecting Omnisend failed"),
            _("Nothing was activated. %(reason)s")
            % {"reason": brand_check.describe_probe_error(exc)},
            back_url=back,
        )

    try:
        connection, needs_confirmation, stale = bind_tokens(
            tokens, brand, user, owner, client_id=client.client_id
        )
    except binding.BrandHeldElsewhere as exc:
        lifecycle.revoke_tokens(revocable(tokens, client.client_id))
        return error_page(
            request, _("Brand already connected"), str(exc), status=409, back_url=back
        )
    except Exception:
        lifecycle.revoke_tokens(revocable(tokens, client.client_id))
        raise
    lifecycle.revoke_tokens(stale)
    next_url = record.get("next") or changelist_url()
    if needs_confirmation:
        pending = request.session.get(PENDING_SESSION_KEY)
        pending = pending if isinstance(pending, dict) else {}
        pending[str(connection.pk)] = next_url
        request.session[PENDING_SESSION_KEY] = pending
        return HttpResponseRedirect(reverse("django_omnisend:confirm", args=[connection.pk]))
    flash(
        request,
        messages.SUCCESS,
        _("Connected to the Omnisend brand %(brand)s.") % {"brand": connection},
    )
    return HttpResponseRedirect(next_url)


# -- disconnect -------------------------------------------------------------------------------


@xframe_options_deny
@require_POST
@manager_required
def disconnect(request: HttpRequest, owner: Any = None) -> HttpResponse:
    """Revoke and delete the credentials of the owner's connection (the site's without an
    owner): POST ``connection`` = a pk of one of the owner's rows, default: the one in use."""
    pk = request.POST.get("connection")
    rows = Connection.objects.of_owner(owner)
    if pk:
        connection = rows.filter(pk=pk if str(pk).isdigit() else None).first()
    else:
        connection = lookup.owner_connection(owner)
    next_url = safe_next(request, request.POST.get("next"), None if owner is None else "/")
    if connection is None or connection.status == Connection.Status.REVOKED:
        flash(request, messages.WARNING, _("There is no Omnisend connection to disconnect."))
        return harden(HttpResponseRedirect(next_url))
    lifecycle.disconnect(connection, request.user)
    flash(
        request,
        messages.SUCCESS,
        _("Disconnected the Omnisend brand %(brand)s.") % {"brand": connection},
    )
    return harden(HttpResponseRedirect(next_url))

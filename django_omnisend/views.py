"""The "Connect Omnisend" flow: connect (POST), callback (GET), confirm a brand switch, disconnect.

Security notes (docs: guides/security.rst, 'OAuth rules'):

* Only staff with ``django_omnisend.manage_connection`` start, finish or end a connection, and
  starting is a CSRF-protected POST (a GET only shows the button).
* The state record lives in ``request.session["omnisend_oauth"][state]`` (several tabs at once),
  is popped on first use and expires after :data:`STATE_TTL` seconds; the callback refuses a
  missing, unknown, replayed or expired state with 400 and another user's state with 403, before
  any token request.
* ``redirect_uri`` comes from ``OMNISEND["REDIRECT_URI"]`` (``reverse()`` only in DEBUG), so a
  spoofed Host cannot change it; ``next`` is validated when the flow starts and never
  read from the callback.
* The new token is probed with ``GET /brands/current`` before anything is activated, and a
  different brand than the active one waits for an explicit POST on the confirm page.
* Every page here sends ``X-Frame-Options: DENY`` itself (``xframe_options_deny``), so a site
  without the clickjacking middleware cannot be framed into clicking "Connect" or "Confirm".
* Callback and confirm responses carry ``Referrer-Policy: no-referrer`` and ``Cache-Control:
  no-store``, redirect to URLs without the code, and the callback catches its own errors: an
  unhandled exception would put ``request.GET`` (the code) into Django's error report.
  Error pages use 4xx statuses for the same reason: ``django.request`` reports 5xx at ERROR with
  the request attached. The callback also scrubs ``code``/``state`` from ``request`` once read.
* The callback is a top-level GET from Omnisend, so the session cookie must be sent on a
  cross-site navigation: Django's default ``SESSION_COOKIE_SAMESITE = "Lax"`` works,
  ``"Strict"`` breaks the flow (every callback then looks like an unknown state).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import unquote

from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.clickjacking import xframe_options_deny
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import binding, connections, oauth, owners, registration
from .conf import omnisend_settings
from .connection_adapter import PERMISSION, can_manage, get_connection_adapter
from .exceptions import ImproperlyConfigured, OAuthError, OmnisendError
from .models import Connection
from .signals import connected

logger = logging.getLogger(__name__)

#: Session key of the pending authorization requests, a dict keyed by ``state``.
SESSION_KEY = "omnisend_oauth"
#: Session key remembering where to go after confirming a brand switch (pk -> next URL).
PENDING_SESSION_KEY = "omnisend_oauth_pending"
#: Seconds a started connection may take to come back (docs: guides/security.rst, 'State').
STATE_TTL = 600
#: Started-but-unfinished flows kept per session; the oldest are dropped beyond this.
MAX_STATES = 10
#: Characters of Omnisend's ``error_description`` shown to staff.
MAX_DESCRIPTION = 200

__all__ = ["PERMISSION", "can_manage"]  # re-exported: their home is connection_adapter


def _manager_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
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
                return _harden(
                    _page(
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
            return _forbidden(request, target)
        return view(request, *args, owner=target, **kwargs)

    return wrapper


def _forbidden(request: HttpRequest, owner: Any) -> HttpResponse:
    return _harden(
        _page(
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


def _harden(response: HttpResponse) -> HttpResponse:
    response["Referrer-Policy"] = "no-referrer"
    add_never_cache_headers(response)  # includes no-store
    return response


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    context = dict(admin.site.each_context(request))
    # Every variable admin/base.html looks up is defined: a failed lookup is logged at DEBUG
    # with the whole context, request included.
    context.setdefault("subtitle", None)
    context.update(extra)
    return context


def _page(
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
        _context(
            request,
            title=title,
            message=message,
            description=description,
            changelist_url=back_url or changelist_url(),
        ),
        status=status,
    )


def _message(request: HttpRequest, level: int, text: str) -> None:
    messages.add_message(request, level, text, fail_silently=True)


# -- connect ----------------------------------------------------------------------------------


@xframe_options_deny
@require_http_methods(["GET", "POST"])
@_manager_required
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
            _context(
                request,
                title=_("Connect Omnisend"),
                next_url=next_url,
                action_url=request.path,
                owner_label=owners.describe(owner),
                configured=bool(omnisend_settings.client_id)
                or omnisend_settings.client_registration,
                registers=omnisend_settings.client_registration,
                active=connections.active_connection(owner),
                scopes=omnisend_settings.scopes,
            ),
        )
        return _harden(response)

    try:
        redirect_uri = redirect_uri_for(request)
        auth = oauth.build_authorization_request(redirect_uri)
    except ImproperlyConfigured as exc:
        return _harden(_page(request, _("Omnisend is not configured"), str(exc)))

    records = _live_records(request.session.get(SESSION_KEY))
    records[auth.state] = {
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
    }
    while len(records) > MAX_STATES:
        oldest = min(records, key=lambda key: records[key].get("created_at", 0))
        del records[oldest]
    request.session[SESSION_KEY] = records
    logger.info(
        "User %s started connecting Omnisend for %s.",
        request.user.pk,
        owners.owner_key(owner) or "the site",
    )
    return _harden(HttpResponseRedirect(auth.url))


def _live_records(value: Any) -> dict[str, dict[str, Any]]:
    """The session's state records that are well formed and not expired."""
    if not isinstance(value, dict):
        return {}
    now = time.time()
    return {
        key: record
        for key, record in value.items()
        if isinstance(record, dict) and _age(record, now) <= STATE_TTL
    }


def _age(record: dict[str, Any], now: float) -> float:
    created = record.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return float("inf")
    return now - created


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
        response = _page(
            request,
            _("Connecting Omnisend failed"),
            _(
                "Something went wrong while finishing the connection, and nothing was "
                "activated. Start again from the admin; the server log has the details."
            ),
        )
    return _harden(response)


def _pop_state(request: HttpRequest, params: QueryDict) -> dict[str, Any] | None:
    state = params.get("state", "")
    stored = request.session.get(SESSION_KEY)
    if not state or not isinstance(stored, dict) or state not in stored:
        return None
    record = stored.pop(state)
    request.session[SESSION_KEY] = stored  # popped once: a replay finds nothing
    return record if isinstance(record, dict) else None


@sensitive_variables()
def _callback(request: HttpRequest, params: QueryDict) -> HttpResponse:
    record = _pop_state(request, params)
    user = request.user
    if not user.is_authenticated:
        return _page(
            request,
            _("Please sign in"),
            _("Sign in to the admin and start connecting Omnisend again."),
            status=403,
        )
    if record is None or _age(record, time.time()) > STATE_TTL:
        return _page(
            request,
            _("This link cannot be used"),
            _(
                "This Omnisend sign-in is unknown, was already used or has expired, so it was "
                'ignored. Start again with "Connect Omnisend" in the admin.'
            ),
        )
    refused = _page(
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
        return _page(
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
        return _page(
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
        return _page(
            request,
            _("Connecting Omnisend failed"),
            _("The answer came from an unexpected authorization server; nothing was stored."),
            back_url=back,
        )

    error = params.get("error")
    if error:
        description = (params.get("error_description") or "")[:MAX_DESCRIPTION]
        if error == "access_denied":
            return _page(
                request,
                _("Connection cancelled"),
                _("The connection was not approved in Omnisend, so nothing was changed."),
                status=200,
                description=description,
                back_url=back,
            )
        shown = error[:64] if oauth._SAFE_ERROR_CODE.match(error[:64]) else "?"
        return _page(
            request,
            _("Connecting Omnisend failed"),
            _("Omnisend answered with the error “%(error)s”.") % {"error": shown} + " " + again,
            description=description,
            back_url=back,
        )

    code = params.get("code")
    if not code:
        return _page(
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
        return _page(request, _("Connecting Omnisend failed"), str(exc), back_url=back)

    try:
        brand = connections.probe_credentials(access_token=tokens.access_token)
    except (OmnisendError, OAuthError) as exc:
        logger.warning("Omnisend brand check of a new token failed: %s", type(exc).__name__)
        connections.revoke_tokens(_revocable(tokens, client.client_id))
        return _page(
            request,
            _("Connecting Omnisend failed"),
            _("Nothing was activated. %(reason)s")
            % {"reason": connections.describe_probe_error(exc)},
            back_url=back,
        )

    try:
        connection, needs_confirmation, stale = _bind(
            tokens, brand, user, owner, client_id=client.client_id
        )
    except binding.BrandHeldElsewhere as exc:
        connections.revoke_tokens(_revocable(tokens, client.client_id))
        return _page(request, _("Brand already connected"), str(exc), status=409, back_url=back)
    except Exception:
        connections.revoke_tokens(_revocable(tokens, client.client_id))
        raise
    connections.revoke_tokens(stale)
    next_url = record.get("next") or changelist_url()
    if needs_confirmation:
        pending = request.session.get(PENDING_SESSION_KEY)
        pending = pending if isinstance(pending, dict) else {}
        pending[str(connection.pk)] = next_url
        request.session[PENDING_SESSION_KEY] = pending
        return HttpResponseRedirect(reverse("django_omnisend:confirm", args=[connection.pk]))
    _message(
        request,
        messages.SUCCESS,
        _("Connected to the Omnisend brand %(brand)s.") % {"brand": connection},
    )
    return HttpResponseRedirect(next_url)


@sensitive_variables()
def _revocable(tokens: oauth.TokenResponse, client_id: str) -> list[connections.Revocable]:
    pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
    return [(value, hint, client_id) for value, hint in pairs if value]


@sensitive_variables()
def _bind(
    tokens: oauth.TokenResponse,
    brand: dict[str, Any],
    user: Any,
    owner: Any = None,
    *,
    client_id: str = "",
) -> tuple[Connection, bool, list[connections.Revocable]]:
    """Store the probed tokens for ``owner`` by the brand rules every credential follows (see
    :mod:`~django_omnisend.binding`). Returns (connection, needs_confirmation, stale tokens)."""
    credential = binding.Credential.from_tokens(tokens, client_id=client_id)
    bound = binding.bind(credential, brand, user, owner=owner)
    return bound.connection, bound.needs_confirmation, bound.stale


# -- confirm a brand switch -------------------------------------------------------------------


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
        return _forbidden(request, owner)
    return _confirm_page(request, pending)


@_manager_required
def _confirm_site(request: HttpRequest, pending: Connection | None, owner: Any) -> HttpResponse:
    return _confirm_page(request, pending)


def _confirm_page(request: HttpRequest, pending: Connection | None) -> HttpResponse:
    if pending is None or (
        pending.connected_by_id != request.user.pk and not request.user.is_superuser
    ):
        return _harden(
            _page(
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
            _context(
                request,
                title=_("Switch Omnisend brand?"),
                pending=pending,
                current_connections=list(
                    _same_owner(pending).in_use().exclude(pk=pending.pk).order_by("-created_at")
                ),
            ),
        )
        return _harden(response)

    next_url = stored.pop(str(pending.pk), None) or changelist_url()
    request.session[PENDING_SESSION_KEY] = stored
    if request.POST.get("action") == "confirm":
        retired = _switch(pending, request.user)
        _message(
            request,
            messages.SUCCESS,
            _("Connected to the Omnisend brand %(brand)s.") % {"brand": pending},
        )
        for old in retired:
            _message(
                request,
                messages.INFO,
                _("Disconnected the Omnisend brand %(brand)s.") % {"brand": old},
            )
    elif request.POST.get("action") == "cancel":
        with transaction.atomic():
            tokens = connections._tokens_to_revoke(pending)
            pending.delete()
        connections.revoke_tokens(tokens)
        _message(request, messages.INFO, _("Kept the current Omnisend brand."))
    else:
        stored[str(pending.pk)] = next_url
        request.session[PENDING_SESSION_KEY] = stored
        return _harden(_page(request, _("Choose an action"), _("Confirm or cancel the switch.")))
    return _harden(HttpResponseRedirect(next_url))


def _switch(pending: Connection, user: Any) -> list[Connection]:
    """Retire every other connection in use (active or flagged) and activate ``pending``, then
    revoke and signal."""
    from .signals import disconnected

    tokens: list[connections.Revocable] = []
    owner = pending.owner
    with transaction.atomic():
        retired = list(_same_owner(pending).select_for_update().in_use().exclude(pk=pending.pk))
        for old in retired:
            tokens.extend(connections.retire(old, f"Replaced by the brand {pending.brand_id}."))
        binding.check_brand_free(pending.brand_id, {"pk": pending.pk})
        pending.status = Connection.Status.ACTIVE
        pending.status_reason = ""
        pending.save(update_fields=["status", "status_reason", "updated_at"])
        for old in retired:
            disconnected.send(sender=Connection, connection=old, user=user, owner=owner)
        connected.send(sender=Connection, connection=pending, user=user, owner=owner)
    connections.revoke_tokens(tokens)
    return retired


def _same_owner(row: Connection) -> Any:
    """The connections of ``row``'s owner (the site's when it has none)."""
    if row.owner_type_id is None:
        return Connection.objects.of_owner(None)
    return Connection.objects.filter(owner_type_id=row.owner_type_id, owner_id=row.owner_id)


# -- disconnect -------------------------------------------------------------------------------


@xframe_options_deny
@require_POST
@_manager_required
def disconnect(request: HttpRequest, owner: Any = None) -> HttpResponse:
    """Revoke and delete the credentials of the owner's connection (the site's without an
    owner): POST ``connection`` = a pk of one of the owner's rows, default: the one in use."""
    pk = request.POST.get("connection")
    rows = Connection.objects.of_owner(owner)
    if pk:
        connection = rows.filter(pk=pk if str(pk).isdigit() else None).first()
    else:
        connection = connections.owner_connection(owner)
    next_url = safe_next(request, request.POST.get("next"), None if owner is None else "/")
    if connection is None or connection.status == Connection.Status.REVOKED:
        _message(request, messages.WARNING, _("There is no Omnisend connection to disconnect."))
        return _harden(HttpResponseRedirect(next_url))
    connections.disconnect(connection, request.user)
    _message(
        request,
        messages.SUCCESS,
        _("Disconnected the Omnisend brand %(brand)s.") % {"brand": connection},
    )
    return _harden(HttpResponseRedirect(next_url))

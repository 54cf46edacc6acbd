"""The OAuth 2.0 authorization server (stand-in for ``app.omnisend.com/oauth2``).

* ``GET /oauth2/authorize`` checks ``client_id`` and the exact registered ``redirect_uri``
  (failures there show an error page and never redirect), then ``response_type=code``, scopes
  from Omnisend's list (``scope``, tolerating ``scopes``) and PKCE (S256 only; required when
  ``require_pkce``). It shows a consent page (Approve / Deny), or answers at once when
  ``auto_approve`` / ``auto_deny`` is on. ``state`` is echoed on every redirect.
* ``POST /oauth2/authorize`` is the consent form: a single-use consent id, then a redirect with
  ``code`` + ``state`` or ``error=access_denied`` + ``state``.
* ``POST /oauth2/token``: ``authorization_code`` (single-use, expiring, bound to client,
  redirect URI and PKCE challenge; a reused code revokes what it issued) and ``refresh_token``
  grants (``rotate_refresh_tokens`` issues a new refresh token each time; with
  ``refresh_reuse_revokes_grant`` a rotated-out one used again revokes its grant);
  ``client_secret_post`` or Basic; RFC 6749 §5.2 errors (401 ``invalid_client`` with
  ``WWW-Authenticate`` for Basic).
* ``POST /oauth2/revoke`` (RFC 7009): 200 for any token; revoking a refresh token revokes the
  access tokens of its grant. ``POST /oauth2/register`` (RFC 7591, :mod:`.registration`)
  → 201; a client registered with ``token_endpoint_auth_method: none`` is public: it has no
  secret, must send PKCE, and authenticates at the token endpoint by ``client_id`` alone.
* ``GET /.well-known/oauth-authorization-server`` (RFC 8414) with this server's own URLs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import re
import string
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus

from .http import BodyError, Request, Response, add_query
from .registration import register
from .state import ALL_SCOPES, DEFAULT_GRANT, new_secret

if TYPE_CHECKING:  # pragma: no cover
    from .core import Emulator

__all__ = ["authorize", "jwks", "metadata", "register", "revoke", "token"]

VERIFIER_RE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
CHALLENGE_RE = re.compile(r"^[A-Za-z0-9_-]{43}$")
SCOPE_LABELS = {
    "contacts.read": "Read your contacts",
    "contacts.write": "Create and update your contacts",
    "events.read": "Read customer events",
    "events.write": "Send customer events",
    "brands.read": "Read your brand details",
    "brands.write": "Connect your brand to a platform",
}


class OAuthError(Exception):
    """An RFC 6749 §5.2 error of the token or revocation endpoint."""

    def __init__(
        self, error: str, description: str, status: int = 400, basic: bool = False
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.basic = basic

    def response(self) -> Response:
        """The JSON error response (no-store; ``WWW-Authenticate`` for Basic 401s)."""
        resp = Response.json(
            self.status,
            {"error": self.error, "error_description": self.description},
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )
        if self.status == 401 and self.basic:
            resp.headers.append(("WWW-Authenticate", 'Basic realm="omnisend-emulator"'))
        return resp


def _template(name: str) -> string.Template:
    text = resources.files(__package__).joinpath("templates", name).read_text(encoding="utf-8")
    return string.Template(text)


def pkce_challenge(verifier: str) -> str:
    """``BASE64URL-no-padding(SHA256(verifier))`` (RFC 7636 S256)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def base_url(request: Request) -> str:
    """This server's origin as the client reached it (scheme + Host header)."""
    env = request.environ
    host = (
        env.get("HTTP_HOST")
        or f"{env.get('SERVER_NAME', '127.0.0.1')}:{env.get('SERVER_PORT', '80')}"
    )
    return f"{env.get('wsgi.url_scheme', 'http')}://{host}"


def metadata(emu: Emulator, request: Request) -> Response:
    """RFC 8414 authorization-server metadata (docs: reference/omnisend-api.rst, 'OAuth server')
    with this server's URLs."""
    base = base_url(request)
    return Response.json(
        200,
        {
            "issuer": base,
            "authorization_endpoint": f"{base}/oauth2/authorize",
            "token_endpoint": f"{base}/oauth2/token",
            "registration_endpoint": f"{base}/oauth2/register",
            "revocation_endpoint": f"{base}/oauth2/revoke",
            "jwks_uri": f"{base}/.well-known/jwks.json",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "token_endpoint_auth_methods_supported": [
                "none",
                "client_secret_post",
                "client_secret_basic",
            ],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": list(ALL_SCOPES),
        },
    )


def jwks(emu: Emulator, request: Request) -> Response:
    """An empty JWK set (Omnisend's tokens are opaque)."""
    return Response.json(200, {"keys": []})


# -- authorize --------------------------------------------------------------------------------


def _error_page(error: str, description: str) -> Response:
    page = _template("oauth_error.html").substitute(
        error=html.escape(error), description=html.escape(description)
    )
    return Response.html(400, page)


def _redirect_error(redirect_uri: str, error: str, description: str, state: str | None) -> Response:
    params = {"error": error, "error_description": description}
    if state is not None:
        params["state"] = state
    return Response.redirect(add_query(redirect_uri, params))


def authorize(emu: Emulator, request: Request) -> Response:
    """``/oauth2/authorize``: GET shows consent (or auto-answers), POST takes the decision."""
    if request.method == "POST":
        return _decide(emu, request)
    if request.method != "GET":
        return Response.json(
            405, {"error": "invalid_request", "error_description": "Use GET or POST."}
        )
    q = request.query_first()
    now = emu.clock()
    with emu.lock:
        client = emu.state.clients.get(q.get("client_id", ""))
        if client is None:
            return _error_page("invalid_client", "Unknown client_id.")
        redirect_uri = q.get("redirect_uri")
        if redirect_uri is None and len(client["redirect_uris"]) == 1:
            redirect_uri_given, redirect_uri = False, client["redirect_uris"][0]
        else:
            redirect_uri_given = True
        if redirect_uri not in client["redirect_uris"]:
            return _error_page(
                "invalid_request", "redirect_uri is missing or not registered for this client."
            )
        state = q.get("state")

        def fail(error: str, description: str) -> Response:
            return _redirect_error(redirect_uri, error, description, state)

        if q.get("response_type") != "code":
            if "response_type" not in q:
                return fail("invalid_request", "response_type is required.")
            return fail("unsupported_response_type", "Only response_type=code is supported.")
        raw_scope = q.get("scope", q.get("scopes", ""))
        requested = [s for s in re.split(r"[\s,]+", raw_scope) if s]
        unknown = [s for s in requested if s not in ALL_SCOPES]
        if unknown:
            return fail("invalid_scope", f"Unknown scope(s): {' '.join(unknown)}")
        not_allowed = [s for s in requested if s not in client["scopes"]]
        if not_allowed:
            return fail(
                "invalid_scope", f"Scope(s) not allowed for this client: {' '.join(not_allowed)}"
            )
        scopes = list(dict.fromkeys(requested)) or [
            s for s in DEFAULT_GRANT if s in client["scopes"]
        ]
        challenge = q.get("code_challenge")
        method = q.get("code_challenge_method")
        if method is not None and method != "S256":
            return fail("invalid_request", "code_challenge_method must be S256.")
        if challenge is not None:
            if method is None:
                return fail(
                    "invalid_request", "code_challenge_method=S256 is required with code_challenge."
                )
            if not CHALLENGE_RE.match(challenge):
                return fail("invalid_request", "code_challenge is not a base64url SHA-256 digest.")
        elif emu.config.require_pkce or _public(client):
            return fail(
                "invalid_request", "PKCE is required: send code_challenge with method S256."
            )
        pending = {
            "client_id": client["client_id"],
            "redirect_uri": redirect_uri,
            "redirect_uri_given": redirect_uri_given,
            "scopes": scopes,
            "state": state,
            "challenge": challenge,
            "brand_id": client.get("brand_id") or emu.default_brand_id,
            "expires_at": now + emu.config.code_ttl,
        }
        if emu.config.auto_deny:
            return _redirect_error(
                redirect_uri, "access_denied", "The user denied the request.", state
            )
        if emu.config.auto_approve:
            return _approve(emu, pending, now)
        consent_id = new_secret(18)
        emu.state.consents[consent_id] = pending
        brands = list(emu.state.brands.values())
    return Response.html(200, _consent_page(request, client, pending, consent_id, brands))


def _consent_page(
    request: Request,
    client: dict[str, Any],
    pending: dict[str, Any],
    consent_id: str,
    brands: list[dict[str, Any]],
) -> str:
    items = "\n".join(
        f"    <li><code>{html.escape(s)}</code> {html.escape(SCOPE_LABELS.get(s, ''))}</li>"
        for s in pending["scopes"]
    )
    choice = ""
    if len(brands) > 1:
        options = "".join(
            f'<option value="{html.escape(b["brandID"])}"'
            f"{' selected' if b['brandID'] == pending['brand_id'] else ''}>"
            f"{html.escape(b['name'])} ({html.escape(b['brandID'])})</option>"
            for b in brands
        )
        choice = f'    <label>Brand <select name="brand_id" id="brand">{options}</select></label>'
    return _template("consent.html").substitute(
        client_name=html.escape(client.get("name") or client["client_id"]),
        scope_items=items,
        action=html.escape(base_url(request) + "/oauth2/authorize"),
        consent=html.escape(consent_id),
        brand_choice=choice,
        redirect_uri=html.escape(pending["redirect_uri"]),
    )


def _decide(emu: Emulator, request: Request) -> Response:
    try:
        form = request.form()
    except BodyError:
        form = {}
    now = emu.clock()
    with emu.lock:
        pending = emu.state.consents.pop(form.get("consent", ""), None)
        if pending is None or pending["expires_at"] <= now:
            return _error_page(
                "invalid_request", "This consent page expired or was already answered."
            )
        decision = form.get("decision")
        if decision == "deny":
            return _redirect_error(
                pending["redirect_uri"],
                "access_denied",
                "The user denied the request.",
                pending["state"],
            )
        if decision != "approve":
            return _error_page("invalid_request", "Choose Approve or Deny.")
        if form.get("brand_id") in emu.state.brands:
            pending["brand_id"] = form["brand_id"]
        return _approve(emu, pending, now)


def _approve(emu: Emulator, pending: dict[str, Any], now: float) -> Response:
    """Issue a single-use code and redirect with ``code`` and ``state`` (lock held)."""
    code = new_secret(24)
    emu.state.codes[code] = {
        **pending,
        "expires_at": now + emu.config.code_ttl,
        "used": False,
        "grant": new_secret(12),
    }
    params = {"code": code}
    if pending["state"] is not None:
        params["state"] = pending["state"]
    return Response.redirect(add_query(pending["redirect_uri"], params))


# -- token ------------------------------------------------------------------------------------


def _client_auth(emu: Emulator, request: Request, form: dict[str, str]) -> dict[str, Any]:
    header = request.header("Authorization") or ""
    basic = header[:6].lower() == "basic "
    if basic:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Use one client authentication method, not two.")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
            raw_id, _, raw_secret = decoded.partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError(
                "invalid_client", "Malformed Basic credentials.", 401, basic=True
            ) from None
        client_id, secret = unquote_plus(raw_id), unquote_plus(raw_secret)
        if form.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_request", "client_id differs from the Basic credentials.")
    else:
        client_id, secret = form.get("client_id", ""), form.get("client_secret")
    client = emu.state.clients.get(client_id)
    if client is not None and _public(client) and not basic and secret is None:
        return client  # RFC 6749 §2.3: a public client only identifies itself (PKCE proves it)
    if client is None or secret is None or not _same(secret, client["client_secret"]):
        raise OAuthError(
            "invalid_client", "Client authentication failed.", 401 if basic else 400, basic=basic
        )
    return client


def _public(client: dict[str, Any]) -> bool:
    return client.get("token_endpoint_auth_method") == "none"


def _same(a: str, b: str) -> bool:
    return hashlib.sha256(a.encode()).digest() == hashlib.sha256(b.encode()).digest()


def issue_tokens(
    emu: Emulator,
    client_id: str,
    brand_id: str,
    scopes: list[str],
    now: float,
    grant: str | None = None,
    with_refresh: bool = True,
) -> dict[str, Any]:
    """Create an access (+ refresh) token; return the RFC 6749 token response (lock held)."""
    grant = grant or new_secret(12)
    access = new_secret(32)
    expires_in = int(emu.config.token_expires_in)
    emu.state.access_tokens[access] = {
        "client_id": client_id,
        "brand_id": brand_id,
        "scopes": list(scopes),
        "expires_at": now + expires_in,
        "issued_at": now,
        "revoked": False,
        "grant": grant,
    }
    body: dict[str, Any] = {
        "access_token": access,
        "token_type": "Bearer",
        "expires_in": expires_in,
    }
    if with_refresh:
        refresh = new_secret(32)
        emu.state.refresh_tokens[refresh] = {
            "client_id": client_id,
            "brand_id": brand_id,
            "scopes": list(scopes),
            "revoked": False,
            "grant": grant,
        }
        body["refresh_token"] = refresh
    body["scope"] = " ".join(scopes)
    return body


def revoke_grant(emu: Emulator, grant: str) -> None:
    """Revoke every access and refresh token of a grant (lock held)."""
    for table in (emu.state.access_tokens, emu.state.refresh_tokens):
        for record in table.values():
            if record["grant"] == grant:
                record["revoked"] = True


def token(emu: Emulator, request: Request) -> Response:
    """``POST /oauth2/token``."""
    if request.method != "POST":
        return OAuthError("invalid_request", "Use POST.", 405).response()
    try:
        form = request.form()
        now = emu.clock()
        with emu.lock:
            client = _client_auth(emu, request, form)
            grant_type = form.get("grant_type")
            if not grant_type:
                raise OAuthError("invalid_request", "grant_type is required.")
            if grant_type == "authorization_code":
                body = _code_grant(emu, client, form, now)
            elif grant_type == "refresh_token":
                body = _refresh_grant(emu, client, form, now)
            else:
                raise OAuthError(
                    "unsupported_grant_type", f"grant_type {grant_type!r} is not supported."
                )
    except BodyError as exc:
        return OAuthError("invalid_request", str(exc)).response()
    except OAuthError as exc:
        return exc.response()
    return Response.json(200, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])


def _code_grant(
    emu: Emulator, client: dict[str, Any], form: dict[str, str], now: float
) -> dict[str, Any]:
    code = form.get("code")
    if not code:
        raise OAuthError("invalid_request", "code is required.")
    record = emu.state.codes.get(code)
    if record is None or record["client_id"] != client["client_id"]:
        raise OAuthError("invalid_grant", "The authorization code is invalid.")
    if record["used"]:
        revoke_grant(emu, record["grant"])  # RFC 6749 §4.1.2: a replayed code revokes its tokens
        raise OAuthError("invalid_grant", "The authorization code was already used.")
    record["used"] = True
    if record["expires_at"] <= now:
        raise OAuthError("invalid_grant", "The authorization code expired.")
    if record["redirect_uri_given"] and form.get("redirect_uri") != record["redirect_uri"]:
        raise OAuthError("invalid_grant", "redirect_uri does not match the authorization request.")
    verifier = form.get("code_verifier")
    if record["challenge"] is not None:
        if not verifier or not VERIFIER_RE.match(verifier):
            raise OAuthError("invalid_grant", "A valid code_verifier is required.")
        if pkce_challenge(verifier) != record["challenge"]:
            raise OAuthError("invalid_grant", "code_verifier does not match the code_challenge.")
    elif verifier is not None:
        raise OAuthError("invalid_grant", "code_verifier sent but no code_challenge was given.")
    return issue_tokens(
        emu, client["client_id"], record["brand_id"], record["scopes"], now, record["grant"]
    )


def _refresh_grant(
    emu: Emulator, client: dict[str, Any], form: dict[str, str], now: float
) -> dict[str, Any]:
    value = form.get("refresh_token")
    if not value:
        raise OAuthError("invalid_request", "refresh_token is required.")
    record = emu.state.refresh_tokens.get(value)
    if record is None or record["client_id"] != client["client_id"]:
        raise OAuthError("invalid_grant", "The refresh token is invalid or revoked.")
    if record["revoked"]:
        if record.get("rotated") and emu.config.refresh_reuse_revokes_grant:
            # Reuse detection (RFC 9700 §4.14.2): someone holds a stale copy, so trust none.
            revoke_grant(emu, record["grant"])
        raise OAuthError("invalid_grant", "The refresh token is invalid or revoked.")
    scopes = record["scopes"]
    if form.get("scope"):
        wanted = form["scope"].split()
        if not set(wanted) <= set(scopes):
            raise OAuthError("invalid_scope", "The requested scope exceeds the original grant.")
        scopes = wanted
    rotate = emu.config.rotate_refresh_tokens
    body = issue_tokens(
        emu,
        client["client_id"],
        record["brand_id"],
        scopes,
        now,
        record["grant"],
        with_refresh=rotate,
    )
    if rotate:
        record["revoked"] = record["rotated"] = True
    return body


def revoke_token_value(emu: Emulator, value: str, client_id: str | None = None) -> bool:
    """Revoke an access or refresh token (lock held); refresh tokens take their grant along."""
    access = emu.state.access_tokens.get(value)
    if access is not None and client_id in (None, access["client_id"]):
        access["revoked"] = True
        return True
    refresh = emu.state.refresh_tokens.get(value)
    if refresh is not None and client_id in (None, refresh["client_id"]):
        revoke_grant(emu, refresh["grant"])
        return True
    return False


def revoke(emu: Emulator, request: Request) -> Response:
    """``POST /oauth2/revoke`` (RFC 7009): 200 whether or not the token was known."""
    if request.method != "POST":
        return OAuthError("invalid_request", "Use POST.", 405).response()
    try:
        form = request.form()
        with emu.lock:
            client = _client_auth(emu, request, form)
            if not form.get("token"):
                raise OAuthError("invalid_request", "token is required.")
            revoke_token_value(emu, form["token"], client["client_id"])
    except BodyError as exc:
        return OAuthError("invalid_request", str(exc)).response()
    except OAuthError as exc:
        return exc.response()
    return Response(200, b"", [("Cache-Control", "no-store")])

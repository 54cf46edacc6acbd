"""``POST /oauth2/register``: OAuth 2.0 dynamic client registration (RFC 7591).

Validates the client metadata as RFC 7591 §2 and §3.2.2 describe, then registers a client that
works at once for ``/oauth2/authorize`` (its exact redirect URIs only) and ``/oauth2/token``:

* ``redirect_uris`` is required: a non-empty list of absolute URIs without a fragment, each
  ``https`` or ``http`` on a loopback host (RFC 8252 §7.3, RFC 9700 §2.1); anything else is
  ``400 invalid_redirect_uri``.
* ``grant_types`` (default ``["authorization_code"]``) from ``authorization_code`` and
  ``refresh_token``; ``response_types`` (default ``["code"]``) only ``code``; the two must
  agree (``code`` if and only if ``authorization_code``, §2.1); ``token_endpoint_auth_method``
  (default ``client_secret_basic``) one of the advertised methods; ``scope`` from Omnisend's
  list; ``client_name`` a string; ``client_uri`` an absolute http(s) URL. Any failure is
  ``400 invalid_client_metadata``.
* ``201`` carries ``client_id``, ``client_secret`` (not for ``none``: a public client proves
  itself with PKCE), ``client_id_issued_at``, ``client_secret_expires_at: 0`` and the metadata
  as registered. Errors carry ``error`` and, as Omnisend's own answers do, ``title``.
"""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .http import BodyError, Request, Response
from .state import ALL_SCOPES, new_secret

if TYPE_CHECKING:  # pragma: no cover
    from .core import Emulator

GRANT_TYPES = ("authorization_code", "refresh_token")
RESPONSE_TYPES = ("code",)
AUTH_METHODS = ("none", "client_secret_post", "client_secret_basic")
LOOPBACK_NAMES = ("localhost",)


class RegistrationError(Exception):
    """An RFC 7591 §3.2.2 error: ``invalid_redirect_uri`` or ``invalid_client_metadata``."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description

    def response(self) -> Response:
        """The 400 answer (no-store, like every answer carrying client credentials)."""
        return Response.json(
            400,
            {"error": self.error, "title": self.error, "error_description": self.description},
            [("Cache-Control", "no-store"), ("Pragma", "no-cache")],
        )


def _metadata_error(description: str) -> RegistrationError:
    return RegistrationError("invalid_client_metadata", description)


def _is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_redirect_uri(uri: Any) -> str | None:
    """Why ``uri`` cannot be registered, or None when it can."""
    if not isinstance(uri, str) or not uri:
        return "every redirect URI must be a non-empty string"
    try:
        parts = urlsplit(uri)
        host = parts.hostname or ""
    except ValueError:
        return f"{uri!r} is not a valid URI"
    if not parts.scheme or not parts.netloc or not host:
        return f"{uri!r} is not an absolute URI"
    if parts.fragment or "#" in uri:
        return f"{uri!r} has a fragment, which redirect URIs must not have"
    if parts.scheme == "https":
        return None
    if parts.scheme == "http" and _is_loopback(host):
        return None
    if parts.scheme == "http":
        return f"{uri!r} uses plain http on a host that is not loopback; use https"
    return f"{uri!r} must use https (or http on a loopback host)"


def _string_list(meta: dict[str, Any], name: str, default: list[str]) -> list[str]:
    value = meta.get(name, default)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _metadata_error(f"{name} must be a list of strings.")
    return list(dict.fromkeys(value))


def validate(meta: Any) -> dict[str, Any]:
    """The client metadata as it will be registered; raises :class:`RegistrationError`."""
    if not isinstance(meta, dict):
        raise _metadata_error("The body must be a JSON object of client metadata.")
    uris = meta.get("redirect_uris")
    if not isinstance(uris, list) or not uris:
        raise RegistrationError(
            "invalid_redirect_uri", "redirect_uris is required: a non-empty list of URIs."
        )
    for uri in uris:
        problem = check_redirect_uri(uri)
        if problem:
            raise RegistrationError("invalid_redirect_uri", problem[0].upper() + problem[1:] + ".")
    grants = _string_list(meta, "grant_types", ["authorization_code"])
    responses = _string_list(meta, "response_types", ["code"])
    unknown = [g for g in grants if g not in GRANT_TYPES]
    if unknown or not grants:
        raise _metadata_error(
            f"Unsupported grant_types {unknown or grants}; supported: {', '.join(GRANT_TYPES)}."
        )
    unknown = [r for r in responses if r not in RESPONSE_TYPES]
    if unknown:
        raise _metadata_error(f"Unsupported response_types {unknown}; only 'code' is supported.")
    if ("authorization_code" in grants) != ("code" in responses):
        raise _metadata_error(
            "grant_types and response_types disagree: authorization_code goes with code."
        )
    method = meta.get("token_endpoint_auth_method", "client_secret_basic")
    if method not in AUTH_METHODS:
        raise _metadata_error(
            f"Unsupported token_endpoint_auth_method; supported: {', '.join(AUTH_METHODS)}."
        )
    scope = meta.get("scope")
    if scope is not None and not isinstance(scope, str):
        raise _metadata_error("scope must be a space-separated string.")
    scopes = list(dict.fromkeys((scope or "").split())) or list(ALL_SCOPES)
    unknown = [s for s in scopes if s not in ALL_SCOPES]
    if unknown:
        raise _metadata_error(f"Unknown scope(s): {' '.join(unknown)}.")
    name = meta.get("client_name")
    if name is not None and not isinstance(name, str):
        raise _metadata_error("client_name must be a string.")
    client_uri = meta.get("client_uri")
    if client_uri is not None:
        parts = urlsplit(client_uri) if isinstance(client_uri, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise _metadata_error("client_uri must be an absolute http(s) URL.")
    registered: dict[str, Any] = {
        "redirect_uris": list(uris),
        "grant_types": grants,
        "response_types": responses,
        "token_endpoint_auth_method": method,
        "scope": " ".join(scopes),
    }
    if name:
        registered["client_name"] = name
    if client_uri:
        registered["client_uri"] = client_uri
    return registered


def register(emu: Emulator, request: Request) -> Response:
    """``POST /oauth2/register`` → 201 with the new client's credentials, or an RFC 7591 400."""
    if request.method != "POST":
        return Response.json(
            405,
            {
                "error": "invalid_request",
                "title": "invalid_request",
                "error_description": "Use POST.",
            },
        )
    try:
        try:
            meta = request.json()
        except BodyError as exc:
            raise _metadata_error(str(exc)) from None
        registered = validate(meta)
    except RegistrationError as exc:
        return exc.response()
    client_id = new_secret(12)
    public = registered["token_endpoint_auth_method"] == "none"
    secret = "" if public else new_secret(24)
    issued_at = int(emu.clock())
    with emu.lock:
        emu.add_client(
            client_id,
            secret,
            registered["redirect_uris"],
            registered["scope"].split(),
            name=registered.get("client_name") or client_id,
            _persist=False,
        )
        emu.state.clients[client_id].update(
            token_endpoint_auth_method=registered["token_endpoint_auth_method"],
            grant_types=registered["grant_types"],
        )
        emu._persist()
    body: dict[str, Any] = {"client_id": client_id}
    if not public:
        body["client_secret"] = secret
        body["client_secret_expires_at"] = 0
    body["client_id_issued_at"] = issued_at
    body.update(registered)
    return Response.json(201, body, [("Cache-Control", "no-store"), ("Pragma", "no-cache")])

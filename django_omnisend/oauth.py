"""OAuth 2.0 Authorization Code flow with Omnisend: plain HTTP, no views, no models.

* :func:`build_authorization_request` makes the authorize URL with ``response_type=code``, the
  exact ``redirect_uri``, space-separated ``scope``, a 256-bit ``state`` and a PKCE S256 challenge
  (RFC 7636; sent even though we are a confidential client, RFC 9700 §2.1.1).
* :func:`exchange_code` and :func:`refresh` POST a form to the token endpoint
  (``client_secret_post``: the secret travels in the body, never in a URL), never follow a
  redirect, and validate the answer strictly (RFC 6749 §5.1;
  docs: guides/security.rst, 'Token responses are validated strictly' and 'Scopes').
* :func:`revoke` is RFC 7009 and never raises: local tokens are dropped whatever Omnisend says.
* :func:`register_client` is dynamic client registration (RFC 7591) at the endpoint
  :func:`registration_endpoint` finds (``REGISTRATION_URL``, else RFC 8414 server metadata,
  else Omnisend's documented URL).

Client credentials come from :func:`client_credentials`: ``OMNISEND["CLIENT_ID"]`` and
``["CLIENT_SECRET"]``, or, once the app is ready, whatever the resolver installed by
:func:`set_credentials_resolver` answers (:mod:`django_omnisend.registration`: settings first,
then the stored registration, registering at the first Connect). This module never touches
the database itself.

Two plain ``requests.post`` calls instead of requests-oauthlib, whose DEBUG logging writes request
bodies and tokens
(docs: guides/security.rst, 'Codes and tokens never leak'). No message or exception raised here
ever contains a token, a code, a
verifier or the client secret; functions that hold them are marked ``sensitive_variables`` so
Django's error reports hide their locals too. Django ignores that marker when ``DEBUG`` is on,
so :func:`exchange_code` and :func:`refresh` also re-raise their errors with a fresh traceback
that starts above the frames holding the code, the tokens and the secret, and with no chained
``requests`` exception (its frames hold the form).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import math
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.views.decorators.debug import sensitive_variables

from .conf import omnisend_settings
from .exceptions import ImproperlyConfigured, OAuthError, RegistrationError

logger = logging.getLogger(__name__)

__all__ = [
    "TOKEN_TIMEOUT",
    "AuthorizationRequest",
    "ClientCredentials",
    "RegisteredClient",
    "TokenResponse",
    "build_authorization_request",
    "client_credentials",
    "code_challenge",
    "exchange_code",
    "expected_issuer",
    "refresh",
    "register_client",
    "registration_endpoint",
    "revoke",
    "set_credentials_resolver",
    "settings_credentials",
    "token_lifetime",
]

#: (connect, read) seconds for token and revoke requests
#: (docs: guides/security.rst, 'Token responses are validated strictly').
TOKEN_TIMEOUT: tuple[float, float] = (5.0, 20.0)

#: The shortest token lifetime believed, in seconds. A token said to live less (0, negative,
#: one second) would be refreshed on every ``get_client`` call, a refresh storm; if it really
#: dies sooner, the 401 handler refreshes it once.
MIN_TOKEN_LIFETIME = 120.0
#: Lifetimes from ten years on (Omnisend's 9223372036 s, infinity) mean "does not expire".
MAX_TOKEN_LIFETIME = 3650 * 86400.0

#: OAuthError codes that mean "try again later" rather than "the grant is dead".
TRANSIENT_CODES = frozenset({"token_unavailable", "token_timeout", "token_transport"})

_SAFE_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


@dataclass(frozen=True)
class AuthorizationRequest:
    """Everything the connect view needs: the URL to send the browser to and what to remember."""

    url: str
    state: str
    code_verifier: str = field(repr=False)
    code_challenge: str
    redirect_uri: str
    #: The client that asked: the code exchange must authenticate as the same one.
    client_id: str
    scopes: tuple[str, ...]
    authorize_url: str
    token_url: str


@dataclass(frozen=True)
class TokenResponse:
    """A validated token endpoint answer. ``repr()`` never shows the tokens."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    token_type: str
    expires_in: float | None
    #: The scopes granted (the requested ones when the server did not send ``scope``).
    scopes: tuple[str, ...]
    #: Granted scopes beyond those requested: recorded, never asked for (docs: guides/security.rst,
    #: 'Scopes').
    extra_scopes: tuple[str, ...] = ()
    #: Whether the response carried ``scope`` (RFC 6749: omitted means "as requested").
    scope_returned: bool = True


_F = TypeVar("_F", bound=Callable[..., Any])


def _secret_free_errors(func: _F) -> _F:
    """Re-raise ``func``'s errors without the frames (and chain) that hold its secrets.

    The traceback of an error raised inside ``func`` lists the locals of every frame down to
    the raise: the code, the verifier, the refresh token, the client secret and the form. A
    DEBUG error page shows them all (``sensitive_variables`` only works with DEBUG off). The
    error is re-raised from this wrapper with its traceback cut and outside the ``except``,
    after the wrapper has dropped its own references to the arguments.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (OAuthError, ImproperlyConfigured) as exc:
            error = exc
        del args, kwargs
        error.__cause__ = error.__context__ = None
        raise error.with_traceback(None)

    return wrapper  # type: ignore[return-value]


@dataclass(frozen=True)
class ClientCredentials:
    """The OAuth client the site authenticates as. ``repr()`` never shows the secret."""

    client_id: str
    client_secret: str = field(repr=False)
    #: ``"settings"`` (OMNISEND["CLIENT_ID"]) or ``"registration"`` (stored, RFC 7591).
    source: str = "settings"


#: ``resolver(redirect_uri, register)``: the client for ``redirect_uri`` (None: the configured
#: one), registering one when ``register`` is true; raises ImproperlyConfigured when none.
CredentialsResolver = Callable[[str | None, bool], ClientCredentials]

_resolver: CredentialsResolver | None = None

NO_CREDENTIALS = (
    'OMNISEND["CLIENT_ID"] and OMNISEND["CLIENT_SECRET"] must both be set to connect '
    "with OAuth; they are the credentials Omnisend issued for your app."
)


def set_credentials_resolver(resolver: CredentialsResolver | None) -> None:
    """Install how client credentials are found (the app does it in ``ready()``)."""
    global _resolver
    _resolver = resolver


def settings_credentials() -> ClientCredentials | None:
    """``OMNISEND["CLIENT_ID"]``/``["CLIENT_SECRET"]`` when both are set, else None."""
    client_id, client_secret = omnisend_settings.client_id, omnisend_settings.client_secret
    if client_id and client_secret:
        return ClientCredentials(client_id, client_secret, "settings")
    return None


def client_credentials(
    redirect_uri: str | None = None, *, register: bool = False
) -> ClientCredentials:
    """The client to authenticate as for ``redirect_uri``; settings credentials always win.

    ``register`` lets the installed resolver register the site when it has no client yet
    (only the start of a connection does). Raises ``ImproperlyConfigured`` (or its
    ``RegistrationError``) when there is no client and none can be had.
    """
    if _resolver is not None:
        return _resolver(redirect_uri, register)
    configured = settings_credentials()
    if configured is None:
        raise ImproperlyConfigured(NO_CREDENTIALS)
    return configured


def _client_credentials(
    redirect_uri: str | None = None, given: ClientCredentials | None = None
) -> tuple[str, str]:
    credentials = given or client_credentials(redirect_uri)
    return credentials.client_id, credentials.client_secret


def generate_state() -> str:
    """A one-time ``state``: 32 random bytes (256 bits), 43 URL-safe characters."""
    return secrets.token_urlsafe(32)


def generate_code_verifier() -> str:
    """A PKCE verifier: 86 characters of ``[A-Za-z0-9_-]`` (RFC 7636 allows 43 to 128)."""
    return secrets.token_urlsafe(64)[:128]


def code_challenge(verifier: str) -> str:
    """The S256 challenge of ``verifier``: BASE64URL-no-padding(SHA-256(verifier))."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def expected_issuer(authorize_url: str | None = None) -> str:
    """The issuer identifier of the authorization server: the origin of ``AUTHORIZE_URL``.

    Omnisend's metadata says ``"issuer": "https://app.omnisend.com"``, the origin of its
    authorize endpoint; an RFC 9207 ``iss`` on the callback must equal it
    (docs: guides/security.rst, 'Endpoints are deploy-time only (mix-up)').
    """
    parts = urlsplit(authorize_url or omnisend_settings.authorize_url)
    return f"{parts.scheme}://{parts.netloc}"


def build_authorization_request(
    redirect_uri: str,
    scopes: list[str] | tuple[str, ...] | None = None,
    *,
    client_id: str | None = None,
    authorize_url: str | None = None,
) -> AuthorizationRequest:
    """Make a fresh authorize URL with new ``state`` and PKCE values.

    ``redirect_uri`` must be the exact URI registered with Omnisend; the same string is sent
    again with the code exchange. ``scopes`` default to ``OMNISEND["SCOPES"]``. Without
    ``client_id`` the client comes from :func:`client_credentials`, which registers the site
    first when it has no client yet (this is the start of a connection).
    """
    if client_id is None:
        client_id = client_credentials(redirect_uri, register=True).client_id
    authorize_url = authorize_url or omnisend_settings.authorize_url
    scopes = tuple(scopes if scopes is not None else omnisend_settings.scopes)
    state = generate_state()
    verifier = generate_code_verifier()
    challenge = code_challenge(verifier)
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
            "state": state,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        },
        # %20 for spaces (not "+") so the scope list reads the same in every decoder.
        quote_via=quote,
    )
    separator = "&" if urlsplit(authorize_url).query else "?"
    return AuthorizationRequest(
        url=f"{authorize_url}{separator}{query}",
        state=state,
        code_verifier=verifier,
        code_challenge=challenge,
        redirect_uri=redirect_uri,
        client_id=client_id,
        scopes=scopes,
        authorize_url=authorize_url,
        token_url=omnisend_settings.token_url,
    )


@_secret_free_errors
@sensitive_variables()
def exchange_code(
    code: str,
    verifier: str,
    redirect_uri: str,
    *,
    required_scopes: list[str] | tuple[str, ...] | None = None,
    token_url: str | None = None,
    timeout: tuple[float, float] | None = None,
    credentials: ClientCredentials | None = None,
) -> TokenResponse:
    """Exchange an authorization ``code`` for tokens (``grant_type=authorization_code``).

    ``redirect_uri`` must be byte-identical to the one in the authorize request;
    ``credentials`` the client that asked for the code (default: :func:`client_credentials`). Raises
    :class:`~django_omnisend.exceptions.OAuthError` (never containing the code or a token) on
    any transport problem or any answer that fails the strict checks.
    """
    if not code:
        raise OAuthError("Omnisend sent no authorization code.", code="missing_code")
    client_id, client_secret = _client_credentials(redirect_uri, credentials)
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "client_secret": client_secret,
        "code_verifier": verifier,
    }
    payload = _post_token(token_url or omnisend_settings.token_url, data, timeout)
    return _validate(payload, required_scopes)


@_secret_free_errors
@sensitive_variables()
def refresh(
    refresh_token: str,
    *,
    required_scopes: list[str] | tuple[str, ...] | None = None,
    token_url: str | None = None,
    timeout: tuple[float, float] | None = None,
    credentials: ClientCredentials | None = None,
) -> TokenResponse:
    """Use ``refresh_token`` for a new access token (``grant_type=refresh_token``).

    ``credentials`` is the client that issued the token (default: :func:`client_credentials`).
    A response without ``refresh_token`` leaves ``TokenResponse.refresh_token`` empty: the caller
    keeps the old one (docs: reference/omnisend-api.rst, 'Refresh, revoke and registration').
    Errors as for :func:`exchange_code`.
    """
    if not refresh_token:
        raise OAuthError("There is no refresh token to use.", code="no_refresh_token")
    client_id, client_secret = _client_credentials(None, credentials)
    data = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": client_id,
        "client_secret": client_secret,
    }
    payload = _post_token(token_url or omnisend_settings.token_url, data, timeout)
    return _validate(payload, required_scopes)


@sensitive_variables()
def revoke(
    token: str,
    hint: str = "access_token",
    *,
    revoke_url: str | None = None,
    timeout: tuple[float, float] | None = None,
    credentials: ClientCredentials | None = None,
) -> bool:
    """Revoke ``token`` at ``REVOKE_URL`` (RFC 7009). Returns whether Omnisend confirmed it.

    ``credentials`` is the client that issued the token (default: :func:`client_credentials`):
    a server ignores a revocation by another client (RFC 7009 §2.1).

    Never raises on network or server trouble: revocation is best effort and the caller deletes
    its copy of the token either way
    (docs: reference/omnisend-api.rst, 'Refresh, revoke and registration').
    """
    if not token:
        return False
    url = revoke_url or omnisend_settings.revoke_url
    try:
        client_id, client_secret = _client_credentials(None, credentials)
    except ImproperlyConfigured:
        client_id = client_secret = ""  # still ask: a server may accept the bare token
    data = {"token": token, "token_type_hint": hint}
    if client_id:
        data["client_id"] = client_id
    if client_secret:
        data["client_secret"] = client_secret
    try:
        response = requests.post(
            url,
            data=data,
            headers={"Accept": "application/json"},
            timeout=timeout or TOKEN_TIMEOUT,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        logger.warning("Omnisend token revocation failed: %s", type(exc).__name__)
        return False
    if response.status_code == 200:
        logger.info("Revoked an Omnisend %s.", hint.replace("_", " "))
        return True
    logger.warning("Omnisend token revocation answered HTTP %s.", response.status_code)
    return False


# -- dynamic client registration (RFC 7591) ---------------------------------------------------

#: Appended to every registration failure: what to do when registering does not work.
GET_CREDENTIALS = (
    " If it keeps failing, request client credentials from Omnisend (the OAuth app form "
    'linked from its API documentation) and set OMNISEND["CLIENT_ID"] and '
    'OMNISEND["CLIENT_SECRET"]; they are used instead of registering.'
)
#: Characters of a server's ``error_description`` repeated in our message.
MAX_DESCRIPTION = 200
#: RFC 7591 §3.2.2 error codes, with what to check for each.
REGISTRATION_ERRORS = {
    "invalid_redirect_uri": (
        'Check OMNISEND["REDIRECT_URI"]: it must be this site\'s exact callback URL, https '
        "(plain http only on localhost or 127.0.0.1), without a fragment."
    ),
    "invalid_client_metadata": (
        'Check OMNISEND["SCOPES"], ["CLIENT_NAME"] and ["CLIENT_URI"] (an absolute https URL).'
    ),
    "invalid_software_statement": "",
    "unapproved_software_statement": "",
}


@dataclass(frozen=True)
class RegisteredClient:
    """A client Omnisend issued by dynamic registration. ``repr()`` never shows the secret."""

    client_id: str
    client_secret: str = field(repr=False)
    registration_endpoint: str
    #: The answer without its secrets (client_id_issued_at, grant_types, scope...).
    metadata: dict[str, Any]
    #: Unix time the secret expires (``client_secret_expires_at``), None for never.
    secret_expires_at: float | None = None


def registration_endpoint(
    authorize_url: str | None = None, *, timeout: tuple[float, float] | None = None
) -> str:
    """Where to register: ``OMNISEND["REGISTRATION_URL"]``, else the ``registration_endpoint``
    of the RFC 8414 metadata at the authorization server's origin (trusted only when its
    ``issuer`` is that origin, RFC 8414 §3.3), else ``{origin}/oauth2/register``, the URL
    Omnisend documents (its metadata is published on another host)."""
    configured = omnisend_settings.registration_url
    if configured:
        return configured
    origin = expected_issuer(authorize_url)
    try:
        response = requests.get(
            f"{origin}/.well-known/oauth-authorization-server",
            headers={"Accept": "application/json"},
            timeout=timeout or TOKEN_TIMEOUT,
            allow_redirects=False,
        )
        payload = response.json() if response.status_code == 200 else None
    except (requests.RequestException, ValueError) as exc:
        logger.debug("No OAuth server metadata at %s (%s).", origin, type(exc).__name__)
        payload = None
    if isinstance(payload, dict) and str(payload.get("issuer") or "").rstrip("/") == origin:
        endpoint = payload.get("registration_endpoint")
        if isinstance(endpoint, str) and urlsplit(endpoint).scheme in ("https", "http"):
            return endpoint
    return f"{origin}/oauth2/register"


def _registration_failed(message: str, code: str) -> RegistrationError:
    return RegistrationError(
        f"Omnisend did not register this site as an OAuth client: {message}{GET_CREDENTIALS}",
        code=code,
    )


@_secret_free_errors
@sensitive_variables()
def register_client(
    url: str, metadata: dict[str, Any], *, timeout: tuple[float, float] | None = None
) -> RegisteredClient:
    """POST ``metadata`` to the registration endpoint ``url`` (RFC 7591) for a confidential
    client; returns the issued credentials.

    Raises :class:`~django_omnisend.exceptions.RegistrationError` (an ``ImproperlyConfigured``)
    saying what happened and how to get credentials instead, never containing a secret.
    """
    try:
        response = requests.post(
            url,
            json=metadata,
            headers={"Accept": "application/json"},
            timeout=timeout or TOKEN_TIMEOUT,
            allow_redirects=False,  # the answer carries a secret: never from elsewhere
        )
    except requests.Timeout:
        raise _registration_failed(
            "its registration endpoint did not answer in time. Try again in a moment.",
            "registration_timeout",
        ) from None
    except requests.RequestException as exc:
        raise _registration_failed(
            f"Could not reach its registration endpoint {url} ({type(exc).__name__}). "
            "Try again in a moment.",
            "registration_transport",
        ) from None
    status = response.status_code
    logger.debug("Omnisend's registration endpoint answered HTTP %s.", status)
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if 300 <= status < 400:
        raise _registration_failed(
            f"its registration endpoint answered with a redirect (HTTP {status}), which was not "
            'followed. Check OMNISEND["REGISTRATION_URL"].',
            "registration_redirect",
        )
    if status not in (200, 201):
        raise _refused(status, payload)
    if not isinstance(payload, dict):
        raise _registration_failed(
            "its registration endpoint answered with something other than a JSON object.",
            "registration_bad_response",
        )
    client_id = payload.get("client_id")
    client_secret = payload.get("client_secret")
    if not isinstance(client_id, str) or not client_id.strip():
        raise _registration_failed("its answer has no client ID.", "registration_bad_response")
    if not isinstance(client_secret, str) or not client_secret:
        raise _registration_failed(
            "its answer has no client secret (a confidential client was requested).",
            "registration_bad_response",
        )
    expires = payload.get("client_secret_expires_at")
    secret_expires_at = (
        float(expires)
        if isinstance(expires, int | float) and not isinstance(expires, bool) and expires > 0
        else None
    )
    # RFC 7592's registration_access_token is a credential too: neither is kept in metadata.
    kept = {
        key: value
        for key, value in payload.items()
        if key not in ("client_secret", "registration_access_token")
    }
    return RegisteredClient(
        client_id=client_id,
        client_secret=client_secret,
        registration_endpoint=url,
        metadata=kept,
        secret_expires_at=secret_expires_at,
    )


def _refused(status: int, payload: Any) -> RegistrationError:
    """The error for a non-2xx answer: RFC 7591 codes are named, with what to check."""
    error = description = ""
    if isinstance(payload, dict):
        # RFC 7591 says "error"; Omnisend's own answers have been seen with "title".
        raw = payload.get("error") or payload.get("title") or ""
        error = str(raw) if _SAFE_ERROR_CODE.match(str(raw)) else ""
        text = payload.get("error_description") or payload.get("detail") or ""
        description = str(text)[:MAX_DESCRIPTION] if isinstance(text, str) else ""
    if status >= 500:
        return _registration_failed(
            f"its registration endpoint failed (HTTP {status}). Try again in a moment.",
            "registration_unavailable",
        )
    said = f"it refused the registration (HTTP {status}"
    said += f", {error})." if error else ")."
    if description:
        said += f" Omnisend said: {description.rstrip('.')}."
    advice = REGISTRATION_ERRORS.get(error, "")
    if status in (401, 403) and not advice:
        advice = "Registration may not be open to this site."
    return _registration_failed(f"{said} {advice}".rstrip(), error or f"registration_{status}")


@sensitive_variables()
def _post_token(
    url: str, data: dict[str, str], timeout: tuple[float, float] | None
) -> dict[str, Any]:
    if not url:
        raise ImproperlyConfigured('OMNISEND["TOKEN_URL"] is empty.')
    grant = data.get("grant_type", "")
    try:
        response = requests.post(
            url,
            data=data,  # application/x-www-form-urlencoded body: nothing secret in the URL
            headers={"Accept": "application/json"},
            timeout=timeout or TOKEN_TIMEOUT,
            allow_redirects=False,  # a redirect would replay the secret elsewhere
        )
    except requests.Timeout:
        raise OAuthError(
            "Omnisend's token endpoint did not answer in time. Try again in a moment.",
            code="token_timeout",
        ) from None
    except requests.RequestException as exc:
        raise OAuthError(
            f"Could not reach Omnisend's token endpoint ({type(exc).__name__}). "
            "Try again in a moment.",
            code="token_transport",
        ) from None
    status = response.status_code
    logger.debug("Omnisend token endpoint answered HTTP %s (grant_type=%s).", status, grant)
    if 300 <= status < 400:
        raise OAuthError(
            f"Omnisend's token endpoint answered with a redirect (HTTP {status}); it was not "
            'followed. Check OMNISEND["TOKEN_URL"].',
            code="token_redirect",
        )
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict) and "error" in payload:
        error = str(payload.get("error") or "")
        shown = error if _SAFE_ERROR_CODE.match(error) else "unknown error"
        raise OAuthError(
            f"Omnisend refused the token request ({shown}). Start the connection again.",
            code="invalid_grant" if error == "invalid_grant" else "token_rejected",
        )
    if status >= 500:
        raise OAuthError(
            f"Omnisend's token endpoint failed (HTTP {status}). Try again in a moment.",
            code="token_unavailable",
        )
    if status != 200:
        raise OAuthError(
            f"Omnisend's token endpoint answered HTTP {status}. Start the connection again.",
            code="token_rejected",
        )
    if not isinstance(payload, dict):
        raise OAuthError(
            "Omnisend's token endpoint answered with something other than a JSON object.",
            code="token_bad_response",
        )
    return payload


def _parse_scopes(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(dict.fromkeys(value.split()))
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(value))
    raise OAuthError("Omnisend sent an unreadable scope list.", code="token_bad_response")


@sensitive_variables()
def _validate(
    payload: dict[str, Any], required_scopes: list[str] | tuple[str, ...] | None
) -> TokenResponse:
    access_token = payload.get("access_token")
    if not isinstance(access_token, str) or not access_token.strip():
        raise OAuthError(
            "Omnisend's token response has no access token.", code="token_bad_response"
        )
    token_type = payload.get("token_type")
    if token_type is not None and (
        not isinstance(token_type, str) or token_type.lower() != "bearer"
    ):
        shown = token_type if isinstance(token_type, str) and len(token_type) < 30 else "?"
        raise OAuthError(
            f"Omnisend issued a {shown!r} token; only Bearer tokens are supported.",
            code="token_bad_response",
        )
    refresh_token = payload.get("refresh_token")
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise OAuthError(
            "Omnisend's token response has an unreadable refresh token.",
            code="token_bad_response",
        )
    expires = token_lifetime(payload.get("expires_in"))

    required = tuple(required_scopes if required_scopes is not None else omnisend_settings.scopes)
    granted = _parse_scopes(payload.get("scope"))
    scope_returned = granted is not None
    if granted is None:
        # RFC 6749 §5.1: scope may be omitted only when it equals what was requested.
        granted = required
    missing = [s for s in required if s not in granted]
    if missing:
        raise OAuthError(
            "Omnisend granted fewer permissions than django-omnisend needs; missing: "
            f"{', '.join(missing)}. Connect again and approve every requested permission.",
            code="insufficient_scope",
        )
    extra = tuple(s for s in granted if s not in required)
    return TokenResponse(
        access_token=access_token,
        refresh_token=refresh_token or "",
        token_type="Bearer",
        expires_in=expires,
        scopes=granted,
        extra_scopes=extra,
        scope_returned=scope_returned,
    )


def token_lifetime(expires_in: Any) -> float | None:
    """A token response's ``expires_in`` as seconds to keep the token, or None for no expiry.

    Clamped to ``[MIN_TOKEN_LIFETIME, MAX_TOKEN_LIFETIME)``: negative, zero and tiny values
    become ``MIN_TOKEN_LIFETIME``; ten years or more (and infinity) mean "does not expire",
    which is how Omnisend describes authorization-code tokens. NaN and values that are not
    a number (or numeric string) count as absent (RFC 6749 makes ``expires_in`` optional).
    """
    if isinstance(expires_in, bool) or not isinstance(expires_in, int | float | str):
        return None
    try:
        seconds = float(expires_in)
    except (ValueError, OverflowError):
        return None
    if math.isnan(seconds) or seconds >= MAX_TOKEN_LIFETIME:
        return None
    return max(MIN_TOKEN_LIFETIME, seconds)


def is_transient(exc: OAuthError) -> bool:
    """Whether an OAuth failure may go away by itself (timeouts, 5xx), not a dead grant."""
    return getattr(exc, "code", "") in TRANSIENT_CODES

"""OAuth 2.0 Authorization Code flow with Omnisend: plain HTTP, no views, no models.

The authorize URL (``state`` and a PKCE S256 challenge), the code exchange, refresh and
revocation (RFC 7009, never raises), and where client credentials come from (settings, or the
resolver :mod:`django_omnisend.connect.registration` installs). Token validation is in
:mod:`~django_omnisend.api.tokens`, dynamic registration in
:mod:`~django_omnisend.api.oauth_registration`; both are re-exported here.
"""

import base64
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.views.decorators.debug import sensitive_variables

from ..conf import omnisend_settings
from ..exceptions import ImproperlyConfigured, OAuthError
from . import tokens
from .oauth_registration import RegisteredClient, register_client, registration_endpoint
from .tokens import (
    MIN_TOKEN_LIFETIME,
    TokenResponse,
    expected_issuer,
    is_transient,
    post_token,
    secret_free_errors,
    token_lifetime,
    validate,
)

logger = logging.getLogger("django_omnisend.oauth")


__all__ = [
    "MIN_TOKEN_LIFETIME",
    "AuthorizationRequest",
    "ClientCredentials",
    "RegisteredClient",
    "TokenResponse",
    "build_authorization_request",
    "client_credentials",
    "code_challenge",
    "exchange_code",
    "expected_issuer",
    "is_transient",
    "refresh",
    "register_client",
    "registration_endpoint",
    "revoke",
    "set_credentials_resolver",
    "settings_credentials",
    "token_lifetime",
]


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


@secret_free_errors
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
    payload = post_token(token_url or omnisend_settings.token_url, data, timeout)
    return validate(payload, required_scopes)


@secret_free_errors
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
    payload = post_token(token_url or omnisend_settings.token_url, data, timeout)
    return validate(payload, required_scopes)


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
            timeout=timeout or tokens.TOKEN_TIMEOUT,
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

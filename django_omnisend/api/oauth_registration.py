"""Dynamic client registration (RFC 7591): find the registration endpoint and register
this site as an OAuth client. Plain HTTP; storing the client is
:mod:`django_omnisend.connect.registration`'s job.
"""

import logging
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from django.views.decorators.debug import sensitive_variables

from ..conf import omnisend_settings
from ..exceptions import RegistrationError
from . import tokens
from .tokens import SAFE_ERROR_CODE, expected_issuer, secret_free_errors

logger = logging.getLogger("django_omnisend.oauth")


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
            timeout=timeout or tokens.TOKEN_TIMEOUT,
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


@secret_free_errors
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
            timeout=timeout or tokens.TOKEN_TIMEOUT,
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
        error = str(raw) if SAFE_ERROR_CODE.match(str(raw)) else ""
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

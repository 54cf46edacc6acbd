"""Omnisend's token endpoint: POST a grant, validate the answer strictly, and keep
codes, tokens and the client secret out of every error and traceback (the rules are in the
docs: guides/security.rst, 'Codes and tokens never leak').
"""

import functools
import logging
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from django.views.decorators.debug import sensitive_variables

from ..conf import omnisend_settings
from ..exceptions import ImproperlyConfigured, OAuthError

logger = logging.getLogger("django_omnisend.oauth")


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

SAFE_ERROR_CODE = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


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


def secret_free_errors(func: _F) -> _F:
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


def expected_issuer(authorize_url: str | None = None) -> str:
    """The issuer identifier of the authorization server: the origin of ``AUTHORIZE_URL``.

    Omnisend's metadata says ``"issuer": "https://app.omnisend.com"``, the origin of its
    authorize endpoint; an RFC 9207 ``iss`` on the callback must equal it
    (docs: guides/security.rst, 'Endpoints are deploy-time only (mix-up)').
    """
    parts = urlsplit(authorize_url or omnisend_settings.authorize_url)
    return f"{parts.scheme}://{parts.netloc}"


@sensitive_variables()
def post_token(
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
        shown = error if SAFE_ERROR_CODE.match(error) else "unknown error"
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
def validate(
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

"""Ask Omnisend which brand a credential belongs to (``GET /brands/current``), and say in
staff wording why that failed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.views.decorators.debug import sensitive_variables

from ..exceptions import OAuthError
from .lookup import api_key_auth, bearer_auth, build_client

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..api import OmnisendClient

logger = logging.getLogger("django_omnisend.connections")


def probe(client: OmnisendClient) -> dict[str, Any]:
    """Call ``GET /brands/current`` and return the brand; raises the client's errors.

    Raises :class:`~django_omnisend.exceptions.OAuthError` (code ``probe_no_brand``) when the
    answer is not an object with a non-empty ``brandID``.
    """
    brand = client.brands.current()
    brand_id = brand.get("brandID") if isinstance(brand, dict) else None
    if not isinstance(brand_id, str) or not brand_id.strip():
        raise OAuthError(
            "Omnisend's brand check answered without a brand ID; nothing was activated. "
            "Try again later.",
            code="probe_no_brand",
        )
    return brand


@sensitive_variables()
def probe_credentials(*, access_token: str = "", api_key: str = "") -> dict[str, Any]:
    """Probe fresh credentials once (no retries, no shared budget) and return the brand."""
    auth = bearer_auth(access_token) if access_token else api_key_auth(api_key)
    client = build_client(auth, rate_limit_key=False, max_retries=0)
    try:
        return probe(client)
    finally:
        client.close()


def describe_probe_error(exc: Exception) -> str:
    """A staff-facing sentence for a failed brand check: what happened and what to do."""
    from .. import exceptions as e

    if isinstance(exc, e.AuthenticationError):
        return (
            "Omnisend rejected the credentials (HTTP 401) when checking the brand. "
            "Connect again, or enter a valid API key."
        )
    if isinstance(exc, e.PermissionDenied):
        scope = exc.missing_scope or "brands.read"
        return (
            f"The credentials lack the {scope} permission (HTTP 403). Connect again and "
            "approve every requested permission, or give the API key that permission."
        )
    if isinstance(exc, e.VersionRetired):
        return (
            "Omnisend says the API version is retired (HTTP 410). Update "
            'OMNISEND["API_VERSION"] (and django-omnisend), then connect again.'
        )
    if isinstance(exc, e.RateLimited):
        return "Omnisend is rate limiting this brand (HTTP 429). Wait a minute and try again."
    if isinstance(exc, e.ServerError):
        return (
            f"Omnisend failed while checking the brand (HTTP {exc.status}). "
            "Try again in a few minutes."
        )
    if isinstance(exc, e.TransportError):
        return (
            "Omnisend's answer to the brand check could not be read or did not arrive "
            f"({exc.kind}). Try again in a few minutes."
        )
    if isinstance(exc, e.OmnisendAPIError):
        return f"Omnisend refused the brand check (HTTP {exc.status}). Try again later."
    if isinstance(exc, OAuthError):
        return str(exc)
    return f"The brand check failed ({type(exc).__name__}). Try again later."


# -- client construction -------------------------------------------------------------------

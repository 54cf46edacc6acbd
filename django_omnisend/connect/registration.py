"""Which OAuth client the site is: settings credentials, or one it registered itself (issue 18).

:func:`resolve_credentials` is the one place that decides, installed into :mod:`.oauth` by the
app's ``ready()``:

1. ``OMNISEND["CLIENT_ID"]``/``["CLIENT_SECRET"]`` always win;
2. else the stored :class:`~django_omnisend.models.ClientRegistration` for this exact redirect
   URI (the configured ``REDIRECT_URI`` when none is given: refresh and revoke);
3. else, at the start of a connection, register the site with Omnisend (RFC 7591) and store
   the issued pair, the secret encrypted.

Registration is single flight: the row (unique on ``redirect_uri``) is inserted first, the
HTTP request runs inside that transaction, and a concurrent first Connect blocks on the
insert until the first commits, then finds its row (IntegrityError) and uses it. A failed
registration rolls the row back, so nothing half-made is left. The HTTP part lives in
:func:`~django_omnisend.api.oauth.register_client`.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any
from urllib.parse import urlsplit

from django.apps import apps
from django.db import IntegrityError, OperationalError, router, transaction
from django.views.decorators.debug import sensitive_variables

from ..api import oauth
from ..conf import omnisend_settings
from ..exceptions import ImproperlyConfigured, RegistrationError
from ..models import ClientRegistration

logger = logging.getLogger("django_omnisend.registration")

#: Longest redirect URI a registration is stored for: a unique column MariaDB/MySQL can index
#: in full (``ClientRegistration.redirect_uri``).
REDIRECT_URI_MAX_LENGTH = 255

__all__ = ["client_metadata", "credentials_for_client", "resolve_credentials"]

#: Django's untouched default Site: not a name worth registering under.
DEFAULT_SITE_DOMAIN = "example.com"


@sensitive_variables()
def resolve_credentials(
    redirect_uri: str | None = None, register: bool = False
) -> oauth.ClientCredentials:
    """The client credentials for ``redirect_uri`` (see the module docstring).

    Raises ``ImproperlyConfigured`` when there is no client and ``register`` is false or
    registration is switched off, and ``RegistrationError`` when Omnisend refuses.
    """
    configured = oauth.settings_credentials()
    if configured is not None:
        return configured
    uri = redirect_uri or omnisend_settings.redirect_uri
    row = _stored(uri)
    if row is not None and row.usable:
        return _credentials(row)
    if not omnisend_settings.client_registration:
        raise ImproperlyConfigured(oauth.NO_CREDENTIALS)
    if not register:
        raise ImproperlyConfigured(
            "This site has no usable Omnisend client registration for "
            f"{uri or 'its redirect URI'} (it was deleted, or its secret expired or cannot be "
            'decrypted). Start "Connect Omnisend" again: it registers the site anew.'
        )
    if not uri:
        raise ImproperlyConfigured(
            'OMNISEND["REDIRECT_URI"] must be set to register this site with Omnisend.'
        )
    if len(uri) > REDIRECT_URI_MAX_LENGTH:
        raise RegistrationError(
            f"The redirect URI is {len(uri)} characters long, and a registration is stored for "
            f"one of at most {REDIRECT_URI_MAX_LENGTH}. Use a shorter callback URL in "
            'OMNISEND["REDIRECT_URI"], or request client credentials from Omnisend and set '
            'OMNISEND["CLIENT_ID"] and OMNISEND["CLIENT_SECRET"].',
            code="redirect_uri_too_long",
        )
    return _register(uri, stale=row)


@sensitive_variables()
def credentials_for_client(client_id: str) -> oauth.ClientCredentials | None:
    """The credentials of the client ``client_id`` (settings' or a usable registration's).

    How tokens are refreshed and revoked by the client that issued them, even after
    ``OMNISEND["CLIENT_ID"]`` changed. None when the site no longer has that client.
    """
    if not client_id:
        return None
    configured = oauth.settings_credentials()
    if configured is not None and configured.client_id == client_id:
        return configured
    rows = ClientRegistration.objects.using(router.db_for_read(ClientRegistration))
    for row in rows.filter(client_id=client_id).order_by("-created_at", "-pk"):
        if row.usable:
            return _credentials(row)
    return None


def _stored(uri: str) -> ClientRegistration | None:
    rows = ClientRegistration.objects.using(router.db_for_read(ClientRegistration))
    if uri:
        return rows.filter(redirect_uri=uri).first()
    # DEBUG without REDIRECT_URI, refreshing outside a request: the newest registration.
    return rows.exclude(client_id="").order_by("-created_at", "-pk").first()


@sensitive_variables()
def _credentials(row: ClientRegistration) -> oauth.ClientCredentials:
    return oauth.ClientCredentials(row.client_id, row.client_secret, "registration")


@sensitive_variables()
def _register(uri: str, *, stale: ClientRegistration | None) -> oauth.ClientCredentials:
    metadata = client_metadata(uri)
    endpoint = oauth.registration_endpoint()
    alias = router.db_for_write(ClientRegistration)
    rows = ClientRegistration.objects.using(alias)
    try:
        with transaction.atomic(using=alias):
            # Writes first, nothing read: a concurrent first Connect waits on the insert (the
            # unique redirect_uri) until this transaction ends, on every backend.
            if stale is not None:
                rows.filter(pk=stale.pk).delete()  # by pk: never a row another process made
            row = rows.create(redirect_uri=uri, client_id="", registration_endpoint=endpoint)
            issued = oauth.register_client(endpoint, metadata)
            row.client_id = issued.client_id
            row.client_secret = issued.client_secret
            row.metadata = issued.metadata
            if issued.secret_expires_at is not None:
                row.secret_expires_at = datetime.datetime.fromtimestamp(
                    issued.secret_expires_at, tz=datetime.UTC
                )
            row.save()
    except IntegrityError:
        # Another Connect registered this redirect URI first and has committed: use its client.
        with transaction.atomic(using=alias):
            winner = rows.select_for_update().filter(redirect_uri=uri).first()
        if winner is None or not winner.usable:
            raise RegistrationError(
                "Another registration of this site with Omnisend was under way and did not "
                'finish. Start "Connect Omnisend" again.',
                code="registration_concurrent",
            ) from None
        return _credentials(winner)
    except OperationalError as exc:
        # SQLite's "database is locked": the other registration held the lock too long.
        raise RegistrationError(
            f"The database was busy while registering this site with Omnisend "
            f'({type(exc).__name__}). Start "Connect Omnisend" again in a moment.',
            code="registration_busy",
        ) from None
    logger.info(
        "Registered this site with Omnisend as OAuth client %s (redirect URI %s).",
        row.client_id,
        uri,
    )
    return _credentials(row)


def client_metadata(redirect_uri: str) -> dict[str, Any]:
    """The RFC 7591 client metadata this site registers with for ``redirect_uri``.

    Name and URI: ``OMNISEND["CLIENT_NAME"]``/``["CLIENT_URI"]``, else the current Site
    (``django.contrib.sites``, when installed and not Django's untouched default), else the
    host and origin of the redirect URI.
    """
    parts = urlsplit(redirect_uri)
    name = omnisend_settings.client_name
    uri = omnisend_settings.client_uri
    site = _current_site()
    if site is not None:
        name = name or site[0]
        uri = uri or f"{parts.scheme}://{site[1]}/"
    return {
        "client_name": name or parts.hostname or redirect_uri,
        "client_uri": uri or f"{parts.scheme}://{parts.netloc}/",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": " ".join(omnisend_settings.scopes),
        "token_endpoint_auth_method": "client_secret_post",
    }


def _current_site() -> tuple[str, str] | None:
    """(name, domain) of the current Site, or None without one worth using."""
    if not apps.is_installed("django.contrib.sites"):
        return None
    from django.contrib.sites.models import Site
    from django.core.exceptions import ImproperlyConfigured as DjangoImproperlyConfigured

    try:
        site = Site.objects.get_current()
    except (Site.DoesNotExist, DjangoImproperlyConfigured):  # no SITE_ID, or no row
        return None
    if not site.domain or site.domain == DEFAULT_SITE_DOMAIN:
        return None
    return site.name or site.domain, site.domain

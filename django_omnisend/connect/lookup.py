"""Find a connection and build its client: the site's or an owner's active row, a sync
key's row, and an :class:`~django_omnisend.api.OmnisendClient` with the right credential, the
brand's rate budget and a 401 handler (one refresh for OAuth, else "needs reconnect"; never a
silent fall back to the API key: docs: guides/security.rst, 'Rejected credentials and
reconnecting').
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.views.decorators.debug import sensitive_variables

from ..conf import omnisend_settings
from ..exceptions import NeedsReconnect, NotConnected, OAuthError
from .lifecycle import mark_needs_reconnect, needs_reconnect_message, refresh_connection

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..api import OmnisendClient
    from ..models import Connection

logger = logging.getLogger("django_omnisend.connections")


def active_connection(owner: Any = None) -> Connection | None:
    """The active connection of ``owner`` (None: the site's own), OAuth or API key, else None.

    The site's is its newest active row that belongs to no owner.
    """
    from ..models import Connection

    return Connection.objects.of_owner(owner).active().order_by("-created_at", "-pk").first()


def owner_connection(owner: Any = None) -> Connection | None:
    """``owner``'s connection in use: the active row, else the newest waiting for a reconnect."""
    from ..models import Connection

    return active_connection(owner) or _flagged(Connection.objects.of_owner(owner))


def _flagged(rows: Any) -> Connection | None:
    from ..models import Connection

    return (
        rows.filter(status=Connection.Status.NEEDS_RECONNECT).order_by("-created_at", "-pk").first()
    )


def get_client(
    connection: Connection | None = None, *, owner: Any = None, **client_kwargs: Any
) -> OmnisendClient:
    """An API client for ``connection``, else for ``owner``'s connection, else for the site.

    With ``owner`` (any model instance a connection belongs to): its active connection; else
    :class:`NeedsReconnect` when its connection waits for a reconnect; else
    :class:`NotConnected` (an owner never falls back to the site's brand or API key).
    With neither: the site's newest active ``Connection`` row; else, when the newest OAuth or
    API-key row is waiting for a reconnect, :class:`NeedsReconnect` (an OAuth site never falls
    back to the settings key silently); else ``OMNISEND["API_KEY"]``; else :class:`NotConnected`.
    ``client_kwargs`` go to :class:`~django_omnisend.api.OmnisendClient` (e.g.
    ``max_retries=0`` for a worker that reschedules instead of retrying).
    """
    from ..models import Connection
    from .owners import owner_key

    if connection is None and owner is not None:
        connection = owner_connection(owner)
        if connection is None:
            # Named by model and key, not str(owner): errors reach logs, and a user's __str__
            # may be their e-mail address.
            raise NotConnected(
                f"{owner_key(owner)} has no Omnisend connection. A person allowed to manage it "
                'connects it with the "Connect Omnisend" button on its page.'
            )
    if connection is None:
        connection = active_connection()
        if connection is None:
            broken = _flagged(Connection.objects.of_owner(None))
            if broken is not None:
                raise NeedsReconnect(needs_reconnect_message(broken))
            key = omnisend_settings.api_key
            if key:
                return build_client(api_key_auth(key), **client_kwargs)
            raise NotConnected(
                'django-omnisend is not connected to Omnisend. Click "Connect Omnisend" in the '
                'admin (Omnisend connections), or set OMNISEND["API_KEY"] in your settings.'
            )
    return client_for(connection, **client_kwargs)


def client_for(
    connection: Connection, *, require_active: bool = True, **client_kwargs: Any
) -> OmnisendClient:
    """An API client bound to ``connection``'s credentials.

    ``require_active=False`` lets the admin's "test connection" try a row that is flagged.
    """
    from ..models import Connection

    status = connection.status
    if require_active and status == Connection.Status.NEEDS_RECONNECT:
        raise NeedsReconnect(needs_reconnect_message(connection))
    if require_active and status in (Connection.Status.REVOKED, Connection.Status.PENDING):
        raise NotConnected(
            f"The Omnisend connection {connection} is {connection.get_status_display().lower()}; "
            'connect again with "Connect Omnisend" in the admin.'
        )
    if connection.undecryptable:
        mark_needs_reconnect(
            connection,
            "The stored credentials cannot be decrypted with OMNISEND['ENCRYPTION_KEYS']; "
            "reconnect (OAuth) or enter the API key again.",
        )
        raise NeedsReconnect(needs_reconnect_message(connection))

    if connection.auth_type == Connection.AuthType.API_KEY:
        if not connection.api_key:
            raise NotConnected(f"The Omnisend connection {connection} has no API key.")
        return build_client(
            api_key_auth(connection.api_key),
            on_unauthorized=_flagging_handler(connection),
            rate_limit_key=connection.rate_limit_key,
            **client_kwargs,
        )

    if connection.expires_soon():
        if connection.refresh_token:
            connection = refresh_connection(connection)
        elif connection.expires_soon(within=0):
            mark_needs_reconnect(
                connection, "The access token expired and there is no refresh token."
            )
            raise NeedsReconnect(needs_reconnect_message(connection))
    if not connection.access_token:
        raise NotConnected(f"The Omnisend connection {connection} has no access token.")
    return build_client(
        bearer_auth(connection.access_token),
        on_unauthorized=_refreshing_handler(connection),
        rate_limit_key=connection.rate_limit_key,
        **client_kwargs,
    )


# -- connection keys (the sync's view: "default" or a tenant Connection pk) -------------------

#: The connection key of the site's one brand (see ``ContactAdapter.get_connection_key``).
DEFAULT_KEY = "default"


def connection_for_key(key: str) -> Connection | None:
    """The ``Connection`` row behind a sync connection key (None: the settings API key or none).

    ``"default"`` is the site's active connection, else its newest connection waiting for a
    reconnect; ``"owner:app_label.model:pk"`` (:func:`~django_omnisend.owners.connection_key`)
    is the same for that owner; any other key is a ``Connection`` primary key.
    """
    from ..models import Connection
    from .owners import OWNER_KEY_PREFIX, key_filter

    if str(key) == DEFAULT_KEY:
        return owner_connection(None)
    if str(key).startswith(OWNER_KEY_PREFIX):
        lookups = key_filter(str(key)[len(OWNER_KEY_PREFIX) :])
        if not lookups or not lookups.get("owner_type"):
            return None
        rows = Connection.objects.filter(**lookups)
        return rows.active().order_by("-created_at", "-pk").first() or _flagged(rows)
    if not str(key).isdigit():
        return None
    return Connection.objects.filter(pk=int(key)).first()


def client_for_key(key: str, **client_kwargs: Any) -> OmnisendClient:
    """A client for a sync connection key; raises like :func:`get_client`."""
    if str(key) == DEFAULT_KEY:
        return get_client(None, **client_kwargs)
    connection = connection_for_key(key)
    if connection is None:
        raise NotConnected(f"There is no Omnisend connection with the key {key!r}.")
    return client_for(connection, **client_kwargs)


def credential_fingerprint(key: str) -> str:
    """Fingerprint of the credential ``key`` uses now ("" when there is none).

    A reconnect or a new key changes it, which is how a paused delivery knows to resume.
    """
    from .. import crypto

    connection = connection_for_key(key)
    if connection is not None:
        return connection.fingerprint
    if str(key) == DEFAULT_KEY:
        return crypto.fingerprint(omnisend_settings.api_key)
    return ""


def mark_key_needs_reconnect(key: str, reason: str) -> bool:
    """:func:`mark_needs_reconnect` for the row behind ``key`` (no row: nothing to flag)."""
    connection = connection_for_key(key)
    if connection is None:
        return False
    return mark_needs_reconnect(connection, reason)


def bearer_auth(token: str) -> Any:
    from ..api import BearerAuth

    return BearerAuth(token)


def api_key_auth(key: str) -> Any:
    from ..api import ApiKeyAuth

    return ApiKeyAuth(key)


def build_client(
    auth: Any,
    *,
    on_unauthorized: Callable[[Any, Exception], str | None] | None = None,
    rate_limit_key: str | bool | None = None,
    **kwargs: Any,
) -> OmnisendClient:
    """A client drawing on the brand's shared budget (``rate_limit_key=False``: no budget).

    With ``rate_limit_key=None`` (the settings API key) the client keys the budget by the
    key's brand prefix.
    """
    from ..api import OmnisendClient

    limiter = tags_limiter = None
    if rate_limit_key is not False:
        from ..ratelimit import RateLimiter, tags_rate_limiter

        limiter = RateLimiter()
        tags_limiter = tags_rate_limiter()
    return OmnisendClient(
        auth=auth,
        on_unauthorized=on_unauthorized,
        rate_limiter=limiter,
        tags_rate_limiter=tags_limiter,
        rate_limit_key=rate_limit_key
        if isinstance(rate_limit_key, str) and rate_limit_key
        else None,
        **kwargs,
    )


def _flagging_handler(connection: Connection) -> Callable[[Any, Exception], None]:
    """On 401 for an API-key row: flag it; the client then raises the 401."""

    def on_unauthorized(client: Any, exc: Exception) -> None:
        mark_needs_reconnect(connection, "Omnisend rejected the API key (HTTP 401).")
        return None

    return on_unauthorized


def _refreshing_handler(connection: Connection) -> Callable[[Any, Exception], str | None]:
    """On 401 for an OAuth row: one refresh when a refresh token exists, else flag it."""
    used = {"token": connection.access_token, "tried": False}

    @sensitive_variables()
    def on_unauthorized(client: Any, exc: Exception) -> str | None:
        if used["tried"]:
            mark_needs_reconnect(
                connection, "Omnisend rejected the access token, also after a refresh (HTTP 401)."
            )
            return None
        used["tried"] = True
        if not connection.refresh_token:
            mark_needs_reconnect(connection, "Omnisend rejected the access token (HTTP 401).")
            return None
        try:
            refreshed = refresh_connection(connection, used_token=cast("str | None", used["token"]))
        except NeedsReconnect:
            return None
        except OAuthError as error:
            logger.warning("Refreshing the Omnisend token after a 401 failed: %s", error)
            return None
        used["token"] = refreshed.access_token
        return refreshed.access_token or None

    return on_unauthorized

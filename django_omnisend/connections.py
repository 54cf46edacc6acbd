"""The site's Omnisend connection as host code sees it: find it, get a client, keep it healthy.

* :func:`active_connection` is the site's active ``Connection`` row (None when there is none).
* :func:`get_client` returns an :class:`~django_omnisend.client.OmnisendClient` for a connection:
  OAuth rows get a Bearer token (refreshed first when it is about to expire), API-key rows and
  ``OMNISEND["API_KEY"]`` get the key. A 401 later triggers one refresh, else the connection is
  flagged "needs reconnect" (never a silent fall back to the API key;
  docs: guides/security.rst, 'Rejected credentials and reconnecting').
* :func:`refresh_connection` is single flight across threads and processes on every database:
  its transaction starts with an ``UPDATE`` of the row (a no-op write), which takes the row's
  lock on PostgreSQL and MySQL and the database's write lock on SQLite (where ``FOR UPDATE``
  is ignored and a read-then-write transaction would fail with "database is locked" instead
  of waiting: the write first is what ``BEGIN IMMEDIATE`` does, without asking the site for
  ``OPTIONS["transaction_mode"]``). Only then is the row read again, so a worker that waited
  finds the other's new token and makes no request. A per-process lock keeps threads from
  polling SQLite's lock. The token request runs under the lock on purpose (that is the single
  flight); its timeout (``oauth.TOKEN_TIMEOUT``) bounds the wait. A refused grant flags the row
  only if it still holds the credential that was refused.
* :func:`mark_needs_reconnect` and :func:`disconnect` change status for the views, admin and sync.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import oauth
from .conf import omnisend_settings
from .exceptions import NeedsReconnect, NotConnected, OAuthError
from .fields import Undecryptable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from .client import OmnisendClient
    from .models import Connection

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_KEY",
    "Revocable",
    "active_connection",
    "client_for",
    "client_for_key",
    "connection_for_key",
    "credential_fingerprint",
    "describe_probe_error",
    "disconnect",
    "get_client",
    "mark_key_needs_reconnect",
    "mark_needs_reconnect",
    "owner_connection",
    "probe",
    "probe_credentials",
    "refresh_connection",
    "retire",
    "revoke_tokens",
]

#: The fields a refresh writes (and copies back to the caller's instance).
TOKEN_FIELDS = (
    "auth_type",
    "access_token",
    "refresh_token",
    "token_type",
    "expires_at",
    "fingerprint",
    "scopes",
    "refreshed_at",
)

#: A token to revoke: ``(token, hint, client_id)``, the client being the one that issued it
#: (empty: the site's current client).
Revocable = tuple[str, str, str]

_locks_guard = threading.Lock()
_locks: dict[Any, threading.Lock] = {}


def _process_lock(pk: Any) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(pk, threading.Lock())


def active_connection(owner: Any = None) -> Connection | None:
    """The active connection of ``owner`` (None: the site's own), OAuth or API key, else None.

    The site's is its newest active row that belongs to no owner.
    """
    from .models import Connection

    return Connection.objects.of_owner(owner).active().order_by("-created_at", "-pk").first()


def owner_connection(owner: Any = None) -> Connection | None:
    """``owner``'s connection in use: the active row, else the newest waiting for a reconnect."""
    from .models import Connection

    return active_connection(owner) or _flagged(Connection.objects.of_owner(owner))


def _flagged(rows: Any) -> Connection | None:
    from .models import Connection

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
    ``client_kwargs`` go to :class:`~django_omnisend.client.OmnisendClient` (e.g.
    ``max_retries=0`` for a worker that reschedules instead of retrying).
    """
    from .models import Connection
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
                raise NeedsReconnect(_needs_reconnect_message(broken))
            key = omnisend_settings.api_key
            if key:
                return _build_client(_api_key_auth(key), **client_kwargs)
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
    from .models import Connection

    status = connection.status
    if require_active and status == Connection.Status.NEEDS_RECONNECT:
        raise NeedsReconnect(_needs_reconnect_message(connection))
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
        raise NeedsReconnect(_needs_reconnect_message(connection))

    if connection.auth_type == Connection.AuthType.API_KEY:
        if not connection.api_key:
            raise NotConnected(f"The Omnisend connection {connection} has no API key.")
        return _build_client(
            _api_key_auth(connection.api_key),
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
            raise NeedsReconnect(_needs_reconnect_message(connection))
    if not connection.access_token:
        raise NotConnected(f"The Omnisend connection {connection} has no access token.")
    return _build_client(
        _bearer_auth(connection.access_token),
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
    from .models import Connection
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
    from . import crypto

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


@sensitive_variables()
def refresh_connection(
    connection: Connection, *, force: bool = False, used_token: str | None = None
) -> Connection:
    """Refresh ``connection``'s access token, single flight; returns the (updated) row.

    Under the row lock (see the module docstring) the row is read again: when it no longer
    expires soon (or, with ``used_token``, when its access token already differs from the one
    that failed), another worker has refreshed it and its token is reused without a request.
    A response without a refresh token keeps the old one. A refused grant flags the connection
    and raises :class:`NeedsReconnect`, unless another worker stored new tokens meanwhile
    (then those are used); a transient failure raises :class:`OAuthError`.

    On SQLite call it outside a transaction that has already read: a deferred transaction
    cannot wait for the write lock, so SQLite would answer "database is locked" at once.
    """
    from .models import Connection

    alias = router.db_for_write(Connection, instance=connection)
    rows = Connection.objects.using(alias)
    failure = ""
    with _process_lock(connection.pk), transaction.atomic(using=alias):
        # Write first: the lock is taken (and waited for) before anything is read.
        rows.filter(pk=connection.pk).update(updated_at=F("updated_at"))
        row = rows.select_for_update().get(pk=connection.pk)
        already = (used_token is not None and row.access_token != used_token) or (
            used_token is None and not force and not row.expires_soon()
        )
        if already and row.access_token:
            _copy_credentials(row, connection)
            return connection
        if row.undecryptable:
            failure = "The stored credentials cannot be decrypted; reconnect."
        elif not row.refresh_token:
            failure = "Omnisend rejected the access token and there is no refresh token."
        elif row.client_id and _issuing_client(row.client_id) is None:
            # Another client cannot refresh these tokens; asking would only burn a request.
            failure = (
                f"The OAuth client {row.client_id} that issued the tokens is no longer "
                "configured (its registration was deleted, or its secret expired or cannot "
                "be decrypted); reconnect."
            )
        else:
            try:
                tokens = oauth.refresh(
                    row.refresh_token,
                    credentials=_issuing_client(row.client_id) if row.client_id else None,
                )
            except OAuthError as exc:
                if oauth.is_transient(exc):
                    raise
                failure = f"Refreshing the token failed: {exc}"
            else:
                row.set_tokens(
                    tokens.access_token,
                    tokens.refresh_token or None,  # none returned: keep the old one
                    expires_in=tokens.expires_in,
                    token_type=tokens.token_type,
                )
                if tokens.scope_returned:  # omitted = unchanged (RFC 6749 §6)
                    row.scopes = list(tokens.scopes)
                row.refreshed_at = timezone.now()
                row.save(update_fields=[*TOKEN_FIELDS, "updated_at"])
    if failure:
        # Flagged after the lock is released, and only if the row still holds the refused
        # credential: a process that does not share the lock may have rotated it meanwhile.
        if not mark_needs_reconnect(row, failure, fingerprint=row.fingerprint):
            current = rows.get(pk=row.pk)
            if (
                current.status == Connection.Status.ACTIVE
                and current.fingerprint != row.fingerprint
                and current.access_token
                and not current.undecryptable
            ):
                logger.info("Another worker refreshed the Omnisend token of %r.", current)
                _copy_credentials(current, connection)
                return connection
            row = current
        _copy_credentials(row, connection)
        raise NeedsReconnect(_needs_reconnect_message(row))
    logger.info("Refreshed the Omnisend access token of %r.", row)
    _copy_credentials(row, connection)
    return connection


def _issuing_client(client_id: str) -> oauth.ClientCredentials | None:
    """The credentials of the client that issued a row's tokens (None: the site lost it)."""
    from .registration import credentials_for_client

    return credentials_for_client(client_id)


def _copy_credentials(source: Connection, target: Connection) -> None:
    if source is target:
        return
    for name in (*TOKEN_FIELDS, "status", "status_reason"):
        setattr(target, name, getattr(source, name))


def mark_needs_reconnect(
    connection: Connection, reason: str, *, fingerprint: str | None = None
) -> bool:
    """Flag ``connection`` as "needs reconnect" with ``reason`` (shown in the admin).

    Returns True when the status changed; the warning is logged only then, so a flapping worker
    logs once. ``reason`` must never contain a secret. With ``fingerprint``, the row is flagged
    only while its stored credential still has that fingerprint (the one that failed), so a
    credential another worker stored meanwhile is not condemned with the old one.
    """
    from .models import Connection

    reason = (reason or "")[:255]
    rows = Connection.objects.filter(pk=connection.pk)
    if fingerprint is not None:
        rows = rows.filter(fingerprint=fingerprint)
    changed = rows.exclude(status=Connection.Status.NEEDS_RECONNECT).update(
        status=Connection.Status.NEEDS_RECONNECT,
        status_reason=reason,
        updated_at=timezone.now(),
    )
    if changed or fingerprint is None:
        connection.status = Connection.Status.NEEDS_RECONNECT
        connection.status_reason = reason
    if changed:
        logger.warning("Omnisend connection %r needs a reconnect: %s", connection, reason)
    return bool(changed)


def disconnect(connection: Connection, user: Any = None, *, reason: str = "") -> Connection:
    """Delete ``connection``'s credentials, mark it revoked, then revoke them at Omnisend.

    The local copies go first and stay gone even when revocation fails
    (docs: reference/omnisend-api.rst, 'Refresh, revoke and registration');
    revocation is best effort. Sends :data:`~django_omnisend.signals.disconnected`.
    """
    from .models import Connection
    from .signals import disconnected

    tokens = retire(connection, reason or "Disconnected.")
    revoke_tokens(tokens)
    logger.info("Disconnected Omnisend connection %r.", connection)
    disconnected.send(sender=Connection, connection=connection, user=user, owner=connection.owner)
    return connection


@sensitive_variables()
def retire(connection: Connection, reason: str) -> list[Revocable]:
    """Clear ``connection``'s secrets and mark it revoked; returns the OAuth tokens to revoke.

    No HTTP here, so it can run inside a transaction; pass the result to :func:`revoke_tokens`
    after the transaction.
    """
    from .models import Connection

    tokens = _tokens_to_revoke(connection)
    connection.access_token = ""
    connection.refresh_token = ""
    connection.api_key = ""
    connection.expires_at = None
    connection.status = Connection.Status.REVOKED
    connection.status_reason = reason[:255]
    connection.save(
        update_fields=[
            "access_token",
            "refresh_token",
            "api_key",
            "expires_at",
            "status",
            "status_reason",
            "updated_at",
        ]
    )
    return tokens


@sensitive_variables()
def _tokens_to_revoke(connection: Connection) -> list[Revocable]:
    from .models import Connection

    if connection.auth_type != Connection.AuthType.OAUTH:
        return []
    tokens = []
    # The refresh token first: RFC 7009 §2.1 lets its revocation take the access token along.
    for value, hint in (
        (connection.refresh_token, "refresh_token"),
        (connection.access_token, "access_token"),
    ):
        if value and not isinstance(value, Undecryptable):
            tokens.append((value, hint, connection.client_id))
    return tokens


@sensitive_variables()
def revoke_tokens(tokens: list[Revocable]) -> None:
    """Revoke each ``(token, hint, client_id)`` at ``REVOKE_URL`` as the client that issued it.

    Failures are logged and tolerated. A client the site no longer has is replaced by the
    current one: revocation is best effort and the local copy is gone either way.
    """
    for value, hint, client_id in tokens:
        issuer = _issuing_client(client_id) if client_id else None
        oauth.revoke(value, hint, credentials=issuer)


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
    auth = _bearer_auth(access_token) if access_token else _api_key_auth(api_key)
    client = _build_client(auth, rate_limit_key=False, max_retries=0)
    try:
        return probe(client)
    finally:
        client.close()


def describe_probe_error(exc: Exception) -> str:
    """A staff-facing sentence for a failed brand check: what happened and what to do."""
    from . import exceptions as e

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


def _needs_reconnect_message(connection: Connection) -> str:
    why = f" ({connection.status_reason})" if connection.status_reason else ""
    return (
        f"The Omnisend connection {connection} needs a reconnect{why}. Open the admin "
        '(Omnisend connections) and click "Connect Omnisend", or enter the API key again.'
    )


def _bearer_auth(token: str) -> Any:
    from .client import BearerAuth

    return BearerAuth(token)


def _api_key_auth(key: str) -> Any:
    from .client import ApiKeyAuth

    return ApiKeyAuth(key)


def _build_client(
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
    from .client import OmnisendClient

    limiter = tags_limiter = None
    if rate_limit_key is not False:
        from .ratelimit import RateLimiter, tags_rate_limiter

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

"""A connection's token lifecycle: single-flight refresh, "needs reconnect", disconnect,
retire and revocation.

The refresh is single flight across threads and processes on every database: its transaction
starts with a no-op ``UPDATE`` of the row (the row lock on PostgreSQL and MySQL, the write lock
on SQLite), then reads the row again, so a waiter finds the other's new token and makes no
request. A refused grant flags the row only if it still holds the refused credential.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from django.db import router, transaction
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..api import oauth
from ..exceptions import NeedsReconnect, OAuthError
from ..fields import Undecryptable

if TYPE_CHECKING:  # pragma: no cover - typing only
    from ..models import Connection

logger = logging.getLogger("django_omnisend.connections")


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
    from ..models import Connection

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
        raise NeedsReconnect(needs_reconnect_message(row))
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
    from ..models import Connection

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
    from ..models import Connection
    from ..signals import disconnected

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
    from ..models import Connection

    tokens = tokens_to_revoke(connection)
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
def tokens_to_revoke(connection: Connection) -> list[Revocable]:
    from ..models import Connection

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


def needs_reconnect_message(connection: Connection) -> str:
    why = f" ({connection.status_reason})" if connection.status_reason else ""
    return (
        f"The Omnisend connection {connection} needs a reconnect{why}. Open the admin "
        '(Omnisend connections) and click "Connect Omnisend", or enter the API key again.'
    )

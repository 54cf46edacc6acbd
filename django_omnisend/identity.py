"""Who owns an address: bindings kept on ``SyncState.address``, one owner per connection.

The first sync row to bind a (normalised) address owns it; the unique constraint on
``(connection_key, address)`` decides races, so two users saving the same address at once
end with one owner and one duplicate, never two writers. Every check is an indexed lookup on
our own table: the user table is never scanned by address.

A row that cannot bind (another row owns the address, or an erasure of that address is still
pending) records the address it wants in ``wanted_address`` and stays due with a backoff;
releasing an address wakes the rows waiting for it, so moves and swaps converge in a few
drain passes instead of ending dead.
"""

from __future__ import annotations

import enum
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from .conf import omnisend_settings
from .models import OutboxItem, SyncState

#: Salt of the keyed address hash (erasure records keep only this hash).
_HASH_SALT = "django_omnisend.address-hash"


class Binding(enum.Enum):
    """The outcome of :func:`bind`."""

    BOUND = "bound"
    #: Another sync row of the same connection owns the address.
    TAKEN = "duplicate_email"
    #: The address's previous owner was deleted and its erasure has not settled yet.
    ERASURE_PENDING = "erasure_pending"


def address_hash(address: str) -> str:
    """HMAC-SHA256 of a normalised address, keyed by ``OMNISEND["HASH_KEY"]``.

    Without a ``HASH_KEY`` the key is derived from ``SECRET_KEY``: either way the hash cannot
    be reversed by hashing a dictionary of addresses without the key.
    """
    if not address:
        return ""
    secret = omnisend_settings.get("HASH_KEY") or None
    return salted_hmac(_HASH_SALT, address, secret=secret, algorithm="sha256").hexdigest()


def erasure_pending(connection_key: str, address: str) -> bool:
    """Whether an erasure of ``address`` on ``connection_key`` has not been settled yet."""
    return OutboxItem.objects.filter(
        kind=OutboxItem.Kind.ERASURE,
        state=OutboxItem.State.PENDING,
        connection_key=connection_key,
        email_hash=address_hash(address),
    ).exists()


def bind(row: SyncState, address: str) -> Binding:
    """Make ``row`` the owner of ``address`` on its connection, if nobody else is.

    A row that owned another address releases it first, whatever the outcome: a user who
    moved away from an address no longer holds it (so swaps cannot deadlock).

    One ``UPDATE`` (the unique constraint decides races) between two reads: a write lock is
    held for that statement only, which matters on SQLite with many drains.
    """
    if row.address == address:
        return Binding.BOUND
    previous = row.address
    rows = SyncState.objects.filter(pk=row.pk)
    outcome = Binding.BOUND
    if erasure_pending(row.connection_key, address):
        outcome = Binding.ERASURE_PENDING
    else:
        try:
            with transaction.atomic():  # a savepoint only when the caller is in a transaction
                rows.update(address=address, wanted_address="")
        except IntegrityError:
            outcome = Binding.TAKEN
        else:
            # Checked again once bound: a deletion that committed its erasure released the
            # address (cascade) in the same transaction, so an erasure queued since is seen.
            if erasure_pending(row.connection_key, address):
                outcome = Binding.ERASURE_PENDING
    if outcome is Binding.BOUND:
        row.address, row.wanted_address = address, ""
    else:
        rows.update(address=None, wanted_address=address)
        row.address, row.wanted_address = None, address
    if previous:
        wake_waiters(row.connection_key, previous)
    return outcome


def wake_waiters(connection_key: str, address: str) -> int:
    """Make rows waiting for ``address`` due now (it was released or its erasure settled)."""
    return SyncState.objects.filter(
        connection_key=connection_key, wanted_address=address, dirty=True
    ).update(next_attempt_at=timezone.now())


def release(row: SyncState) -> None:
    """Give up ``row``'s binding (and wake whoever waits for the address)."""
    if not row.address:
        return
    SyncState.objects.filter(pk=row.pk).update(address=None)
    wake_waiters(row.connection_key, row.address)
    row.address = None


def bound_address(user_pk: Any, connection_key: str) -> str:
    """The address ``user_pk`` owns on ``connection_key`` ("" when none)."""
    return (
        SyncState.objects.filter(user_id=user_pk, connection_key=connection_key)
        .values_list("address", flat=True)
        .first()
        or ""
    )

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
from collections.abc import Callable, Sequence
from typing import Any, cast

from django.db import IntegrityError, OperationalError, connections, router, transaction
from django.utils import timezone
from django.utils.crypto import salted_hmac

from ..conf import omnisend_settings
from ..models import OutboxItem, SyncState

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
    secret = omnisend_settings.hash_key or None
    return salted_hmac(_HASH_SALT, address, secret=secret, algorithm="sha256").hexdigest()


def erasure_pending(connection_key: str, address: str) -> bool:
    """Whether an erasure of ``address`` on ``connection_key`` has not been settled yet."""
    return bool(pending_erasures({(connection_key, address)}))


def pending_erasures(wanted: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which ``(connection_key, address)`` pairs of ``wanted`` have an unsettled erasure.

    One indexed query whatever the number of pairs (a claimed batch checks them together).
    """
    if not wanted:
        return set()
    by_hash = {(key, address_hash(address)): (key, address) for key, address in wanted}
    found = OutboxItem.objects.filter(
        kind=OutboxItem.Kind.ERASURE,
        state=OutboxItem.State.PENDING,
        connection_key__in={key for key, _ in by_hash},
        email_hash__in={digest for _, digest in by_hash},
    ).values_list("connection_key", "email_hash")
    return {by_hash[pair] for pair in found if pair in by_hash}


def bind(row: SyncState, address: str) -> Binding:
    """Make ``row`` the owner of ``address`` on its connection, if nobody else is.

    A row that owned another address releases it first, whatever the outcome: a user who
    moved away from an address no longer holds it (so swaps cannot deadlock).
    """
    return bind_many([(row, address)])[0]


def bind_many(
    pairs: Sequence[tuple[SyncState, str]],
    *,
    unbound: Callable[[SyncState, Binding], Any] | None = None,
) -> list[Binding]:
    """:func:`bind` each ``(row, address)`` of a claimed batch, with one commit for them all.

    All rows are bound by one ``UPDATE``; only if the unique constraint refuses it is each
    bound by its own ``UPDATE`` in its own savepoint, so a row refused does not undo the
    others, and a row that cannot bind gives up its previous address at once, so a later row
    of the batch may take it. Pending erasures are looked up for the
    whole batch before (one query) and again once bound (one query, inside the transaction):
    a deletion that committed its erasure released the address (cascade) in the same
    transaction, so an erasure queued since is seen. ``unbound(row, outcome)`` runs inside
    the transaction for each row that could not bind (the drain records its wait there).
    Only then, after the commit, are the rows waiting for a released address woken, so a
    wait recorded here never overrides a wake-up. One by one, rows are bound in address order,
    so two drains binding crossing addresses wait for each other in one order; the single
    statement, whose order the database picks, falls back to that when it deadlocks.
    The transaction holds no request: it is a handful of indexed writes.
    """
    outcomes = [Binding.BOUND] * len(pairs)
    todo = sorted(
        (i for i, (row, address) in enumerate(pairs) if row.address != address),
        key=lambda i: (pairs[i][0].connection_key, pairs[i][1], pairs[i][0].pk),
    )
    if not todo:
        return outcomes
    previous = {i: pairs[i][0].address for i in todo}
    pending = pending_erasures({(pairs[i][0].connection_key, pairs[i][1]) for i in todo})
    with transaction.atomic():
        free = [i for i in todo if (pairs[i][0].connection_key, pairs[i][1]) not in pending]
        for i in todo:
            if i not in free:  # first: the addresses these rows give up are free for others
                outcomes[i] = Binding.ERASURE_PENDING
                _wait_for(*pairs[i])
        bound = _bind_all(pairs, free)
        if bound is None:  # some address is taken: bind one by one to find which
            bound = []
            for i in free:
                row, address = pairs[i]
                try:
                    with transaction.atomic():  # a savepoint: the others stay bound
                        _rows(row).update(address=address, wanted_address="")
                except IntegrityError:
                    outcomes[i] = Binding.TAKEN
                    _wait_for(row, address)
                else:
                    bound.append(i)
        for i in bound:
            row, address = pairs[i]
            row.address, row.wanted_address = address, ""
        late = pending_erasures({(pairs[i][0].connection_key, pairs[i][1]) for i in bound})
        for i in bound:
            row, address = pairs[i]
            if (row.connection_key, address) in late:
                outcomes[i] = Binding.ERASURE_PENDING
                _wait_for(row, address)
        if unbound is not None:
            for i in todo:
                if outcomes[i] is not Binding.BOUND:
                    unbound(pairs[i][0], outcomes[i])
    released: dict[str, set[str]] = {}
    for i in todo:
        old = previous[i]
        if old:
            released.setdefault(pairs[i][0].connection_key, set()).add(old)
    for key, addresses in released.items():
        wake_waiters(key, *addresses)
    return outcomes


def _bind_all(pairs: Sequence[tuple[SyncState, str]], free: list[int]) -> list[int] | None:
    """Bind every row of ``free`` in one prepared ``UPDATE`` run for each row (in a savepoint);
    None if any address is taken (the unique constraint refused it, and nothing was bound).

    Raw SQL: the ORM's ``CASE`` for a hundred rows cost more to build than to run.
    """
    if not free:
        return []
    using = router.db_for_write(SyncState)
    conn = connections[using]
    quote = conn.ops.quote_name
    column = {f.name: quote(cast(str, f.column)) for f in SyncState._meta.concrete_fields}
    sql = (
        f"UPDATE {quote(SyncState._meta.db_table)} "  # noqa: S608 - quoted names only
        f"SET {column['address']} = %s, {column['wanted_address']} = '' WHERE {column['id']} = %s"
    )
    params = [(pairs[i][1], pairs[i][0].pk) for i in free]
    try:
        with transaction.atomic(using=using), conn.cursor() as cursor:
            cursor.executemany(sql, params)
    except (IntegrityError, OperationalError):  # taken, or a deadlock with another drain
        return None
    return free


def _rows(row: SyncState):
    return SyncState.objects.filter(pk=row.pk)


def _wait_for(row: SyncState, address: str) -> None:
    """``row`` holds no address and waits for ``address``."""
    _rows(row).update(address=None, wanted_address=address)
    row.address, row.wanted_address = None, address


def wake_waiters(connection_key: str, *addresses: str) -> int:
    """Make rows waiting for ``addresses`` due now (released, or their erasure settled)."""
    return SyncState.objects.filter(
        connection_key=connection_key, wanted_address__in=addresses, dirty=True
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

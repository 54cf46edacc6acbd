"""Erasing a deleted user's contact: only the one they were bound to, and all we can clear.

Queued by the ``pre_delete`` receiver (:func:`targets` decides what), sent by the drain
(:func:`erase`). Omnisend has no contact DELETE and a PATCH changes only the fields it
carries, so an erasure reads the contact first, removes its tags through the tags endpoint,
then PATCHes every clearable field to empty and unsubscribes it, dated after the contact's
own latest status change so Omnisend's status-date rule cannot ignore it.

Not clearable through the API (the README says so and points to Omnisend's own deletion):
``countryCode`` (must be a valid code), ``gender``, ``birthdate``, a phone identifier,
numeric or boolean custom properties, and the consent, opt-in and event history.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from .. import exceptions
from ..api.resources import BATCH_SETTLED
from ..conf import omnisend_settings
from ..models import OutboxItem, SyncState
from . import identity
from .payloads import parse_rfc3339, rfc3339

#: Tag left on an erased contact (also what tells a person in Omnisend what happened).
ERASED_TAG = "gdpr-erased"
#: Profile fields Omnisend accepts an empty string for.
CLEARED_FIELDS = ("firstName", "lastName", "address", "city", "state", "postalCode", "country")
#: Omnisend's ceiling of tags per tags request.
TAGS_PER_REQUEST = 100


#: An erasure waiting for a batch looks at it again this much later.
BATCH_WAIT_SECONDS = 60.0


class BatchOpen(Exception):
    """The erased address travels in a batch Omnisend has not processed yet: wait for it."""


@dataclass(frozen=True)
class Target:
    """One contact to erase: the address the user synced or bound, and its id when known.

    ``batch_id``: the backfill batch carrying the address when the user was deleted; the
    erasure waits until that batch settles, or the batch would recreate the contact.
    """

    connection_key: str
    email: str
    contact_id: str = ""
    batch_id: str = ""


def targets(user_pk: Any) -> list[Target]:
    """The contacts ``user_pk`` is bound to, on every connection (run before the cascade).

    Only our own records count: the address the user's row owns, or the address it last
    synced (with its contact id). Never the address the user row holds now: an account that
    never owned a contact (duplicate, inactive, excluded, never synced) erases nothing.
    An address another user has bound since is theirs, and is left alone.
    """
    found = []
    for row in SyncState.objects.filter(user_id=user_pk):
        addresses = dict.fromkeys(a for a in (row.email, row.address) if a)
        for address in addresses:
            owned_elsewhere = (
                SyncState.objects.filter(connection_key=row.connection_key, address=address)
                .exclude(pk=row.pk)
                .exists()
            )
            if owned_elsewhere:
                continue
            contact_id = row.contact_id if address == row.email else ""
            batch_id = row.batch_id if address == row.email else ""
            found.append(Target(row.connection_key, address, contact_id, batch_id))
        if not addresses and row.contact_id:
            found.append(Target(row.connection_key, "", row.contact_id))
    return found


def erased_at(deleted_at: datetime, contact: dict[str, Any]) -> datetime:
    """When the unsubscribe is dated: the deletion, or just after the contact's latest status.

    Omnisend ignores a status older than the one it holds, so an erasure dated by a clock
    behind Omnisend's (or a status set in the future) would leave the contact subscribed.
    """
    dates = [parse_rfc3339(s.get("statusChangedAt") or "") for s in contact.get("statuses") or []]
    latest = max((d for d in dates if d is not None), default=None)
    if latest is not None and latest >= deleted_at:
        return latest + timedelta(milliseconds=1)
    return deleted_at


def erasure_body(contact: dict[str, Any], at: datetime) -> dict[str, Any]:
    """The PATCH that unsubscribes ``contact`` and empties every field Omnisend lets us clear."""
    body: dict[str, Any] = {name: "" for name in CLEARED_FIELDS}
    if contact.get("email"):
        body["identifiers"] = [
            {
                "type": "email",
                "id": contact["email"],
                "channels": {"email": {"status": "unsubscribed", "statusChangedAt": rfc3339(at)}},
            }
        ]
    cleared: dict[str, str | list[str]] = {}
    for name, value in (contact.get("customProperties") or {}).items():
        if isinstance(value, str):
            cleared[name] = ""
        elif isinstance(value, list):
            cleared[name] = []
    if cleared:
        body["customProperties"] = cleared
    body["tags"] = [ERASED_TAG]
    return body


def erase(item: OutboxItem, client: Any, send: Callable[..., Any]) -> bool:
    """Send ``item``'s erasure through ``send(item, call, *args)``; False if it was discarded.

    Discarded (nothing sent) when the address has a new owner: a dead erasure retried after
    the same person registered again must not wipe the new account's contact.
    """
    if (
        item.email
        and SyncState.objects.filter(
            connection_key=item.connection_key, address=item.email
        ).exists()
    ):
        return False
    batch_id = (item.payload or {}).get("batch_id")
    if batch_id:
        try:
            batch = send(item, client.batches.get, batch_id)
        except exceptions.NotFound:
            batch = None  # Omnisend keeps batches for days only: this one settled long ago
        if batch is not None and batch.get("status") not in BATCH_SETTLED:
            # Not processed yet: a 404 for the contact now would not mean "no contact".
            raise BatchOpen(batch_id)
    contact = None
    if item.contact_id:
        try:
            contact = send(item, client.contacts.get, item.contact_id)
        except exceptions.NotFound:
            contact = None  # the stored id is stale; fall back to the address
    if contact is None and item.email:
        contact = send(item, client.contacts.get_by_email, item.email)
    if not contact:
        return True  # Omnisend holds no such contact: nothing to erase
    tags = [tag for tag in contact.get("tags") or [] if tag != ERASED_TAG]
    for start in range(0, len(tags), TAGS_PER_REQUEST):
        chunk = tags[start : start + TAGS_PER_REQUEST]
        send(item, client.contacts.remove_tags, chunk, contact_ids=[contact["id"]])
    body = erasure_body(contact, erased_at(item.created_at, contact))
    send(item, client.contacts.update, contact["id"], body)
    return True


def settled(item: OutboxItem) -> None:
    """An erasure was sent, discarded or gave up: wake users waiting for its address."""
    if item.email:
        identity.wake_waiters(item.connection_key, item.email)


def purge_expired(now: datetime | None = None) -> int:
    """Forget the address of dead erasures older than ``ERASURE_RETENTION_DAYS``."""
    now = now or timezone.now()
    days = omnisend_settings.erasure_retention_days
    return (
        OutboxItem.objects.filter(
            kind=OutboxItem.Kind.ERASURE,
            state=OutboxItem.State.DEAD,
            created_at__lt=now - timedelta(days=days),
        )
        .exclude(email="")
        .update(email="")
    )

"""Sending due sync rows through Omnisend's ``/batches`` and settling the batches.

Shared by the drain (a backlog of plain profile updates, see ``sync.BATCH_THRESHOLD``) and the
bulk sync (``omnisend_sync_contacts``). Both hand in the object that claimed the rows (it
``send``\\s under a lease, records failures and counts requests); nothing here subclasses it.

A row sent in a batch carries ``batch_id``/``batch_hash`` and stays with the batch until
Omnisend has processed it (issue 14): never sent on its own meanwhile (an old batch landing
after a newer send would undo it), and a deleted user's erasure waits for it too. Open batches
are polled through the batch list (250 a page), not one request each. A batch that finished
with ``errorsCount == 0`` delivered every item, so its rows are settled from the counters;
its items are read only to learn which items failed, or when a ``contact_synced`` receiver
needs each contact's id. Rows settled without reading items keep the contact id they had
(none after a first backfill): the next single upsert stores it, and every path that needs
one (erasure, an e-mail change's tag, pull) falls back to the address.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from django.db import connections, router, transaction
from django.db.models import Case, F, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from .. import exceptions
from ..models import OutboxItem, SyncState
from ..signals import contact_sync_failed, contact_synced
from . import gates as delivery

#: Omnisend's ceiling per batch.
BATCH_SIZE = 100
#: A page of the batch list (Omnisend's largest ``limit``).
LIST_PAGE = 250
#: Length of ``lease_owner`` (as ``sync.OWNER_LENGTH``; this module does not import the drain).
_OWNER_LENGTH = 64


def send_batch(
    sender: Any,
    key: str,
    items: list[tuple[SyncState, Any]],
    *,
    origin: str,
    lease_seconds: float,
) -> tuple[str, Exception | None]:
    """POST ``items`` (rows and their plans, one connection) as one batch; record it on the rows.

    ``sender`` is the drain that claimed the rows. Returns ``(batch_id, None)`` once the batch
    is on its rows, ``("", error)`` when Omnisend refused it (the caller records each row's
    failure), or ``("", None)`` when the lease was lost before the request. Rows whose lease
    ran out while the batch was created are marked to be sent again (``_record_batch``).
    """
    from .policy import LeaseLost  # the drain's exception; sync imports this module lazily

    client = sender.client(items[0][0])
    if client is None:
        return "", None
    bodies = []
    for _, plan in items:
        body = dict(plan.body)
        body["identifiers"] = [dict(i) for i in body["identifiers"]]
        body["identifiers"][0]["sendWelcomeMessage"] = False  # never greet from a batch
        bodies.append(body)
    try:
        created = sender.send(
            items[0][0], client.batches.create, "contacts", bodies, "POST", origin
        )
    except LeaseLost:
        return "", None
    except exceptions.OmnisendError as exc:
        return "", exc
    batch_id = str(created.get("batchID") or "")
    lost = _record_batch(batch_id, items, lease_seconds)
    if lost:
        # Rows whose lease ran out while the batch was created belong to another worker now
        # (``_record_batch`` is fenced): the batch carries their older state and may land
        # after that worker's send, so they are marked to be sent again.
        now = timezone.now()
        sender.result.lost_leases += SyncState.objects.filter(pk__in=lost).update(
            dirty=True,
            generation=F("generation") + 1,
            dirtied_at=now,
            payload_hash="",
            next_attempt_at=now,
        )
    return batch_id, None


def list_outstanding(sender: Any, outstanding: dict[str, str]) -> list[dict[str, Any]]:
    """The ``outstanding`` batches (id -> connection key) as Omnisend reports them now.

    Reads the newest-first batch list, only as many pages as needed; a batch not in it is
    asked for on its own, and one Omnisend no longer knows (404) is abandoned: its rows are
    due to be sent again.
    """
    found: list[dict[str, Any]] = []
    for key in set(outstanding.values()):
        client = sender.clients.get(key)
        wanted = {b for b, k in outstanding.items() if k == key}
        offset = 0
        while wanted:
            sender.result.requests += 1
            page = client.batches.list("contacts", limit=LIST_PAGE, offset=offset)
            batches = page.get("batches") or []
            for batch in batches:
                if batch.get("batchID") in wanted:
                    found.append(batch)
                    wanted.discard(batch["batchID"])
            if len(batches) < LIST_PAGE or not (page.get("paging") or {}).get("next"):
                break
            offset += len(batches)
        for missing in wanted:
            sender.result.requests += 1
            try:
                found.append(client.batches.get(missing))
            except exceptions.NotFound:
                outstanding.pop(missing, None)
                abandon(missing)
    return found


def postpone(batch_ids: Iterable[str], seconds: float) -> int:
    """Batches still open at Omnisend: their rows are looked at again in ``seconds``.

    The rows stay with their batch (a drain that claims them then only polls the batch);
    their lease is given back so any drain may do that once the time has come.
    """
    later = timezone.now() + timedelta(seconds=seconds)
    total = 0
    for batch_id in batch_ids:
        total += SyncState.objects.filter(batch_id=batch_id).update(
            next_attempt_at=later, lease_until=None, lease_owner=batch_owner(batch_id)
        )
    return total


# -- settlement -----------------------------------------------------------------------------

#: A batch Omnisend has not finished is looked at again this much later.
BATCH_POLL_SECONDS = 60.0
#: A failed item's row is held this long while its outcome is recorded (no other worker
#: takes it in between).
FAILURE_HOLD_SECONDS = 60.0


@dataclass
class Settled:
    """What settling one batch did: rows delivered, and failed items left to record."""

    sent: int = 0
    failures: list[tuple[SyncState, exceptions.OmnisendError]] = field(default_factory=list)


def _due_again(now: datetime) -> dict[str, Any]:
    """The fields that take a row out of its batch, unleased and due to be sent again."""
    return {
        "batch_id": "",
        "batch_hash": "",
        "batch_consent_at": None,
        "lease_until": None,
        "lease_owner": "",
        "dirty": True,
        "next_attempt_at": now,
    }


def abandon(batch_id: str) -> int:
    """Omnisend does not know ``batch_id`` (any more): its rows are due to be sent again."""
    return SyncState.objects.filter(batch_id=batch_id).update(**_due_again(timezone.now()))


def needs_items(batch: dict[str, Any], user_model: Any) -> bool:
    """Whether settling ``batch`` must read its items (one more request).

    Not for a batch that finished with no error: every item succeeded. Yes when some failed
    (to learn which), when Omnisend stopped it (to learn which it never processed), and when
    a ``contact_synced`` receiver wants each contact's id and whether it was created.
    """
    clean = batch.get("status") == "finished" and not int(batch.get("errorsCount") or 0)
    return not clean or contact_synced.has_listeners(user_model)


def settle(sender: Any, key: str, batch: dict[str, Any]) -> Settled:
    """Take a finished (or stopped) batch's rows out of it, with each item's outcome.

    A clean batch (see :func:`needs_items`) settles every row from its counters. Otherwise the
    items are read (one request per 100 users): a delivered row is synced with its contact
    id (from the item's response, or read by e-mail when the response lacks it) and the
    consent it carried recorded as sent; a failed item is returned for the caller to record
    (under the batch's lease owner); an item Omnisend never processed (a stopped batch) is
    due again, no attempt spent. Settling twice is harmless: the second finds no row left.
    """
    batch_id = batch["batchID"]
    rows = SyncState.objects.filter(batch_id=batch_id)
    now = timezone.now()
    user_model = sender.user_model
    if not needs_items(batch, user_model):
        settled = Settled(sent=_mark_synced(rows, now))
        if settled.sent:
            delivery.record_success(key)
        return settled
    client = sender.clients.get(key)
    sender.result.requests += 1
    detail = client.batches.items(batch_id)
    outcomes: dict[str, tuple[int, Any]] = {}
    for item in (detail.get("responses") or []) + (detail.get("errors") or []):
        identifiers = (item.get("request") or {}).get("identifiers") or [{}]
        email = str(identifiers[0].get("id") or "")
        outcomes[email] = (int(item.get("responseCode") or 0), item.get("response"))
    ok = [email for email, (code, _) in outcomes.items() if 200 <= code < 300]
    # Which row carried which address, read before the rows leave the batch.
    carried = dict(rows.values_list("email", "pk"))
    contact_ids = _contact_ids(sender, client, ok, outcomes, carried)
    _store_contact_ids(batch_id, contact_ids)
    settled = Settled(sent=_mark_synced(rows.filter(email__in=ok), now))
    owner = batch_owner(batch_id)
    for row in rows.exclude(email__in=ok):
        code, response = outcomes.get(row.email, (0, None))
        if code == 0:  # not processed (a stopped batch): due again, no attempt spent
            SyncState.objects.filter(pk=row.pk, batch_id=batch_id).update(**_due_again(now))
            continue
        # Out of the batch, held under the batch's owner (the fence the caller records the
        # failure under) until the outcome is recorded, due from now unless it schedules a
        # retry.
        if SyncState.objects.filter(pk=row.pk, batch_id=batch_id).update(
            batch_id="",
            batch_hash="",
            batch_consent_at=None,
            next_attempt_at=now,
            lease_owner=owner,
            lease_until=now + timedelta(seconds=FAILURE_HOLD_SECONDS),
        ):
            row.lease_owner = owner
            settled.failures.append((row, _item_error(code, response)))
    if ok:
        delivery.record_success(key)
    if contact_synced.has_listeners(user_model):
        _signal_synced(user_model, ok, outcomes, carried, contact_ids)
    if contact_sync_failed.has_listeners(user_model):
        _signal_failed_deleted(user_model, outcomes, carried)
    return settled


def _contact_ids(
    sender: Any,
    client: Any,
    ok: list[str],
    outcomes: dict[str, tuple[int, Any]],
    carried: dict[str, Any],
) -> dict[str, str]:
    """Each delivered row's contact id: from its item's response, else read by e-mail.

    Omnisend's 2026 item ``response`` is undocumented; a row whose id cannot be learnt
    keeps none (the next single upsert learns it).
    """
    found: dict[str, str] = {}
    for email in ok:
        response = outcomes[email][1]
        if isinstance(response, dict) and response.get("id"):
            found[email] = str(response["id"])
    for email in ok:
        if email in found or email not in carried:
            continue
        sender.result.requests += 1
        try:
            contact = client.contacts.get_by_email(email)
        except exceptions.OmnisendError:
            continue  # unknown for now; not worth failing a delivered row over
        if contact and contact.get("id"):
            found[email] = str(contact["id"])
    return found


def _store_contact_ids(batch_id: str, contact_ids: dict[str, str]) -> None:
    """Put each contact id on the row of ``batch_id`` that carried its address."""
    if not contact_ids:
        return
    using = router.db_for_write(SyncState)
    conn = connections[using]
    quote = conn.ops.quote_name
    column = {f.name: quote(cast(str, f.column)) for f in SyncState._meta.concrete_fields}
    sql = (
        f"UPDATE {quote(SyncState._meta.db_table)} SET {column['contact_id']} = %s "  # noqa: S608
        f"WHERE {column['batch_id']} = %s AND {column['email']} = %s"
    )
    params = [[cid, batch_id, email] for email, cid in contact_ids.items()]
    with transaction.atomic(using=using), conn.cursor() as cursor:
        cursor.executemany(sql, params)


def _mark_synced(rows: QuerySet, now: datetime) -> int:
    """Settle delivered rows; a row stays dirty if a save moved it after it was read.

    The consent the batch carried is recorded as sent, so the next sync does not repeat it.
    """
    return rows.update(
        dirty=Case(When(generation=F("batch_generation"), then=Value(False)), default=F("dirty")),
        state=SyncState.State.SYNCED,
        reason="",
        attempts=0,
        payload_hash=F("batch_hash"),
        consent_sent_at=Coalesce(F("batch_consent_at"), F("consent_sent_at")),
        batch_id="",
        batch_hash="",
        batch_consent_at=None,
        last_status=200,
        last_error="",
        lease_until=None,
        lease_owner="",
        synced_at=now,
        next_attempt_at=now,
    )


def _signal_synced(
    user_model: Any,
    ok: list[str],
    outcomes: dict[str, tuple[int, Any]],
    carried: dict[str, Any],
    contact_ids: dict[str, str],
) -> None:
    """Send contact_synced for a batch's delivered items, with their rows as saved."""
    saved = SyncState.objects.in_bulk([carried[e] for e in ok if e in carried])
    users = user_model._default_manager.in_bulk({r.user_id for r in saved.values()})
    for email in ok:
        code, response = outcomes[email]
        row = saved.get(carried.get(email))
        contact_id = contact_ids.get(email) or (
            str(response.get("id") or "") if isinstance(response, dict) else ""
        )
        contact_synced.send_robust(
            sender=user_model,
            # No row: the user was deleted while the batch ran (the row goes with it).
            user=users.get(row.user_id) if row is not None else None,
            contact_id=contact_id or (row.contact_id if row is not None else ""),
            created=code == 201,
            sync_state=row,
        )


def _signal_failed_deleted(
    user_model: Any, outcomes: dict[str, tuple[int, Any]], carried: dict[str, Any]
) -> None:
    """contact_sync_failed for failed items whose user was deleted while the batch ran.

    (Failed items with a row were signalled as their failure was recorded.)
    """
    for email, (code, response) in outcomes.items():
        if code and not 200 <= code < 300 and email not in carried:
            contact_sync_failed.send_robust(
                sender=user_model,
                user=None,
                error=_item_error(code, response),
                permanent=True,  # no row is left to retry
                sync_state=None,
            )


def _record_batch(
    batch_id: str, items: list[tuple[SyncState, Any]], lease_seconds: float
) -> list[Any]:
    """Put ``batch_id`` and what it carries on its rows: one prepared UPDATE, many rows.

    (``bulk_update`` builds a CASE per row and field, which costs more than the batch itself.)
    ``generation`` is the value read at claim time, before the user row was read, so a save
    racing with the batch leaves the row dirty. Fenced: only rows still held by the claim
    that read them are written; returns the primary keys of rows another worker took over
    meanwhile (their lease ran out).
    """
    using = router.db_for_write(SyncState)
    conn = connections[using]
    quote = conn.ops.quote_name
    column = {f.name: quote(cast(str, f.column)) for f in SyncState._meta.concrete_fields}
    names = (
        "batch_id",
        "batch_hash",
        "batch_generation",
        "batch_consent_at",
        "email",
        "lease_until",
        "lease_owner",
        "next_attempt_at",
    )
    assignments = ", ".join(f"{column[name]} = %s" for name in names)
    sql = (
        f"UPDATE {quote(SyncState._meta.db_table)} SET {assignments} "  # noqa: S608
        f"WHERE {column['id']} = %s AND {column['lease_owner']} = %s"
    )
    lease_until = conn.ops.adapt_datetimefield_value(
        timezone.now() + timedelta(seconds=lease_seconds)
    )
    owner = batch_owner(batch_id)
    # ``next_attempt_at`` moves to the lease's end as well: rows in flight leave the front of
    # the due index, so the next claim does not walk past them.
    params = [
        [
            batch_id,
            plan.payload_hash,
            row.generation,
            conn.ops.adapt_datetimefield_value(plan.consent.at) if plan.consent else None,
            plan.email,
            lease_until,
            owner,
            lease_until,
            row.pk,
            row.lease_owner,
        ]
        for row, plan in items
    ]
    with transaction.atomic(using=using), conn.cursor() as cursor:
        cursor.executemany(sql, params)
    recorded = set(SyncState.objects.filter(batch_id=batch_id).values_list("pk", flat=True))
    missed = [row.pk for row, _ in items if row.pk not in recorded]
    taken = set(SyncState.objects.filter(pk__in=missed).values_list("pk", flat=True))
    gone = [plan.email for row, plan in items if row.pk not in recorded and row.pk not in taken]
    if gone:
        # Users deleted after their item was built: their erasures were queued without the
        # batch, and must wait for it too, or the batch recreates what they erased.
        OutboxItem.objects.filter(
            kind=OutboxItem.Kind.ERASURE,
            state=OutboxItem.State.PENDING,
            connection_key=items[0][0].connection_key,
            email__in=gone,
        ).update(payload={"batch_id": batch_id})
    return sorted(taken)


def batch_owner(batch_id: str) -> str:
    """The lease owner of rows travelling in ``batch_id`` (until the batch settles)."""
    return f"batch:{batch_id}"[:_OWNER_LENGTH]


def _item_error(code: int, response: Any) -> exceptions.OmnisendError:
    """Turn a batch item's ``responseCode``/``response`` into the matching exception."""
    problem = exceptions.parse_problem(response) if isinstance(response, dict) else {}
    cls = exceptions.exception_for_status(code)
    return cls(status=code, **problem)

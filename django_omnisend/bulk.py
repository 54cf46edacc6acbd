"""Bulk sync through Omnisend's ``/batches``: the backfill behind ``omnisend_sync_contacts``.

1. **Mark** the chosen users dirty in SQL, a chunk of primary keys per statement batch.
2. **Send** due rows 100 at a time as one ``POST /batches`` each (``sendWelcomeMessage``
   false, no channel status unless Django recorded a decision). Rows that need a single
   request (an e-mail change, an opt-in that must be checked against Omnisend first) go
   through the ordinary drain path instead.
3. **Poll** the batch list (250 batches a page, so a whole backfill is a few requests), then
   **settle** each processed batch: read its ``/items`` and put each item's outcome, contact
   id and the consent it carried on its user's row.

Rows travelling in a batch carry ``batch_id``/``batch_hash`` and stay with the batch until it
settles: never sent on their own meanwhile (an old batch landing after a newer send would undo
it), and a deleted user's erasure waits for it too. A run that is interrupted is resumed by the
next one, which polls the batches it finds on the rows instead of sending them again; the
drain, meeting such rows once their lease is over, settles their batch itself
(:func:`follow_batch`).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connections, router, transaction
from django.db.models import Case, F, Q, QuerySet, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import claims, delivery, exceptions, identity
from .conf import omnisend_settings
from .models import OutboxItem, SyncState
from .outbox import mark_dirty_many
from .payloads import plan_contact
from .signals import contact_sync_failed, contact_synced
from .sync import OWNER_LENGTH, LeaseLost, _Drain, _worker_id

#: Omnisend's ceiling per batch.
BATCH_SIZE = 100
#: Batches created before their outcomes are collected (a page of the batch list holds 250).
MAX_OUTSTANDING = 200
#: Rows in a batch are leased this long: a crashed run's rows wait for the next run to poll.
BATCH_LEASE_SECONDS = 1800.0
#: Give up polling after this long; the rows keep their batch for the next run.
POLL_TIMEOUT_SECONDS = 600.0
#: Rows marked per transaction: each chunk commits before the next is written, so a backfill
#: never holds many row locks while web saves wait on them (or deadlock with them).
MARK_CHUNK = 100
#: Primary keys read per round trip while marking (reading takes no row locks).
READ_CHUNK = 1000


@dataclass
class BulkReport:
    """What a bulk run did (the command's summary)."""

    marked: int = 0
    sent: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    failed: int = 0
    retrying: int = 0
    single: int = 0
    batches: int = 0
    requests: int = 0
    pending: int = 0
    errors: Counter = field(default_factory=Counter)
    #: Why Omnisend gave no usable answer to the last request that failed so ("" if none).
    unreachable: str = ""

    @property
    def done(self) -> int:
        return self.sent + self.unchanged + sum(self.skipped.values()) + self.failed


def select_users(
    *,
    since: datetime | None = None,
    user_ids: Iterable[Any] | None = None,
    never_synced: bool = False,
) -> QuerySet:
    """The users a bulk run covers (every user when no filter is given)."""
    users = get_user_model()._default_manager.all()
    if since is not None and hasattr(get_user_model(), "date_joined"):
        users = users.filter(date_joined__gte=since)
    if user_ids:
        users = users.filter(pk__in=list(user_ids))
    if never_synced:
        synced = SyncState.objects.exclude(payload_hash="").values("user_id")
        users = users.exclude(pk__in=synced)
    return users


def chunked(pks: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for pk in pks:
        chunk.append(pk)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def mark_users(users: QuerySet, connection_key: Callable[[Any], str] | None = None) -> int:
    """Mark ``users`` dirty, a short transaction per chunk of ``MARK_CHUNK`` (flat memory).

    Users are taken in primary-key order, the order every chunk locks its rows in, and each
    chunk commits on its own: no transaction spans the backfill (on PostgreSQL one that did
    deadlocked against web saves). ``connection_key(user)`` is the adapter's; with the default
    adapter every user belongs to ``"default"`` and only primary keys are read.
    """
    using = router.db_for_write(SyncState)
    marked = 0
    users = users.order_by("pk")
    if connection_key is None:
        rows = ((pk, "default") for pk in users.values_list("pk", flat=True).iterator(READ_CHUNK))
    else:
        rows = ((u.pk, connection_key(u)) for u in users.iterator(READ_CHUNK))
    for chunk in chunked(rows, MARK_CHUNK):
        with transaction.atomic(using=using):
            mark_dirty_many(chunk, using)
        marked += len(chunk)
    return marked


class BatchSync(_Drain):
    """Deliver due rows through ``/batches``; reuses the drain's outcome rules."""

    def __init__(
        self,
        *,
        progress: Callable[[BulkReport], None] | None = None,
        poll_sleep: Callable[[float], Any] = time.sleep,
        max_seconds: float | None = None,
    ) -> None:
        deadline = time.monotonic() + max_seconds if max_seconds is not None else None
        super().__init__(worker=f"bulk:{_worker_id()}", deadline=deadline, max_items=None)
        self.report = BulkReport()
        self.progress = progress or (lambda report: None)
        self.poll_sleep = poll_sleep
        self.origin = omnisend_settings.get("EVENT_ORIGIN")
        #: batch id -> connection key, for batches sent and not yet settled.
        self.outstanding: dict[str, str] = {}

    # -- the run --------------------------------------------------------------------------

    def run_bulk(self) -> BulkReport:
        try:
            self._resume()
            while not self.out_of_time():
                worked = self._send_round()
                if len(self.outstanding) >= MAX_OUTSTANDING or (not worked and self.outstanding):
                    if not self._poll():
                        break  # Omnisend is still working: the next run polls these batches
                    continue  # settled rows may be due again (e.g. newer saves meanwhile)
                if not worked:
                    break
        finally:
            self.clients.close()
            self.report.requests = self.result.requests
            self.report.unreachable = self.result.unreachable
            self.report.pending = SyncState.objects.filter(dirty=True).count()
        return self.report

    def _resume(self) -> None:
        """Adopt batches an interrupted run left on the rows (their outcome is still due)."""
        pending = (
            SyncState.objects.exclude(batch_id="")
            .values_list("batch_id", "connection_key")
            .distinct()
        )
        for batch_id, key in pending:
            self.outstanding[batch_id] = key

    def _send_round(self) -> int:
        now = timezone.now()
        # Rows travelling in a batch are not due until their lease ends (next_attempt_at is
        # its end). No batch_id condition here: it would steer the planner off the due index
        # (SQLite then walks every row with batch_id ""); a batch row is set aside below.
        due = Q(dirty=True, next_attempt_at__lte=now)
        if self.blocked:
            due &= ~Q(connection_key__in=self.blocked)
        token = self.claim_token()  # the fence of these rows (see sync._Drain.claim_token)
        rows = claims.claim(
            SyncState,
            due,
            worker=token,
            limit=BATCH_SIZE,
            now=now,
            lease_seconds=self.lease_seconds,
        )
        if not rows:
            return 0
        by_key: dict[str, list[SyncState]] = {}
        for row in rows:
            if row.batch_id:
                # Its batch's lease ran out before the batch settled: the row stays with the
                # batch (sending it again could land before the old batch does); poll it.
                self.outstanding[row.batch_id] = row.connection_key
                SyncState.objects.filter(pk=row.pk).update(
                    next_attempt_at=now + timedelta(seconds=BATCH_LEASE_SECONDS)
                )
                continue
            by_key.setdefault(row.connection_key, []).append(row)
        try:
            for key, key_rows in by_key.items():
                self._send_key(key, key_rows)
        finally:
            claims.release(SyncState, [r.pk for r in rows], worker=token)
        self.progress(self.report)
        return len(rows)

    def _send_key(self, key: str, rows: list[SyncState]) -> None:
        if key in self.blocked or not self.gate_allows(rows[0]):
            return
        users = self.user_model._default_manager.in_bulk([r.user_id for r in rows])
        items: list[tuple[SyncState, Any]] = []
        planned: list[tuple[SyncState, Any, bool]] = []
        for row in rows:
            user = users.get(row.user_id)
            if user is None:
                continue
            try:
                plan = plan_contact(
                    user,
                    self.adapter,
                    consent_sent_at=row.consent_sent_at,
                    is_new=False,
                )
                verified = not plan.skip_reason and self.adapter.is_email_verified(user)
            except Exception:
                # The adapter failed for this user: the drain path records it with backoff.
                before = self.result.as_dict()
                self.sync_row(row)
                self._count_single(before)
                continue
            planned.append((row, plan, verified))
        # Every address of the round bound in one transaction (see identity.bind_many).
        binds = [(row, plan.email) for row, plan, _ in planned if not plan.skip_reason]
        waiting: set[Any] = set()

        def unbound(row: SyncState, outcome: identity.Binding) -> None:
            self._wait_for_address(row, outcome.value)
            self.report.skipped[outcome.value] += 1
            waiting.add(row.pk)

        if binds:
            identity.bind_many(binds, unbound=unbound)
        # A user deleted before its address was bound owned nothing, so no erasure follows
        # it: its item must not be sent. (One deleted after binding is erased once the batch
        # settled, see _record_batch.)
        alive = set(
            SyncState.objects.filter(pk__in=[row.pk for row, _, _ in planned]).values_list(
                "pk", flat=True
            )
        )
        for row, plan, verified in planned:
            if row.pk in waiting or row.pk not in alive:
                continue
            needs_single = (
                (row.email and plan.email and row.email != plan.email)
                or (plan.consent is not None and plan.consent.subscribed)
                # An unverified address this row never wrote needs a lookup first: the
                # contact may exist, and then it is not this user's to write.
                or (not verified and plan.email != row.email)
            )
            if (
                plan.skip_reason
                or needs_single
                or (
                    plan.consent is None
                    and row.payload_hash
                    and (plan.email, plan.payload_hash) == (row.email, row.payload_hash)
                )
            ):
                # Skips, unchanged rows, e-mail changes, opt-ins and first writes of
                # unverified addresses: the drain's own path.
                before = self.result.as_dict()
                self.sync_row(row)
                self._count_single(before)
                continue
            items.append((row, plan))
        if not items or key in self.blocked:
            return
        client = self.client(rows[0])
        if client is None:
            return
        bodies = []
        for _, plan in items:
            body = dict(plan.body)
            body["identifiers"] = [dict(i) for i in body["identifiers"]]
            body["identifiers"][0]["sendWelcomeMessage"] = False  # never greet a backfill
            bodies.append(body)
        try:
            created = self.send(
                items[0][0], client.batches.create, "contacts", bodies, "POST", self.origin
            )
        except LeaseLost:
            return
        except exceptions.OmnisendError as exc:
            for row, _ in items:
                self._record_failure(row, exc, users.get(row.user_id))
            return
        batch_id = str(created.get("batchID") or "")
        self.report.batches += 1
        lost = _record_batch(batch_id, items)
        self.outstanding[batch_id] = key
        if lost:
            # Rows whose lease ran out while the batch was created belong to another worker
            # now (``_record_batch`` is fenced): the batch carries their older state and may
            # land after that worker's send, so they are marked to be sent again.
            now = timezone.now()
            self.result.lost_leases += SyncState.objects.filter(pk__in=lost).update(
                dirty=True,
                generation=F("generation") + 1,
                dirtied_at=now,
                payload_hash="",
                next_attempt_at=now,
            )

    def _count_single(self, before: dict[str, Any]) -> None:
        after = self.result.as_dict()
        self.report.single += 1
        if after["unchanged"] > before["unchanged"]:
            self.report.unchanged += 1
        elif after["synced"] > before["synced"]:
            self.report.sent += 1
        elif after["dead"] > before["dead"]:
            self.report.failed += 1
        elif after["retried"] > before["retried"]:
            self.report.retrying += 1
        for reason, n in after["skipped"].items():
            if n > before["skipped"].get(reason, 0):
                self.report.skipped[reason] += 1

    def _record_failure(self, row: SyncState, exc: Exception, user: Any = None) -> None:
        outcome = self.failed(row, exc)
        if outcome == "dead":
            self.report.failed += 1
            self.report.errors[type(exc).__name__] += 1
        elif outcome == "retry":
            self.report.retrying += 1
        self.signal_failed(row, user, exc, outcome)

    # -- outcomes -------------------------------------------------------------------------

    def _poll(self) -> bool:
        """Wait for the outstanding batches and record every item's outcome.

        Returns False when some batches were still unfinished at the poll timeout or deadline.
        """
        started, wait = time.monotonic(), 0.2
        while self.outstanding and time.monotonic() - started < POLL_TIMEOUT_SECONDS:
            self.poll_sleep(wait)
            for batch in self._list_outstanding():
                if batch.get("status") in ("finished", "stopped"):
                    self._settle(batch)
            self.progress(self.report)
            wait = min(wait * 2, 10.0)
            if self.out_of_time():
                break
        return not self.outstanding

    def _list_outstanding(self) -> list[dict[str, Any]]:
        """Our batches from the newest-first batch list, reading only as many pages as needed."""
        keys = set(self.outstanding.values())
        found: list[dict[str, Any]] = []
        for key in keys:
            client = self.clients.get(key)
            wanted = {b for b, k in self.outstanding.items() if k == key}
            offset = 0
            while wanted:
                self.result.requests += 1
                page = client.batches.list("contacts", limit=250, offset=offset)
                batches = page.get("batches") or []
                for batch in batches:
                    if batch.get("batchID") in wanted:
                        found.append(batch)
                        wanted.discard(batch["batchID"])
                if len(batches) < 250 or not (page.get("paging") or {}).get("next"):
                    break
                offset += len(batches)
            for missing in wanted:
                # Not (or no longer) in the list: ask for it; only a 404 means send again.
                self.result.requests += 1
                try:
                    found.append(client.batches.get(missing))
                except exceptions.NotFound:
                    self._abandon(missing)
        return found

    def _abandon(self, batch_id: str) -> None:
        self.outstanding.pop(batch_id, None)
        abandon(batch_id)

    def _settle(self, batch: dict[str, Any]) -> None:
        key = self.outstanding.pop(batch["batchID"])
        settled = settle(self, key, batch)
        self.report.sent += settled.sent
        for row, error in settled.failures:
            self._record_failure(row, error)


# -- settlement (shared by the bulk run and the drain) --------------------------------------

#: Batch statuses after which Omnisend does no more work on a batch.
SETTLED = ("finished", "stopped")
#: A drain that meets a batch Omnisend has not finished looks at it again this much later.
BATCH_POLL_SECONDS = 60.0


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


def settle(drain: _Drain, key: str, batch: dict[str, Any]) -> Settled:
    """Take a finished (or stopped) batch's rows out of it, with each item's outcome.

    Reads the batch's items (one request per 100 users): a delivered row is synced with its
    contact id (from the item's response, or read by e-mail when the response lacks it) and
    the consent it carried recorded as sent; a failed item is returned for the caller to
    record; an item Omnisend never processed (a stopped batch) is due again, no attempt spent.
    Settling twice is harmless: the second finds no row left in the batch.
    """
    batch_id = batch["batchID"]
    rows = SyncState.objects.filter(batch_id=batch_id)
    now = timezone.now()
    client = drain.clients.get(key)
    drain.result.requests += 1
    detail = client.batches.items(batch_id)
    outcomes: dict[str, tuple[int, Any]] = {}
    for item in (detail.get("responses") or []) + (detail.get("errors") or []):
        identifiers = (item.get("request") or {}).get("identifiers") or [{}]
        email = str(identifiers[0].get("id") or "")
        outcomes[email] = (int(item.get("responseCode") or 0), item.get("response"))
    ok = [email for email, (code, _) in outcomes.items() if 200 <= code < 300]
    # Which row carried which address, read before the rows leave the batch.
    carried = dict(rows.values_list("email", "pk"))
    contact_ids = _contact_ids(drain, client, ok, outcomes, carried)
    _store_contact_ids(batch_id, contact_ids)
    settled = Settled(sent=_mark_synced(rows.filter(email__in=ok), now))
    for row in rows.exclude(email__in=ok):
        code, response = outcomes.get(row.email, (0, None))
        if code == 0:  # not processed (a stopped batch): due again, no attempt spent
            SyncState.objects.filter(pk=row.pk, batch_id=batch_id).update(**_due_again(now))
            continue
        # Out of the batch, due from now unless the recorded outcome schedules a retry.
        if SyncState.objects.filter(pk=row.pk, batch_id=batch_id).update(
            batch_id="", batch_hash="", batch_consent_at=None, next_attempt_at=now
        ):
            settled.failures.append((row, _item_error(code, response)))
    if ok:
        delivery.record_success(key)
    user_model = drain.user_model
    if contact_synced.has_listeners(user_model):
        _signal_synced(user_model, ok, outcomes, carried, contact_ids)
    if contact_sync_failed.has_listeners(user_model):
        _signal_failed_deleted(user_model, outcomes, carried)
    return settled


def _contact_ids(
    drain: _Drain,
    client: Any,
    ok: list[str],
    outcomes: dict[str, tuple[int, Any]],
    carried: dict[str, Any],
) -> dict[str, str]:
    """Each delivered row's contact id: from its item's response, else read by e-mail.

    Omnisend's 2026 item ``response`` is undocumented; a row whose id cannot be learnt
    keeps none (``omnisend_reconcile`` then sends it singly, which learns it).
    """
    found: dict[str, str] = {}
    for email in ok:
        response = outcomes[email][1]
        if isinstance(response, dict) and response.get("id"):
            found[email] = str(response["id"])
    for email in ok:
        if email in found or email not in carried:
            continue
        drain.result.requests += 1
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
    column = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
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


def follow_batch(drain: _Drain, row: SyncState) -> None:
    """The drain met ``row`` in a batch whose lease ran out: settle the batch if it is done.

    The row is never sent on its own while its batch is open (a newer state sent now could
    be overwritten by the batch landing later); a save made meanwhile is sent after the
    batch settles. One request per batch and pass (``drain.followed_batches``), not per row.
    """
    followed = drain.followed_batches
    batch_id = row.batch_id
    if batch_id in followed or not drain.gate_allows(row):
        claims.release(SyncState, [row.pk], worker=row.lease_owner)
        return
    client = drain.client(row)
    if client is None:
        return
    followed.add(batch_id)
    try:
        batch = drain.send(row, client.batches.get, batch_id)
        if batch.get("status") in SETTLED:
            settled = settle(drain, row.connection_key, batch)
            for failed_row, error in settled.failures:
                drain.signal_failed(failed_row, None, error, drain.failed(failed_row, error))
            drain.result.synced += settled.sent
            return
    except LeaseLost:
        return
    except exceptions.NotFound:
        abandon(batch_id)  # Omnisend no longer knows it (records are kept for days): resend
        return
    except exceptions.OmnisendError:
        pass  # no answer to go by: look again later, no attempt spent
    # Still open at Omnisend: its rows (and their erasures) wait; look again later.
    SyncState.objects.filter(batch_id=batch_id).update(
        next_attempt_at=timezone.now() + timedelta(seconds=BATCH_POLL_SECONDS)
    )
    claims.release(SyncState, [row.pk], worker=row.lease_owner)


def _record_batch(batch_id: str, items: list[tuple[SyncState, Any]]) -> list[Any]:
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
    column = {f.name: quote(f.column) for f in SyncState._meta.concrete_fields}
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
        timezone.now() + timedelta(seconds=BATCH_LEASE_SECONDS)
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
    return f"batch:{batch_id}"[:OWNER_LENGTH]


def _item_error(code: int, response: Any) -> exceptions.OmnisendError:
    """Turn a batch item's ``responseCode``/``response`` into the matching exception."""
    problem = exceptions.parse_problem(response) if isinstance(response, dict) else {}
    cls = exceptions.exception_for_status(code)
    return cls(status=code, **problem)


def send_in_batches(
    *,
    progress: Callable[[BulkReport], None] | None = None,
    max_seconds: float | None = None,
) -> BulkReport:
    """Deliver every due row through ``/batches`` (and the drain path where needed)."""
    return BatchSync(progress=progress, max_seconds=max_seconds).run_bulk()


__all__ = ["BulkReport", "chunked", "mark_users", "select_users", "send_in_batches"]

"""``manage.py omnisend_reconcile``: find users whose contact changed without a signal.

``QuerySet.update()``, raw SQL and other apps writing the user table send no ``post_save``, so
the sync never hears of them. This command rebuilds every user's contact payload (no network),
compares its hash with what was last sent, and marks only the changed users dirty; the drain
then sends them. No API call is made here, and unchanged users cost none later.

A user is marked when: the payload hash differs from the one last sent; the address changed;
a consent decision is waiting to be sent; a skipped user would now be sent (e.g. an e-mail
fixed by ``update()``) or skipped for another reason; a synced user would now be skipped; or
a user who should sync has no sync row yet. Rows already pending are left as they are, and
dead rows too (retry them in the admin): rebuilding them would only fail again.

It runs in chunks of ``--chunk-size`` users with flat memory and a fixed number of statements
per chunk, whatever the number of users: the users by keyset pagination (``pk > last ORDER BY
pk LIMIT n``, no cursor held open between chunks), their sync rows in one query (only the
columns the comparison reads), and the marks as one batched upsert in a short transaction.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import router, transaction
from django.db.models import QuerySet

from django_omnisend.adapter import ContactAdapter, get_adapter
from django_omnisend.conf import omnisend_settings
from django_omnisend.models import SyncState
from django_omnisend.sync import marking as outbox
from django_omnisend.sync.payloads import plan_contact
from django_omnisend.tasks import nudge_drain_on_commit

#: The sync-row columns :func:`verdict` reads (the rest, e.g. ``last_error``, is never loaded).
VERDICT_FIELDS = (
    "user_id",
    "connection_key",
    "dirty",
    "state",
    "reason",
    "consent_sent_at",
    "contact_id",
    "email",
    "payload_hash",
)

#: Labels of the outcomes that leave a user alone.
UNCHANGED = "unchanged"
PENDING = "already pending"
DEAD = "dead (left alone)"
EXCLUDED = "not synced (no row, excluded)"


def verdict(user: Any, row: SyncState | None, adapter: ContactAdapter) -> tuple[bool, str]:
    """``(mark_dirty, why)`` for one user and their sync row on the adapter's connection."""
    if row is None:
        if adapter.should_sync(user):
            return True, "no sync row yet"
        return False, EXCLUDED
    if row.dirty:
        return False, PENDING
    if row.state == SyncState.State.DEAD:
        return False, DEAD
    plan = plan_contact(
        user, adapter, consent_sent_at=row.consent_sent_at, is_new=not row.contact_id
    )
    if plan.skip_reason:
        if row.state == SyncState.State.SKIPPED and row.reason == plan.skip_reason:
            return False, UNCHANGED
        return True, f"now skipped: {plan.skip_reason}"
    if row.state == SyncState.State.SKIPPED:
        return True, "no longer skipped"
    if plan.consent is not None:
        return True, "consent to send"
    if not row.email or plan.email != row.email:  # (a backfill may leave the id to learn)
        return True, "e-mail changed"
    if plan.payload_hash == row.payload_hash:
        return False, UNCHANGED
    if row.consent_sent_at is not None:
        # The hash last sent included the consent; today's plan leaves the (already sent)
        # consent out. Same profile with that consent put back: nothing changed.
        with_consent = plan_contact(user, adapter, is_new=not row.contact_id)
        if with_consent.payload_hash == row.payload_hash:
            return False, UNCHANGED
    return True, "profile changed"


def pages(queryset: QuerySet, size: int) -> Iterator[list[Any]]:
    """``queryset``'s rows in primary-key order, ``size`` per query (keyset pagination).

    Each page is ``pk > <last pk of the previous page> ORDER BY pk LIMIT size``: an index range
    read costing the same on the last page as on the first, with no server-side cursor held
    open for the whole run (which a connection pooler in transaction mode would break).
    """
    queryset = queryset.order_by("pk")
    last = None
    while True:
        page = list((queryset if last is None else queryset.filter(pk__gt=last))[:size])
        if page:
            yield page
        if len(page) < size:
            return
        last = page[-1].pk


class Command(BaseCommand):
    help = (
        "Recompute every user's contact payload from the user table and mark the users whose "
        "contact changed without a save() (QuerySet.update, raw SQL) or who were never synced, "
        "so the drain sends them. Makes no API call."
    )

    def add_arguments(self, parser: Any) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--all",
            action="store_true",
            help="Check every user, synced before or not (the default; kept for scripts).",
        )
        which.add_argument(
            "--user-id",
            action="append",
            dest="user_ids",
            default=None,
            metavar="PK",
            help="Check this user (repeatable).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be marked; change nothing."
        )
        parser.add_argument(
            "--chunk-size",
            type=int,
            default=500,
            help="Users read and marked per round trip (memory stays flat).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not omnisend_settings.sync_users:
            raise CommandError('User sync is off: set OMNISEND["SYNC_USERS"] = True first.')
        chunk_size = options["chunk_size"]
        if chunk_size < 1:
            raise CommandError("--chunk-size must be positive.")
        user_model = get_user_model()
        users = user_model._default_manager.order_by("pk")
        if options["user_ids"]:
            try:
                ids = [user_model._meta.pk.to_python(pk) for pk in options["user_ids"]]
            except Exception as exc:
                raise CommandError(f"--user-id: {exc}") from exc
            users = users.filter(pk__in=ids)
        # Otherwise every user: those never synced (created while SYNC_USERS was off, or by
        # bulk_create/raw SQL) have no row to start from, and are exactly the ones to find.

        # Looked up once per run, not per user.
        self.adapter = get_adapter()
        self.using = router.db_for_write(SyncState)
        self.dry_run = options["dry_run"]
        self.outcomes: Counter[str] = Counter()
        self.marked = 0
        for chunk in pages(users, chunk_size):
            self._reconcile(chunk)
        self._report()

    def _reconcile(self, users: list[Any]) -> None:
        rows = {
            (row.user_id, row.connection_key): row
            for row in SyncState.objects.using(self.using)
            .filter(user_id__in=[u.pk for u in users])
            .only(*VERDICT_FIELDS)
        }
        to_mark: list[tuple[Any, str]] = []
        for user in users:
            key = str(self.adapter.get_connection_key(user))
            mark, why = verdict(user, rows.get((user.pk, key)), self.adapter)
            self.outcomes[why] += 1
            if mark:
                to_mark.append((user.pk, key))
        self.marked += len(to_mark)
        if self.dry_run or not to_mark:
            return
        with transaction.atomic(using=self.using):
            outbox.mark_dirty_many(to_mark, self.using)
            nudge_drain_on_commit(self.using)

    def _report(self) -> None:
        checked = sum(self.outcomes.values())
        verb = "would mark dirty" if self.dry_run else "marked dirty"
        line = (
            f"{'[dry run] ' if self.dry_run else ''}checked {checked}, {verb} {self.marked}, "
            f"unchanged {checked - self.marked}"
        )
        details = ", ".join(
            f"{why} {n}" for why, n in sorted(self.outcomes.items()) if why != UNCHANGED
        )
        self.stdout.write(f"{line} ({details})" if details else line)

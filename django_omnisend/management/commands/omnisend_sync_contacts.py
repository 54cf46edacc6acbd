"""``manage.py omnisend_sync_contacts``: backfill users to Omnisend through batches.

Covers every user (``--all``, the default) or those the filters choose (``--since``,
``--user-id``, ``--never-synced``; they combine). Marks the chosen users dirty (in SQL, a
chunk at a time), then sends them 100 to a ``POST /batches`` and records each item's outcome
on its user's sync row. Interrupt it at any time: the next run picks up the batches already
sent instead of sending them again.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import datetime
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_omnisend.adapter import ContactAdapter, get_adapter
from django_omnisend.exceptions import ServerError, TransportError
from django_omnisend.models import SyncState
from django_omnisend.sync.bulk import BulkReport, chunked, mark_users, select_users, send_in_batches
from django_omnisend.sync.payloads import plan_contact
from django_omnisend.sync.reachability import advice, unreachable_reason


def _since(value: str) -> datetime:
    moment = parse_datetime(value)
    if moment is None:
        day = parse_date(value)
        if day is None:
            raise CommandError(f"--since {value!r} is not a date (YYYY-MM-DD) or datetime.")
        moment = datetime(day.year, day.month, day.day)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


#: Command-line filters and their option names: each narrows the default, every user.
FILTERS = {"--since": "since", "--user-id": "user_ids", "--never-synced": "never_synced"}


class Command(BaseCommand):
    help = (
        "Send every user (or those the filters choose) to Omnisend as contacts through "
        "/batches (resumable)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--all",
            action="store_true",
            help="Every user (the default when no filter is given); users the adapter "
            "excludes are reported as skipped.",
        )
        parser.add_argument(
            "--since", help="Only users who joined on or after this date (YYYY-MM-DD)."
        )
        parser.add_argument(
            "--user-id", action="append", dest="user_ids", help="Only this user (repeatable)."
        )
        parser.add_argument(
            "--never-synced", action="store_true", help="Only users never sent before."
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Show what would be sent; send nothing."
        )
        parser.add_argument(
            "--fail-on-error",
            action="store_true",
            dest="fail_on_error",
            default=None,
            help="Exit with status 1 if any user failed (the default from the command line).",
        )
        parser.add_argument(
            "--no-fail-on-error", action="store_false", dest="fail_on_error", default=None
        )
        parser.add_argument(
            "--max-seconds", type=float, default=None, help="Stop sending after this long."
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="No progress bar, summary only."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        filters = [
            flag for flag, option in FILTERS.items() if options[option] not in (None, False, [])
        ]
        if options["all"] and filters:
            # "--all --since X" is ambiguous: refuse before marking anyone.
            raise CommandError(
                f"--all selects every user, but {', '.join(filters)} narrows the selection: "
                "drop --all to use the filter, or drop the filter to send everyone."
            )
        since = _since(options["since"]) if options["since"] else None
        users = select_users(
            since=since, user_ids=options["user_ids"], never_synced=options["never_synced"]
        )
        adapter = get_adapter()
        if options["dry_run"]:
            self._dry_run(users, adapter)
            return
        custom_key = type(adapter).get_connection_key is not ContactAdapter.get_connection_key
        marked = mark_users(users, adapter.get_connection_key if custom_key else None)
        self.stdout.write(f"Marked {marked} users for sync.")
        self._total = SyncState.objects.filter(dirty=True).count()
        self._started = time.monotonic()
        self._last_line = 0.0
        show = not options["no_progress"]
        try:
            report = send_in_batches(
                progress=self._progress if show else None, max_seconds=options["max_seconds"]
            )
        except (TransportError, ServerError) as exc:  # reading a batch's outcome failed
            raise CommandError(self._unreachable(unreachable_reason(exc))) from exc
        report.marked = marked
        if show and self._isatty():
            self.stdout.write("")
        self._summary(report)
        if report.unreachable and report.pending:
            raise CommandError(self._unreachable(report.unreachable, report.pending))
        fail_on_error = options["fail_on_error"]
        if fail_on_error is None:
            # On by default from the command line (cron and CI see the failure); off when
            # called from code, which reads the summary instead.
            fail_on_error = self._from_command_line
        if fail_on_error and report.failed:
            raise CommandError(
                f"{report.failed} users failed; see the sync states in the admin "
                "(filter by state 'Dead') for Omnisend's reasons.",
                returncode=1,
            )

    @staticmethod
    def _unreachable(why: str, pending: int | None = None) -> str:
        left = f"{pending} users are still pending" if pending else "Users are still pending"
        return (
            f"Omnisend unreachable: {why}. {left}; nothing is lost: the drain "
            f"(omnisend_drain) retries them with backoff, or run this command again. {advice()}"
        )

    _from_command_line = False

    def run_from_argv(self, argv: list[str]) -> None:
        self._from_command_line = True
        super().run_from_argv(argv)

    def _isatty(self) -> bool:
        return hasattr(self.stdout, "isatty") and self.stdout.isatty()

    def _progress(self, report: BulkReport) -> None:
        done = report.done
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed
        left = max(self._total - done, 0)
        eta = f"{left / rate:,.0f} s" if rate > 0 else "?"
        if self._isatty():
            width = 30
            filled = int(width * done / self._total) if self._total else width
            bar = "#" * filled + "-" * (width - filled)
            self.stdout.write(
                f"\r[{bar}] {done:,}/{self._total:,} {rate:,.0f}/s ETA {eta}   ", ending=""
            )
            self.stdout.flush()
        elif time.monotonic() - self._last_line >= 5:
            self._last_line = time.monotonic()
            self.stdout.write(f"{done:,}/{self._total:,} done, {rate:,.0f}/s, ETA {eta}")

    def _summary(self, report: BulkReport) -> None:
        skipped = ", ".join(f"{n} {reason}" for reason, n in sorted(report.skipped.items()))
        self.stdout.write(
            f"Sent {report.sent}, unchanged {report.unchanged}, "
            f"skipped {sum(report.skipped.values())}"
            + (f" ({skipped})" if skipped else "")
            + f", failed {report.failed}, retrying later {report.retrying}, "
            f"still pending {report.pending}; {report.batches} batches, "
            f"{report.requests} API requests."
        )

    def _dry_run(self, users: Any, adapter: ContactAdapter) -> None:
        counts: Counter = Counter()
        for chunk in chunked(users.iterator(1000), 1000):
            sent = dict(
                SyncState.objects.filter(user_id__in=[u.pk for u in chunk]).values_list(
                    "user_id", "payload_hash"
                )
            )
            for user in chunk:
                plan = plan_contact(user, adapter)
                if plan.skip_reason:
                    counts[f"skip ({plan.skip_reason})"] += 1
                elif sent.get(user.pk) == plan.payload_hash:
                    counts["unchanged"] += 1
                else:
                    counts["would send"] += 1
        total = sum(counts.values())
        self.stdout.write(f"Dry run: {total} users selected; nothing was sent.")
        for label, n in sorted(counts.items()):
            self.stdout.write(f"  {label}: {n}")

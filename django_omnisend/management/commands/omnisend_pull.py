"""``manage.py omnisend_pull``: read contact changes made inside Omnisend (unsubscribes).

Polls ``GET /contacts?updatedAtFrom=…`` from where the last run stopped (less a 5-minute
overlap, see :data:`django_omnisend.sync.pull.PULL_OVERLAP`) and hands newer e-mail
statuses to ``ContactAdapter.record_status`` (see :mod:`django_omnisend.sync.pull`). Never writes
to Omnisend and never marks a user for sync. Run it from cron, e.g. every 15 minutes.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_omnisend.connect import DEFAULT_KEY
from django_omnisend.exceptions import OmnisendError
from django_omnisend.sync.pull import pull
from django_omnisend.sync.reachability import advice, unreachable_reason


def parse_since(value: str) -> datetime:
    """An ISO 8601 date or datetime; naive values are in the site's ``TIME_ZONE``."""
    moment = parse_datetime(value.strip().replace("Z", "+00:00"))
    if moment is None:
        day = parse_date(value.strip())
        if day is None:
            raise CommandError(f"--since: {value!r} is not an ISO 8601 date or datetime.")
        moment = datetime.combine(day, time.min)
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment.astimezone(UTC)


class Command(BaseCommand):
    help = (
        "Read contacts changed inside Omnisend since the last run and hand newer e-mail "
        "statuses (unsubscribes) to the adapter's record_status()."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--connection",
            default=DEFAULT_KEY,
            help='Connection key to pull ("default", or a tenant Connection pk).',
        )
        parser.add_argument(
            "--since",
            default=None,
            help="Start here (ISO 8601) instead of the stored resume point "
            "(first run default: one day ago).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Read and report, but hand nothing over and store no resume point.",
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        since = parse_since(options["since"]) if options["since"] else None
        try:
            result = pull(options["connection"], since=since, dry_run=options["dry_run"])
        except OmnisendError as exc:
            why = unreachable_reason(exc)
            if why:
                raise CommandError(
                    f"Omnisend unreachable: {why}. The resume point kept what was read before; "
                    f"the next run continues from there. {advice()}"
                ) from exc
            raise CommandError(f"Pulling from Omnisend failed: {exc}") from exc
        if options["json"]:
            self.stdout.write(json.dumps(result.as_dict(), indent=2))
            return
        data = result.as_dict()
        verb = "would hand over" if result.dry_run else "handed over"
        self.stdout.write(
            f"{'[dry run] ' if result.dry_run else ''}contacts read {result.read}, "
            f"matched users {result.matched}, status changes {verb} {result.handed_over}, "
            f"unknown contacts {result.unknown}; since {data['since']}, "
            f"pulled until {data['pulled_until']}"
        )

"""``manage.py omnisend_declare_events``: declare the site's custom events to Omnisend.

Sends every declaration (``register_event()`` in apps' ``omnisend_events.py`` modules and
``OMNISEND["EVENTS"]``) to the brand of each chosen connection: ``POST /event-metadata`` for a
new event, ``PUT`` to merge a changed one, nothing for one Omnisend already holds, so a second
run changes nothing and says so. ``--dry-run`` only reads. Exit code 1 when any declaration or
connection failed (the messages say why and what to do).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_omnisend import connect
from django_omnisend.declare import CREATED, FAILED, MERGED, UNCHANGED, declare_events
from django_omnisend.event_declarations import declared_events
from django_omnisend.exceptions import ImproperlyConfigured, OmnisendError
from django_omnisend.sync.reachability import advice, unreachable_reason

VERBS = {
    CREATED: ("declared", "would declare"),
    MERGED: ("merged", "would merge"),
    UNCHANGED: ("unchanged", "unchanged"),
    FAILED: ("FAILED", "would fail"),
}


def all_connection_keys() -> list[str]:
    """``"default"`` and the key of every active connection that belongs to an owner."""
    from django_omnisend.models import Connection

    keys = [connect.DEFAULT_KEY]
    for row in (
        Connection.objects.filter(status=Connection.Status.ACTIVE)
        .exclude(owner_type__isnull=True)
        .order_by("pk")
    ):
        keys.append(str(row.pk))
    return keys


class Command(BaseCommand):
    help = (
        "Declare the site's custom events (register_event(), OMNISEND['EVENTS']) to Omnisend's "
        "Event Metadata API, or merge changes; a second run changes nothing."
    )

    def add_arguments(self, parser: Any) -> None:
        which = parser.add_mutually_exclusive_group()
        which.add_argument(
            "--connection",
            action="append",
            metavar="KEY",
            help='Connection key to declare in ("default", a Connection pk, or '
            '"owner:app_label.model:pk"); repeat for several. Default: "default".',
        )
        which.add_argument(
            "--all",
            action="store_true",
            help="Declare in the site's brand and in every active owner's connection.",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Read Omnisend and report; change nothing."
        )
        parser.add_argument("--json", action="store_true", help="Print the result as JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            declarations = declared_events()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from None
        if not declarations:
            self.stdout.write(
                "No custom events are declared: add register_event() calls to an app's "
                "omnisend_events.py, or OMNISEND['EVENTS']."
            )
            return
        keys = all_connection_keys() if options["all"] else options["connection"] or ["default"]
        dry_run = options["dry_run"]
        report: list[dict[str, Any]] = []
        failed = False
        for key in keys:
            entry: dict[str, Any] = {"connection": key, "events": [], "error": ""}
            report.append(entry)
            try:
                with connect.client_for_key(key) as client:
                    outcomes = declare_events(client, declarations, dry_run=dry_run)
            except OmnisendError as exc:
                failed = True
                why = unreachable_reason(exc)
                entry["error"] = f"Omnisend unreachable: {why}. {advice()}" if why else str(exc)
                continue
            entry["events"] = [o.as_dict() for o in outcomes]
            failed = failed or any(o.action == FAILED for o in outcomes)
        if options["json"]:
            self.stdout.write(json.dumps({"dry_run": dry_run, "connections": report}, indent=2))
        else:
            self._print(report, dry_run)
        if failed:
            raise CommandError("Some events were not declared; see the messages above.")

    def _print(self, report: list[dict[str, Any]], dry_run: bool) -> None:
        prefix = "[dry run] " if dry_run else ""
        for entry in report:
            self.stdout.write(f"{prefix}connection {entry['connection']}:")
            if entry["error"]:
                self.stdout.write(f"  {entry['error']}")
                continue
            for event in entry["events"]:
                verb = VERBS[event["action"]][1 if dry_run else 0]
                self.stdout.write(f"  {verb}: {event['name']!r} (origin {event['origin']})")
                for change in event["changes"]:
                    self.stdout.write(f"    - {change}")
                if event["kept"]:
                    kept = ", ".join(event["kept"])
                    self.stdout.write(f"    kept in Omnisend, not declared here: {kept}")
                if event["error"]:
                    self.stdout.write(f"    {event['error']}")
            counts = {a: sum(e["action"] == a for e in entry["events"]) for a in VERBS}
            if counts[UNCHANGED] == len(entry["events"]):
                self.stdout.write("  Nothing to change: Omnisend holds every declaration.")
            else:
                self.stdout.write(
                    f"  {counts[CREATED]} new, {counts[MERGED]} merged, "
                    f"{counts[UNCHANGED]} unchanged, {counts[FAILED]} failed."
                )

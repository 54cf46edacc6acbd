"""``manage.py omnisend_import_orders``: send past orders to Omnisend through event batches.

Reads :class:`~django_omnisend.commerce.ImportedOrder` objects from ``--source`` (a dotted
path to a callable returning an iterable of them), builds ``placed order`` and ``ordered
product`` events for each (fixed ids, timed at the order's ``created_at``) and posts them
100 to a ``POST /batches`` (endpoint ``events``). Omnisend runs automations on imported
events too, so pause them first (docs: reference/omnisend-api.rst); the command refuses to
send until told they are paused. Re-running is safe for orders older than
``EVENT_HISTORY_SECONDS``: Omnisend drops a historical event whose ``eventID`` and
``eventTime`` it already has.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils.module_loading import import_string

from django_omnisend.adapter import normalize_email
from django_omnisend.commerce import CommerceError, ImportedOrder, as_request, order_events
from django_omnisend.conf import omnisend_settings
from django_omnisend.connect import DEFAULT_KEY, client_for_key
from django_omnisend.exceptions import OmnisendError
from django_omnisend.sync.events import PHONE_RE
from django_omnisend.sync.reachability import advice, unreachable_reason

BATCH_SIZE = 100
WARNING = (
    "Pause your Omnisend automations before importing past orders: Omnisend runs them on "
    "imported events too, so customers would get order messages for old orders. Resume them "
    "once the batches have finished."
)


def _contact(imported: ImportedOrder) -> dict[str, str]:
    email = normalize_email(imported.email) if imported.email else None
    phone = imported.phone.strip() if imported.phone else ""
    contact = {"email": email, "phone": phone if PHONE_RE.match(phone) else None}
    return {k: v for k, v in contact.items() if v}


def _batches(items: Iterable[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == BATCH_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class Command(BaseCommand):
    help = (
        "Send past orders to Omnisend as 'placed order' and 'ordered product' events through "
        "/batches. Pause Omnisend automations first."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--source",
            required=True,
            help="Dotted path to a callable returning an iterable of "
            "django_omnisend.commerce.ImportedOrder.",
        )
        parser.add_argument("--connection", default=DEFAULT_KEY, help="Connection key to send to.")
        parser.add_argument(
            "--dry-run", action="store_true", help="Build and check every event; send nothing."
        )
        parser.add_argument(
            "--automations-paused",
            action="store_true",
            help="Confirm the brand's automations are paused (required to send).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self.stderr.write(self.style.WARNING(f"WARNING: {WARNING}"))
        try:
            source = import_string(options["source"])
        except ImportError as exc:
            raise CommandError(
                f"--source {options['source']!r} cannot be imported ({exc}); give the dotted "
                "path of a callable returning ImportedOrder objects."
            ) from exc
        if not options["dry_run"] and not options["automations_paused"]:
            raise CommandError(
                "Nothing sent. Pause the automations in Omnisend, then run again with "
                "--automations-paused (or try --dry-run first)."
            )
        origin = omnisend_settings.event_origin
        counts = {"orders": 0, "events": 0, "skipped": 0}

        def requests() -> Iterator[dict[str, Any]]:
            for n, imported in enumerate(source(), start=1):
                if not isinstance(imported, ImportedOrder):
                    raise CommandError(
                        f"Item {n} from --source is a {type(imported).__name__}, not an "
                        "ImportedOrder."
                    )
                contact = _contact(imported)
                if not contact:
                    counts["skipped"] += 1  # no valid e-mail or phone to identify anybody
                    continue
                try:
                    events = order_events(imported.order)
                except CommerceError as exc:
                    raise CommandError(
                        f"Order {imported.order.order_id!r}: {exc}. Fix the source; nothing "
                        "after the batches already reported was sent."
                    ) from exc
                counts["orders"] += 1
                for event in events:
                    counts["events"] += 1
                    yield as_request(event, contact, origin)

        sent_batches: list[str] = []
        failed = 0
        client = None if options["dry_run"] else self._client(options["connection"])
        for chunk in _batches(requests()):
            if client is None:
                continue
            try:
                batch = client.batches.create("events", chunk, origin=origin)
            except OmnisendError as exc:
                why = unreachable_reason(exc)
                hint = advice(why) if why else "Check the connection with omnisend_status."
                raise CommandError(
                    f"Sending a batch failed after {len(sent_batches)} batch(es) ({exc}). "
                    f"{hint} Re-running is safe for orders older than an hour."
                ) from exc
            sent_batches.append(batch["batchID"])
            failed += self._errors(client, batch["batchID"])
        verb = "Would send" if options["dry_run"] else "Sent"
        self.stdout.write(
            f"{verb} {counts['events']} events for {counts['orders']} orders in "
            f"{-(-counts['events'] // BATCH_SIZE)} batch(es); skipped {counts['skipped']} "
            "orders without a valid e-mail address or phone."
        )
        if sent_batches:
            self.stdout.write("Batches: " + ", ".join(sent_batches))
        if failed:
            raise CommandError(
                f"Omnisend refused {failed} event(s); see GET /batches/<id>/items for each."
            )

    def _client(self, key: str):
        try:
            return client_for_key(key)
        except OmnisendError as exc:
            raise CommandError(
                f"No Omnisend client for connection {key!r} ({exc}). Connect it first."
            ) from exc

    @staticmethod
    def _errors(client, batch_id: str) -> int:
        """Items Omnisend has already refused (a batch still running reports 0 so far)."""
        try:
            return int(client.batches.get(batch_id).get("errorsCount") or 0)
        except OmnisendError:
            return 0

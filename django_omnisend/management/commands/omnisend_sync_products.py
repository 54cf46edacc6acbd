"""``manage.py omnisend_sync_products``: send the whole catalog to Omnisend through batches.

Categories, then products, 100 to a ``POST /batches`` (what exists already is replaced with
``PUT`` batches), so it can be run again at any time. ``--dry-run`` builds and validates
every product and sends nothing. Needs ``OMNISEND["PRODUCT_ADAPTER"]``.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from django_omnisend.catalog.adapter import get_product_adapter
from django_omnisend.catalog.backfill import backfill
from django_omnisend.exceptions import OmnisendError


class Command(BaseCommand):
    help = "Send every product and category to Omnisend's catalog through /batches."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Build and check everything; send nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        adapter = get_product_adapter()
        if adapter is None:
            raise CommandError(
                'Catalog sync is off: set OMNISEND["PRODUCT_ADAPTER"] to the dotted path of '
                "your ProductAdapter subclass, then run this again."
            )
        dry_run = options["dry_run"]
        try:
            report = backfill(adapter, dry_run=dry_run)
        except OmnisendError as exc:
            raise CommandError(f"The catalog backfill stopped: {exc}") from exc
        verb = "would be sent" if dry_run else "sent"
        self.stdout.write(
            f"{report.categories} categories and {report.products} products {verb}"
            + ("" if dry_run else f" in {report.batches} batches")
            + f"; {len(report.invalid)} invalid (left out)."
        )
        for what, problems in report.invalid:
            self.stdout.write(f"  invalid {what}: {'; '.join(problems)}")
        if report.failed:
            counts = ", ".join(f"{n} with HTTP {code}" for code, n in sorted(report.failed.items()))
            self.stdout.write(f"Omnisend refused {sum(report.failed.values())} items ({counts}):")
            for line in report.failures:
                self.stdout.write(f"  {line}")

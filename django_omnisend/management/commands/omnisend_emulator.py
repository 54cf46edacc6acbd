"""``manage.py omnisend_emulator``: run the bundled Omnisend emulator (same options as
``python -m django_omnisend.emulator``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from django_omnisend.emulator.__main__ import add_arguments, run


class Command(BaseCommand):
    help = (
        "Run the local Omnisend emulator (OAuth server + API 2026-03-15); prints its URLs and "
        "the demo client's credentials, serves until Ctrl-C."
    )
    # The emulator reads none of the site's settings, and it is what a new site's credentials
    # come from: a site that fails its checks for want of them (E008) must still start it.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: Any) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run(options, out=self.stdout)

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

    def add_arguments(self, parser: Any) -> None:
        add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        run(options, out=self.stdout)

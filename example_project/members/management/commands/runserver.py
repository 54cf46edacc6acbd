"""``manage.py runserver`` of the example: Django's (with static files), on loopback only.

The example runs with ``DEBUG`` on, a development ``SECRET_KEY`` and a demo superuser, so it
must never listen where the network reaches it: an address that is not loopback (``0.0.0.0``,
a LAN address, a host name other than ``localhost``) stops the command with an error.
"""

from __future__ import annotations

from typing import Any

from django.contrib.staticfiles.management.commands.runserver import Command as StaticRunserver
from django.core.management.base import CommandError

from django_omnisend.emulator.hosts import is_loopback

#: The error for a host that is not loopback (``demo --host`` says the same).
NOT_LOOPBACK = (
    "The example serves on loopback addresses only (127.0.0.1, ::1, localhost), not {host!r}: "
    "it runs with DEBUG on, a development SECRET_KEY and a demo superuser."
)


class Command(StaticRunserver):
    help = StaticRunserver.help + " The example's copy binds loopback addresses only."

    def run(self, **options: Any) -> None:
        """Refuse before anything binds when the parsed address is not loopback."""
        # handle() has parsed ADDRPORT into self.addr (brackets of an IPv6 address removed).
        addr: str = getattr(self, "addr", "")
        if not is_loopback(addr):
            raise CommandError(NOT_LOOPBACK.format(host=addr))
        super().run(**options)

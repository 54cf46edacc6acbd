"""``manage.py omnisend_rotate_keys``: re-encrypt every stored secret with the newest key.

Procedure (README, security notes): put the new key first in ``OMNISEND["ENCRYPTION_KEYS"]``
and deploy; run this command; then remove the old key. Rows are read in batches
(``iterator(chunk_size)``) and written back with ``bulk_update``: loading decrypts with any
configured key, saving encrypts with the newest, so running it again is harmless. A row that no
key decrypts is reported and flagged "needs reconnect"; its ciphertext is left as it is and the
other rows are still rotated. Client registrations (their ``client_secret``) are rotated the
same way; one no key opens is reported and replaced by a new registration at the next Connect.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from ...connect import mark_needs_reconnect
from ...fields import Undecryptable
from ...models import ClientRegistration, Connection

SECRET_FIELDS = ("access_token", "refresh_token", "api_key")


class Command(BaseCommand):
    help = (
        "Re-encrypt every stored Omnisend secret with the newest OMNISEND['ENCRYPTION_KEYS'] key."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows per read and write (default 500)."
        )

    def handle(self, *args: Any, batch_size: int = 500, **options: Any) -> None:
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        rotated = secrets = skipped = 0
        broken: list[Connection] = []
        batch: list[Connection] = []

        def flush() -> None:
            if batch:
                with transaction.atomic():
                    Connection.objects.bulk_update(batch, SECRET_FIELDS, batch_size=batch_size)
                batch.clear()

        for connection in Connection.objects.order_by("pk").iterator(chunk_size=batch_size):
            if connection.undecryptable:
                broken.append(connection)
                continue
            count = sum(1 for name in SECRET_FIELDS if getattr(connection, name))
            if not count:
                skipped += 1
                continue
            rotated += 1
            secrets += count
            batch.append(connection)
            if len(batch) >= batch_size:
                flush()
        flush()

        for connection in broken:
            mark_needs_reconnect(
                connection,
                "The stored credentials cannot be decrypted with any key in "
                "OMNISEND['ENCRYPTION_KEYS']; reconnect or enter the API key again.",
            )
            self.stderr.write(
                f"Connection {connection.pk} ({connection.brand_id or 'no brand'}): cannot be "
                "decrypted with any configured key; marked as needing a reconnect."
            )
        self.stdout.write(
            f"Re-encrypted {secrets} secret(s) in {rotated} connection(s) with the newest key; "
            f"{skipped} without secrets; {len(broken)} undecryptable."
        )
        self._rotate_registrations(batch_size)

    def _rotate_registrations(self, batch_size: int) -> None:
        rotated: list[ClientRegistration] = []
        broken = 0
        rows = ClientRegistration.objects.exclude(client_secret="").order_by("pk")
        for row in rows.iterator(chunk_size=batch_size):
            if isinstance(row.client_secret, Undecryptable):
                broken += 1
                self.stderr.write(
                    f"Client registration {row.pk} ({row.client_id}): its secret cannot be "
                    "decrypted with any configured key; the next Connect registers again."
                )
                continue
            rotated.append(row)
        with transaction.atomic():
            ClientRegistration.objects.bulk_update(
                rotated, ["client_secret"], batch_size=batch_size
            )
        self.stdout.write(
            f"Re-encrypted {len(rotated)} client registration secret(s); {broken} undecryptable."
        )

"""Sending an outbox item: an event, an erasure, or a catalog write."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from .. import catalog, exceptions
from ..models import OutboxItem
from . import erasure
from . import gates as delivery
from .drain_host import DrainHost
from .policy import LeaseLost


class OutboxRows(DrainHost):
    """Mixin of :class:`~django_omnisend.sync.loop.Drain`: events, erasures, catalog."""

    # -- events and erasures ----------------------------------------------------------------

    def outbox(self, item: OutboxItem) -> None:
        if not self.gate_allows(item):
            return
        client = self.client(item)
        if client is None:
            return
        sent = True
        try:
            if item.kind == OutboxItem.Kind.ERASURE:
                sent = erasure.erase(item, client, self.send)
            elif item.kind in catalog.KINDS:
                sent = catalog.deliver(item, client, self.send)
            else:
                self.send(item, client.events.send, dict(item.payload))
        except LeaseLost:
            self.lease_lost(item, wrote=False)
            return
        except erasure.BatchOpen:
            # The address travels in a backfill batch Omnisend has not processed: erasing now
            # would find nothing and the batch would recreate the contact. No attempt spent.
            self.fenced(item).update(
                next_attempt_at=timezone.now() + timedelta(seconds=erasure.BATCH_WAIT_SECONDS),
                lease_until=None,
                lease_owner="",
            )
            return
        except exceptions.OmnisendError as exc:
            if self.failed(item, exc) == "dead" and item.kind == OutboxItem.Kind.ERASURE:
                erasure.settled(item)
            return
        delivery.record_success(item.connection_key)
        fields = {
            "state": OutboxItem.State.SENT if sent else OutboxItem.State.DISCARDED,
            "sent_at": timezone.now(),
            "last_error": "",
            "lease_until": None,
            "lease_owner": "",
        }
        if item.kind == OutboxItem.Kind.ERASURE:
            fields["email"] = ""  # keep only the keyed hash once the contact is anonymised
            if not sent:
                fields["last_error"] = "Discarded: the address has a new owner since."
        if not self.fenced(item).update(**fields) and self.exists(item):
            # Another worker holds the item now and sends it again (an erasure is idempotent,
            # an event carries its eventID): its outcome is the one recorded.
            self.lease_lost(item, wrote=False)
            return
        if item.kind == OutboxItem.Kind.ERASURE:
            self.result.erasures_sent += 1
            erasure.settled(item)
        elif item.kind in catalog.KINDS:
            self.result.catalog_sent += 1
        else:
            self.result.events_sent += 1

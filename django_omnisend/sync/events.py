"""``send_event()``: customer events through the durable outbox.

An event is stored in the caller's transaction and sent by the drain, so a rollback sends
nothing and an Omnisend outage loses nothing. Its ``eventID`` is fixed when it is queued, so
a retry carries the same id. Omnisend's recommended events (:mod:`django_omnisend.commerce`)
go through :func:`send_recommended` and :func:`send_order`, which also identify guests by
e-mail or phone.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from ..adapter import get_adapter, normalize_email
from ..commerce import Order, RecommendedEvent, order_events
from ..conf import omnisend_settings
from ..models import OutboxItem
from ..tasks import nudge_drain_on_commit
from . import marking as outbox
from .payloads import rfc3339

#: E.164, as Omnisend takes a contact's phone.
PHONE_RE = re.compile(r"^\+[1-9]\d{6,14}$")


def send_event(
    user: Any,
    name: str,
    properties: dict[str, Any] | None = None,
    *,
    event_time: datetime | None = None,
    event_id: str | None = None,
    email: str | None = None,
    phone: str | None = None,
    event_version: str | None = None,
    connection_key: str | None = None,
) -> OutboxItem | None:
    """Queue the customer event ``name`` for ``user``; returns the outbox item.

    ``user`` may be None for a guest, who is then identified by ``email`` and/or ``phone``
    (E.164); for a user, an explicit ``email`` replaces the adapter's. The contact carries
    identifiers only, never a subscription: an event cannot subscribe anybody.

    Returns None, sending nothing, when the adapter excludes the user or nobody valid is
    left to identify: Omnisend creates a contact for every event, so an event must not reach
    it for someone the site does not sync. ``event_version`` is for Omnisend's recommended
    events only (use :func:`send_recommended`).
    """
    if not name or not isinstance(name, str):
        raise ValueError("An Omnisend event needs a non-empty name, e.g. 'signed up'.")
    adapter = get_adapter()
    if user is None:
        if not (email or phone):
            raise ValueError(
                "An event without a user needs the guest's email= or phone= to identify them."
            )
        key = connection_key or "default"
        address = normalize_email(email) if email else None
    else:
        if not adapter.should_sync(user):
            return None
        key = connection_key or adapter.get_connection_key(user)
        address = normalize_email(email) if email else adapter.get_email(user)
    number = phone.strip() if isinstance(phone, str) else ""
    contact = {"email": address, "phone": number if PHONE_RE.match(number) else None}
    contact = {k: v for k, v in contact.items() if v}
    if not contact:
        return None
    payload: dict[str, Any] = {
        "eventName": name,
        "origin": omnisend_settings.event_origin,
        "eventID": event_id or str(uuid.uuid4()),
        "eventTime": rfc3339(event_time or timezone.now()),
        "contact": contact,
        "properties": dict(properties or {}),
    }
    if event_version is not None:
        payload["eventVersion"] = event_version
    item = outbox.add_event(connection_key=key, user=user, payload=payload)
    nudge_drain_on_commit()
    return item


def send_recommended(
    event: RecommendedEvent,
    user: Any = None,
    *,
    email: str | None = None,
    phone: str | None = None,
    connection_key: str | None = None,
) -> OutboxItem | None:
    """Queue a recommended event built by :mod:`django_omnisend.commerce`, once.

    Queueing the same event again (same fixed ``eventID``) while it is pending or after it
    was sent returns the first item and queues nothing: a re-run of the shop's order hook
    is never a second order in Omnisend. Returns None as :func:`send_event` does.
    """
    existing = (
        OutboxItem.objects.filter(kind=OutboxItem.Kind.EVENT, payload__eventID=event.event_id)
        .exclude(state__in=(OutboxItem.State.DEAD, OutboxItem.State.DISCARDED))
        .first()
    )
    if existing is not None:
        return existing
    return send_event(
        user,
        event.name,
        event.properties,
        event_time=event.event_time,
        event_id=event.event_id,
        email=email,
        phone=phone,
        event_version=event.version,
        connection_key=connection_key,
    )


def send_order(
    order: Order,
    user: Any = None,
    *,
    email: str | None = None,
    phone: str | None = None,
    connection_key: str | None = None,
) -> list[OutboxItem]:
    """Queue a new order: ``placed order`` and one ``ordered product`` per line.

    Every event is built (and checked) before any is queued, so a bad line raises
    :class:`~django_omnisend.commerce.CommerceError` and queues nothing. Call it inside the
    transaction that saves the order. Returns the queued items (empty when the contact is
    excluded or invalid).
    """
    events = order_events(order)
    items = [
        send_recommended(e, user, email=email, phone=phone, connection_key=connection_key)
        for e in events
    ]
    return [item for item in items if item is not None]


def historical_after(payload: dict[str, Any]) -> datetime | None:
    """When an event with this payload is old enough for Omnisend to deduplicate it.

    Omnisend drops a repeated ``eventID`` + ``eventTime`` only for historical events
    (docs: reference/omnisend-api.rst); it does not document when an event becomes historical, so
    ``OMNISEND["EVENT_HISTORY_SECONDS"]`` (an hour and five minutes by default) is the
    assumption. None when the payload lacks either field (nothing would deduplicate it) or
    the setting is None (retry at the usual backoff, accepting that a repeat may count twice).
    """
    wait = omnisend_settings.event_history_seconds
    moment = parse_datetime(str(payload.get("eventTime") or ""))
    if wait is None or moment is None or not payload.get("eventID"):
        return None  # None: the site prefers a prompt retry to a guarantee against repeats
    return moment + timedelta(seconds=float(wait))

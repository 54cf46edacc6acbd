"""``send_event()``: customer events through the durable outbox.

An event is stored in the caller's transaction and sent by the drain, so a rollback sends
nothing and an Omnisend outage loses nothing. Its ``eventID`` is fixed when it is queued, so
a retry carries the same id.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from django.utils import timezone

from . import outbox
from .adapters import get_adapter
from .conf import omnisend_settings
from .models import OutboxItem
from .payloads import rfc3339
from .wakeup import nudge_drain_on_commit


def send_event(
    user: Any,
    name: str,
    properties: dict[str, Any] | None = None,
    *,
    event_time: datetime | None = None,
    event_id: str | None = None,
) -> OutboxItem | None:
    """Queue the customer event ``name`` for ``user``; returns the outbox item.

    Returns None, sending nothing, when the adapter excludes the user or they have no valid
    e-mail address: Omnisend creates a contact for every event, so an event must not reach it
    for someone the site does not sync.
    """
    if not name or not isinstance(name, str):
        raise ValueError("An Omnisend event needs a non-empty name, e.g. 'signed up'.")
    adapter = get_adapter()
    email = adapter.get_email(user) if adapter.should_sync(user) else None
    if not email:
        return None
    payload = {
        "eventName": name,
        "origin": omnisend_settings.get("EVENT_ORIGIN"),
        "eventID": event_id or str(uuid.uuid4()),
        "eventTime": rfc3339(event_time or timezone.now()),
        "contact": {"email": email},
        "properties": dict(properties or {}),
    }
    item = outbox.add_event(
        connection_key=adapter.get_connection_key(user), user=user, payload=payload
    )
    nudge_drain_on_commit()
    return item

"""The flow's state in the session: one record per started connection, keyed by ``state``,
popped on first use and expired after :data:`STATE_TTL` seconds (docs: guides/security.rst,
'State').
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, QueryDict

#: Session key of the pending authorization requests, a dict keyed by ``state``.
SESSION_KEY = "omnisend_oauth"
#: Session key remembering where to go after confirming a brand switch (pk -> next URL).
PENDING_SESSION_KEY = "omnisend_oauth_pending"
#: Seconds a started connection may take to come back (docs: guides/security.rst, 'State').
STATE_TTL = 600
#: Started-but-unfinished flows kept per session; the oldest are dropped beyond this.
MAX_STATES = 10


def live_records(value: Any) -> dict[str, dict[str, Any]]:
    """The session's state records that are well formed and not expired."""
    if not isinstance(value, dict):
        return {}
    now = time.time()
    return {
        key: record
        for key, record in value.items()
        if isinstance(record, dict) and age(record, now) <= STATE_TTL
    }


def age(record: dict[str, Any], now: float) -> float:
    created = record.get("created_at")
    if isinstance(created, bool) or not isinstance(created, int | float):
        return float("inf")
    return now - created


def pop_state(request: HttpRequest, params: QueryDict) -> dict[str, Any] | None:
    state = params.get("state", "")
    stored = request.session.get(SESSION_KEY)
    if not state or not isinstance(stored, dict) or state not in stored:
        return None
    record = stored.pop(state)
    request.session[SESSION_KEY] = stored  # popped once: a replay finds nothing
    return record if isinstance(record, dict) else None


def remember(request: HttpRequest, state: str, record: dict[str, Any]) -> None:
    """Keep ``record`` under ``state``; beyond :data:`MAX_STATES` live ones the oldest go."""
    records = live_records(request.session.get(SESSION_KEY))
    records[state] = record
    while len(records) > MAX_STATES:
        oldest = min(records, key=lambda key: records[key].get("created_at", 0))
        del records[oldest]
    request.session[SESSION_KEY] = records

"""What one drain pass did (:class:`DrainResult`) and why a connection sent nothing
(:class:`Hold`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Hold:
    """Why a connection sent nothing: ``kind`` is "paused", "cooldown" or "breaker"."""

    kind: str
    reason: str
    #: When a cooldown or an open breaker ends (None for a pause).
    until: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "reason": self.reason,
            "until": self.until.isoformat() if self.until else None,
        }


@dataclass
class DrainResult:
    """What one :func:`drain` did; ``as_dict()`` is JSON-serialisable (task results)."""

    synced: int = 0
    unchanged: int = 0
    skipped: Counter = field(default_factory=Counter)
    retried: int = 0
    dead: int = 0
    deferred: int = 0
    events_sent: int = 0
    erasures_sent: int = 0
    #: Product and category writes sent (or found superseded by a newer one).
    catalog_sent: int = 0
    #: HTTP requests sent (not those the rate budget refused; a resend counts again).
    requests: int = 0
    paused: list[str] = field(default_factory=list)
    #: Why each connection key was held back in this pass (paused, cooling down, breaker).
    held: dict[str, Hold] = field(default_factory=dict)
    #: Requests Omnisend answered (a 2xx or a 4xx: it was reached).
    answered: int = 0
    #: Why the last request without a usable answer failed (refused, timeout, 5xx…), or "".
    unreachable: str = ""
    #: Connection keys with at least one request Omnisend accepted (2xx) in this pass.
    delivered: set[str] = field(default_factory=set)
    #: Rows whose lease ran out while their request was in flight (another worker took them
    #: over): no outcome was recorded, and the row was marked to be sent again.
    lost_leases: int = 0

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["skipped"] = dict(self.skipped)
        data["held"] = {key: hold.as_dict() for key, hold in self.held.items()}
        data["delivered"] = sorted(self.delivered)
        return data

    @property
    def omnisend_unreachable(self) -> bool:
        """Requests went out and none got an answer (Omnisend down, or the way to it)."""
        return bool(self.unreachable) and not self.answered

    @property
    def processed(self) -> int:
        return (
            self.synced
            + self.unchanged
            + sum(self.skipped.values())
            + self.retried
            + self.dead
            + self.events_sent
            + self.erasures_sent
            + self.catalog_sent
        )

"""The request ledger: one :class:`LedgerEntry` per request the emulator answered.

Tests assert on what reached "Omnisend" (not on client logs): method, path, query, headers,
body, status, when (``time`` is the same clock reading the rate limiter used), which brand,
how long it took, and whether a fault was injected.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from .http import json_or_none


@dataclass
class LedgerEntry:
    """One request and the answer it got (``status`` 0 = connection reset, no answer)."""

    method: str
    path: str
    #: Query parameters: a string per name, or a list when the name was repeated.
    query: dict[str, Any]
    headers: dict[str, str]
    body: bytes
    time: float
    status: int = 0
    brand_id: str | None = None
    duration: float = 0.0
    #: The injected fault kind, if one fired for this request.
    fault: str | None = None
    #: True when the request took a slot of its brand's rate-limit window.
    rate_counted: bool = False
    response_body: bytes = field(default=b"", repr=False)

    @property
    def json(self) -> Any:
        """The request body parsed as JSON, or None when empty or not JSON."""
        return json_or_none(self.body)

    @property
    def response_json(self) -> Any:
        """The response body parsed as JSON, or None."""
        return json_or_none(self.response_body)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (bodies decoded as UTF-8 with replacement)."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "json": self.json,
            "time": self.time,
            "status": self.status,
            "brand_id": self.brand_id,
            "duration": self.duration,
            "fault": self.fault,
            "rate_counted": self.rate_counted,
            "response_body": self.response_body.decode("utf-8", "replace"),
        }


class Ledger:
    """Thread-safe, append-only list of entries (cleared by ``reset()``).

    At most ``maxlen`` entries are kept (oldest dropped first) so a long-running emulator
    process does not grow without bound; tests never come near the default.
    """

    def __init__(self, maxlen: int = 100_000) -> None:
        self._entries: deque[LedgerEntry] = deque(maxlen=maxlen)
        self._lock = threading.Lock()

    def append(self, entry: LedgerEntry) -> None:
        """Record an entry (done when the request starts, then updated in place)."""
        with self._lock:
            self._entries.append(entry)

    def entries(self) -> list[LedgerEntry]:
        """A snapshot list of every entry, oldest first."""
        with self._lock:
            return list(self._entries)

    def filter(self, path_prefix: str = "", method: str | None = None) -> list[LedgerEntry]:
        """Entries whose path starts with ``path_prefix`` (and of ``method``, if given)."""
        return [
            e
            for e in self.entries()
            if e.path.startswith(path_prefix) and (method is None or e.method == method.upper())
        ]

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

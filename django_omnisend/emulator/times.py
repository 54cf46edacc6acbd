"""Time for the emulator: an advanceable clock and RFC 3339 parsing/formatting.

Every timestamp the emulator stores is a float of seconds since the epoch read from one
:class:`Clock`, so tests can move time forward (token expiry, code TTL, rate windows, delayed
tags and batches) without sleeping.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import UTC, date, datetime

_RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$",
)
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Clock:
    """Wall-clock seconds (``time.time()``) plus an offset that tests may advance."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._lock = threading.Lock()

    def __call__(self) -> float:
        """Return the current emulated time in epoch seconds, rounded to milliseconds.

        Millisecond resolution is what the API prints, so a timestamp read back from a response
        compares equal to the stored one (the status-date rule depends on that).
        """
        with self._lock:
            return round(time.time() + self._offset, 3)

    def advance(self, seconds: float) -> None:
        """Move the emulated time forward by ``seconds`` (never backwards)."""
        if seconds < 0:
            raise ValueError("The emulator clock only moves forward.")
        with self._lock:
            self._offset += seconds

    def reset(self) -> None:
        """Forget any advance: back to the real wall clock."""
        with self._lock:
            self._offset = 0.0


def parse_rfc3339(value: object) -> float | None:
    """Return epoch seconds for an RFC 3339 timestamp with an offset, or None if invalid.

    The space-separated form ``YYYY-MM-DD HH:MM:SS+HH:MM`` (accepted by events) passes too.
    """
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    text = value.replace("z", "Z").replace("t", "T")
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.timestamp()


def valid_date(value: object) -> bool:
    """True for a real calendar date written ``YYYY-MM-DD``."""
    if not isinstance(value, str) or not _DATE.match(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def format_rfc3339(ts: float) -> str:
    """Format epoch seconds as UTC RFC 3339 (``Z``), with milliseconds only when non-zero."""
    total_ms = round(ts * 1000)
    seconds, millis = divmod(total_ms, 1000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{millis:03d}Z" if millis else f"{text}Z"


def date_of(ts: float) -> str:
    """The UTC calendar date (``YYYY-MM-DD``) of epoch seconds."""
    return datetime.fromtimestamp(ts, UTC).date().isoformat()

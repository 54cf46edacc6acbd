"""Shorten reasons and error texts for bounded columns and one-line output, never mid-word.

``textwrap.shorten`` collapses whitespace and drops a text whose first word is too long;
Django's ``Truncator`` counts words or cuts characters mid-word. Reasons people act on need
neither: they keep their spacing, end on a whole word, and say they were shortened.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

ELLIPSIS = "…"
_LAST_SPACE = re.compile(r"\s(?=\S*$)")


def shorten(text: str, limit: int) -> str:
    """``text`` if it fits in ``limit`` characters, else its longest prefix ending on a whole
    word, followed by "…" (within ``limit``).

    Only a single word longer than the limit is cut inside (there is no boundary to cut at).
    """
    if len(text) <= limit:
        return text
    room = max(limit - len(ELLIPSIS), 0)
    # One character more than fits: if it is a space, the prefix already ends on a word.
    head = text[: room + 1]
    match = _LAST_SPACE.search(head)
    if match is not None and head[: match.start()].strip():
        head = head[: match.start()]
    else:
        head = text[:room]
    return head.rstrip(" \t\n,;:") + ELLIPSIS


def moment(when: datetime) -> str:
    """A time for people and logs: ``2026-03-15 09:30:00 UTC`` (seconds, always UTC)."""
    return when.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")

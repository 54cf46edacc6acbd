"""``marking()``: run a block with ``OMNISEND["MARK_WITH"]`` set, triggers installed if asked.

Shared by the sync tests (every contract test in both modes), the trigger tests and the fault
matrix, so all of them switch modes the same way and prove the triggers really mark.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection
from django.test import override_settings

from django_omnisend.sync import triggers


@contextmanager
def marking(base: dict[str, Any], mark_with: str) -> Iterator[dict[str, Any]]:
    """``base`` settings with ``MARK_WITH = mark_with``; yields them.

    With ``"trigger"`` the triggers are installed first (and must be active) and removed
    after, which matters where the test's writes are committed (transactional tests and
    worker processes); elsewhere the test's rollback would remove them anyway.
    """
    values = {**base, "MARK_WITH": mark_with}
    with override_settings(OMNISEND=values):
        if mark_with != "trigger":
            yield values
            return
        triggers.install()
        assert triggers.active(connection.alias), "the triggers are not marking"
        try:
            yield values
        finally:
            triggers.uninstall()

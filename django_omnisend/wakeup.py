"""Waking the drain through django.tasks after a commit.

The outbox table is the source of truth; a task only *wakes* a drain, so a lost task or a
dead worker loses nothing (``omnisend_drain`` or the next nudge picks the rows up). One nudge
is registered per transaction, however many users it saves.
"""

from __future__ import annotations

import logging

from django.db import router, transaction

from .conf import omnisend_settings
from .models import SyncState

logger = logging.getLogger(__name__)


def nudge_drain_on_commit(using: str | None = None) -> None:
    """Enqueue a drain when the current transaction commits (once per transaction).

    ``using`` defaults to the database that holds the sync tables: the rows the drain looks
    for are committed there, and a router may put them (and the user model) apart from
    ``default``, whose ``on_commit`` would then run at once, before they are visible.
    """
    if omnisend_settings.task_backend is None:
        return
    if using is None:
        using = router.db_for_write(SyncState)
    conn = transaction.get_connection(using)
    if conn.in_atomic_block and any(item[1] is _nudge for item in conn.run_on_commit):
        return
    transaction.on_commit(_nudge, using=using)


def _nudge() -> None:
    from .tasks import enqueue_drain

    try:
        enqueue_drain()
    except Exception:
        # The request that saved the user must not fail because a queue is down: the rows
        # are committed and the next drain (cron, loop or nudge) delivers them.
        logger.warning("Could not enqueue the Omnisend drain task.", exc_info=True)

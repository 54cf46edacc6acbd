"""The nudge: after a commit that marked rows, enqueue the django.tasks task that drains.

The outbox table is the source of truth; a task only *wakes* a drain, so a lost task or a
dead worker loses nothing (``omnisend_drain`` or the next nudge picks the rows up). One nudge
is registered per transaction, however many users it saves. The task runs
:func:`django_omnisend.sync.drain`; its dotted path (``django_omnisend.tasks.drain_outbox``)
is what queued tasks record, so this module stays where it is.

Django 6 ships ``django.tasks``; on Django 5.2 install the ``django-tasks`` backport. The
backend alias and queue come from ``OMNISEND["TASK_BACKEND"]`` and ``OMNISEND["TASK_QUEUE"]``
at enqueue time, never hard-coded, so the drain can have its own queue and workers.
Immediate backends are not used for nudges: they would run the drain, and its HTTP calls,
inside the request that saved the user (check ``django_omnisend.W006`` says so).
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import router, transaction

from .conf import omnisend_settings

# The nudge's log lines keep the logger name they always had.
logger = logging.getLogger("django_omnisend.wakeup")

try:  # Django >= 6.0
    from django.tasks import task, task_backends
except ImportError:  # pragma: no cover - Django 5.2 with the backport
    try:
        from django_tasks import task, task_backends  # type: ignore[no-redef,assignment]
    except ImportError:
        task = None  # type: ignore[assignment]
        task_backends = None  # type: ignore[assignment]

#: Upper bound of one task run; the rest is left for the next nudge or ``omnisend_drain``.
TASK_MAX_SECONDS = 55.0


def tasks_available() -> bool:
    """Whether a django.tasks implementation can be imported."""
    return task is not None


def backend_problem(alias: str | None = None) -> str:
    """Why nudges cannot go to ``alias`` (empty when they can)."""
    alias = alias or omnisend_settings.task_backend
    if alias is None:
        return ""
    if not tasks_available():
        return "django.tasks is not available (on Django 5.2 install django-tasks)"
    try:
        backend = task_backends[alias]
    except Exception as exc:
        return f"the django.tasks backend {alias!r} is not configured ({exc})"
    if type(backend).__name__ == "ImmediateBackend":
        return f"the django.tasks backend {alias!r} is immediate: drains would run in requests"
    try:
        # The backend validates a task when it is bound to it: a queue it does not serve
        # would otherwise only show as a warning in the log of every save.
        drain_task(alias)
    except Exception as exc:
        queues = sorted(getattr(backend, "queues", None) or [])
        return (
            f"the django.tasks backend {alias!r} refuses the drain task on queue "
            f"{drain_queue()!r} ({str(exc).rstrip('.')}; its QUEUES: "
            f"{', '.join(map(repr, queues)) or 'any'})"
        )
    return ""


def drain_queue() -> str:
    """The queue nudges go to: ``OMNISEND["TASK_QUEUE"]`` or the task's default queue."""
    queue = omnisend_settings.task_queue
    if queue:
        return queue
    return drain_outbox.queue_name if drain_outbox is not None else "default"


def drain_task(alias: str) -> Any:
    """:data:`drain_outbox` bound to backend ``alias`` and :func:`drain_queue`."""
    return drain_outbox.using(backend=alias, queue_name=drain_queue())


if task is not None:
    # Workers import the task by the function's dotted path, so the module attribute must be
    # the Task itself (decorated in place, not wrapped under another name).
    @task()
    def drain_outbox() -> dict[str, Any]:
        """Run one bounded drain; the result (counts) is JSON for the task backend."""
        from .sync.loop import drain

        return drain(max_seconds=TASK_MAX_SECONDS).as_dict()

else:  # pragma: no cover - no tasks framework installed
    drain_outbox = None


def enqueue_drain() -> Any:
    """Enqueue one drain on ``OMNISEND["TASK_BACKEND"]`` and ``["TASK_QUEUE"]``.

    Returns the task result, or None when no backend can take it (see :func:`backend_problem`).
    """
    alias = omnisend_settings.task_backend
    if alias is None or drain_outbox is None or backend_problem(alias):
        return None
    return drain_task(alias).enqueue()


def nudge_drain_on_commit(using: str | None = None) -> None:
    """Enqueue a drain when the current transaction commits (once per transaction).

    ``using`` defaults to the database that holds the sync tables: the rows the drain looks
    for are committed there, and a router may put them (and the user model) apart from
    ``default``, whose ``on_commit`` would then run at once, before they are visible.
    """
    if omnisend_settings.task_backend is None:
        return
    if using is None:
        from .models import SyncState  # this module is imported before the app registry

        using = router.db_for_write(SyncState)
    conn = transaction.get_connection(using)
    if conn.in_atomic_block and any(item[1] is _nudge for item in conn.run_on_commit):
        return
    transaction.on_commit(_nudge, using=using)


def _nudge() -> None:
    try:
        enqueue_drain()
    except Exception:
        # The request that saved the user must not fail because a queue is down: the rows
        # are committed and the next drain (cron, loop or nudge) delivers them.
        logger.warning("Could not enqueue the Omnisend drain task.", exc_info=True)

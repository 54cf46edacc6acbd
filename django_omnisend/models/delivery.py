"""Shared delivery state: ``DeliveryControl`` (pause, cooldown, breaker per connection),
``MarkSuppression`` (fixture loads the SQLite trigger skips) and ``RateBudgetSlot`` (the rate
budget in the database).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class DeliveryControl(models.Model):
    """Per-connection delivery switches shared by every worker: pause, cooldown, breaker.

    ``paused`` is the one source of truth for whether anything is sent to a connection
    (:func:`django_omnisend.sync.gates.gate` reads it for every sender).
    """

    connection_key = models.CharField(_("connection"), max_length=64, unique=True)
    #: Set on 401/403: nothing is sent (and no attempts are spent) until a reconnect.
    paused = models.BooleanField(_("paused"), default=False)
    paused_reason = models.CharField(_("paused reason"), max_length=255, blank=True)
    paused_at = models.DateTimeField(_("paused at"), null=True, blank=True)
    #: Fingerprint of the credential that was rejected: a new one (reconnect) resumes.
    paused_credential = models.CharField(_("paused credential"), max_length=16, blank=True)
    #: Set on 429 for the whole brand: no request before this time.
    cooldown_until = models.DateTimeField(_("cooldown until"), null=True, blank=True)
    #: Circuit breaker over consecutive 5xx/timeouts.
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    breaker_open_until = models.DateTimeField(_("breaker open until"), null=True, blank=True)
    #: ``omnisend_pull`` has read contact changes made inside Omnisend up to this time.
    pulled_until = models.DateTimeField(_("pulled until"), null=True, blank=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("delivery control")
        verbose_name_plural = _("delivery controls")

    def __str__(self) -> str:
        return f"{self.connection_key}{' (paused)' if self.paused else ''}"


class MarkSuppression(models.Model):
    """A user whose row the SQLite mark trigger must not touch: a fixture load is writing it.

    Used only with ``OMNISEND["MARK_WITH"] = "trigger"`` on SQLite (PostgreSQL uses a
    transaction-local setting instead). The ``pre_save`` receiver of a raw (fixture) save
    inserts the row and ``post_save`` deletes it, both inside the load's transaction, so the
    trigger between them skips that user, as the ``post_save`` mark skips raw saves. The
    trigger reads it by primary key; the table is empty between loads.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        primary_key=True,
        # The row may name a user the same fixture has not inserted yet.
        db_constraint=False,
        on_delete=models.DO_NOTHING,
        related_name="+",
    )

    class Meta:
        verbose_name = _("trigger mark suppression")
        verbose_name_plural = _("trigger mark suppressions")

    def __str__(self) -> str:
        return f"no trigger mark for user {self.user_id}"


class RateBudgetSlot(models.Model):
    """One sub-window counter of a request budget kept in the database (or a key's cooldown).

    Used by :class:`~django_omnisend.ratelimit.RateLimiter` when ``OMNISEND["RATE_LIMIT_CACHE"]``
    is not shared between processes (no Redis or Memcached): ``count`` requests were admitted
    for ``key`` in sub-window ``slot_index``. The row with ``slot_index`` -1 holds the key's
    cooldown deadline (Unix milliseconds) in ``count``. Rows older than the window are
    deleted as the budget moves on, so the table holds a few dozen rows per key.
    """

    key = models.CharField(_("key"), max_length=200)
    slot_index = models.BigIntegerField(_("sub-window"))
    count = models.BigIntegerField(_("count"), default=0)

    class Meta:
        verbose_name = _("rate budget slot")
        verbose_name_plural = _("rate budget slots")
        constraints = [
            # Also the index of every budget statement: key = %s AND slot_index BETWEEN ...
            models.UniqueConstraint(
                fields=["key", "slot_index"], name="django_omnisend_budget_slot_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} [{self.slot_index}] = {self.count}"

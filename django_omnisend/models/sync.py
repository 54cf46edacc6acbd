"""The sync tables: ``SyncState`` (one row per user: dirty, leased, what was sent) and
``OutboxItem`` (events, erasures and catalog writes waiting to be sent).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class SyncStateQuerySet(models.QuerySet):
    def due(self, now=None) -> SyncStateQuerySet:
        """Rows that want sending now and are not leased by a live worker."""
        now = now or timezone.now()
        return self.filter(dirty=True, next_attempt_at__lte=now).filter(
            models.Q(lease_until__isnull=True) | models.Q(lease_until__lt=now)
        )


class SyncState(models.Model):
    """The sync outbox row of one user on one connection: coalesced, leased, idempotent.

    Saves bump ``generation`` and set ``dirty`` in the same transaction as the user write;
    a drain sends the *current* user and clears ``dirty`` only if ``generation`` did not move
    while the request was in flight.
    """

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SYNCED = "synced", _("Synced")
        FAILED = "failed", _("Failed (will retry)")
        DEAD = "dead", _("Dead (gave up)")
        SKIPPED = "skipped", _("Skipped")
        #: A label for the admin: the row's request was refused (401/403/410). Whether the
        #: connection is paused is ``DeliveryControl.paused``; this state is never read to decide.
        PAUSED = "paused", _("Paused (needs reconnect)")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="omnisend_sync_states",
    )
    #: "default" for the site's one brand, or a tenant's Connection pk (see the adapter).
    connection_key = models.CharField(_("connection"), max_length=64, default="default")
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    #: Machine-readable reason for skipped/failed/dead rows (e.g. ``invalid_email``).
    reason = models.CharField(_("reason"), max_length=64, blank=True, db_index=True)
    dirty = models.BooleanField(_("dirty"), default=True)
    generation = models.PositiveBigIntegerField(_("generation"), default=1)
    dirtied_at = models.DateTimeField(_("dirtied at"), null=True, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=64, blank=True)

    contact_id = models.CharField(_("Omnisend contact ID"), max_length=64, blank=True)
    #: The normalised e-mail the contact is bound to (what was last sent).
    email = models.CharField(_("e-mail"), max_length=320, blank=True, db_index=True)
    #: The address (normalised, lower-case) this row owns on its connection: the binding.
    #: Unique per connection, so the first row to bind an address owns it and every other
    #: user with that address is a duplicate; NULL while the row owns nothing.
    address = models.CharField(  # noqa: DJ001 - NULL, unlike "", never clashes in the constraint
        _("bound address"), max_length=320, null=True, blank=True
    )
    #: The address the row waits for (another row owns it, or its erasure is pending): a
    #: release of that address wakes the row at once instead of at its next backoff.
    wanted_address = models.CharField(
        _("wanted address"), max_length=320, blank=True, db_index=True
    )
    #: When the consent last sent was given (``statusChangedAt``), to send each change once.
    consent_sent_at = models.DateTimeField(_("consent sent at"), null=True, blank=True)
    payload_hash = models.CharField(_("payload hash"), max_length=64, blank=True)
    #: Set while the row travels in an Omnisend batch (``omnisend_sync_contacts``), with the
    #: hash of what that batch carries, so an interrupted run resumes by polling the batch.
    batch_id = models.CharField(_("batch ID"), max_length=64, blank=True, db_index=True)
    batch_hash = models.CharField(_("batch payload hash"), max_length=64, blank=True)
    #: ``generation`` when the row was read for the batch: the row is clean afterwards only
    #: if no save moved it since.
    batch_generation = models.PositiveBigIntegerField(_("batch generation"), default=0)
    #: When the consent the batch carries was given (None: it carries no channel status):
    #: becomes ``consent_sent_at`` once the batch delivered the row, so it is sent once.
    batch_consent_at = models.DateTimeField(_("batch consent at"), null=True, blank=True)
    last_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    synced_at = models.DateTimeField(_("synced at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = SyncStateQuerySet.as_manager()

    class Meta:
        verbose_name = _("contact sync state")
        verbose_name_plural = _("contact sync states")
        constraints = [
            models.UniqueConstraint(
                fields=["user", "connection_key"], name="django_omnisend_one_state_per_user"
            ),
            # One owner per address and connection, decided by whoever binds it first. NULLs
            # are distinct on every supported database, so rows that own nothing never clash.
            models.UniqueConstraint(
                fields=["connection_key", "address"],
                name="django_omnisend_one_owner_per_address",
            ),
        ]
        indexes = [
            # The claim's index (claims.candidates): only dirty rows, in the claim's order
            # (next_attempt_at, then id), so a claim of 100 reads 100 index entries even when
            # 10⁵ due rows share one next_attempt_at. Over ``django_omnisend_due_idx``
            # (next_attempt_at alone) PostgreSQL sorted every such row per claim; that one is
            # kept because migrations here are additive only.
            models.Index(
                fields=["next_attempt_at", "id"],
                condition=models.Q(dirty=True),
                name="django_omnisend_due_id_idx",
            ),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(dirty=True),
                name="django_omnisend_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.email or self.user_id} → {self.get_state_display()}"


class OutboxItem(models.Model):
    """A write that must reach Omnisend as itself: a customer event, an erasure, a catalog write.

    Events and erasures are never coalesced away; an erasure also supersedes any pending
    profile sync of the same contact. Catalog items (see :mod:`~django_omnisend.catalog`)
    are coalesced per ``subject``: one pending item per product or category.
    """

    class Kind(models.TextChoices):
        EVENT = "event", _("Event")
        ERASURE = "erasure", _("Erasure")
        PRODUCT_UPSERT = "product_upsert", _("Product upsert")
        PRODUCT_DELETE = "product_delete", _("Product delete")
        CATEGORY_UPSERT = "category_upsert", _("Category upsert")
        CATEGORY_DELETE = "category_delete", _("Category delete")

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        DEAD = "dead", _("Dead (gave up)")
        DISCARDED = "discarded", _("Discarded")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    connection_key = models.CharField(_("connection"), max_length=64, default="default")
    state = models.CharField(
        _("state"), max_length=16, choices=State.choices, default=State.PENDING, db_index=True
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    contact_id = models.CharField(_("Omnisend contact ID"), max_length=64, blank=True)
    #: Erasures: purged once processed; ``email_hash`` stays as the record.
    email = models.CharField(_("e-mail"), max_length=320, blank=True)
    email_hash = models.CharField(_("e-mail hash"), max_length=64, blank=True, db_index=True)
    payload = models.JSONField(_("payload"), default=dict, blank=True)
    #: What a catalog item writes (``product:<id>``, ``category:<id>``): pending items of one
    #: subject are coalesced into one. Empty for events and erasures.
    subject = models.CharField(_("subject"), max_length=120, blank=True)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt at"), default=timezone.now)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    lease_owner = models.CharField(_("lease owner"), max_length=64, blank=True)
    last_status = models.PositiveSmallIntegerField(_("last HTTP status"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)

    class Meta:
        verbose_name = _("outbox item")
        verbose_name_plural = _("outbox items")
        ordering = ["pk"]
        indexes = [
            # The claim's index, as SyncState's: pending items in the claim's order (the older
            # ``django_omnisend_outbox_due_idx``, next_attempt_at alone, is kept: additive
            # migrations). ``state`` leads although it is constant here: SQLite (with no
            # statistics) otherwise prefers the plain index on ``state`` and sorts.
            models.Index(
                fields=["state", "next_attempt_at", "id"],
                condition=models.Q(state="pending"),
                name="django_omnisend_outbox_due_id",
            ),
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(state="pending"),
                name="django_omnisend_outbox_due_idx",
            ),
            # Coalescing a catalog save reads the pending items of one subject: only those.
            models.Index(
                fields=["subject", "connection_key"],
                condition=models.Q(state="pending") & ~models.Q(subject=""),
                name="django_omnisend_outbox_subject",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} #{self.pk} ({self.get_state_display()})"

"""Database models: ``Connection`` (one Omnisend brand and its credentials) and the sync tables.

Secrets live only in :class:`~django_omnisend.fields.EncryptedTextField` columns; nothing in
``__str__``/``__repr__`` shows them, and :attr:`Connection.fingerprint` is what people see.
"""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import crypto
from .fields import EncryptedTextField, Undecryptable

#: The encrypted columns of :class:`Connection`: never shown, logged or pickled.
SECRET_FIELDS = ("access_token", "refresh_token", "api_key")


class ConnectionQuerySet(models.QuerySet):
    def active(self) -> ConnectionQuerySet:
        return self.filter(status=Connection.Status.ACTIVE)

    def of_owner(self, owner: Any = None) -> ConnectionQuerySet:
        """Rows of ``owner`` (a model instance), or of the site itself when ``owner`` is None."""
        from .owners import owner_filter

        return self.filter(**owner_filter(owner))

    def in_use(self) -> ConnectionQuerySet:
        """Rows that are the site's connection now: active or waiting for a reconnect.

        Not pending (an unconfirmed switch) and not revoked. Replacing one of these with another
        brand needs a confirmation: a flagged connection is still the site's brand.
        """
        return self.filter(status__in=[Connection.Status.ACTIVE, Connection.Status.NEEDS_RECONNECT])


class Connection(models.Model):
    """One Omnisend brand the site talks to, by OAuth tokens or a stored API key."""

    class AuthType(models.TextChoices):
        OAUTH = "oauth", _("OAuth")
        API_KEY = "api_key", _("API key")

    class Status(models.TextChoices):
        #: Waiting for a staff member to confirm a switch to a different brand.
        PENDING = "pending", _("Pending confirmation")
        ACTIVE = "active", _("Active")
        NEEDS_RECONNECT = "needs_reconnect", _("Needs reconnect")
        REVOKED = "revoked", _("Revoked")

    auth_type = models.CharField(_("auth type"), max_length=16, choices=AuthType.choices)
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.ACTIVE
    )
    #: Why the connection is not active, in words a staff member can act on (never a secret).
    status_reason = models.CharField(_("status reason"), max_length=255, blank=True)

    access_token = EncryptedTextField(_("access token"), blank=True)
    refresh_token = EncryptedTextField(_("refresh token"), blank=True)
    api_key = EncryptedTextField(_("API key"), blank=True)
    #: First 8 hex digits of SHA-256 of the access token or key: safe to show and log.
    fingerprint = models.CharField(_("fingerprint"), max_length=16, blank=True)
    token_type = models.CharField(_("token type"), max_length=20, blank=True, default="Bearer")
    scopes = models.JSONField(_("granted scopes"), default=list, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)

    #: The OAuth client that issued the tokens (settings' ``CLIENT_ID`` or a registration's):
    #: refresh and revoke authenticate as it, whatever client the site is configured with now.
    #: Empty for API keys and for rows made before it was recorded (they use the current one).
    client_id = models.CharField(_("OAuth client ID"), max_length=255, blank=True)

    brand_id = models.CharField(_("brand ID"), max_length=64, blank=True, db_index=True)
    brand_name = models.CharField(_("brand name"), max_length=255, blank=True)
    brand_website = models.CharField(_("brand website"), max_length=500, blank=True)

    #: Who the connection belongs to: any model instance (a shop, a team, a user) by content
    #: type and primary key, or the site itself when both are NULL (see :mod:`.owners`).
    owner_type = models.ForeignKey(
        "contenttypes.ContentType",
        verbose_name=_("owner type"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    owner_id = models.CharField(  # noqa: DJ001 - NULL (with owner_type) means "the site"
        _("owner ID"), max_length=64, null=True, blank=True
    )
    owner = GenericForeignKey("owner_type", "owner_id")

    connected_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("connected by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    refreshed_at = models.DateTimeField(_("last refreshed at"), null=True, blank=True)
    checked_at = models.DateTimeField(_("last checked at"), null=True, blank=True)

    objects = ConnectionQuerySet.as_manager()

    class Meta:
        verbose_name = _("Omnisend connection")
        verbose_name_plural = _("Omnisend connections")
        ordering = ["-created_at"]
        permissions = [("manage_connection", _("Can connect and disconnect Omnisend"))]
        constraints = [
            models.UniqueConstraint(
                fields=["brand_id"],
                condition=models.Q(status="active"),
                name="django_omnisend_one_active_connection_per_brand",
            ),
            # One active connection per owner. The site's rows (NULL owner) are not covered:
            # NULLs never clash, and sites that route users to pk-keyed tenant rows keep
            # several; the binding service keeps the site to one brand otherwise.
            models.UniqueConstraint(
                fields=["owner_type", "owner_id"],
                condition=models.Q(status="active"),
                name="django_omnisend_one_active_connection_per_owner",
            ),
        ]
        indexes = [
            models.Index(fields=["owner_type", "owner_id"], name="django_omnisend_conn_owner_idx")
        ]

    def __str__(self) -> str:
        label = self.brand_name or self.brand_id or _("Omnisend connection")
        return f"{label} ({self.get_status_display()})"

    def __repr__(self) -> str:
        return (
            f"<Connection pk={self.pk} brand_id={self.brand_id!r} auth_type={self.auth_type!r} "
            f"status={self.status!r} fingerprint={self.fingerprint!r}>"
        )

    def __getstate__(self) -> dict:
        """Pickle (and ``copy``) without the secrets: a cache or task queue never holds them.

        The unpickled row lacks its secret fields, which Django then treats as deferred: reading
        ``access_token``, ``refresh_token`` or ``api_key`` re-reads it from the database (one
        query each), and ``save()`` writes only the fields it carries, so it never blanks a
        secret. An unpickled row must therefore be one that exists in the database; secrets set
        on an unsaved instance do not survive pickling or copying.
        """
        state = super().__getstate__()
        for name in SECRET_FIELDS:
            state.pop(name, None)
        return state

    # -- credentials -------------------------------------------------------------------

    @property
    def secret(self) -> str:
        """The credential the client sends: the access token (OAuth) or the API key."""
        return self.access_token if self.auth_type == self.AuthType.OAUTH else self.api_key

    @property
    def undecryptable(self) -> bool:
        """Whether a stored secret could not be decrypted with the configured keys."""
        return any(
            isinstance(v, Undecryptable)
            for v in (self.access_token, self.refresh_token, self.api_key)
        )

    def set_tokens(
        self,
        access_token: str,
        refresh_token: str | None = None,
        expires_in: float | None = None,
        token_type: str = "Bearer",
    ) -> None:
        """Store new OAuth tokens (keeping the old refresh token when none is given)."""
        self.auth_type = self.AuthType.OAUTH
        self.access_token = access_token
        if refresh_token:
            self.refresh_token = refresh_token
        self.token_type = token_type or "Bearer"
        self.expires_at = expires_at_from(expires_in)
        self.fingerprint = crypto.fingerprint(access_token)

    def set_api_key(self, api_key: str) -> None:
        """Store an API key (encrypted) and its display fingerprint."""
        self.auth_type = self.AuthType.API_KEY
        self.api_key = api_key
        self.fingerprint = crypto.fingerprint(api_key)

    def expires_soon(self, within: float = 60.0) -> bool:
        """Whether the access token expires within ``within`` seconds (never, when unset)."""
        if self.expires_at is None:
            return False
        return self.expires_at <= timezone.now() + timedelta(seconds=within)

    @property
    def rate_limit_key(self) -> str:
        """The bucket of the shared rate budget: Omnisend counts requests per brand."""
        return self.brand_id or f"connection-{self.pk}"


#: Omnisend says authorization-code tokens never expire and sends expires_in=9223372036;
#: anything beyond ten years is stored as "no expiry" instead of overflowing a datetime.
MAX_STORED_LIFETIME = timedelta(days=3650)


def expires_at_from(expires_in: float | None):
    """Turn a token response's ``expires_in`` into an aware datetime (None = no expiry)."""
    if expires_in is None:
        return None
    try:
        seconds = float(expires_in)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(seconds):  # "unknown", not "now" or "never"
        return None
    if seconds <= 0:
        return timezone.now()
    if seconds >= MAX_STORED_LIFETIME.total_seconds():
        return None
    return timezone.now() + timedelta(seconds=seconds)


# -- sync -------------------------------------------------------------------------------


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


class DeliveryControl(models.Model):
    """Per-connection delivery switches shared by every worker: pause, cooldown, breaker."""

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


class ClientRegistration(models.Model):
    """The OAuth client Omnisend issued to this site by dynamic registration (RFC 7591).

    One row per exact redirect URI, made at the first Connect when ``OMNISEND["CLIENT_ID"]``
    is empty (see :mod:`~django_omnisend.registration`). The secret is encrypted at rest and
    never shown; settings credentials, when set, are used instead of any row.
    """

    #: The exact redirect URI registered; unique, which makes registration single flight.
    redirect_uri = models.CharField(_("redirect URI"), max_length=255, unique=True)
    client_id = models.CharField(_("client ID"), max_length=255)
    client_secret = EncryptedTextField(_("client secret"), blank=True)
    #: The endpoint that issued it (so a site can tell Omnisend's from the emulator's).
    registration_endpoint = models.CharField(_("registration endpoint"), max_length=500)
    #: What Omnisend answered, without the secret (client_id_issued_at, grant_types...).
    metadata = models.JSONField(_("registration metadata"), default=dict, blank=True)
    #: When the secret expires (RFC 7591 ``client_secret_expires_at``); null: never.
    secret_expires_at = models.DateTimeField(_("secret expires at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("Omnisend client registration")
        verbose_name_plural = _("Omnisend client registrations")
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.client_id or _('registering')} ({self.redirect_uri})"

    def __repr__(self) -> str:
        return f"<ClientRegistration pk={self.pk} client_id={self.client_id!r}>"

    def __getstate__(self) -> dict:
        """Pickle without the secret (as :class:`Connection` does)."""
        state = super().__getstate__()
        state.pop("client_secret", None)
        return state

    @property
    def usable(self) -> bool:
        """Whether the row holds a client that can be used now (decryptable, not expired)."""
        return bool(
            self.client_id
            and self.client_secret
            and not isinstance(self.client_secret, Undecryptable)
            and (self.secret_expires_at is None or self.secret_expires_at > timezone.now())
        )


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

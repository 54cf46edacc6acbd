"""``Connection`` (one Omnisend brand and its credentials) and ``ClientRegistration`` (the
OAuth client the site registered itself). Secrets live only in
:class:`~django_omnisend.fields.EncryptedTextField` columns; nothing in ``__str__``/``__repr__``
shows them, and :attr:`Connection.fingerprint` is what people see.
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

from .. import crypto
from ..fields import EncryptedTextField, Undecryptable

#: The encrypted columns of :class:`Connection`: never shown, logged or pickled.
SECRET_FIELDS = ("access_token", "refresh_token", "api_key")


class ConnectionQuerySet(models.QuerySet):
    def active(self) -> ConnectionQuerySet:
        return self.filter(status=Connection.Status.ACTIVE)

    def of_owner(self, owner: Any = None) -> ConnectionQuerySet:
        """Rows of ``owner`` (a model instance), or of the site itself when ``owner`` is None."""
        from ..connect.owners import owner_filter

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


class ClientRegistration(models.Model):
    """The OAuth client Omnisend issued to this site by dynamic registration (RFC 7591).

    One row per exact redirect URI, made at the first Connect when ``OMNISEND["CLIENT_ID"]``
    is empty (see :mod:`~django_omnisend.connect.registration`). The secret is encrypted at rest and
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

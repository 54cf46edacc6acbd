"""One code path for "a probed credential for brand X arrived": OAuth callback and admin key.

Whichever door the credential came through (the OAuth callback's tokens, an API key typed into
the admin), :func:`bind` applies the same brand rules
(docs: guides/security.rst, 'Probe, then bind the brand'):

* The brand's own row (the active one, else one waiting for a reconnect) takes the credential
  and is active again; the OAuth tokens it held before are returned for revocation.
* A brand without a row of its own gets a row (a new one, or the retired row the admin's key was
  typed into): active when no other brand is in use, else "pending" until the user who brought
  it confirms the switch on the confirm page (``django_omnisend:confirm``), which retires the
  other brand. So there is never a second active brand, and never an ``IntegrityError`` from the
  one-active-row-per-brand constraint.
* A multi-tenant site (the adapter's ``get_connection_key`` routes users to connections of
  their own, :func:`multi_tenant`) keeps one row per tenant brand: the admin passes
  ``alongside=True``, and a new brand's key is added next to the others without a switch.
* A row never changes brand: a credential for brand Y entered on brand X's row is refused with
  :class:`BrandMismatch` (:func:`check_target`), so ``brand_id`` is never silently rebound.
* The user's earlier unconfirmed switches are superseded (deleted, their tokens revoked).
* Every rule above applies within one owner (:mod:`~django_omnisend.connect.owners`: the site, or a
  shop, a team...): each owner has its own brand in use, and its own switch confirmation. A
  brand that another owner holds (active or waiting for a reconnect) is refused with
  :class:`BrandHeldElsewhere`, never silently shared: the database keeps one active row per
  brand (``django_omnisend_one_active_connection_per_brand``).

:func:`bind` does no HTTP: the caller probes first and revokes :attr:`Bound.stale` after the
transaction.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from ..models import Connection
from ..signals import connected
from . import lifecycle

if TYPE_CHECKING:  # pragma: no cover - typing only
    from django.db.models import QuerySet

    from ..api.oauth import TokenResponse

logger = logging.getLogger("django_omnisend.binding")

__all__ = [
    "Bound",
    "BrandHeldElsewhere",
    "BrandMismatch",
    "Credential",
    "bind",
    "check_target",
    "competing",
    "multi_tenant",
]


@dataclass(frozen=True)
class Credential:
    """Probed credentials: OAuth tokens or an API key. ``repr()`` shows no secret."""

    access_token: str = field(default="", repr=False)
    refresh_token: str = field(default="", repr=False)
    expires_in: float | None = None
    token_type: str = "Bearer"
    scopes: tuple[str, ...] = ()
    api_key: str = field(default="", repr=False)
    #: The OAuth client that issued the tokens ("" for an API key, or when unknown).
    client_id: str = ""

    @classmethod
    def from_tokens(cls, tokens: TokenResponse, client_id: str = "") -> Credential:
        """The tokens of a code exchange made by the client ``client_id``."""
        return cls(
            client_id=client_id,
            access_token=tokens.access_token,
            refresh_token=tokens.refresh_token or "",
            expires_in=tokens.expires_in,
            token_type=tokens.token_type,
            scopes=tuple(tokens.scopes),
        )

    @classmethod
    def from_api_key(cls, api_key: str) -> Credential:
        """An API key (Store settings → API keys)."""
        return cls(api_key=api_key)

    @property
    def is_oauth(self) -> bool:
        return bool(self.access_token)


@dataclass
class Bound:
    """What :func:`bind` did."""

    #: The row that holds the credential now (active, or pending confirmation).
    connection: Connection
    #: The brand differs from the one in use: the user must confirm the switch.
    needs_confirmation: bool
    #: The brand already had a live row, which took the credential (a reconnect).
    existing: bool
    #: ``(token, hint)`` pairs no longer used: revoke them after the transaction.
    stale: list[lifecycle.Revocable] = field(default_factory=list, repr=False)


class BrandMismatch(ValueError):
    """A credential for one brand was entered on another brand's row."""


class BrandHeldElsewhere(ValueError):
    """The brand is already connected by another owner (a brand has one connection at a time)."""


def competing(brand_id: str, owner: Any = None) -> QuerySet[Connection]:
    """Other brands' rows in use by ``owner`` (None: the site): a credential for ``brand_id``
    needs confirmation while any exists, and confirming retires them. The one place that
    decides what "in use" means."""
    return Connection.objects.of_owner(owner).in_use().exclude(brand_id=brand_id)


def _owner_lookups(row: Connection | None, owner: Any) -> dict[str, Any]:
    """The owner the credential is for: the row's own owner when it was entered on a row."""
    from .owners import owner_filter

    if row is not None and row.pk is not None:
        if row.owner_type_id is None:
            return owner_filter(None)
        return {"owner_type_id": row.owner_type_id, "owner_id": row.owner_id}
    return owner_filter(owner)


def check_brand_free(brand_id: str, lookups: dict[str, Any]) -> None:
    """Raise :class:`BrandHeldElsewhere` when an owner other than ``lookups``' uses ``brand_id``."""
    held = (
        Connection.objects.in_use()
        .filter(brand_id=brand_id)
        .exclude(pk__in=Connection.objects.filter(**lookups).values("pk"))
        .first()
    )
    if held is not None:
        raise BrandHeldElsewhere(
            f"The Omnisend brand {held.brand_name or brand_id} ({brand_id}) is already "
            "connected for another owner on this site, so nothing was changed. A brand has one "
            "connection at a time: disconnect it there first, or connect another brand."
        )


def multi_tenant() -> bool:
    """Whether the adapter routes users to connections of their own (one brand per tenant)."""
    from ..adapter import ContactAdapter, get_adapter

    return type(get_adapter()).get_connection_key is not ContactAdapter.get_connection_key


def check_target(row: Connection | None, brand_id: str) -> None:
    """Raise :class:`BrandMismatch` when ``row`` belongs to another brand than ``brand_id``."""
    if row is not None and row.pk is not None and row.brand_id and row.brand_id != brand_id:
        raise BrandMismatch(
            f"This credential belongs to another Omnisend brand ({brand_id}), not to "
            f"{row.brand_name or row.brand_id} ({row.brand_id}), so it was not saved. To switch "
            "brands, add it as a new connection: you will be asked to confirm the switch."
        )


@sensitive_variables()
def bind(
    credential: Credential,
    brand: dict[str, Any],
    user: Any,
    *,
    row: Connection | None = None,
    alongside: bool = False,
    owner: Any = None,
) -> Bound:
    """Store probed ``credential`` for ``brand`` (the ``GET /brands/current`` answer).

    ``row`` is the row the credential was entered on (the admin's change page), if any; the
    credential is for ``row``'s owner then, else for ``owner`` (None: the site).
    ``alongside=True`` adds a new brand next to those in use instead of asking to switch.
    Sends :data:`~django_omnisend.signals.connected` inside the transaction when the row is
    active (a receiver that raises leaves nothing activated). Raises :class:`BrandMismatch`
    and :class:`BrandHeldElsewhere`.
    """
    brand_id = str(brand["brandID"])
    check_target(row, brand_id)
    lookups = _owner_lookups(row, owner)
    stale: list[lifecycle.Revocable] = []
    with transaction.atomic():
        check_brand_free(brand_id, lookups)
        mine = Connection.objects.filter(**lookups)
        same = sorted(
            mine.select_for_update().filter(
                brand_id=brand_id,
                status__in=[Connection.Status.ACTIVE, Connection.Status.NEEDS_RECONNECT],
            ),
            key=lambda c: (c.status != Connection.Status.ACTIVE, -c.pk),
        )
        target = next((c for c in same if row is not None and c.pk == row.pk), None)
        if target is None and same:
            target = same[0]
        existing = target is not None
        if target is None and row is not None and row.pk is not None:
            target = Connection.objects.select_for_update().get(pk=row.pk)  # a retired row
        # Earlier unconfirmed switches of this user are superseded by this one.
        superseded = mine.select_for_update().filter(
            status=Connection.Status.PENDING, connected_by=user
        )
        if target is not None and target.pk is not None:
            superseded = superseded.exclude(pk=target.pk)
        for old in superseded:
            stale.extend(lifecycle.tokens_to_revoke(old))
            old.delete()
        if target is None:
            target = Connection(
                brand_id=brand_id, **{k: v for k, v in lookups.items() if "__" not in k}
            )
        needs_confirmation = (
            not existing
            and not alongside
            and mine.in_use().exclude(brand_id=brand_id).exclude(pk=target.pk).exists()
        )
        stale.extend(
            (t, h, c)
            for t, h, c in lifecycle.tokens_to_revoke(target)
            if t not in (credential.access_token, credential.refresh_token)
        )
        _store(target, credential)
        target.brand_id = brand_id
        target.brand_name = str(brand.get("name") or "")[:255]
        target.brand_website = str(brand.get("website") or "")[:500]
        target.connected_by = user
        target.checked_at = timezone.now()
        target.status = (
            Connection.Status.PENDING if needs_confirmation else Connection.Status.ACTIVE
        )
        target.status_reason = ""
        target.save()
        if not needs_confirmation:
            connected.send(sender=Connection, connection=target, user=user, owner=target.owner)
    logger.info(
        "Omnisend brand %s %s by user %s (%s).",
        brand_id,
        "awaits confirmation" if needs_confirmation else "connected",
        getattr(user, "pk", None),
        "OAuth" if credential.is_oauth else "API key",
    )
    return Bound(target, needs_confirmation, existing, stale)


@sensitive_variables()
def _store(connection: Connection, credential: Credential) -> None:
    """Put ``credential`` on ``connection``, dropping whatever credential it held before."""
    connection.client_id = credential.client_id
    if credential.is_oauth:
        connection.api_key = ""
        connection.refresh_token = ""
        connection.set_tokens(
            credential.access_token,
            credential.refresh_token or None,
            expires_in=credential.expires_in,
            token_type=credential.token_type,
        )
        connection.scopes = list(credential.scopes)
    else:
        connection.access_token = ""
        connection.refresh_token = ""
        connection.expires_at = None
        connection.scopes = []
        connection.set_api_key(credential.api_key)

"""What to send for a user: the contact body, its hash, or the reason to skip them.

Built from the *current* user row at send time (so ten saves send the tenth state) and
consent-safe by construction: a body carries a channel status only for an explicit decision
recorded in Django that Omnisend has not been sent yet.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model

from .adapter import Consent, ContactAdapter


class SkipReason:
    """Machine-readable reasons a user is not sent (shown in the admin)."""

    EXCLUDED = "excluded"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    DUPLICATE_EMAIL = "duplicate_email"


@dataclass
class ContactPlan:
    """The outcome of looking at one user: a body to send, or a skip reason."""

    email: str = ""
    body: dict[str, Any] = field(default_factory=dict)
    payload_hash: str = ""
    #: The decision to send as the e-mail channel status (None: send no status).
    consent: Consent | None = None
    skip_reason: str = ""


def rfc3339(moment: datetime) -> str:
    """An aware datetime in RFC 3339 UTC with milliseconds, e.g. ``2024-05-09T16:25:02.120Z``.

    Milliseconds matter: Omnisend ignores a status older than the one it has, so an erasure
    made in the same second as the contact's creation must not look older than it.
    """
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def parse_rfc3339(value: str) -> datetime | None:
    """Parse an RFC 3339 timestamp from Omnisend (None when it is not one)."""
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def body_hash(body: dict[str, Any]) -> str:
    """A stable hash of a request body (key order does not matter)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def is_duplicate(user: Any, email: str) -> bool:
    """Whether an older active user has the same address: the contact belongs to them.

    One query per call (``iexact`` cannot use an index on most databases): right for the
    drain's trickle; bulk runs use :func:`duplicate_owners` instead.
    """
    user_model = get_user_model()
    email_field = user_model.get_email_field_name()
    others = user_model._default_manager.filter(**{f"{email_field}__iexact": email})
    if hasattr(user_model, "is_active"):
        others = others.filter(is_active=True)
    return others.filter(pk__lt=user.pk).exists()


def duplicate_owners() -> dict[str, Any]:
    """Lower-cased address -> primary key of its owner, for addresses several users share.

    One ``GROUP BY`` over the users table, holding only the duplicated addresses, so a bulk
    run checks every user without a query per user and without loading every address.
    """
    from django.db.models import Count, Min
    from django.db.models.functions import Lower

    user_model = get_user_model()
    users = user_model._default_manager.all()
    if hasattr(user_model, "is_active"):
        users = users.filter(is_active=True)
    rows = (
        users.annotate(_email=Lower(user_model.get_email_field_name()))
        .values("_email")
        .annotate(_n=Count("pk"), _owner=Min("pk"))
        .filter(_n__gt=1)
        .values_list("_email", "_owner")
    )
    return dict(rows)


def plan_contact(
    user: Any,
    adapter: ContactAdapter,
    *,
    consent_sent_at: datetime | None = None,
    is_new: bool = False,
    owners: dict[str, Any] | None = None,
) -> ContactPlan:
    """Decide what to send for ``user`` (no network, a few cheap queries at most).

    ``owners`` (from :func:`duplicate_owners`) replaces the per-user duplicate query.
    """
    if not adapter.should_sync(user):
        return ContactPlan(skip_reason=SkipReason.EXCLUDED)
    email_field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else ""
    raw_email = getattr(user, email_field or "email", "") or ""
    email = adapter.get_email(user)
    if not email:
        reason = SkipReason.INVALID_EMAIL if str(raw_email).strip() else SkipReason.NO_EMAIL
        return ContactPlan(skip_reason=reason)
    if owners is not None:
        owner = owners.get(email.lower())
        duplicate = owner is not None and owner != user.pk
    else:
        duplicate = is_duplicate(user, email)
    if duplicate:
        return ContactPlan(email=email, skip_reason=SkipReason.DUPLICATE_EMAIL)

    identifier: dict[str, Any] = {
        "type": "email",
        "id": email,
        # Always explicit: Omnisend's default is true, which would greet every backfilled user.
        "sendWelcomeMessage": bool(is_new and adapter.send_welcome_message(user)),
    }
    consent = adapter.get_consent(user)
    if consent is not None and consent_sent_at is not None and consent.at <= consent_sent_at:
        consent = None  # already sent; resending could undo a later change made in Omnisend
    if consent is not None:
        status = "subscribed" if consent.subscribed else "unsubscribed"
        identifier["channels"] = {
            "email": {"status": status, "statusChangedAt": rfc3339(consent.at)}
        }
        if consent.subscribed:
            identifier["consent"] = {
                key: value
                for key, value in {
                    "createdAt": rfc3339(consent.at),
                    "ip": consent.ip,
                    "source": consent.source,
                    "userAgent": consent.user_agent,
                }.items()
                if value
            }
    body = {"identifiers": [identifier], **adapter.get_contact_fields(user)}
    # The hash covers the profile only. Consent changes are tracked by ``consent_sent_at``
    # (a decision is sent once), and the welcome flag only matters on creation, so neither
    # may make an unchanged profile look changed.
    hashed = without_channels(body)
    hashed["identifiers"] = [
        {k: v for k, v in ident.items() if k != "sendWelcomeMessage"}
        for ident in hashed["identifiers"]
    ]
    return ContactPlan(email=email, body=body, payload_hash=body_hash(hashed), consent=consent)


def without_channels(body: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``body`` with no channel status or consent (a profile-only update)."""
    identifiers = [
        {k: v for k, v in ident.items() if k not in ("channels", "consent")}
        for ident in body.get("identifiers", [])
    ]
    return {**body, "identifiers": identifiers}


def erasure_body(email: str, at: datetime) -> dict[str, Any]:
    """The PATCH that anonymises a deleted user's contact and unsubscribes it (the safe way)."""
    body: dict[str, Any] = {}
    if email:
        body["identifiers"] = [
            {
                "type": "email",
                "id": email,
                "channels": {"email": {"status": "unsubscribed", "statusChangedAt": rfc3339(at)}},
            }
        ]
    return {
        **body,
        "firstName": "",
        "lastName": "",
        "address": "",
        "city": "",
        "state": "",
        "postalCode": "",
        "customProperties": {},
        "tags": ["gdpr-erased"],
    }

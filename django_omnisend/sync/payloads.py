"""What to send for a user: the contact body, its hash, or the reason to skip them.

Built from the *current* user row at send time (so ten saves send the tenth state) and
consent-safe by construction: a body carries ``subscribed`` or ``unsubscribed`` only for an
explicit decision recorded in Django that Omnisend has not been sent yet (a contact we create
is otherwise ``nonSubscribed``, dated so it never outdates that decision).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.utils import timezone

from ..adapter import Consent, ContactAdapter

#: How far before the earliest decision it could race a created contact's status is dated.
CREATION_MARGIN = timedelta(seconds=1)


class SkipReason:
    """Machine-readable reasons a user is not sent (shown in the admin)."""

    EXCLUDED = "excluded"
    NO_EMAIL = "no_email"
    INVALID_EMAIL = "invalid_email"
    #: Another user of the same connection owns (bound first) the address.
    DUPLICATE_EMAIL = "duplicate_email"
    #: The address's previous owner was deleted and the erasure has not been sent yet.
    ERASURE_PENDING = "erasure_pending"


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


def plan_contact(
    user: Any,
    adapter: ContactAdapter,
    *,
    consent_sent_at: datetime | None = None,
    is_new: bool = False,
) -> ContactPlan:
    """Decide what to send for ``user`` (no network, no query of its own).

    Whether the user may write the address at all (ownership) is decided afterwards, by
    :func:`django_omnisend.sync.identity.bind` on our own tables.
    """
    if not adapter.should_sync(user):
        return ContactPlan(skip_reason=SkipReason.EXCLUDED)
    email_field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else ""
    raw_email = getattr(user, email_field or "email", "") or ""
    email = adapter.get_email(user)
    if not email:
        reason = SkipReason.INVALID_EMAIL if str(raw_email).strip() else SkipReason.NO_EMAIL
        return ContactPlan(skip_reason=reason)
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


def date_creation(
    body: dict[str, Any], first_marked: datetime | None, withheld: Consent | None
) -> None:
    """Give a contact we are about to create an explicit ``nonSubscribed``, dated in the past.

    Left to itself Omnisend dates a new contact's status at its creation, and ignores a
    status dated earlier: an opt-in given before that moment (ticked at sign-up and sent once
    the address is verified, or made while this request was in flight) would then be lost.
    Our creation is not the person's decision, so it is dated just before the earliest one it
    could race: the user's first mark (``first_marked``, the sign-up) or the withheld opt-in.
    Only for a contact known not to exist: on an existing one a past ``nonSubscribed`` could
    undo a real status.
    """
    identifier = body["identifiers"][0]
    if "channels" in identifier:
        return
    moments = [first_marked or timezone.now()]
    if withheld is not None:
        moments.append(withheld.at)
    before = min(moments) - CREATION_MARGIN
    identifier["channels"] = {
        "email": {"status": "nonSubscribed", "statusChangedAt": rfc3339(before)}
    }

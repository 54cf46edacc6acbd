"""``ContactAdapter``: the one class a host project subclasses to shape its contacts.

Point ``OMNISEND["ADAPTER"]`` at a subclass to decide which users sync, which connection
(brand) a user belongs to, what goes into the contact, and what consent Django recorded.
Every method receives the *current* user row: payloads are built when they are sent.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.utils.module_loading import import_string

#: Control characters (C0/C1, NUL, bidi overrides) that never belong in a contact field.
_STRIP_CATEGORIES = {"Cc", "Cf"}
_KEEP_FORMAT_CHARS = {"\u200d"}  # zero-width joiner: part of emoji sequences

_email_validator = EmailValidator()


@dataclass(frozen=True)
class Consent:
    """An explicit marketing-channel decision recorded in Django.

    ``subscribed=True`` is an opt-in, ``False`` an opt-out; ``at`` is when the person made it
    (sent as ``statusChangedAt``, so a later change inside Omnisend wins).
    """

    subscribed: bool
    at: datetime
    ip: str = ""
    source: str = "django"
    user_agent: str = ""


def clean_text(value: Any) -> str:
    """NFC-normalise and drop control and bidi-override characters; keep emoji, RTL, CJK."""
    if value is None:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    return "".join(
        ch
        for ch in text
        if ch in _KEEP_FORMAT_CHARS or unicodedata.category(ch) not in _STRIP_CATEGORIES
    ).strip()


def normalize_email(raw: Any) -> str | None:
    """Return the address to send, or None when it is not a valid e-mail address.

    Strips spaces, NFC-normalises, lower-cases the whole address (Omnisend compares e-mail
    identifiers case-sensitively, so one spelling per person avoids duplicate contacts),
    IDNA-encodes the domain, then validates with Django's ``EmailValidator``. The result is
    also the ownership key (:mod:`django_omnisend.sync.identity`). Invisible characters are
    refused, and ``EmailValidator`` accepts only ASCII local parts, so homoglyph and
    full-width look-alikes of an address are invalid rather than a second spelling of it.
    """
    if not raw or not isinstance(raw, str):
        return None
    if raw != raw.strip() and any(ch in raw for ch in "\r\n\x00"):
        return None
    email = unicodedata.normalize("NFC", raw.strip())
    # Control and invisible format characters (zero-width space, joiners, bidi marks) are
    # refused outright: IDNA would silently drop some of them, making a look-alike of
    # another person's address that binds as theirs.
    if "@" not in email or any(unicodedata.category(ch) in ("Cc", "Cf") for ch in email):
        return None
    local, _, domain = email.rpartition("@")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        return None
    email = f"{local}@{domain}".lower()
    try:
        _email_validator(email)
    except ValidationError:
        return None
    return email


class ContactAdapter:
    """Default mapping from ``AUTH_USER_MODEL`` rows to Omnisend contacts.

    Subclass and override any method; keep them cheap and free of network calls, because
    :meth:`should_sync` and :meth:`get_connection_key` run inside ``save()``.
    """

    #: Tag added to every contact, as Omnisend advises for integrations.
    source_tag = "source: django"

    def should_sync(self, user: Any) -> bool:
        """Whether this user is a contact at all (default: every active user)."""
        return bool(getattr(user, "is_active", True))

    def get_connection_key(self, user: Any) -> str:
        """Which connection the user belongs to: ``"default"`` for the site's one brand.

        Multi-tenant sites return the ``pk`` of the tenant's ``Connection`` as a string.
        """
        return "default"

    def get_email(self, user: Any) -> str | None:
        """The normalised address for the user, or None to skip them."""
        field = user.get_email_field_name() if hasattr(user, "get_email_field_name") else "email"
        return normalize_email(getattr(user, field, None))

    def is_email_verified(self, user: Any) -> bool:
        """Whether the person behind ``user`` has proved they own :meth:`get_email`'s address.

        Default: ``OMNISEND["TRUST_EMAILS"]`` (every address counts as verified), else
        django-allauth's ``EmailAddress.verified`` for that address when allauth is installed,
        else False. An unverified user may create a contact for an address Omnisend does not
        hold and keep updating it, but never writes a contact that existed before, is never
        sent ``subscribed`` and never triggers a welcome message. Override it to read your own
        verification records; keep it cheap (one query at most, no network).
        """
        from .conf import omnisend_settings

        if omnisend_settings.trust_emails:
            return True
        address = self.get_email(user)
        if not address:
            return False
        from django.apps import apps

        if not apps.is_installed("allauth.account"):
            return False
        email_address = apps.get_model("account", "EmailAddress")
        return email_address._default_manager.filter(
            user=user, email__iexact=address, verified=True
        ).exists()

    def get_consent(self, user: Any) -> Consent | None:
        """The user's explicit e-mail marketing decision, or None when Django recorded none.

        With None, no channel status is ever sent: Omnisend keeps whatever it has.
        """
        return None

    def record_status(self, user: Any, status: str, changed_at: datetime, contact: dict) -> None:
        """Store an e-mail status change made inside Omnisend (called by ``omnisend_pull``).

        ``status`` is ``"unsubscribed"``, ``"subscribed"`` or ``"nonSubscribed"``;
        ``changed_at`` is Omnisend's aware ``statusChangedAt``; ``contact`` is the
        ``ContactResponse`` it came from. Only changes newer than both the consent Django last
        sent and :meth:`get_consent`'s ``at`` are handed over.

        Default: do nothing. A site stores the decision in its consent records with
        ``changed_at`` as its time, so :meth:`get_consent` then returns it (for an unsubscribe,
        ``Consent(subscribed=False, at=changed_at)``) and no later sync can undo it. Runs
        outside any request; keep it free of network calls.
        """

    def send_welcome_message(self, user: Any) -> bool:
        """Whether a contact *created* for this user should get the brand's welcome message.

        Default False: an existing account is not a new subscriber. Bulk syncs never send it.
        """
        return False

    def get_contact_fields(self, user: Any) -> dict[str, Any]:
        """Profile fields of the contact (names, tags, custom properties)."""
        fields: dict[str, Any] = {
            "firstName": clean_text(getattr(user, "first_name", "")),
            "lastName": clean_text(getattr(user, "last_name", "")),
            "tags": [self.source_tag],
        }
        joined = getattr(user, "date_joined", None)
        if joined is not None:
            fields["createdAt"] = joined.strftime("%Y-%m-%dT%H:%M:%SZ")
        return fields


@lru_cache(maxsize=4)
def _adapter_for(path: str) -> ContactAdapter:
    return import_string(path)()


def get_adapter() -> ContactAdapter:
    """The adapter instance named by ``OMNISEND["ADAPTER"]`` (one instance per dotted path)."""
    from .conf import omnisend_settings

    return _adapter_for(omnisend_settings.adapter)

"""Adapters used by the sync tests (a host project's subclasses look like these)."""

from __future__ import annotations

from django_omnisend.adapter import Consent, ContactAdapter


class ConsentAdapter(ContactAdapter):
    """Reads consent from attributes the tests set on the user row's ``last_name`` marker.

    The default user model has no consent field, so the tests keep the decision in a
    module-level dict keyed by user pk: the same shape a real site's profile model gives.
    """

    decisions: dict = {}

    def get_consent(self, user):
        return self.decisions.get(user.pk)


class GenderAdapter(ContactAdapter):
    """Sends an invalid ``gender`` for users named "Poison", to provoke Omnisend's 400."""

    def get_contact_fields(self, user):
        fields = super().get_contact_fields(user)
        if user.first_name == "Poison":
            fields["gender"] = "x"
        return fields


__all__ = [
    "BrokenAdapter",
    "Consent",
    "ConsentAdapter",
    "GenderAdapter",
    "TenantKeyAdapter",
    "VerifyingAdapter",
]


class BrokenAdapter(ContactAdapter):
    """A host adapter with a bug that only shows for one user."""

    def get_contact_fields(self, user):
        if user.first_name == "Broken":
            raise RuntimeError("adapter bug")
        return super().get_contact_fields(user)


class TenantKeyAdapter(ContactAdapter):
    """A multi-tenant adapter: each user's connection key comes from their data."""

    def get_connection_key(self, user):
        return user.last_name or "default"


class VerifyingAdapter(ConsentAdapter):
    """Consent as ``ConsentAdapter``; verified addresses and welcome wishes per user pk.

    A host project reads these from its own records (allauth's ``EmailAddress``, a profile).
    """

    verified: set = set()
    welcome: bool = True

    def is_email_verified(self, user):
        return user.pk in self.verified

    def send_welcome_message(self, user):
        return self.welcome

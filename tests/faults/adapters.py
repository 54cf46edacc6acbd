"""Adapters the fault matrix runs with (a host project's subclasses look like these)."""

from __future__ import annotations

from django_omnisend.adapter import Consent, ContactAdapter

#: One user in this many is "poison" for M10 (2 %).
POISON_EVERY = 50


def user_number(user) -> int:
    """``n`` of the matrix's ``user<n>`` usernames (-1 for any other user)."""
    name = user.get_username()
    return int(name[4:]) if name.startswith("user") and name[4:].isdigit() else -1


def is_poison(user) -> bool:
    return user_number(user) % POISON_EVERY == 0


class PoisonAdapter(ContactAdapter):
    """A deterministic 2 % of users get a ``gender`` Omnisend rejects (400), whatever they edit."""

    def get_contact_fields(self, user):
        fields = super().get_contact_fields(user)
        if is_poison(user):
            fields["gender"] = "x"
        return fields


class ConsentMatrixAdapter(ContactAdapter):
    """Consent decisions kept in a dict keyed by user pk (a real site reads its profile)."""

    decisions: dict = {}

    def get_consent(self, user):
        return self.decisions.get(user.pk)


__all__ = ["Consent", "ConsentMatrixAdapter", "PoisonAdapter", "is_poison", "user_number"]

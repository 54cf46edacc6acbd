"""A host project's adapter that keeps consent records, in memory (no model needed)."""

from __future__ import annotations

from django_omnisend.adapter import Consent, ContactAdapter


class RecordingAdapter(ContactAdapter):
    """Stores statuses handed over by ``omnisend_pull`` and reports them as consent.

    ``statuses`` maps user pk → ``(status, at)``, the shape a site's consent table has; tests
    may also put an opt-in there directly. ``calls`` lists every ``record_status`` call.
    """

    statuses: dict = {}
    calls: list = []

    def get_consent(self, user):
        record = self.statuses.get(user.pk)
        if record is None or record[0] == "nonSubscribed":
            return None
        status, at = record
        return Consent(subscribed=status == "subscribed", at=at)

    def record_status(self, user, status, changed_at, contact):
        self.calls.append((user.pk, status, changed_at, contact.get("email")))
        self.statuses[user.pk] = (status, changed_at)

"""Host-site adapters the snippet tests plug in through OMNISEND settings."""

from __future__ import annotations

from django_omnisend.adapter import Consent, ContactAdapter
from django_omnisend.tracking import TrackingAdapter

#: An address that tries to close the script element it is rendered into.
HOSTILE_EMAIL = 'evil"</script><script>alert(1)</script>@example.com'


class CookieConsent(TrackingAdapter):
    """Tracking only for visitors whose consent cookie says "marketing"."""

    def tracking_allowed(self, request):
        return request.COOKIES.get("consent") == "marketing"


class HostileEmails(ContactAdapter):
    """A site whose e-mail column holds markup (the adapter passes it through unchecked)."""

    def get_email(self, user):
        return HOSTILE_EMAIL


class OptedOut(ContactAdapter):
    """Every user declined e-mail marketing."""

    def get_consent(self, user):
        return Consent(subscribed=False, at=user.date_joined)


class OtherBrandUsers(ContactAdapter):
    """Users belong to a tenant connection, not to the site's brand."""

    def get_connection_key(self, user):
        return "owner:auth.group:999999"

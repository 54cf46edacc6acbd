"""The newsletter decision a person made on the sign-up form: the consent record Omnisend gets."""

from django.conf import settings
from django.db import models


class NewsletterConsent(models.Model):
    """One person's explicit e-mail marketing opt-in, with where and when they gave it."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="newsletter_consent"
    )
    subscribed = models.BooleanField(default=True)
    #: When the person ticked the box: sent as the status and consent date.
    at = models.DateTimeField()
    ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=500, blank=True)
    source = models.CharField(max_length=100, default="example sign-up form")

    def __str__(self) -> str:
        return f"{self.user} {'opted in' if self.subscribed else 'opted out'} at {self.at:%Y-%m-%d}"


class EmailVerification(models.Model):
    """Whether the person proved they read mail at ``address`` (by the link sent at sign-up).

    ``NewsletterAdapter.is_email_verified`` reads it: an unverified address is never
    subscribed and never overwrites a contact Omnisend already holds.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_verification"
    )
    address = models.CharField(max_length=320)
    verified_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.address} {'verified' if self.verified_at else 'not verified'}"

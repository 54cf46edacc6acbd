"""The example's data: the newsletter decision a person made on the sign-up form (the consent
record Omnisend gets), and the shops (tenants) that each connect their own Omnisend brand."""

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


class Shop(models.Model):
    """A tenant of the site: its staff connect the shop's own Omnisend brand from its page.

    The shop owns its ``django_omnisend`` connection (``{% omnisend_connect shop %}``), and
    its members sync to that brand (``NewsletterAdapter.get_connection_key``).
    """

    name = models.CharField(max_length=100)
    slug = models.SlugField(unique=True)
    #: Who may connect, reconnect and disconnect the shop's brand (``ShopConnectionAdapter``).
    staff = models.ManyToManyField(
        settings.AUTH_USER_MODEL, related_name="staffed_shops", blank=True
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ShopMembership(models.Model):
    """The shop a member (a customer) belongs to; members of no shop sync to the site's brand."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="shop_membership"
    )
    shop = models.ForeignKey(Shop, on_delete=models.CASCADE, related_name="memberships")

    def __str__(self) -> str:
        return f"{self.user} in {self.shop}"

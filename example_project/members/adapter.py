"""The example's adapters: who syncs, to which brand, with which consent, and who manages a
shop's Omnisend connection."""

from typing import Any

from django.http import HttpRequest

from django_omnisend.adapter import Consent, ContactAdapter
from django_omnisend.connect import owners
from django_omnisend.connect.permissions import ConnectionAdapter

from .models import EmailVerification, NewsletterConsent, Shop, ShopMembership


class NewsletterAdapter(ContactAdapter):
    def should_sync(self, user: Any) -> bool:
        # Staff accounts are not customers.
        return super().should_sync(user) and not user.is_staff

    def is_email_verified(self, user: Any) -> bool:
        # Verified by the link the sign-up page e-mails (printed on the console here).
        address = self.get_email(user)
        return (
            bool(address)
            and EmailVerification.objects.filter(
                user=user, address__iexact=address, verified_at__isnull=False
            ).exists()
        )

    def get_consent(self, user: Any) -> Consent | None:
        # Only an explicit opt-in (or opt-out) recorded here is sent; everyone else gets no
        # channel status, so Omnisend keeps whatever it has (nonSubscribed for new contacts).
        record = NewsletterConsent.objects.filter(user=user).first()
        if record is None:
            return None
        return Consent(
            subscribed=record.subscribed,
            at=record.at,
            ip=record.ip or "",
            source=record.source,
            user_agent=record.user_agent,
        )

    def send_welcome_message(self, user: Any) -> bool:
        # A new sign-up who ticked the box gets the brand's welcome e-mail.
        return NewsletterConsent.objects.filter(user=user, subscribed=True).exists()

    def get_contact_fields(self, user: Any) -> dict[str, Any]:
        fields = super().get_contact_fields(user)
        fields["tags"] = [*fields["tags"], "example project"]
        fields["customProperties"] = {"djangoUserID": str(user.pk)}
        return fields

    def record_status(self, user: Any, status: str, changed_at: Any, *args: Any, **kw: Any) -> None:
        # `manage.py omnisend_pull` hands over status changes made inside Omnisend (e.g. an
        # unsubscribe link): store an unsubscribe as the person's decision, dated when they
        # made it, so get_consent() returns it and no later sync can undo it.
        if status == "unsubscribed":
            NewsletterConsent.objects.update_or_create(
                user=user,
                defaults={
                    "subscribed": False,
                    "at": changed_at,
                    "source": "unsubscribed in Omnisend",
                },
            )


class ShopNewsletterAdapter(NewsletterAdapter):
    """:class:`NewsletterAdapter`, with each shop's members synced to the brand it connected.

    Members of no shop go to the site's brand; a shop's members wait (their deliveries paused)
    until the shop connects, never falling back to the site's brand. Database triggers cannot
    call this method, so the settings use it only with signal marking.
    """

    def get_connection_key(self, user: Any) -> str:
        # The sign-up form sets the shop on the new user before its first save, which is
        # when the user is marked for sync: the membership row does not exist yet then.
        shop = getattr(user, "shop_at_signup", None)
        if shop is None:
            membership = ShopMembership.objects.filter(user=user).select_related("shop").first()
            shop = membership.shop if membership else None
        return owners.connection_key(shop)


class ShopConnectionAdapter(ConnectionAdapter):
    """A shop's staff manage its brand and no other shop's; the site's stays with the default
    rule (staff with the ``django_omnisend.manage_connection`` permission)."""

    def can_manage_connection(self, request: HttpRequest, owner: Any) -> bool:
        if isinstance(owner, Shop):
            user = request.user
            return bool(
                user.is_authenticated and user.is_active and owner.staff.filter(pk=user.pk).exists()
            )
        return super().can_manage_connection(request, owner)

"""On-site tracking consent: Omnisend's snippet runs only for visitors who said yes.

The store's cookie banner (``store/consent_banner.html``) stores the visitor's choice in the
``CONSENT_COOKIE`` cookie; ``OMNISEND["TRACKING_ADAPTER"]`` names :class:`ConsentCookieTracking`,
which reads it, so ``{% omnisend_snippet %}`` renders nothing before the choice or after a no.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from django_omnisend.tracking import TrackingAdapter

from . import orders

#: The cookie holding the banner's answer: "marketing" (yes) or "necessary" (no).
CONSENT_COOKIE = "example_cookie_consent"
MARKETING = "marketing"
NECESSARY = "necessary"


def consent_given(request: HttpRequest) -> str | None:
    """The visitor's answer (``MARKETING`` or ``NECESSARY``), None before they chose."""
    answer = request.COOKIES.get(CONSENT_COOKIE)
    return answer if answer in (MARKETING, NECESSARY) else None


class ConsentCookieTracking(TrackingAdapter):
    def tracking_allowed(self, request: HttpRequest) -> bool:
        return consent_given(request) == MARKETING

    def get_product(self, product: Any, request: HttpRequest) -> dict[str, Any] | None:
        # The same id, URL and price the catalog has, so Omnisend links the view to it.
        return orders.viewed(product).as_json()

"""Pages of the example: home, sign-up, and (staff only) the contacts as Omnisend has them."""

from __future__ import annotations

from itertools import islice
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import permission_required
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone

import django_omnisend
from django_omnisend.adapter import normalize_email
from django_omnisend.connect import active_connection
from django_omnisend.exceptions import OmnisendError
from django_omnisend.models import SyncState
from django_omnisend.sync.health import health

from .forms import SignupForm
from .models import EmailVerification, NewsletterConsent, Shop, ShopMembership

#: Who may read the contacts page: it lists the e-mail address of every contact of the site.
CONTACTS_PERMISSION = "django_omnisend.view_syncstate"

#: The contacts page shows at most this many contacts (it is a demo, not a CRM).
MAX_CONTACTS = 200
#: Signing salt and lifetime (seconds) of the e-mailed confirmation links.
VERIFY_SALT = "members.verify-email"
VERIFY_MAX_AGE = 7 * 24 * 3600


def _next_page(request: HttpRequest) -> HttpResponse:
    """After a sign-up or a confirmation: the contacts for staff, the home page for the rest."""
    return redirect("contacts" if request.user.has_perm(CONTACTS_PERMISSION) else "home")


def _mode() -> dict[str, Any]:
    emulator = getattr(settings, "EXAMPLE_EMULATOR", None)
    return {"emulator": emulator, "connection": active_connection()}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "members/home.html", {**_mode(), "health": health()})


def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        # The user and their consent record commit together: the sync's drain reads both.
        with transaction.atomic():
            user = form.save()
            if form.cleaned_data.get("shop"):
                ShopMembership.objects.create(user=user, shop=form.cleaned_data["shop"])
            EmailVerification.objects.create(user=user, address=user.email)
            if form.cleaned_data["newsletter"]:
                NewsletterConsent.objects.create(
                    user=user,
                    subscribed=True,
                    at=timezone.now(),
                    ip=request.META.get("REMOTE_ADDR") or None,
                    user_agent=request.headers.get("User-Agent", "")[:500],
                )
        link = request.build_absolute_uri(
            reverse("verify", args=[signing.dumps([user.pk, user.email], salt=VERIFY_SALT)])
        )
        send_mail(
            "Confirm your e-mail address",
            f"Open this link to confirm {user.email}:\n\n{link}\n",
            None,
            [user.email],
        )
        messages.success(
            request,
            f"Welcome, {user.email}! Your contact reaches Omnisend in a moment: the drain "
            "worker sends it, not this request. Confirm your address with the link we e-mailed "
            "(printed on the server's console here): only then is a newsletter opt-in sent.",
        )
        return _next_page(request)
    return render(request, "members/signup.html", {"form": form})


def verify(request: HttpRequest, token: str) -> HttpResponse:
    """The link e-mailed at sign-up: the address is verified, and a ticked box confirmed."""
    try:
        user_pk, address = signing.loads(token, salt=VERIFY_SALT, max_age=VERIFY_MAX_AGE)
    except signing.BadSignature:
        messages.error(request, "This confirmation link is invalid or expired; sign up again.")
        return redirect("home")
    now = timezone.now()
    with transaction.atomic():
        found = EmailVerification.objects.filter(user_id=user_pk, address=address).update(
            verified_at=now
        )
        # Double opt-in: the confirmation is the consent Omnisend gets, dated now.
        NewsletterConsent.objects.filter(user_id=user_pk, subscribed=True).update(at=now)
        user = get_user_model().objects.filter(pk=user_pk).first()
        if found and user is not None:
            django_omnisend.mark_for_sync(user)
    if not found:
        messages.error(request, "This address is no longer on an account here.")
        return redirect("home")
    messages.success(request, f"Thank you: {address} is confirmed.")
    return _next_page(request)


@staff_member_required
@permission_required(CONTACTS_PERMISSION, raise_exception=True)
def contacts(request: HttpRequest) -> HttpResponse:
    """The contacts as Omnisend (or the emulator) has them, next to each user's sync state.

    Staff with the permission to view sync rows only (others go to the admin's login, or get
    a 403): it lists every contact's e-mail address, which a shop's staff may not read.
    """
    error = ""
    remote: list[dict[str, Any]] = []
    try:
        with django_omnisend.get_client() as client:
            remote = list(islice(client.contacts.iterate(limit=100), MAX_CONTACTS))
    except OmnisendError as exc:
        error = str(exc)

    states = {
        state.user_id: state
        for state in SyncState.objects.filter(connection_key="default").select_related("user")
    }
    by_email = {state.email: state for state in states.values() if state.email}
    users = (
        get_user_model()
        .objects.order_by("-date_joined")
        .select_related("newsletter_consent")[:MAX_CONTACTS]
    )
    rows = []
    for contact in remote:
        state = by_email.get(normalize_email(contact.get("email")) or "")
        rows.append({"contact": contact, "state": state})
    people = [
        {
            "user": user,
            "opted_in": bool(
                getattr(getattr(user, "newsletter_consent", None), "subscribed", False)
            ),
            "state": states.get(user.pk),
        }
        for user in users
    ]
    context = {**_mode(), "rows": rows, "people": people, "error": error, "health": health()}
    return render(request, "members/contacts.html", context)


@staff_member_required
def shops(request: HttpRequest) -> HttpResponse:
    """The shops (tenants), each with its Omnisend connection's status."""
    return render(request, "members/shops.html", {"shops": Shop.objects.all()})


@staff_member_required
def shop(request: HttpRequest, slug: str) -> HttpResponse:
    """A shop's page: its Omnisend control and, for its staff, its members and brand's contacts.

    Any staff member sees the status; ``{% omnisend_connect shop %}`` shows the buttons only to
    those ``ShopConnectionAdapter`` lets manage the shop, and its URLs refuse everyone else.
    """
    the_shop = get_object_or_404(Shop, slug=slug)
    is_staff_of_shop = the_shop.staff.filter(pk=request.user.pk).exists()
    members: list[Any] = []
    remote: list[dict[str, Any]] = []
    error = ""
    if is_staff_of_shop:
        members = [
            m.user for m in the_shop.memberships.select_related("user").order_by("user__email")
        ]
        try:
            # The shop's own brand: never the site's brand or API key.
            with django_omnisend.get_client(owner=the_shop) as client:
                remote = list(islice(client.contacts.iterate(limit=100), MAX_CONTACTS))
        except OmnisendError as exc:
            error = str(exc)
    context = {
        "shop": the_shop,
        "is_staff_of_shop": is_staff_of_shop,
        "members": members,
        "remote": remote,
        "error": error,
    }
    return render(request, "members/shop.html", context)

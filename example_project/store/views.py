"""The store's pages: catalog, product, cart, checkout, the order's thank-you page, the cookie
banner's answer, and (staff) the store's activity as Omnisend has it.

Events go through the outbox in the request's transaction, to the site's brand (the
``default`` connection): the store is the site's own shop, not a tenant's.
"""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal
from itertools import islice
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import permission_required
from django.db import transaction
from django.db.models import F, Prefetch
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from members.views import CONTACTS_PERMISSION

import django_omnisend
from django_omnisend import commerce
from django_omnisend.catalog import mark_product
from django_omnisend.events import send_order, send_recommended
from django_omnisend.exceptions import OmnisendError

from . import orders
from .cart import MAX_QUANTITY, Cart
from .models import Category, Order, OrderLine, Product, Variant
from .tracking import CONSENT_COOKIE, MARKETING, NECESSARY

#: The connection (brand) the store's events go to: the site's own.
STORE_CONNECTION = "default"
#: The guest's address, once given at checkout (identifies their later cart events).
GUEST_EMAIL_KEY = "store_guest_email"
#: Orders this session placed: only they may see their thank-you page.
PLACED_KEY = "store_placed_orders"
#: The staff activity page shows at most this many of each list.
MAX_ROWS = 100


class AddToCartForm(forms.Form):
    variant = forms.ModelChoiceField(queryset=Variant.objects.none(), empty_label=None)
    quantity = forms.IntegerField(min_value=1, max_value=MAX_QUANTITY, initial=1)

    def __init__(self, product: Product, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["variant"].queryset = product.variants.filter(stock__gt=0)


class CheckoutForm(forms.Form):
    email = forms.EmailField(label="E-mail for the receipt")


def _customer(request: HttpRequest) -> tuple[Any, str | None]:
    """Who the store's events are about: the member, or the guest's checkout address."""
    if request.user.is_authenticated:
        return request.user, None
    return None, request.session.get(GUEST_EMAIL_KEY)


def _send(request: HttpRequest, event: commerce.RecommendedEvent) -> None:
    """Queue ``event`` for the visitor, if the store knows who they are.

    An anonymous visitor who never gave an address cannot be named: the snippet (after
    consent) tracks them instead. The adapter's rules apply to members (staff are skipped).
    """
    user, email = _customer(request)
    if user is None and not email:
        return
    send_recommended(event, user, email=email, connection_key=STORE_CONNECTION)


def index(request: HttpRequest) -> HttpResponse:
    products = Product.objects.filter(published=True).prefetch_related("variants")
    categories = Category.objects.prefetch_related(Prefetch("products", queryset=products))
    uncategorized = products.filter(category__isnull=True)
    context = {"categories": categories, "uncategorized": uncategorized}
    return render(request, "store/index.html", context)


def product(request: HttpRequest, slug: str) -> HttpResponse:
    the_product = get_object_or_404(
        Product.objects.select_related("category"), slug=slug, published=True
    )
    # The catalog's variant URLs (?variant=SKU, from Omnisend's messages) preselect it.
    chosen = the_product.variants.filter(sku=request.GET.get("variant", "")).first()
    form = AddToCartForm(the_product, initial={"variant": chosen.pk if chosen else None})
    context = {"product": the_product, "form": form, "variants": the_product.variants.all()}
    return render(request, "store/product.html", context)


@require_POST
def add_to_cart(request: HttpRequest, slug: str) -> HttpResponse:
    the_product = get_object_or_404(Product, slug=slug, published=True)
    form = AddToCartForm(the_product, request.POST)
    if not form.is_valid():
        messages.error(request, "Choose a variant in stock and a quantity from 1 to 20.")
        return redirect(the_product)
    variant, quantity = form.cleaned_data["variant"], form.cleaned_data["quantity"]
    cart = Cart(request.session)
    cart.add(variant, quantity)
    lines = cart.lines()
    _send(
        request,
        commerce.added_product_to_cart(
            orders.commerce_cart(cart, lines), orders.cart_line(variant, quantity)
        ),
    )
    messages.success(request, f"Added {quantity} x {variant} to your cart.")
    return redirect("store:cart")


def cart(request: HttpRequest) -> HttpResponse:
    the_cart = Cart(request.session)
    lines = the_cart.lines()
    user, email = _customer(request)
    form = CheckoutForm(initial={"email": email or getattr(user, "email", "")})
    context = {"lines": lines, "total": the_cart.total, "form": form, "member": user}
    return render(request, "store/cart.html", context)


@require_POST
def start_checkout(request: HttpRequest) -> HttpResponse:
    """The cart's "Checkout" button: remembers a guest's address, sends ``started checkout``."""
    the_cart = Cart(request.session)
    lines = the_cart.lines()
    if not lines:
        messages.error(request, "Your cart is empty: add a product first.")
        return redirect("store:cart")
    if not request.user.is_authenticated:
        form = CheckoutForm(request.POST)
        if not form.is_valid():
            messages.error(request, "Give the e-mail address the receipt should go to.")
            return redirect("store:cart")
        request.session[GUEST_EMAIL_KEY] = form.cleaned_data["email"]
    _send(request, commerce.started_checkout(orders.commerce_cart(the_cart, lines)))
    return redirect("store:checkout")


def checkout(request: HttpRequest) -> HttpResponse:
    the_cart = Cart(request.session)
    lines = the_cart.lines()
    user, email = _customer(request)
    if not lines or not (user or email):
        return redirect("store:cart")
    context = {
        "lines": lines,
        "total": sum((line.total for line in lines), Decimal(0)),
        "email": email or user.email,
        "member": user,
    }
    return render(request, "store/checkout.html", context)


@require_POST
def place_order(request: HttpRequest) -> HttpResponse:
    """Create the order and its lines, take the stock, and queue the order's events, at once.

    ``send_order`` runs inside the order's transaction: a failed order sends nothing, and a
    placed one is never lost (the drain sends it even if Omnisend is down right now).
    """
    the_cart = Cart(request.session)
    lines = the_cart.lines()
    user, email = _customer(request)
    if not lines or not (user or email):
        messages.error(request, "Your cart is empty or has no e-mail address: start again.")
        return redirect("store:cart")
    with transaction.atomic():
        for line in lines:
            # A conditional update: two shoppers cannot both take the last one.
            taken = Variant.objects.filter(pk=line.variant.pk, stock__gte=line.quantity).update(
                stock=F("stock") - line.quantity
            )
            if not taken:
                transaction.set_rollback(True)
                messages.error(request, f"Not enough of {line.variant} left; change your cart.")
                return redirect("store:cart")
            # update() sends no signal: mark the product so the catalog's stock follows.
            mark_product(line.variant.product)
        order = Order.objects.create(user=user, email=email or user.email, total=the_cart.total)
        OrderLine.objects.bulk_create(
            OrderLine(
                order=order,
                variant=line.variant,
                product_slug=line.variant.product.slug,
                title=line.variant.product.title,
                variant_sku=line.variant.sku,
                variant_title=line.variant.title,
                unit_price=line.variant.price,
                quantity=line.quantity,
            )
            for line in lines
        )
        send_order(
            orders.commerce_order(order),
            user,
            email=email if user is None else None,
            connection_key=STORE_CONNECTION,
        )
    the_cart.clear()
    request.session[PLACED_KEY] = [*request.session.get(PLACED_KEY, []), order.pk]
    return redirect("store:order", pk=order.pk)


def order_placed(request: HttpRequest, pk: int) -> HttpResponse:
    # Only the session that placed it: the page shows the buyer's address.
    if pk not in request.session.get(PLACED_KEY, []):
        return redirect("store:index")
    the_order = get_object_or_404(Order.objects.prefetch_related("lines"), pk=pk)
    return render(request, "store/order.html", {"order": the_order})


@require_POST
def consent(request: HttpRequest) -> HttpResponse:
    """The cookie banner's answer, kept for a year in ``CONSENT_COOKIE``."""
    answer = MARKETING if request.POST.get("answer") == MARKETING else NECESSARY
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(
        target, {request.get_host()}, require_https=request.is_secure()
    ):
        target = reverse("store:index")
    response = HttpResponseRedirect(target)
    response.set_cookie(
        CONSENT_COOKIE, answer, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
    )
    return response


def _emulator_events() -> list[dict[str, Any]] | None:
    """The events the bundled emulator received (None when the site talks to Omnisend,
    which has no API listing received events)."""
    emulator = getattr(settings, "EXAMPLE_EMULATOR", None)
    if not emulator:
        return None
    request = urllib.request.Request(f"{emulator['URL']}/__emulator__/events")
    with urllib.request.urlopen(request, timeout=5) as response:
        events = json.load(response)
    return [
        {
            "name": e["eventName"],
            "version": e.get("eventVersion", ""),
            "contact": (e.get("contact") or {}).get("email")
            or (e.get("contact") or {}).get("phone", ""),
            "about": e["properties"].get("orderID") or e["properties"].get("cartID") or "",
            "time": e.get("eventTime", ""),
            # The emulator marks a repeat Omnisend dropped (same eventID + eventTime).
            "repeat": e.get("_duplicate", False),
        }
        for e in reversed(events[-MAX_ROWS:])  # newest first
    ]


@staff_member_required
@permission_required(CONTACTS_PERMISSION, raise_exception=True)
def activity(request: HttpRequest) -> HttpResponse:
    """The store's orders, and the events and catalog as Omnisend (or the emulator) has them.

    Staff with the permission of the contacts page: it shows buyers' e-mail addresses.
    """
    error = ""
    catalog: list[dict[str, Any]] = []
    events: list[dict[str, Any]] | None = None
    try:
        with django_omnisend.get_client() as client:
            catalog = list(islice(client.products.iterate(limit=100), MAX_ROWS))
    except OmnisendError as exc:
        error = str(exc)
    try:
        events = _emulator_events()
    except OSError as exc:
        error = error or f"The emulator did not answer ({exc}); is manage.py demo running?"
    context = {
        "orders": Order.objects.prefetch_related("lines")[:MAX_ROWS],
        "catalog": catalog,
        "events": events,
        "error": error,
    }
    return render(request, "store/activity.html", context)

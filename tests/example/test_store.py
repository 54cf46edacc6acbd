"""The example store, end to end: ``manage.py demo`` (its server, drain worker and emulator)
driven over HTTP as a shopper and as staff would.

An order placed in the store reaches the emulator as ``placed order`` + ``ordered product``
with Omnisend's documented versions and properties, and is counted exactly once when the
first send meets a 503 or lands but times out; product edits and deletes made in the admin
reach the emulator's catalog. The demo runs with Omnisend's "historical event" wait turned
down to seconds (``OMNISEND_EVENT_HISTORY_SECONDS``) and the emulator's to match.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from contextlib import closing
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from django_omnisend.emulator import EmulatorConfig
from tests.event_facts.schemas import documented_version, validate_properties
from tests.openapi import validate_request, validate_response

from .demo_site import ADMIN_USER, DemoSite, running_demo
from .html_forms import form_fields

pytestmark = pytest.mark.slow

#: The example's emulator API key (example/settings.py): the site's brand, every scope.
API_KEY = f"{EmulatorConfig().default_brand_id}-example-project-not-secret"
#: Seconds the demo's drain waits before resending an event whose first send may have landed.
APP_HISTORY_SECONDS = "2"
#: Seconds after which the emulator treats an event as historical (a repeat is then dropped).
EMULATOR_HISTORY_SECONDS = 1.0
DEADLINE = 60.0


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> DemoSite:
    folder = tmp_path_factory.mktemp("store")
    with running_demo(
        folder,
        OMNISEND_EVENT_HISTORY_SECONDS=APP_HISTORY_SECONDS,
        OMNISEND_RETRY_BACKOFF="0.1",
        # Well under the hang of the timeout fault below (10 s), with margin either way.
        OMNISEND_REQUEST_TIMEOUT="2",
    ) as site:
        _control(site, "POST", "/config", {"event_history_seconds": EMULATOR_HISTORY_SECONDS})
        site.folder = folder  # type: ignore[attr-defined]
        yield site


def _control(site: DemoSite, method: str, path: str, body: dict | None = None):
    response = requests.request(
        method, f"{site.emulator_url}/__emulator__{path}", json=body, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def _api(site: DemoSite, method: str, path: str) -> requests.Response:
    """A request to the emulator's Omnisend API with the example's key."""
    return requests.request(
        method,
        f"{site.emulator_url}/api{path}",
        headers={"Authorization": f"Omnisend-API-Key {API_KEY}", "Omnisend-Version": "2026-03-15"},
        timeout=10,
    )


def _wait(what: str, check, site: DemoSite):
    """Poll ``check()`` until it returns something truthy (60 s at most) and return it."""
    deadline = time.monotonic() + DEADLINE
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {DEADLINE:.0f} s.\n{site.log()[-5000:]}")
        time.sleep(0.3)


def _post(session: requests.Session, site: DemoSite, path: str, data: dict) -> requests.Response:
    response = session.post(
        f"{site.base_url}{path}",
        data={"csrfmiddlewaretoken": session.cookies["csrftoken"], **data},
        headers={"Referer": f"{site.base_url}{path}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text[:3000]
    return response


def _variant_pk(html: str, label: str) -> str:
    found = re.search(rf'<option value="(\d+)"[^>]*>{re.escape(label)}</option>', html)
    assert found, html[:3000]
    return found.group(1)


def _order_events(site: DemoSite, order_id: str) -> list[dict]:
    return [
        e for e in _control(site, "GET", "/events") if e["properties"].get("orderID") == order_id
    ]


def _pending_events(site: DemoSite) -> int:
    """Event deliveries the demo's outbox still has to make (read from its database)."""
    with closing(sqlite3.connect(Path(site.folder) / "example.sqlite3")) as db:  # type: ignore[attr-defined]
        (count,) = db.execute(
            "SELECT COUNT(*) FROM django_omnisend_outboxitem WHERE kind = 'event' "
            "AND state = 'pending'"
        ).fetchone()
    return count


def _buy_as_guest(site: DemoSite, email: str, before_placing=None) -> str:
    """Add two mugs and a T-shirt to a guest's cart, check out, place the order; its id.

    ``before_placing()`` runs once the cart's ``started checkout`` is in the emulator, so a
    fault it adds meets the order's own events first.
    """
    shopper = requests.Session()
    page = shopper.get(f"{site.base_url}/store/products/enamel-mug/", timeout=10)
    assert page.status_code == 200
    _post(
        shopper,
        site,
        "/store/products/enamel-mug/add/",
        {"variant": _variant_pk(page.text, "Enamel mug - Blue"), "quantity": "2"},
    )
    page = shopper.get(f"{site.base_url}/store/products/logo-tee/", timeout=10)
    cart = _post(
        shopper,
        site,
        "/store/products/logo-tee/add/",
        {"variant": _variant_pk(page.text, "Logo T-shirt - Medium"), "quantity": "1"},
    )
    assert "€49.00" in cart.text  # 2 x 12.00 + 25.00
    checkout = _post(shopper, site, "/store/checkout/start/", {"email": email})
    assert email in checkout.text
    # `started checkout` names the guest from the address given at checkout.
    (started,) = _wait(
        "started checkout in the emulator",
        lambda: [
            e
            for e in _control(site, "GET", "/events")
            if e["eventName"] == "started checkout" and e["contact"].get("email") == email
        ],
        site,
    )
    assert started["eventVersion"] == documented_version("started checkout")
    validate_properties("started checkout", started["properties"])
    if before_placing is not None:
        before_placing()
    placed = _post(shopper, site, "/store/checkout/place/", {})
    found = re.search(r'id="order-placed" data-order="(\d+)"', placed.text)
    assert found, placed.text[:3000]
    return found.group(1)


def _delivered_once(site: DemoSite, order_id: str, duplicates: int) -> list[dict]:
    """Wait until the order's events are all sent (and ``duplicates`` repeats were dropped)."""

    def settled():
        events = _order_events(site, order_id)
        repeats = sum(e["_duplicate"] for e in events)
        if len(events) - repeats == 3 and repeats == duplicates and not _pending_events(site):
            return events
        return None

    return _wait(f"order {order_id} delivered", settled, site)


def _check_order_events(site: DemoSite, events: list[dict], order_id: str, email: str) -> None:
    counted = [e for e in events if not e["_duplicate"]]
    assert Counter(e["eventName"] for e in counted) == {"placed order": 1, "ordered product": 2}
    assert len({e["eventID"] for e in counted}) == 3
    for event in counted:
        assert event["eventVersion"] == documented_version(event["eventName"])
        validate_properties(event["eventName"], event["properties"])
        validate_request("POST", "/events", {k: v for k, v in event.items() if k[0] != "_"})
        assert event["contact"] == {"email": email}
    (placed,) = [e for e in counted if e["eventName"] == "placed order"]
    assert placed["properties"]["orderID"] == order_id
    assert placed["properties"]["currency"] == "EUR"
    assert Decimal(str(placed["properties"]["totalPrice"])) == Decimal("49.00")
    assert placed["properties"]["paymentStatus"] == "paid"
    lines = {
        e["properties"]["product"]["productVariantID"]: e["properties"]["product"]
        for e in counted
        if e["eventName"] == "ordered product"
    }
    assert sorted(lines) == ["MUG-BLUE", "TEE-M"]
    assert lines["MUG-BLUE"]["productID"] == "enamel-mug"
    assert lines["MUG-BLUE"]["productQuantity"] == 2
    assert lines["TEE-M"]["productPrice"] == 25
    # Absolute URLs on the demo's own address (SITE_URL, which `demo` sets).
    assert lines["TEE-M"]["productURL"] == f"{site.base_url}/store/products/logo-tee/"


def _staff(site: DemoSite) -> requests.Session:
    staff = requests.Session()
    staff.get(f"{site.base_url}/admin/login/", timeout=10)
    _post(
        staff,
        site,
        "/admin/login/?next=/admin/",
        {"username": ADMIN_USER, "password": site.admin_password, "next": "/admin/"},
    )
    return staff


def test_order_reaches_omnisend_as_placed_order_and_ordered_products(store):
    order_id = _buy_as_guest(store, "guest-shopper@example.com")
    events = _delivered_once(store, order_id, duplicates=0)
    _check_order_events(store, events, order_id, "guest-shopper@example.com")
    # Staff see the order and its events on the store's activity page.
    page = _staff(store).get(f"{store.base_url}/store/activity/", timeout=10)
    assert page.status_code == 200
    assert f'<tr data-order="{order_id}">' in page.text
    assert page.text.count('<tr data-event="ordered product">') >= 2
    assert 'id="activity-error"' not in page.text


@pytest.mark.parametrize(
    ("fault", "duplicates"),
    [
        ({"kind": "503"}, 0),
        # Applied, then no answer within the demo's 2 s timeout: the resend after the
        # historical wait is the same event, which Omnisend drops.
        ({"kind": "apply_then_hang", "seconds": 10.0}, 1),
    ],
    ids=["503", "timeout-after-apply"],
)
def test_faulted_order_is_counted_once(store, fault, duplicates):
    email = f"faulted-{fault['kind'].replace('_', '-')}@example.com"
    order_id = _buy_as_guest(
        store,
        email,
        before_placing=lambda: _control(
            store, "POST", "/faults", {"route": "POST /api/events", "times": 1, **fault}
        ),
    )
    try:
        events = _delivered_once(store, order_id, duplicates=duplicates)
        (rule,) = _control(store, "GET", "/faults")
        assert rule["fired"] == 1  # the fault did meet one of the order's events
    finally:
        _control(store, "DELETE", "/faults")
    _check_order_events(store, events, order_id, email)


def _product(site: DemoSite, slug: str) -> requests.Response:
    return _api(site, "GET", f"/products/{slug}")


def test_product_edits_and_deletes_in_the_admin_reach_the_catalog(store):
    # The seeded catalog arrives through the demo's drain worker.
    seeded = _wait("the seeded travel mug", lambda: _product(store, "travel-mug").ok, store)
    assert seeded
    body = _product(store, "travel-mug").json()
    validate_response("GET", "/products/travel-mug", 200, body)
    assert body["categoryIDs"] == ["mugs"]
    assert [(v["id"], v["price"]) for v in body["variants"]] == [("TRAVEL-STEEL", 19.5)]

    staff = _staff(store)
    listing = staff.get(f"{store.base_url}/admin/store/product/", timeout=10).text
    found = re.search(r'href="/admin/store/product/(\d+)/change/[^"]*">Travel mug<', listing)
    assert found, listing[:3000]
    change = f"/admin/store/product/{found.group(1)}/change/"
    page = staff.get(f"{store.base_url}{change}", timeout=10).text
    fields = form_fields(page, "product_form")
    fields.pop("csrfmiddlewaretoken")
    fields["title"] = "Travel mug XL"
    fields["variants-0-price"] = "21.00"
    saved = _post(staff, store, change, {**fields, "_save": "Save"})
    assert "was changed successfully" in saved.text, saved.text[:3000]

    def edited():
        response = _product(store, "travel-mug")
        return response.ok and response.json()["title"] == "Travel mug XL" and response.json()

    body = _wait("the edit in the catalog", edited, store)
    validate_response("GET", "/products/travel-mug", 200, body)
    assert [(v["id"], v["price"]) for v in body["variants"]] == [("TRAVEL-STEEL", 21)]

    delete = f"/admin/store/product/{found.group(1)}/delete/"
    staff.get(f"{store.base_url}{delete}", timeout=10)
    _post(staff, store, delete, {"post": "yes"})
    _wait(
        "the delete in the catalog",
        lambda: _product(store, "travel-mug").status_code == 404,
        store,
    )
    # The rest of the catalog is untouched.
    assert _product(store, "enamel-mug").ok


def _sign_up_and_log_in(site: DemoSite, email: str) -> requests.Session:
    member = requests.Session()
    member.get(f"{site.base_url}/signup/", timeout=10)
    password = "a-long-member-password-7"
    _post(
        member,
        site,
        "/signup/",
        {
            "email": email,
            "first_name": "Mia",
            "last_name": "Member",
            "password1": password,
            "password2": password,
        },
    )
    member.get(f"{site.base_url}/login/", timeout=10)
    page = _post(member, site, "/login/", {"username": email, "password": password})
    assert f"Log out {email}" in page.text, page.text[:3000]
    return member


def test_member_order_names_the_member(store):
    email = "mia.member@example.com"
    member = _sign_up_and_log_in(store, email)
    slug = "enamel-mug"
    page = member.get(f"{store.base_url}/store/products/{slug}/", timeout=10)
    _post(
        member,
        store,
        f"/store/products/{slug}/add/",
        {"variant": _variant_pk(page.text, "Enamel mug - White"), "quantity": "1"},
    )
    # A member's cart is known: `added product to cart` names them (a guest's cannot).
    (added,) = _wait(
        "added product to cart",
        lambda: [
            e
            for e in _control(store, "GET", "/events")
            if e["eventName"] == "added product to cart" and e["contact"] == {"email": email}
        ],
        store,
    )
    assert added["eventVersion"] == documented_version("added product to cart")
    validate_properties("added product to cart", added["properties"])
    assert added["properties"]["addedItem"]["productID"] == slug
    checkout = _post(member, store, "/store/checkout/start/", {})
    assert f"The receipt goes to {email}" in checkout.text
    placed = _post(member, store, "/store/checkout/place/", {})
    order_id = re.search(r'id="order-placed" data-order="(\d+)"', placed.text).group(1)

    def delivered():
        events = _order_events(store, order_id)
        return len(events) == 2 and not _pending_events(store) and events

    events = _wait("the member's order", delivered, store)
    assert sorted(e["eventName"] for e in events) == ["ordered product", "placed order"]
    for event in events:
        assert event["contact"] == {"email": email}
        assert event["eventVersion"] == documented_version(event["eventName"])
        validate_properties(event["eventName"], event["properties"])
    # The store is the site's: its events go to the site's brand, the contact there too.
    contacts = _control(store, "GET", "/contacts")
    assert email in {c["email"] for c in contacts}


def _json_script(html: str, prefix: str) -> dict | None:
    found = re.search(
        rf'<script id="{prefix}-[0-9a-f]+" type="application/json">(.*?)</script>', html, re.S
    )
    return json.loads(found.group(1)) if found else None


def test_snippet_runs_only_after_the_cookie_banner_says_yes(store):
    visitor = requests.Session()
    page = visitor.get(f"{store.base_url}/store/products/enamel-mug/", timeout=10).text
    assert 'id="cookie-consent"' in page
    assert _json_script(page, "omnisend-snippet") is None
    assert _json_script(page, "omnisend-viewed-product") is None

    no = _post(
        visitor,
        store,
        "/store/consent/",
        {"answer": "necessary", "next": "/store/products/enamel-mug/"},
    )
    assert "/store/products/enamel-mug/" in no.url
    assert 'id="cookie-consent"' not in no.text  # answered: no banner, and no tracking
    assert _json_script(no.text, "omnisend-snippet") is None

    agrees = requests.Session()
    agrees.get(f"{store.base_url}/store/", timeout=10)
    yes = _post(
        agrees,
        store,
        "/store/consent/",
        {"answer": "marketing", "next": "https://elsewhere.example.com/"},
    )
    assert yes.url == f"{store.base_url}/store/"  # never redirected off the site
    assert agrees.cookies["example_cookie_consent"] == "marketing"
    page = agrees.get(f"{store.base_url}/store/products/enamel-mug/", timeout=10).text
    config = _json_script(page, "omnisend-snippet")
    assert config["brandID"] == EmulatorConfig().default_brand_id  # the site's brand
    event = _json_script(page, "omnisend-viewed-product")
    assert event["eventVersion"] == documented_version("viewed product")
    product = event["properties"]["product"]
    assert product["id"] == "enamel-mug"  # the catalog's id, so Omnisend links them
    assert product["url"] == f"{store.base_url}/store/products/enamel-mug/"
    assert (product["price"], product["currency"]) == (12, "EUR")
    # The browser adds the page (title, URL) before pushing it.
    properties = {
        **event["properties"],
        "page": {"title": "Enamel mug", "url": product["url"]},
    }
    validate_properties("viewed product", properties)


def _catalog_variant(site: DemoSite, slug: str, sku: str) -> dict | None:
    response = _product(site, slug)
    if not response.ok:
        return None
    return next((v for v in response.json()["variants"] if v["id"] == sku), None)


def test_buying_the_last_one_marks_it_out_of_stock_in_the_catalog(store):
    # Stock is taken with QuerySet.update(), which sends no signal: the store marks the
    # product itself (mark_product), so the catalog follows.
    staff = _staff(store)
    listing = staff.get(f"{store.base_url}/admin/store/variant/?q=TEE-S", timeout=10).text
    found = re.search(r'href="/admin/store/variant/(\d+)/change/[^"]*">TEE-S<', listing)
    assert found, listing[:3000]
    change = f"/admin/store/variant/{found.group(1)}/change/"
    fields = form_fields(staff.get(f"{store.base_url}{change}", timeout=10).text, "variant_form")
    fields.pop("csrfmiddlewaretoken")
    _post(staff, store, change, {**fields, "stock": "1", "_save": "Save"})
    _wait(
        "TEE-S in stock in the catalog",
        lambda: (_catalog_variant(store, "logo-tee", "TEE-S") or {}).get("status") == "inStock",
        store,
    )

    shopper = requests.Session()
    page = shopper.get(f"{store.base_url}/store/products/logo-tee/", timeout=10)
    _post(
        shopper,
        store,
        "/store/products/logo-tee/add/",
        {"variant": _variant_pk(page.text, "Logo T-shirt - Small"), "quantity": "1"},
    )
    _post(shopper, store, "/store/checkout/start/", {"email": "last-one@example.com"})
    placed = _post(shopper, store, "/store/checkout/place/", {})
    assert 'id="order-placed"' in placed.text
    variant = _wait(
        "TEE-S out of stock in the catalog",
        lambda: (
            (v := _catalog_variant(store, "logo-tee", "TEE-S"))
            and v["status"] == "outOfStock"
            and v
        ),
        store,
    )
    assert variant["price"] == 25
    # Sold out: the product page no longer offers it.
    page = shopper.get(f"{store.base_url}/store/products/logo-tee/", timeout=10)
    assert "Logo T-shirt - Small</option>" not in page.text


def test_catalog_variant_urls_preselect_the_variant(store):
    # The catalog sends each variant's URL as the product page with ?variant=SKU.
    (variant,) = [
        v
        for v in _wait("the seeded enamel mug", lambda: _product(store, "enamel-mug").ok, store)
        and _product(store, "enamel-mug").json()["variants"]
        if v["id"] == "MUG-BLUE"
    ]
    assert variant["url"] == f"{store.base_url}/store/products/enamel-mug/?variant=MUG-BLUE"
    page = requests.get(variant["url"], timeout=10).text
    assert re.search(r'<option value="\d+" selected>Enamel mug - Blue</option>', page), page

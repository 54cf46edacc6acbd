"""The example store in a real browser: the cookie banner, the snippet, a guest's order.

Before the banner's "yes" the product page has no Omnisend script; after it, the snippet runs
and queues a ``viewed product`` for the page's product. Omnisend's launcher (a third-party
script on the internet) is answered by an empty script here, so what the page itself pushes
to ``window.omnisend`` is what is checked. Then the guest adds a product to the cart, checks
out and places the order, which reaches the emulator as ``placed order``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser.conftest import CHROMIUM_ARGS
from tests.example.demo_site import DemoSite

pytestmark = pytest.mark.browser

GUEST = "browser-guest@example.com"


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


def _omnisend_pushes(page: Any) -> list[Any]:
    return page.evaluate("() => JSON.parse(JSON.stringify(window.omnisend || []))")


def test_guest_accepts_cookies_views_a_product_and_places_an_order(browser, site: DemoSite):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    launcher_requests: list[str] = []

    def empty_launcher(route: Any) -> None:
        launcher_requests.append(route.request.url)
        route.fulfill(status=200, content_type="application/javascript", body="")

    context.route("https://omnisnippet1.com/**", empty_launcher)
    try:
        page = context.new_page()
        page.goto(f"{site.base_url}/store/products/enamel-mug/")
        assert page.locator("#cookie-consent").is_visible()
        assert _omnisend_pushes(page) == []  # no consent, no Omnisend script at all

        page.click("#consent-yes")
        page.wait_for_url(f"{site.base_url}/store/products/enamel-mug/")
        assert page.locator("#cookie-consent").count() == 0
        page.wait_for_function(
            "() => (window.omnisend || []).some(p => p[0] === 'track' && p[1] === 'viewed product')"
        )
        pushes = _omnisend_pushes(page)
        (viewed,) = [p[2] for p in pushes if p[:2] == ["track", "viewed product"]]
        assert viewed["properties"]["product"]["id"] == "enamel-mug"
        assert viewed["properties"]["page"]["url"] == page.url
        assert launcher_requests  # the snippet asked for Omnisend's launcher

        page.select_option("#id_variant", label="Enamel mug - White")
        page.fill("#id_quantity", "3")
        page.click("#add-to-cart button[type=submit]")
        page.wait_for_url(f"{site.base_url}/store/cart/")
        assert page.inner_text("#cart-total") == "€36.00"
        page.fill("#id_email", GUEST)
        page.click("#start-checkout button[type=submit]")
        page.wait_for_url(f"{site.base_url}/store/checkout/")
        page.click("#place-order button[type=submit]")
        heading = page.locator("#order-placed")
        heading.wait_for()
        order_id = heading.get_attribute("data-order")
    finally:
        context.close()

    deadline = time.monotonic() + 60
    while True:
        events = requests.get(f"{site.emulator_url}/__emulator__/events", timeout=10).json()
        placed = [
            e
            for e in events
            if e["eventName"] == "placed order" and e["properties"]["orderID"] == order_id
        ]
        if placed:
            break
        assert time.monotonic() < deadline, f"order {order_id} not in the emulator:\n{site.log()}"
        time.sleep(0.3)
    (event,) = placed
    assert event["contact"] == {"email": GUEST}
    assert event["properties"]["totalPrice"] == 36

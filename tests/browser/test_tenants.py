"""Two tenants of the example project in a real browser (issue 18).

Shop A's staff connect shop A to brand A from the shop's own page, picking the brand on the
emulator's consent page; shop B's staff do the same for brand B. Each shop's members then reach
only their shop's brand (after the drain worker `demo` runs), and shop A's staff get no control
for shop B: its page shows none, and its connect and disconnect URLs answer 403.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from tests.browser.conftest import ARTIFACTS, CHROMIUM_ARGS
from tests.example.demo_site import DemoSite

pytestmark = pytest.mark.browser

#: (slug, staff user, members, emulator brand, brand name) as ``manage.py demo`` makes them.
SHOP_A = ("shop-a", "shop-a-staff", {"ann@shop-a.example.com", "alex@shop-a.example.com"})
SHOP_B = ("shop-b", "shop-b-staff", {"bea@shop-b.example.com", "ben@shop-b.example.com"})
BRAND_A, BRAND_B = "example-shop-a", "example-shop-b"


def staff_password(site: DemoSite, username: str) -> str:
    """The password the banner printed for a shop's staff user (new at each start)."""
    found = re.search(rf"\(user {re.escape(username)}, password (\S+?);", site.log())
    assert found, f"no password for {username} in the banner:\n{site.log()}"
    return found.group(1)


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


@pytest.fixture
def staff_pages(browser: Any, site: DemoSite, request: pytest.FixtureRequest) -> Iterator[Any]:
    """``open(username)``: a page of a fresh context logged in as that shop's staff user."""
    contexts: list[Any] = []
    pages: list[Any] = []

    def open_as(username: str) -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        pages.append(page)
        page.goto(f"{site.base_url}/admin/login/")
        page.fill("#id_username", username)
        page.fill("#id_password", staff_password(site, username))
        page.click("input[type=submit], button[type=submit]")
        page.wait_for_url(f"{site.base_url}/admin/")
        return page

    yield open_as
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for number, page in enumerate(pages):
            try:
                page.screenshot(path=str(ARTIFACTS / f"tenants-{number}.png"), full_page=True)
                (ARTIFACTS / f"tenants-{number}.html").write_text(page.content())
            except Exception as exc:
                (ARTIFACTS / f"tenants-{number}.error.txt").write_text(repr(exc))
        (ARTIFACTS / "tenants.server.log").write_text(site.log())
    for context in contexts:
        context.close()


def shop_url(site: DemoSite, slug: str) -> str:
    return f"{site.base_url}/shops/{slug}/"


def connect_from_shop_page(page: Any, site: DemoSite, slug: str, brand_id: str) -> None:
    """Connect Omnisend on the shop's page, pick ``brand_id`` on the consent page, approve."""
    page.goto(shop_url(site, slug))
    page.get_by_role("button", name="Connect Omnisend").click()
    page.wait_for_url(site.emulator_url + "/oauth2/authorize**")
    page.select_option("#brand", brand_id)
    page.click("#approve")
    page.wait_for_url(shop_url(site, slug))
    assert "Connected to the Omnisend brand" in page.locator(".messages").inner_text()


def status(page: Any, site: DemoSite, slug: str) -> str:
    page.goto(shop_url(site, slug))
    return page.locator("#omnisend .omnisend-status").inner_text()


def post_as(page: Any, site: DemoSite, url: str) -> int:
    """POST ``url`` with this page's session and CSRF token, as a crafted form would."""
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "csrftoken")
    response = page.context.request.post(
        url,
        form={"csrfmiddlewaretoken": token, "next": "/shops/"},
        headers={"Referer": site.base_url + "/shops/"},
        max_redirects=0,
    )
    return response.status


def brand_contacts(site: DemoSite, brand_id: str | None) -> set[str]:
    """E-mail addresses of a brand's contacts, from the emulator's control API."""
    params = {"brand_id": brand_id} if brand_id else {}
    answer = requests.get(f"{site.emulator_url}/__emulator__/contacts", params=params, timeout=10)
    assert answer.status_code == 200, answer.text[:500]
    return {contact.get("email") for contact in answer.json()}


def test_two_shops_connect_their_own_brands_and_members_reach_only_theirs(staff_pages, site):
    slug_a, staff_a, members_a = SHOP_A
    slug_b, staff_b, members_b = SHOP_B
    page_a = staff_pages(staff_a)
    page_b = staff_pages(staff_b)

    # Shop B's own connect URL (the signed owner reference its page carries).
    page_b.goto(shop_url(site, slug_b))
    connect_b = page_b.locator("form:has(button.omnisend-connect)").get_attribute("action")
    assert connect_b and "/omnisend/connect/" in connect_b

    connect_from_shop_page(page_a, site, slug_a, BRAND_A)
    assert "Shop A's brand" in status(page_a, site, slug_a)
    assert "Active" in status(page_a, site, slug_a)

    # Shop A's staff: shop B's page shows its status, and no control.
    page_a.goto(shop_url(site, slug_b))
    assert page_a.locator("#not-your-shop").is_visible()
    assert page_a.locator("#omnisend button").count() == 0
    assert page_a.locator("#omnisend form").count() == 0
    assert post_as(page_a, site, site.base_url + connect_b) == 403
    assert "Not connected" in status(page_a, site, slug_b)

    connect_from_shop_page(page_b, site, slug_b, BRAND_B)
    assert "Shop B's brand" in status(page_b, site, slug_b)
    disconnect_b = page_b.locator("form:has(button.omnisend-disconnect)").get_attribute("action")
    reconnect_b = page_b.locator("form:has(button.omnisend-reconnect)").get_attribute("action")
    # Neither disconnecting nor reconnecting shop B is open to shop A's staff.
    assert post_as(page_a, site, site.base_url + disconnect_b) == 403
    assert post_as(page_a, site, site.base_url + reconnect_b) == 403
    assert "Active" in status(page_b, site, slug_b)
    assert "Shop A's brand" in status(page_a, site, slug_a)

    # The drain worker delivers each shop's members to its brand, and only there.
    deadline = time.monotonic() + 60
    while True:
        in_a, in_b = brand_contacts(site, BRAND_A), brand_contacts(site, BRAND_B)
        if members_a <= in_a and members_b <= in_b:
            break
        assert time.monotonic() < deadline, (
            f"the drain did not deliver the members in 60 s: A has {in_a}, B has {in_b}"
        )
        time.sleep(0.5)
    assert not members_b & in_a
    assert not members_a & in_b
    assert not (members_a | members_b) & brand_contacts(site, None)  # nor the site's brand

    # The shop's page shows its members in its brand, read with get_client(owner=shop).
    page_a.goto(shop_url(site, slug_a))
    shown = set(
        page_a.locator("#shop-contacts tr[data-email]").evaluate_all(
            "rows => rows.map(r => r.dataset.email)"
        )
    )
    assert members_a <= shown and not members_b & shown

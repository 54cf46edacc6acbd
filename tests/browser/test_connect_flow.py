"""The example project in a real browser: connect (approve and deny) and sign-ups synced."""

from __future__ import annotations

import time

import pytest

from tests.example.demo_site import confirmation_link

pytestmark = pytest.mark.browser

CHANGELIST = "/admin/django_omnisend/connection/"


def _start_connect(page, site) -> None:
    page.goto(site.base_url + CHANGELIST)
    page.get_by_role("button", name="Connect Omnisend").click()
    # The emulator's consent page, as Omnisend's would be.
    page.wait_for_url(site.emulator_url + "/oauth2/authorize**")
    assert page.locator("#approve").is_visible()
    assert "contacts.write" in page.locator("#scopes").inner_text()


def test_connect_approve_lands_back_with_an_active_connection(page, site):
    _start_connect(page, site)
    page.click("#approve")
    page.wait_for_url(site.base_url + CHANGELIST + "**")
    assert "Connected to the Omnisend brand" in page.locator(".messagelist").inner_text()
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "Active" in rows.first.inner_text()
    # The home page names the connection the site now uses.
    page.goto(site.base_url + "/")
    assert "Connected to" in page.locator("#connection").inner_text()


def test_connect_deny_changes_nothing(page, site):
    page.goto(site.base_url + CHANGELIST)
    before = page.locator("#result_list tbody tr").count()
    _start_connect(page, site)
    page.click("#deny")
    page.wait_for_url(site.base_url + "/omnisend/callback/**")
    assert "Connection cancelled" in page.content()
    assert "not approved" in page.locator(".errornote").inner_text()
    page.goto(site.base_url + CHANGELIST)
    assert page.locator("#result_list tbody tr").count() == before


def _sign_up(page, site, email: str, newsletter: bool) -> None:
    page.goto(site.base_url + "/signup/")
    page.fill("#id_email", email)
    page.fill("#id_first_name", "Browser")
    page.fill("#id_password1", "a-long-browser-password-1")
    page.fill("#id_password2", "a-long-browser-password-1")
    if newsletter:
        page.check("#id_newsletter")
    page.get_by_role("button", name="Create my account").click()
    page.wait_for_url(site.base_url + "/contacts/")
    assert f"Welcome, {email}" in page.locator(".messages").inner_text()


def test_sign_ups_reach_the_contacts_list_after_the_drain(page, site):
    _sign_up(page, site, "browser-in@example.com", newsletter=True)
    _sign_up(page, site, "browser-out@example.com", newsletter=False)
    # Confirm the opted-in address with the link the console e-mail shows.
    page.goto(confirmation_link(site.log(), "browser-in@example.com"))
    page.wait_for_url(site.base_url + "/contacts/")
    contacts = page.locator("#omnisend-contacts")
    opted_in = contacts.locator('tr[data-email="browser-in@example.com"]')
    opted_out = contacts.locator('tr[data-email="browser-out@example.com"]')
    deadline = time.monotonic() + 30
    while not (opted_in.count() and opted_out.count()) or (
        opted_in.locator(".status").inner_text().strip() != "subscribed"
    ):
        assert time.monotonic() < deadline, "the drain did not deliver the sign-ups in 30 s"
        time.sleep(0.5)
        page.reload()
    assert opted_in.locator(".status").inner_text().strip() == "subscribed"
    assert opted_out.locator(".status").inner_text().strip() != "subscribed"
    assert "Synced" in opted_in.inner_text()
    users = page.locator("#site-users")
    assert "opted in" in users.locator('tr[data-email="browser-in@example.com"]').inner_text()

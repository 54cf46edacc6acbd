"""The README's first command keeps working: ``manage.py demo`` brings the example up end to end.

It is run as a child process on free ports with a fresh database and emulator state: the site,
its sign-up page answers, its contacts page only to staff (the demo superuser, with the random
password the banner prints), a sign-up reaches the emulator through the
drain worker `demo` started (opted in: ``subscribed`` once the e-mailed confirmation link is
opened, ``nonSubscribed`` before; not: no subscription), and SIGTERM stops
the server, the worker and the emulator.
"""

from __future__ import annotations

import re
import sqlite3
import time
from contextlib import closing
from urllib.parse import urlsplit

import pytest
import requests

from .demo_site import (
    ADMIN_USER,
    confirmation_link,
    port_is_closed,
    running_demo,
)

pytestmark = pytest.mark.slow


def _sign_up(
    session: requests.Session, base: str, email: str, newsletter: bool, lands_on: str = "/"
) -> None:
    """Sign up through the form; a visitor lands on the home page, staff on the contacts."""
    page = session.get(f"{base}/signup/", timeout=10)
    assert page.status_code == 200
    assert 'name="newsletter"' in page.text
    data = {
        "csrfmiddlewaretoken": session.cookies["csrftoken"],
        "email": email,
        "first_name": "Test",
        "last_name": "Person",
        "password1": "a-long-test-password-1",
        "password2": "a-long-test-password-1",
    }
    if newsletter:
        data["newsletter"] = "on"
    response = session.post(
        f"{base}/signup/", data=data, headers={"Referer": f"{base}/signup/"}, timeout=10
    )
    assert response.status_code == 200, response.text[:2000]
    assert urlsplit(response.url).path == lands_on
    assert f"Welcome, {email}!" in response.text


def _log_in(session: requests.Session, base: str, username: str, password: str) -> bool:
    """Log in through the admin's login form; True when it let the user in."""
    session.get(f"{base}/admin/login/", timeout=10)
    response = session.post(
        f"{base}/admin/login/?next=/admin/",
        data={
            "csrfmiddlewaretoken": session.cookies["csrftoken"],
            "username": username,
            "password": password,
            "next": "/admin/",
        },
        headers={"Referer": f"{base}/admin/login/"},
        timeout=10,
        allow_redirects=False,
    )
    return response.status_code == 302 and response.headers["Location"] == "/admin/"


def _staff_session(site) -> requests.Session:
    staff = requests.Session()
    assert _log_in(staff, site.base_url, ADMIN_USER, site.admin_password), site.log()
    return staff


def _contact_status(html: str, email: str) -> str | None:
    """The e-mail status shown in the Omnisend contacts table, None while it is not there."""
    table = html.split('id="omnisend-contacts"', 1)[1].split("</table>", 1)[0]
    row = re.search(rf'<tr data-email="{re.escape(email)}">(.*?)</tr>', table, re.S)
    if row is None:
        return None
    return re.search(r'class="status"><span class="badge[^"]*">([^<]*)<', row.group(1)).group(1)


def _wait_for_statuses(session, site, wanted: dict[str, str]) -> dict[str, str | None]:
    """Poll the contacts page (30 s at most) until the statuses are ``wanted``; the last seen."""
    statuses: dict[str, str | None] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        html = session.get(f"{site.base_url}/contacts/", timeout=10).text
        statuses = {email: _contact_status(html, email) for email in wanted}
        if statuses == wanted:
            break
        time.sleep(0.5)
    return statuses


def test_demo_runs_the_example_end_to_end(tmp_path):
    with running_demo(tmp_path) as site:
        banner = site.log()
        assert f"{site.base_url}/admin/" in banner
        # A random password, printed; the old well-known one lets nobody in.
        assert f"user {ADMIN_USER}, password {site.admin_password}" in banner
        assert len(site.admin_password) >= 16 and site.admin_password != "admin"
        assert site.emulator_url in banner

        visitor = requests.Session()
        home = visitor.get(f"{site.base_url}/", timeout=10)
        assert home.status_code == 200
        assert "Omnisend emulator" in home.text
        # Every contact's e-mail is on that page: visitors are sent to the admin's login.
        contacts = visitor.get(f"{site.base_url}/contacts/", timeout=10, allow_redirects=False)
        assert contacts.status_code == 302
        assert contacts.headers["Location"] == "/admin/login/?next=/contacts/"
        assert not _log_in(requests.Session(), site.base_url, ADMIN_USER, "admin")

        session = _staff_session(site)
        contacts = session.get(f"{site.base_url}/contacts/", timeout=10, allow_redirects=False)
        assert contacts.status_code == 200
        assert 'id="omnisend-contacts"' in contacts.text
        assert 'id="contacts-error"' not in contacts.text

        # A shop's staff are staff (the admin's login lets them in) but may not read every
        # contact of the site: the page needs the permission to view sync rows.
        shop_staff = requests.Session()
        found = re.search(r"\(user shop-a-staff, password (\S+?);", banner)
        assert found, banner
        assert _log_in(shop_staff, site.base_url, "shop-a-staff", found.group(1))
        refused = shop_staff.get(f"{site.base_url}/contacts/", timeout=10, allow_redirects=False)
        assert refused.status_code == 403
        assert "@example.com" not in refused.text

        _sign_up(visitor, site.base_url, "opted-in@example.com", newsletter=True)
        _sign_up(session, site.base_url, "no-box@example.com", False, lands_on="/contacts/")
        # Signing up logs nobody in: the visitor still cannot see the contacts.
        again = visitor.get(f"{site.base_url}/contacts/", timeout=10, allow_redirects=False)
        assert again.status_code == 302

        # Before the address is confirmed, a ticked box subscribes nobody.
        unconfirmed = {
            "opted-in@example.com": "nonSubscribed",
            "no-box@example.com": "nonSubscribed",
        }
        assert _wait_for_statuses(session, site, unconfirmed) == unconfirmed, site.log()
        # The confirmation link the sign-up e-mailed (the console backend prints it).
        link = confirmation_link(site.log(), "opted-in@example.com")
        confirmed_page = visitor.get(link, timeout=10)
        assert confirmed_page.status_code == 200
        assert urlsplit(confirmed_page.url).path == "/"
        confirmed = {**unconfirmed, "opted-in@example.com": "subscribed"}
        assert _wait_for_statuses(session, site, confirmed) == confirmed, site.log()

        web_port = urlsplit(site.base_url).port
        emulator_port = urlsplit(site.emulator_url).port
    assert site.process.returncode == 0, site.log()
    assert "Stopped." in site.log()
    assert port_is_closed(web_port)
    assert port_is_closed(emulator_port)
    assert (tmp_path / "emulator_state.json").exists()  # contacts persist between runs


def test_demo_with_trigger_marking_delivers_sign_ups(tmp_path):
    # MARK_WITH from the environment: demo's migrate installs the triggers, a sign-up's
    # saves are marked by them, and the demo's drain worker delivers the contact.
    with running_demo(tmp_path, OMNISEND_MARK_WITH="trigger") as site:
        session = _staff_session(site)
        _sign_up(session, site.base_url, "trigger@example.com", True, lands_on="/contacts/")
        session.get(confirmation_link(site.log(), "trigger@example.com"), timeout=10)
        wanted = {"trigger@example.com": "subscribed"}
        assert _wait_for_statuses(session, site, wanted) == wanted, site.log()
    # closing(): sqlite3's own context manager ends the transaction but leaves it open.
    with closing(sqlite3.connect(tmp_path / "example.sqlite3")) as db:
        names = [
            row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        ]
    assert sorted(n.rsplit("_", 1)[0] for n in names) == [
        "django_omnisend_mark_ins",
        "django_omnisend_mark_upd",
    ]


def test_each_start_prints_a_new_password_and_the_old_one_stops_working(tmp_path):
    with running_demo(tmp_path) as first:
        old = first.admin_password
    # The same database: the superuser exists, and still gets a new password, printed.
    with running_demo(tmp_path) as second:
        assert second.admin_password != old
        assert not _log_in(requests.Session(), second.base_url, ADMIN_USER, old)
        _staff_session(second)

"""Playwright on Debian's Chromium against the example project's ``manage.py demo``.

The browser is Debian's ``chromium`` package (``/usr/bin/chromium``, or ``CHROMIUM_PATH``), which
``.ci/run`` installs; Playwright's own browser download is never used. In CI (``CI`` set) a
missing Chromium or Playwright fails the tests; elsewhere they are skipped with a message.
A failing test leaves a screenshot and the page's HTML in ``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.example.demo_site import ADMIN_USER, DemoSite, running_demo

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the browser tests (.ci/run installs chromium).")
    pytest.skip(f"{reason} (apt-get install chromium, pip install playwright).")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoSite]:
    with running_demo(tmp_path_factory.mktemp("browser-demo")) as demo:
        yield demo


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's Chromium and Playwright are there (checked before any server is started)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        _unavailable(f"Chromium was not found at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(scope="module")
def browser_context(
    chromium: str, site: DemoSite, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A logged-in (demo superuser) Chromium context with a fresh user-data-dir."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=chromium,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(15_000)
        try:
            page = context.new_page()
            page.goto(f"{site.base_url}/admin/login/")
            page.fill("#id_username", ADMIN_USER)
            page.fill("#id_password", site.admin_password)
            page.click("input[type=submit], button[type=submit]")
            page.wait_for_url(f"{site.base_url}/admin/")
            page.close()
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser_context: Any, request: pytest.FixtureRequest, site: DemoSite) -> Iterator[Any]:
    page = browser_context.new_page()
    yield page
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        try:
            page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
            (ARTIFACTS / f"{name}.html").write_text(page.content())
        except Exception as exc:  # the page may be gone; the server log still helps
            (ARTIFACTS / f"{name}.error.txt").write_text(repr(exc))
        shutil.copyfile(site.log_path, ARTIFACTS / f"{name}.server.log")
    page.close()

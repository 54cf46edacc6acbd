"""Pytest fixtures that serve the bundled Omnisend emulator to your project's tests.

Enable them in your top-level ``conftest.py``::

    pytest_plugins = ["django_omnisend.testing"]

* ``omnisend_emulator``: an :class:`~django_omnisend.emulator.Emulator` served on a free
  ``127.0.0.1`` port for the whole test session and reset before each test that uses it (no
  contacts, events, faults or extra keys; config, default brand and demo client as built).
  It changes no settings: use it to drive the emulator from its control API.
* ``omnisend``: ``omnisend_emulator`` with ``settings.OMNISEND`` pointed at it for the test:
  the API and OAuth URLs, the demo client's ``CLIENT_ID``/``CLIENT_SECRET``, a fresh
  ``API_KEY`` of the default brand and ``TASK_BACKEND = None`` (the test runs
  ``django_omnisend.sync.drain()`` itself); every other key, ``SYNC_USERS`` included, is your
  settings'. Your ``REDIRECT_URI``, if set, is registered for the demo client. The brand's rate
  budget and cooldown are cleared before and after the test. When the budget lives in the
  database (no Redis or Memcached cache), the fixture enables database access (pytest-django's
  ``db``) for tests that did not ask for it. Yields the emulator.

This module imports pytest, so only a test run imports it; ``import django_omnisend`` never
does. It needs configured Django settings (pytest-django) only for ``omnisend``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .emulator import Emulator

__all__ = ["omnisend", "omnisend_emulator", "omnisend_emulator_server"]


@pytest.fixture(scope="session")
def omnisend_emulator_server() -> Iterator[Emulator]:
    """The session's emulator, serving on a free loopback port until the session ends."""
    with Emulator(seed=0).serve(host="127.0.0.1", port=0) as emulator:
        yield emulator


@pytest.fixture
def omnisend_emulator(omnisend_emulator_server: Emulator) -> Iterator[Emulator]:
    """The session's emulator, reset to its post-construction state for this test."""
    omnisend_emulator_server.reset()
    yield omnisend_emulator_server
    # Drop faults at once: a hanging or slow rule must not reach whatever runs next.
    omnisend_emulator_server.clear_faults()


@pytest.fixture
def omnisend(request: pytest.FixtureRequest, omnisend_emulator: Emulator) -> Iterator[Emulator]:
    """``omnisend_emulator`` with ``OMNISEND`` pointed at it for this test (module docstring)."""
    from django.conf import settings
    from django.test import override_settings

    from .ratelimit import RateLimiter, tags_rate_limiter

    if RateLimiter(budget=1, window=1).store == "database" and not (
        {"db", "transactional_db", "live_server"} & set(request.fixturenames)
        or request.node.get_closest_marker("django_db")
    ):
        # Without Redis or Memcached the budget lives in the database: every request
        # touches it, so the test needs database access (pytest-django's ``db``).
        request.getfixturevalue("db")

    current = dict(getattr(settings, "OMNISEND", {}))
    redirect_uri = current.get("REDIRECT_URI")
    if redirect_uri and redirect_uri not in omnisend_emulator.demo_redirect_uris:
        omnisend_emulator.configure(
            demo_redirect_uris=[*omnisend_emulator.demo_redirect_uris, redirect_uri]
        )
    values = {
        **current,
        "API_URL": omnisend_emulator.api_url,
        "AUTHORIZE_URL": omnisend_emulator.authorize_url,
        "TOKEN_URL": omnisend_emulator.token_url,
        "REVOKE_URL": omnisend_emulator.revoke_url,
        "CLIENT_ID": omnisend_emulator.demo_client_id,
        "CLIENT_SECRET": omnisend_emulator.demo_client_secret,
        "API_KEY": omnisend_emulator.issue_api_key(),
        "TASK_BACKEND": None,
    }
    with override_settings(OMNISEND=values):
        # The budget lives in your cache, keyed by brand: one test's requests (or a 429
        # cooldown) must not slow the next test down.
        limiters = [RateLimiter(), tags_rate_limiter()]
        for limiter in limiters:
            limiter.reset(omnisend_emulator.default_brand_id)
        yield omnisend_emulator
        for limiter in limiters:
            limiter.reset(omnisend_emulator.default_brand_id)

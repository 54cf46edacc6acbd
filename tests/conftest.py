"""Shared fixtures: the Omnisend emulator, served once per test session.

* ``emulator`` — a served :class:`~django_omnisend.emulator.Emulator` (seed 1234), ``reset()``
  before each test that uses it: config back to defaults, no faults, empty ledger, only the
  default brand (``emulator.default_brand_id``) and the demo client. Use ``emulator.api_url``,
  ``.authorize_url``, ``.token_url``, ``.revoke_url``, ``.base_url`` and the Python control API
  (``configure``, ``issue_api_key``, ``issue_token``, ``add_fault``, ``ledger``, ``contacts``…).
* ``emulator_settings`` — ``override_settings(OMNISEND=...)`` active for the test: API_URL,
  AUTHORIZE_URL, TOKEN_URL and REVOKE_URL point at the emulator, CLIENT_ID/CLIENT_SECRET are the
  demo client's, API_KEY is a fresh key of the default brand, REDIRECT_URI is
  ``http://testserver/omnisend/callback/`` (also registered for the demo client, next to its
  defaults); everything else (ENCRYPTION_KEYS, TASK_BACKEND…) comes from tests/settings.py.
  Yields the dict.

* ``sync_settings`` — ``emulator_settings`` with ``SYNC_USERS`` and ``TRUST_EMAILS`` on and no
  django.tasks nudges;
  ``contact_writes(email=None)`` counts the contact writes the emulator answered.

The emulator imports no Django, so these fixtures work in any test; the settings fixture needs
pytest-django's configured settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.test import override_settings

from django_omnisend.emulator import Emulator

TEST_REDIRECT_URI = "http://testserver/omnisend/callback/"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On MariaDB/MySQL, tests that install the mark triggers run as transactional tests.

    There ``CREATE``/``DROP TRIGGER`` commit the open transaction, so a test inside the usual
    rolled-back transaction would commit its data and lose its savepoints; a transactional
    test commits anyway and is flushed after. Such tests are marked ``triggers`` or run
    trigger marking through the ``sync_settings``/``mark_with`` parameters.
    """
    from django.conf import settings

    if not settings.DATABASES["default"]["ENGINE"].endswith("mysql"):
        return
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec else {}
        uses_triggers = item.get_closest_marker("triggers") is not None or "trigger" in (
            params.get("sync_settings"),
            params.get("mark_with"),
        )
        marker = item.get_closest_marker("django_db")
        if uses_triggers and marker is not None:
            kwargs = {**marker.kwargs, "transaction": True}
            item.add_marker(pytest.mark.django_db(**kwargs), append=False)


@pytest.fixture(scope="session", autouse=True)
def _second_database_features(django_db_setup, django_db_blocker) -> None:
    """Ask the ``second`` test database for its features once, up front.

    ``manage.py check`` makes Django's JSONField check ask every database whether it supports
    JSON (a query on SQLite, cached per process); in a test that does not use ``second``
    that query is refused, so the answer is cached before any test runs.
    """
    from django.db import connections

    with django_db_blocker.unblock():
        for alias in connections:
            connections[alias].features.supports_json_field  # noqa: B018 - cached property
            connections[alias].close()


@pytest.fixture(scope="session")
def _emulator_session() -> Iterator[Emulator]:
    emu = Emulator(seed=1234)
    with emu.serve(host="127.0.0.1", port=0):
        yield emu


@pytest.fixture
def emulator(_emulator_session: Emulator) -> Iterator[Emulator]:
    """The session's emulator, reset to its post-construction state for this test."""
    _emulator_session.reset()
    yield _emulator_session
    # Drop faults at once so a hang rule cannot slow whatever runs next.
    _emulator_session.clear_faults()


@pytest.fixture
def emulator_settings(emulator: Emulator) -> Iterator[dict[str, Any]]:
    """``OMNISEND`` settings pointing at the emulator (see the module docstring)."""
    from django.conf import settings
    from django.test import override_settings

    emulator.add_client(
        emulator.demo_client_id,
        emulator.demo_client_secret,
        [*emulator.demo_redirect_uris, TEST_REDIRECT_URI],
        brand_id=emulator.default_brand_id,
    )
    values = {
        **getattr(settings, "OMNISEND", {}),
        "API_URL": emulator.api_url,
        "AUTHORIZE_URL": emulator.authorize_url,
        "TOKEN_URL": emulator.token_url,
        "REVOKE_URL": emulator.revoke_url,
        "CLIENT_ID": emulator.demo_client_id,
        "CLIENT_SECRET": emulator.demo_client_secret,
        "REDIRECT_URI": TEST_REDIRECT_URI,
        "API_KEY": emulator.issue_api_key(),
    }
    with override_settings(OMNISEND=values):
        yield values


@pytest.fixture(autouse=True)
def _clear_caches() -> Iterator[None]:
    """Each test starts with empty caches: the shared rate budget and cooldowns live there."""
    from django.core.cache import caches

    from django_omnisend import ratelimit

    yield
    for cache in caches.all(initialized_only=True):
        cache.clear()
    # The per-process fallback budget (LocMem caches) lives in memory, not in the cache.
    ratelimit.forget_local_budgets()


@pytest.fixture
def sync_settings(emulator_settings):
    """OMNISEND pointed at the emulator (API-key mode) with SYNC_USERS on, no task nudges.

    ``TRUST_EMAILS`` is on: tests of delivery, consent and bulk runs are about users whose
    addresses are verified. The unverified rules are tested with it off or with an adapter
    that answers ``is_email_verified`` itself (tests/sync/test_identity.py).
    """
    omnisend = {
        **emulator_settings,
        "SYNC_USERS": True,
        "TASK_BACKEND": None,
        "TRUST_EMAILS": True,
    }
    with override_settings(OMNISEND=omnisend):
        yield omnisend


@pytest.fixture
def contact_writes(emulator):
    """How many contact writes (POST/PATCH /api/contacts…) the emulator has answered."""

    def count(email: str | None = None) -> int:
        writes = [
            e
            for e in emulator.ledger
            if e.method in ("POST", "PATCH") and e.path.startswith("/api/contacts")
        ]
        if email is not None:
            writes = [e for e in writes if email in (e.body or b"").decode()]
        return len(writes)

    return count

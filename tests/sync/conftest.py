"""The sync tests use ``sync_settings`` and ``contact_writes`` from tests/conftest.py."""

from __future__ import annotations

import pytest


@pytest.fixture
def api_requests(emulator):
    """The emulator's API requests so far (OAuth and control endpoints left out)."""

    def requests():
        return [e for e in emulator.ledger if e.path.startswith("/api/")]

    return requests

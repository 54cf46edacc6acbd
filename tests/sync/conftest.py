"""Fixtures for the sync tests: the emulator with user sync switched on."""

from __future__ import annotations

import pytest
from django.test import override_settings


@pytest.fixture
def sync_settings(emulator_settings):
    """OMNISEND pointed at the emulator (API-key mode) with SYNC_USERS on, no task nudges."""
    omnisend = {**emulator_settings, "SYNC_USERS": True, "TASK_BACKEND": None}
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

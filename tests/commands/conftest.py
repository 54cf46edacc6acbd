"""Fixtures for the operations commands: the emulator with user sync switched on."""

from __future__ import annotations

import pytest
from django.test import override_settings

from .adapters import RecordingAdapter


@pytest.fixture
def recording_settings(sync_settings):
    """``sync_settings`` with :class:`RecordingAdapter` (a site that stores pulled statuses)."""
    RecordingAdapter.statuses.clear()
    RecordingAdapter.calls.clear()
    omnisend = {**sync_settings, "ADAPTER": "tests.commands.adapters.RecordingAdapter"}
    with override_settings(OMNISEND=omnisend):
        yield omnisend
    RecordingAdapter.statuses.clear()
    RecordingAdapter.calls.clear()


@pytest.fixture
def api_requests(emulator):
    """The emulator's API requests so far (OAuth and control endpoints left out)."""

    def requests():
        return [e for e in emulator.ledger if e.path.startswith("/api/")]

    return requests

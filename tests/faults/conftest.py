"""Fixtures for the fault matrix: the emulator with user sync on, and the report hook."""

from __future__ import annotations

import pytest
from django.test import override_settings

from .scenarios import SCENARIOS, report


@pytest.fixture
def matrix_settings(emulator_settings):
    """OMNISEND pointed at the emulator (API-key mode), SYNC_USERS on, no task nudges."""
    omnisend = {**emulator_settings, "SYNC_USERS": True, "TASK_BACKEND": None}
    with override_settings(OMNISEND=omnisend):
        yield omnisend


@pytest.fixture
def run_scenario(emulator, matrix_settings):
    """Run scenario ``name`` (M1…M17), report it, and fail with every broken invariant."""

    def run(name: str):
        outcome = SCENARIOS[name](emulator, matrix_settings)
        report(outcome)
        assert outcome.checks, "the scenario checked nothing"
        assert outcome.passed, f"{outcome.scenario}: {outcome.failures()}"
        return outcome

    return run

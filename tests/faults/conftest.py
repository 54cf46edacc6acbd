"""Fixtures for the fault matrix: the emulator with user sync on, and the report hook."""

from __future__ import annotations

import pytest
from django.test import override_settings

from tests.marking import marking

from .scenarios import SCENARIOS, report


@pytest.fixture
def matrix_settings(emulator_settings):
    """OMNISEND pointed at the emulator (API-key mode), SYNC_USERS on, no task nudges.

    ``TRUST_EMAILS`` on: the matrix is about delivery under faults, for verified addresses
    (the unverified rules are tested in tests/sync/test_identity.py).
    """
    omnisend = {
        **emulator_settings,
        "SYNC_USERS": True,
        "TASK_BACKEND": None,
        "TRUST_EMAILS": True,
    }
    with override_settings(OMNISEND=omnisend):
        yield omnisend


@pytest.fixture(params=["signal"])
def mark_with(request):
    """How saves mark users (``OMNISEND["MARK_WITH"]``); tests parametrize it indirectly."""
    return request.param


@pytest.fixture
def run_scenario(emulator, matrix_settings, mark_with):
    """Run scenario ``name`` (M1…M17, M19, M20), report it, and fail with every broken invariant.

    With ``mark_with`` "trigger" the user mark triggers are installed for the scenario and
    removed after it (the process scenarios commit, so nothing rolls them back).
    """

    def run(name: str):
        with marking(matrix_settings, mark_with) as base:
            outcome = SCENARIOS[name](emulator, base)
        if mark_with != "signal":
            outcome.scenario += f" [{mark_with}]"
        report(outcome)
        assert outcome.checks, "the scenario checked nothing"
        assert outcome.passed, f"{outcome.scenario}: {outcome.failures()}"
        return outcome

    return run

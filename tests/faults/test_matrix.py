"""The fault matrix, M1-M17 of SECURITY-RELIABILITY.md §4.3 (the M18 soak excepted), M19-M20.

Marked ``faults``: the normal suite deselects it and ``tox -e faults`` runs it, at
``FAULT_MATRIX_USERS`` users (default 200) x 5 saves. ``benchmarks/faults.py`` runs the same
scenarios at the full 2,000 users and prints one table. The scenarios and the invariants each
one ends with are in ``tests/faults/scenarios.py``.
"""

from __future__ import annotations

import os

import pytest

from .scenarios import FAKETIME_LIB

pytestmark = [pytest.mark.faults, pytest.mark.slow]
db = pytest.mark.django_db
processes = pytest.mark.django_db(transaction=True)
#: The scenarios where how a save is marked matters also run with database triggers.
both_marks = pytest.mark.parametrize("mark_with", ["signal", "trigger"], indirect=True)


@db
def test_m1_baseline_one_write_per_user(run_scenario):
    run_scenario("M1")


@both_marks
@db
def test_m2_flaky_429_and_503(run_scenario):
    run_scenario("M2")


@db
def test_m3_429_storm_with_retry_after(run_scenario):
    run_scenario("M3")


@db
def test_m4_429_storm_without_a_hint(run_scenario):
    run_scenario("M4")


@db
def test_m5_503_outage_opens_the_breaker(run_scenario):
    run_scenario("M5")


@db
def test_m6_applied_then_timed_out(run_scenario):
    run_scenario("M6")


@db
def test_m7_resets_before_and_after_applying(run_scenario):
    run_scenario("M7")


@db
def test_m8_truncated_bodies_are_resent(run_scenario):
    run_scenario("M8")


@processes
def test_m9_slow_api_holds_no_transaction_over_a_call(run_scenario):
    run_scenario("M9")


@db
def test_m10_validation_failures_only_kill_their_rows(run_scenario):
    run_scenario("M10")


@db
def test_m11_revoked_key_pauses_without_failing_rows(run_scenario):
    run_scenario("M11")


@processes
def test_m12_sigkilled_workers_lose_nothing(run_scenario):
    run_scenario("M12")


@both_marks
@processes
def test_m13_four_workers_with_concurrent_saves(run_scenario):
    run_scenario("M13")


@both_marks
@db
def test_m14_rollback_storm_sends_nothing(run_scenario):
    run_scenario("M14")


@db
def test_m15_unsubscribed_in_omnisend_stay_unsubscribed(run_scenario):
    run_scenario("M15")


@both_marks
@db
def test_m16_logins_send_nothing(run_scenario):
    run_scenario("M16")


@both_marks
@db
def test_m17_email_flip_flop_stays_bound(run_scenario):
    run_scenario("M17")


@processes
def test_m19_answers_slower_than_the_lease(run_scenario):
    run_scenario("M19")


@processes
def test_m20_a_worker_with_its_clock_ahead(run_scenario):
    if not os.path.exists(FAKETIME_LIB):
        reason = f"libfaketime is not installed ({FAKETIME_LIB})"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run M20 (.ci/run installs faketime).")
        pytest.skip(f"{reason}: apt-get install faketime.")
    run_scenario("M20")


@db
def test_m21_erasure_during_an_unsettled_batch(run_scenario):
    run_scenario("M21")

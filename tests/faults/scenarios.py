"""The fault matrix: one function per scenario.

M1-M17 are SECURITY-RELIABILITY.md §4.3's (its M18, a ten-minute soak, is not here); M19 and
M20 are issue 14's requests that outlive their leases: M19, for a while every answer slower
than the lease, with 3 drain processes; M20, one of 3 drain processes with its clock ahead of
the others' by more than the lease (libfaketime; skipped with a message where it is not
installed, a failure in CI).

Shared by ``tests/faults/test_matrix.py`` (marker ``faults``; ``tox -e faults`` runs it in CI
at the reduced size) and ``benchmarks/faults.py`` (the full size, one table). Each scenario
saves ``USERS`` users ``SAVES`` times, injects its fault through the emulator (or kills
workers, rolls back, logs in…), drains, and returns an :class:`Outcome` whose checks are the
invariants, measured on the emulator's side (its contacts and its request ledger), never on
the client's own account:

* 0 lost updates: every user's contact equals their final DB row (email, firstName, lastName);
* 0 extra contacts (no contact without a user);
* 0 re-subscriptions: a contact unsubscribed inside Omnisend stays unsubscribed, and no
  request sent after that carries a channel status for it (with the default adapter, which
  gives no consent, no request carries a status at all); an erasure's ``unsubscribed`` is
  not a re-subscription;
* no dead rows except those the scenario expects;
* the budget: at most ``BUDGET`` + 1 requests in any ``WINDOW`` (server-measured; the one is
  the request in flight, see :func:`budget_check`), for the single-process scenarios; the
  multi-process ones check the sum of their processes' budgets plus one per process (M12,
  whose restarted workers start with fresh per-process budgets, reports it only), except M19
  and M20, which check the budget their workers really share (:func:`workers_budget`);
* what the scenario itself promises (writes == users, probes per cooldown, …).

Time is scaled, not faked (as in ``tests/sync/test_load.py``): the budget window, the 429
fallback wait (``RETRY_AFTER_DEFAULT``), the retry and breaker base (``RETRY_BACKOFF``),
leases and fault durations are settings or emulator switches, shrunk so that the whole matrix
runs in minutes while every rule (brand cooldown, breaker, backoff, budget, leases) applies.
The emulator's own limit is scaled with the same window (``configure(rate_limit=…,
window_seconds=WINDOW)``), so it still answers 429 if we ever exceed it.

Size: ``FAULT_MATRIX_USERS`` (default 200, CI) x 5 saves; 2,000 is the issue's full size.

Beyond §4.3, issue 14 adds M21, an erasure during an unsettled batch: users backfilled by
``omnisend_sync_contacts`` while Omnisend defers the batches (the emulator's
``batch_processing="deferred"``), 10 % of them deleted and 10 % saved again before the batches
are processed. Its batch lease and waits are module constants, not settings, so instead of
scaling them it moves the schedules in the sync tables back (:func:`time_passes`). Besides
the common invariants: nothing is written while the batches are open, each erasure waits for
its batch and is sent after it, and no deleted user's contact keeps their data (it is absent,
or anonymised, unsubscribed and tagged ``gdpr-erased``; such contacts are not "extra").
"""

from __future__ import annotations

import io
import itertools
import json
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import update_last_login
from django.core.management import call_command
from django.db import transaction
from django.db.models import F
from django.test import override_settings
from django.utils import timezone

from django_omnisend.models import DeliveryControl, OutboxItem, SyncState
from django_omnisend.signals import contact_synced
from django_omnisend.sync import drain
from django_omnisend.sync.policy import CLAIM_BATCH

from .adapters import POISON_EVERY, Consent, ConsentMatrixAdapter

USERS = int(os.environ.get("FAULT_MATRIX_USERS", "200"))
SAVES = 5
#: Our share of the brand's limit, scaled with the size (300 at 2,000 users, as in §4.3), and
#: Omnisend's own limit in the same proportion (400).
BUDGET = max(15, USERS * 3 // 20)
EMULATOR_LIMIT = BUDGET * 4 // 3
#: The budget window: 60 requests/s at most, so the budget really binds (one drain process
#: manages about twice that here); the same ~7 windows per M1 run at any size.
WINDOW = BUDGET / 60
CONTACT_WRITES = ("POST", "PATCH")
#: How long to wait for a drain to finish before calling it hung: a breaker for a test that
#: would never end, not a speed the test asserts (under two CPU hogs and two more copies of
#: the matrix, M9 and M13 took up to 85 s at 200 users; their old 80-100 s limits were a
#: timing bound). ``+ USERS`` seconds on top.
HANG = 300

User = get_user_model()


# -- results ------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one scenario measured, and its checks (``name -> (passed, detail)``)."""

    scenario: str
    users: int = USERS
    writes: int = 0
    requests: int = 0
    lost: int = 0
    extra: int = 0
    resubscribed: int = 0
    dead: int = 0
    max_per_window: int | None = None
    budget: int | None = None
    #: The most requests ``budget`` allows in any window on the server's side (budget_check).
    bound: int | None = None
    #: M9: mean share of the 4 workers' calls kept in flight (a speed, reported not asserted).
    utilisation: float | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)

    def check(self, name: str, passed: bool, detail: Any = "") -> bool:
        self.checks[name] = (bool(passed), str(detail))
        return bool(passed)

    def note(self, text: str) -> None:
        self.notes.append(text)

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def failures(self) -> str:
        return "; ".join(f"{n}: {d}" for n, (ok, d) in self.checks.items() if not ok)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "checks"}
        data["checks"] = {k: list(v) for k, v in self.checks.items()}
        data["passed"] = self.passed
        return data


# -- helpers --------------------------------------------------------------------------------------


def max_in_any_window(times: Iterable[float], span: float) -> int:
    """The most timestamps in any half-open interval ``[t, t + span)``."""
    import bisect

    ordered = sorted(times)
    return max(
        (bisect.bisect_left(ordered, t + span) - i for i, t in enumerate(ordered)), default=0
    )


def budget_check(
    times: Iterable[float], budget: int, in_flight: int = 1, window: float = WINDOW
) -> tuple[int, int]:
    """The most arrival ``times`` in any ``window``, and the most a budget allows there.

    ``budget``: what the senders' limiters admit per ``window`` (plus their margin), in all.
    ``in_flight``: the most requests admitted but not yet stamped by the emulator at any one
    moment. One per drain process: it admits its next request only after the answer (or the
    timeout) of the previous one, and the emulator stamps a request as it reads it, before it
    answers (assumed: it reads each request within the client's timeout, which is seconds).

    Why ``budget + in_flight`` and not ``budget``: the limiter bounds the times it *admits*
    requests; the emulator stamps the times they *arrive*, later by a delay nobody can bound
    on a loaded machine (a thread switch, a GC pause: 180 ms was measured under a CPU hog,
    against a 0.5 s window). A fixed slack for that delay only made the flake rarer (``31 >
    30``, issue 16). The exact bound: take any ``window`` of arrival stamps, from ``s``. A
    request stamped in it was either admitted at or after ``s - 0.0005`` (the emulator's clock
    rounds to milliseconds), so within ``window + 0.001``, which is inside the limiter's
    ``window + window / 60``: ``budget`` of those at most; or admitted earlier and still on
    its way then: ``in_flight`` of those at most. So no window holds more than ``budget +
    in_flight``, whatever the delays, and less cannot be promised (``test_budget_bound.py``
    reaches it). The limiter's own bound on admissions is tested exactly, on its own clock, in
    ``tests/client/test_ratelimit.py``.
    """
    return max_in_any_window(times, window), budget + in_flight


def scaled(base: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    """The test's OMNISEND settings with the matrix's scaled time and budget."""
    return {
        **base,
        "RATE_LIMIT": BUDGET,
        "RATE_LIMIT_WINDOW": WINDOW,
        "RETRY_AFTER_DEFAULT": WINDOW,
        "RETRY_BACKOFF": WINDOW / 2,
        "REQUEST_TIMEOUT": 5,
        **overrides,
    }


def limit_emulator(emulator) -> None:
    """Omnisend's own sliding window, on the scaled clock."""
    emulator.configure(rate_limit=EMULATOR_LIMIT, window_seconds=WINDOW)


def email_for(n: int, variant: str = "") -> str:
    return f"user{n}{variant}@example.com"


def make_users(count: int = USERS, saves: int = SAVES) -> list:
    """``count`` users, each saved ``saves`` times (created once, then edited)."""
    users = [
        User.objects.create_user(f"user{n}", email_for(n), "x", first_name="New", last_name="")
        for n in range(count)
    ]
    edit(users, rounds=saves - 1)
    return users


def edit(users: list, rounds: int = 1, tag: str = "") -> None:
    """``rounds`` profile edits of every user (one ``save()`` each)."""
    for r in range(rounds):
        for user in users:
            n = user.pk
            user.first_name = f"F{n}{tag}-{r}"
            user.last_name = f"L{n % 7}{tag}-{r}"
            user.save()


def api_entries(emulator) -> list:
    return [e for e in emulator.ledger if e.path.startswith("/api/")]


def writes_of(entries: Iterable) -> list:
    return [e for e in entries if e.method in CONTACT_WRITES and e.path.startswith("/api/contacts")]


def email_of(entry) -> str:
    body = entry.json or {}
    idents = body.get("identifiers") or [{}]
    return str(idents[0].get("id") or "")


def carries_status(entry) -> bool:
    """Whether ``entry`` sets a channel status other than ``unsubscribed`` (an erasure's).

    Unsubscribing is never a re-subscription, whatever the adapter's consent.
    """
    body = entry.json or {}
    for ident in body.get("identifiers") or []:
        if "channels" not in ident:
            continue
        channels = ident["channels"]
        if not isinstance(channels, dict) or not channels:
            return True  # not a shape we send: counted, to be looked at
        if any((c or {}).get("status") != "unsubscribed" for c in channels.values()):
            return True
    return False


def applied(entry) -> bool:
    """Whether the emulator applied this write (2xx, or applied then failed on the wire)."""
    if entry.fault in ("apply_then_hang", "reset_after", "truncate"):
        return True
    return 200 <= entry.status < 300


def overlapping_writes(entries: Iterable) -> list[str]:
    """E-mails with two contact writes in flight at once (server-measured intervals)."""
    spans = defaultdict(list)
    for entry in writes_of(entries):
        spans[email_of(entry)].append((entry.time, entry.time + entry.duration))
    overlaps = []
    for email, intervals in spans.items():
        intervals.sort()
        for (_, end), (start, _) in itertools.pairwise(intervals):
            if start < end:
                overlaps.append(email)
    return overlaps


def drain_until_clean(timeout: float | None = None, *, stop: Callable[[], bool] | None = None):
    """Drain until no row is dirty (as ``omnisend_drain --loop`` would, with a short idle)."""
    deadline = time.monotonic() + (timeout or HANG + USERS)
    while SyncState.objects.filter(dirty=True).exists() and time.monotonic() < deadline:
        if stop is not None and stop():
            return
        if not drain().requests:
            time.sleep(0.005)  # cooling down or backing off


@contextmanager
def on_synced(at: int, action: Callable[[], Any]):
    """Run ``action`` once, right after the ``at``-th successful contact sync."""
    count = 0

    def receiver(**kwargs: Any) -> None:
        nonlocal count
        count += 1
        if count == at:
            action()

    contact_synced.connect(receiver, weak=False, dispatch_uid="fault-matrix")
    try:
        yield
    finally:
        contact_synced.disconnect(dispatch_uid="fault-matrix")


@contextmanager
def timed(outcome: Outcome):
    started = time.monotonic()
    try:
        yield
    finally:
        outcome.seconds = round(time.monotonic() - started, 2)


def finish(
    outcome: Outcome,
    emulator,
    *,
    expected_dead: set[str] = frozenset(),
    unsubscribed: dict[str, float] | None = None,
    consent_given: bool = False,
    budget: int | None = BUDGET,
    in_flight: int = 1,
    clean: bool = True,
) -> Outcome:
    """Measure the common invariants and add them to ``outcome``'s checks.

    ``budget``: requests the sending processes admit per ``WINDOW`` in all (None: not bound);
    ``in_flight``: the most requests on their way at once (one per drain process);
    ``expected_dead``: e-mails whose rows must be dead (and have no contact);
    ``unsubscribed``: e-mail -> when (emulator clock) it was unsubscribed inside Omnisend;
    ``consent_given``: the adapter sends consent, so statuses for other e-mails are expected.
    """
    entries = api_entries(emulator)
    writes = writes_of(entries)
    outcome.writes = len(writes)
    outcome.requests = len(entries)
    contacts = {c["email"]: c for c in emulator.contacts()}
    users = list(User.objects.all())
    emails = {u.email for u in users}

    lost = []
    for user in users:
        if user.email in expected_dead:
            continue
        contact = contacts.get(user.email)
        if contact is None or (contact["firstName"], contact["lastName"]) != (
            user.first_name,
            user.last_name,
        ):
            lost.append(user.email)
    outcome.lost = len(lost)
    outcome.check("0 lost", not lost, f"{len(lost)} stale or missing, e.g. {lost[:3]}")
    extra = sorted(set(contacts) - emails)
    outcome.extra = len(extra)
    outcome.check("0 extra contacts", not extra, extra[:3])

    resub = set()
    for email in unsubscribed or {}:
        if contacts.get(email, {}).get("status") != "unsubscribed":
            resub.add(email)
    for entry in writes:
        if not carries_status(entry):
            continue
        email = email_of(entry)
        since = (unsubscribed or {}).get(email)
        if since is not None and entry.time >= since:
            resub.add(email)
        elif not consent_given:
            resub.add(email)  # the default adapter never gives consent: no status, ever
    if not consent_given:
        resub |= {e for e, c in contacts.items() if c.get("status") == "subscribed"}
    outcome.resubscribed = len(resub)
    outcome.check("0 re-subscribed", not resub, sorted(resub)[:3])

    dead = set(
        SyncState.objects.filter(state=SyncState.State.DEAD).values_list("user__email", flat=True)
    )
    outcome.dead = len(dead)
    outcome.check(
        "dead rows as expected",
        dead == set(expected_dead),
        f"{len(dead)} dead, {len(expected_dead)} expected",
    )
    if clean:
        dirty = SyncState.objects.filter(dirty=True).count()
        outcome.check("outbox drained", dirty == 0, f"{dirty} dirty rows left")

    times = [e.time for e in entries]
    outcome.max_per_window, bound = budget_check(times, budget or 0, in_flight)
    if budget is not None:
        outcome.budget, outcome.bound = budget, bound
        outcome.check(
            "budget per window",
            outcome.max_per_window <= bound,
            f"{outcome.max_per_window} {'<=' if outcome.max_per_window <= bound else '>'} "
            f"{bound} (budget {budget} + {in_flight} in flight) "
            f"in {WINDOW:g} s",
        )
    limited = [e for e in entries if e.status == 429 and e.fault is None]
    outcome.check("0 429 from Omnisend's own limit", not limited or budget is None, len(limited))
    return outcome


def storm_requests(emulator, rule: dict[str, Any], duration: float) -> list:
    start = rule["expires_at"] - duration
    return [e for e in api_entries(emulator) if start <= e.time < rule["expires_at"]]


def min_gap(entries: list) -> float:
    times = sorted(e.time for e in entries)
    return min((b - a for a, b in itertools.pairwise(times)), default=float("inf"))


# -- scenarios ------------------------------------------------------------------------------------


def m1_baseline(emulator, base: dict[str, Any]) -> Outcome:
    """No faults: one write per user (5 saves coalesce into one), within the budget."""
    out = Outcome("M1 baseline")
    with timed(out), override_settings(OMNISEND=scaled(base)):
        make_users()
        limit_emulator(emulator)
        drain_until_clean()
    finish(out, emulator)
    out.check("writes == users", out.writes == USERS, f"{out.writes} writes for {USERS} users")
    return out


def m2_flaky(emulator, base: dict[str, Any]) -> Outcome:
    """30 % 429 (no hint) + 10 % 503, independent per request."""
    out = Outcome("M2 30% 429 + 10% 503")
    # A 429 that names no wait cools the brand down for RETRY_AFTER_DEFAULT. With a 429 on
    # every third request, a minute each (one window here) would only measure sleeping, so
    # this scenario scales that wait further down (as tests/sync/test_load.py does).
    settings = scaled(base, RETRY_AFTER_DEFAULT=0.01, RETRY_BACKOFF=0.005)
    with timed(out), override_settings(OMNISEND=settings):
        make_users()
        limit_emulator(emulator)
        emulator.add_fault("POST /api/contacts", "429", rate=0.3, retry_after=None)
        emulator.add_fault("POST /api/contacts", "503", rate=0.1)
        drain_until_clean()
    finish(out, emulator)
    writes = writes_of(api_entries(emulator))
    out.check("writes <= 2 x users", out.writes <= 2 * USERS, f"{out.writes} writes")
    per_user = Counter(email_of(e) for e in writes)
    worst = max(per_user.values(), default=0)
    out.check("no user > 12 attempts", worst <= 12, f"max {worst}")
    out.note(
        f"429: {sum(e.status == 429 for e in writes)}, 503: {sum(e.status == 503 for e in writes)}"
    )
    return out


def _storm(emulator, base: dict[str, Any], *, name: str, hint: int | None) -> Outcome:
    out = Outcome(name)
    if hint is not None:
        # Omnisend's retryAfter is whole seconds, so this storm runs on a 1/30 scale: 1 s for
        # the spec's 30 s, 4 s for its 2 minutes.
        cooldown, duration, settings = float(hint), 4.0 * hint, scaled(base)
    else:
        cooldown = 0.5  # RETRY_AFTER_DEFAULT for the spec's 60 s, storm 4x that (2 s)
        duration = 4 * cooldown
        settings = scaled(base, RETRY_AFTER_DEFAULT=cooldown)
    storm: dict[str, Any] = {}

    def start_storm() -> None:
        storm.update(emulator.add_fault("/api/*", "429", duration=duration, retry_after=hint))

    with timed(out), override_settings(OMNISEND=settings):
        make_users()
        limit_emulator(emulator)
        with on_synced(max(1, USERS // 4), start_storm):
            drain_until_clean()
    finish(out, emulator)
    during = storm_requests(emulator, storm, duration) if storm else []
    allowed = int(duration // cooldown) + 1
    out.check("storm happened", bool(storm) and during, "no storm")
    out.check(
        "<= 1 probe per cooldown",
        len(during) <= allowed and min_gap(during) >= cooldown - 0.002,
        f"{len(during)} requests in the storm (allowed {allowed}), "
        f"min gap {min_gap(during):.3f} s vs cooldown {cooldown:g} s",
    )
    attempts = SyncState.objects.filter(attempts__gt=0).count()
    out.check("429s spend no attempts", attempts == 0, attempts)
    out.note(f"storm requests {len(during)} (cooldown {cooldown:g} s, storm {duration:g} s)")
    return out


def m3_storm_hint(emulator, base: dict[str, Any]) -> Outcome:
    """100 % 429 with retryAfter (scaled 30 s) for a scaled 2 minutes, then healthy."""
    return _storm(emulator, base, name="M3 429 storm, retryAfter", hint=1)


def m4_storm_no_hint(emulator, base: dict[str, Any]) -> Outcome:
    """The same storm with no retryAfter: RETRY_AFTER_DEFAULT is the cooldown."""
    return _storm(emulator, base, name="M4 429 storm, no hint", hint=None)


def m5_outage(emulator, base: dict[str, Any]) -> Outcome:
    """100 % 503 for a scaled 10 minutes (20 x RETRY_BACKOFF), starting at write N/4."""
    out = Outcome("M5 503 outage")
    backoff = 0.1  # the spec's 30 s
    duration = 20 * backoff  # 10 minutes
    outage: dict[str, Any] = {}

    def start_outage() -> None:
        outage.update(emulator.add_fault("/api/*", "503", duration=duration))

    with timed(out), override_settings(OMNISEND=scaled(base, RETRY_BACKOFF=backoff)):
        make_users()
        limit_emulator(emulator)
        with on_synced(max(1, USERS // 4), start_outage):
            drain_until_clean()
    finish(out, emulator)
    during = storm_requests(emulator, outage, duration) if outage else []
    out.check("outage happened", bool(during), "no outage")
    out.check("<= 15 requests in the outage", len(during) <= 15, len(during))
    if during:
        first = min(e.time for e in during)
        burst = [e for e in during if e.time < first + backoff * 0.9]
        out.check("breaker opens after <= 5 failures", len(burst) <= 5, f"{len(burst)} in a row")
    per_item = Counter(email_of(e) for e in during)
    worst = max(per_item.values(), default=0)
    out.check("<= 2 attempts per item in the outage", worst <= 2, worst)
    out.note(f"outage requests {len(during)} over {duration:g} s (backoff {backoff:g} s)")
    return out


def _ambiguous(emulator, base, name: str, faults: list[tuple[str, dict]], **settings) -> Outcome:
    out = Outcome(name)
    with timed(out), override_settings(OMNISEND=scaled(base, RETRY_BACKOFF=0.05, **settings)):
        make_users()
        limit_emulator(emulator)
        for kind, params in faults:
            emulator.add_fault("POST /api/contacts", kind, **params)
        drain_until_clean()
    finish(out, emulator)
    writes = writes_of(api_entries(emulator))
    ambiguous = sum(1 for e in writes if e.fault in ("apply_then_hang", "reset_after", "truncate"))
    applications = Counter(email_of(e) for e in writes if applied(e))
    duplicates = sum(n - 1 for n in applications.values() if n > 1)
    out.check(
        "duplicates only from ambiguous outcomes",
        duplicates <= ambiguous,
        f"{duplicates} duplicate applications, {ambiguous} ambiguous answers",
    )
    fired = sum(1 for e in writes if e.fault)
    out.check("faults fired", fired > 0, f"{fired} faults fired")
    out.note(f"ambiguous {ambiguous}, duplicates {duplicates} ({duplicates / USERS:.1%} of users)")
    return out


def m6_apply_then_timeout(emulator, base: dict[str, Any]) -> Outcome:
    """5 %: the write is applied, then the answer outlasts the client's timeout."""
    return _ambiguous(
        emulator,
        base,
        "M6 applied then timed out",
        [("apply_then_hang", {"rate": 0.05, "seconds": 0.6})],
        REQUEST_TIMEOUT=0.3,
    )


def m7_resets(emulator, base: dict[str, Any]) -> Outcome:
    """5 % connection resets before applying, 5 % after."""
    return _ambiguous(
        emulator,
        base,
        "M7 resets before/after apply",
        [("reset_before", {"rate": 0.05}), ("reset_after", {"rate": 0.05})],
    )


def m8_truncated(emulator, base: dict[str, Any]) -> Outcome:
    """5 % of 2xx answers have their JSON cut in half: outcome unknown, so re-sent."""
    return _ambiguous(emulator, base, "M8 truncated bodies", [("truncate", {"rate": 0.05})])


def m10_poison(emulator, base: dict[str, Any]) -> Outcome:
    """2 % of users are invalid for Omnisend (400): exactly those dead, after one request."""
    out = Outcome("M10 2% validation failures")
    settings = scaled(base, ADAPTER="tests.faults.adapters.PoisonAdapter")
    with timed(out), override_settings(OMNISEND=settings):
        make_users()
        limit_emulator(emulator)
        drain_until_clean()
    poison = {email_for(n) for n in range(USERS) if n % POISON_EVERY == 0}
    finish(out, emulator, expected_dead=poison)
    per_email = Counter(email_of(e) for e in writes_of(api_entries(emulator)))
    out.check(
        "each poisoned user tried once",
        all(per_email[e] == 1 for e in poison),
        {e: per_email[e] for e in sorted(poison) if per_email[e] != 1},
    )
    reasons = set(
        SyncState.objects.filter(state=SyncState.State.DEAD).values_list("reason", flat=True)
    )
    out.check("dead for validation", reasons <= {"validation"}, reasons)
    out.check("no contact for them", not any(emulator.get_contact(e) for e in poison), "")
    return out


def m11_revoke(emulator, base: dict[str, Any]) -> Outcome:
    """The API key is revoked at write N/4: pause (no attempts spent), then a new key."""
    out = Outcome("M11 revoke at write N/4")
    settings = scaled(base)
    at = max(1, USERS // 4)
    with timed(out):
        with override_settings(OMNISEND=settings):
            make_users()
            limit_emulator(emulator)
            with on_synced(at, lambda: emulator.revoke_api_key(settings["API_KEY"])):
                drain_until_clean(stop=lambda: DeliveryControl.objects.filter(paused=True).exists())
            for _ in range(3):  # later drains with the revoked key send nothing
                drain()
        entries = api_entries(emulator)
        first = next((i for i, e in enumerate(entries) if e.status == 401), None)
        after = len(entries) - first - 1 if first is not None else -1
        out.check("401 seen", first is not None, "no 401")
        out.check("<= 3 requests after the first 401", 0 <= after <= 3, after)
        out.check(
            "paused",
            DeliveryControl.objects.filter(connection_key="default", paused=True).exists(),
            "",
        )
        pending = SyncState.objects.filter(dirty=True)
        spent = pending.filter(attempts__gt=0).count()
        bad = pending.filter(state__in=[SyncState.State.FAILED, SyncState.State.DEAD]).count()
        # Every user not written before the 401 stays pending. How many were written first
        # depends on when the drain sends contact_synced (after a claimed batch's outcomes are
        # saved), so it is read from the ledger rather than assumed to be exactly N/4.
        written = sum(
            1
            for e in writes_of(entries[:first] if first is not None else entries)
            if 200 <= e.status < 300
        )
        out.check("revoked after write N/4", written >= at, f"{written} written before the 401")
        out.check(
            "rest stay pending, not failed",
            pending.count() == USERS - written and spent == 0 and bad == 0,
            f"{pending.count()} pending (want {USERS - written}), {spent} with attempts, "
            f"{bad} failed",
        )
        new_key = emulator.issue_api_key()
        with override_settings(OMNISEND={**settings, "API_KEY": new_key}):
            drain_until_clean()
    finish(out, emulator)
    out.note(f"requests after the first 401: {after}")
    return out


def _worker_overrides(settings: dict[str, Any], **extra: Any) -> dict[str, Any]:
    keys = ("RATE_LIMIT", "RATE_LIMIT_WINDOW", "RETRY_AFTER_DEFAULT", "RETRY_BACKOFF")
    return {
        **{k: settings[k] for k in keys},
        "API_KEY": settings["API_KEY"],
        "API_URL": settings["API_URL"],
        "SYNC_USERS": True,
        "TASK_BACKEND": None,
        **extra,
    }


def m12_sigkill(emulator, base: dict[str, Any]) -> Outcome:
    """Drain processes are SIGKILLed several times mid-drain; short leases hand rows over."""
    from tests.workers import start_drain, stop, wait_until

    out = Outcome("M12 SIGKILL drain workers")
    kills = max(5, USERS // 100)
    settings = scaled(base)
    loop = ("--loop", "--max-seconds", "600", "--idle-sleep", "0.02")
    # Two workers, each with half the budget (a LocMem budget is per process).
    overrides = _worker_overrides(settings, RATE_LIMIT=max(1, BUDGET // 2), LEASE_SECONDS=1)
    rng = random.Random(12)  # a reproducible choice of victims
    outputs = []
    with timed(out), override_settings(OMNISEND=settings):
        make_users()
        limit_emulator(emulator)
        # A little latency keeps requests in flight, so kills land mid-request too.
        emulator.add_fault("/api/*", "latency", seconds=0.005)
        workers = [start_drain(overrides, *loop) for _ in range(2)]
        killed = 0
        try:
            for k in range(1, kills + 1):
                target = USERS * k // (kills + 1)
                wait_until(lambda t=target: len(emulator.contacts()) >= t, HANG, interval=0.02)
                victim = workers.pop(rng.randrange(len(workers)))
                victim.send_signal(signal.SIGKILL)
                victim.communicate(timeout=10)
                killed += 1
                workers.append(start_drain(overrides, *loop))
            done = wait_until(
                lambda: not SyncState.objects.filter(dirty=True).exists(), HANG + USERS
            )
        finally:
            outputs = [stop(w) for w in workers]
    out.check("drained", done, "timed out")
    out.check("killed", killed == kills, f"{killed}/{kills}")
    for _, err in outputs:
        out.check("no worker traceback", "Traceback" not in err, err[-500:])
    # Not asserted: a replacement starts with a fresh per-process (LocMem) budget while its
    # killed predecessor's requests still count in the window (django_omnisend.W005).
    finish(out, emulator, budget=None)
    overlaps = overlapping_writes(api_entries(emulator))
    out.check("never 2 writes in flight per email", not overlaps, overlaps[:3])
    dup = out.writes - USERS
    out.check("duplicates <= kills x claim batch", dup <= kills * CLAIM_BATCH, dup)
    out.note(f"{kills} kills, {dup} extra writes (bound {kills * CLAIM_BATCH})")
    return out


#: M9's answer time for every request (2 s in §4.3, scaled like the rest of the matrix).
SLOW = 0.2
#: M9's throughput target (§4.3: 110 of the 120 calls a minute 4 workers allow at 2 s each),
#: as a share of 4 calls in flight; benchmarks/faults.py reports against it.
THROUGHPUT_TARGET = 110 / 120


#: How long a probe waits for the transactions it found open to end (SQLite: for an exclusive
#: lock). Not a measured bound: a drain that holds a transaction across its call cannot end it
#: while the probe holds that call's answer back, so it fails the probe whatever this is; the
#: others' transactions last milliseconds. Twice SQLite's default busy timeout, which every
#: drain already relies on.
PROBE_PATIENCE = 10.0
#: M9's first round: the emulator holds the first requests until this many are in flight.
#: If the drains serialised on each other (a lock, a transaction) it never fills.
CONCURRENT_CALLS = 4


def open_transactions_end(patience: float = PROBE_PATIENCE) -> Callable[[], bool]:
    """A probe, run while a drain waits on its request: do all open transactions end?

    The emulator runs it as a request arrives, before answering, so the drain that sent the
    request is stopped until it returns: a transaction it holds over the call is still open
    and stays open. The probe waits (``patience`` s at most) for every transaction open at
    that moment to end; the other drains' end in milliseconds, the sender's never does. So a
    drain that holds a transaction across an API call fails it, and one that does not passes
    it, however slow the machine (SECURITY-RELIABILITY.md §4.3, M9).

    PostgreSQL: each other session's transaction (``pid``, ``xact_start``) open now must be
    gone or replaced by a newer one. MariaDB/MySQL: the same over InnoDB's transactions of
    sessions on this database (thread, start; a drain's transaction is in InnoDB's list once
    it has read or locked a row). SQLite (rollback journal): an exclusive lock, which waits
    for every reader and writer, must be taken.
    """
    from django.db import connection

    if connection.vendor in ("postgresql", "mysql"):
        if connection.vendor == "postgresql":
            sql = (
                "SELECT pid, xact_start FROM pg_stat_activity WHERE datname = "
                "current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL "
                "AND backend_type = 'client backend'"
            )
        else:
            # InnoDB's list is server-wide: only sessions on this (test) database count.
            sql = (
                "SELECT t.trx_mysql_thread_id, t.trx_started FROM information_schema.innodb_trx t "
                "JOIN information_schema.processlist p ON p.id = t.trx_mysql_thread_id "
                "WHERE p.db = DATABASE() AND t.trx_mysql_thread_id <> CONNECTION_ID()"
            )

        def server_probe() -> bool:
            from django.db import connection as own  # this thread's own session

            try:
                with own.cursor() as cursor:
                    cursor.execute(sql)
                    open_now = set(cursor.fetchall())
                    deadline = time.monotonic() + patience
                    while open_now and time.monotonic() < deadline:
                        time.sleep(0.01)
                        cursor.execute(sql)
                        open_now &= set(cursor.fetchall())
                    return not open_now
            finally:
                own.close()

        return server_probe
    import sqlite3

    path = connection.settings_dict["NAME"]

    def sqlite_probe() -> bool:
        probe = sqlite3.connect(path, timeout=patience, isolation_level=None)
        try:
            probe.execute("BEGIN EXCLUSIVE")
            probe.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:  # "database is locked" for the whole wait
            return False
        finally:
            probe.close()

    return sqlite_probe


@dataclass
class CallProbe:
    """What :func:`probing_calls` saw: requests probed, and those that found a transaction."""

    probed: int = 0
    held: list[str] = field(default_factory=list)
    #: Whether the first ``CONCURRENT_CALLS`` requests were all in flight at once.
    concurrent: bool | None = None


@contextmanager
def probing_calls(emulator, probe: Callable[[], bool], concurrent: int = CONCURRENT_CALLS):
    """Run ``probe`` in the emulator as each API request arrives, before it is answered.

    Also holds the first ``concurrent`` requests until all of them have arrived (or
    ``PROBE_PATIENCE`` passed): the drains keep that many calls in flight at once only if
    none waits on another. Wraps the serving emulator's WSGI app for the block.
    """
    import threading

    seen = CallProbe()
    lock = threading.Lock()
    barrier = threading.Barrier(concurrent)
    server = emulator._server  # the running server; test instrumentation, not a fake
    inner = server.get_app()

    def app(environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path.startswith("/api/"):
            with lock:
                seen.probed += 1
                first_round = seen.probed <= concurrent
            if not probe():
                with lock:
                    seen.held.append(f"{environ.get('REQUEST_METHOD')} {path}")
            if first_round:
                try:
                    barrier.wait(timeout=PROBE_PATIENCE * 3)
                    reached = True
                except threading.BrokenBarrierError:
                    reached = False
                with lock:
                    seen.concurrent = reached and seen.concurrent is not False
        return inner(environ, start_response)

    server.set_app(app)
    try:
        yield seen
    finally:
        server.set_app(inner)
        barrier.abort()


def steady_utilisation(entries: list, workers: int) -> float:
    """Mean calls in flight ÷ ``workers`` between the first and last moment all were busy."""
    events = sorted(
        [(e.time, 1) for e in entries] + [(e.time + e.duration, -1) for e in entries],
        key=lambda event: (event[0], event[1]),
    )
    busy, moments = 0, []  # (moment, calls in flight from then on)
    for moment, step in events:
        busy += step
        moments.append((moment, busy))
    full = [moment for moment, count in moments if count >= workers]
    if len(full) < 2:
        return 0.0
    first, last = full[0], full[-1]
    area = 0.0
    for (moment, count), (following, _) in itertools.pairwise(moments):
        if first <= moment < last:
            area += count * (min(following, last) - moment)
    return area / (workers * (last - first))


def m9_slow(emulator, base: dict[str, Any]) -> Outcome:
    """Every response takes SLOW s; 4 drain processes; no transaction is held over a call."""
    from tests.workers import start_drain, stop, wait_until

    out = Outcome("M9 slow API, 4 workers")
    settings = scaled(base)
    # The whole budget per worker: with a shared cache (Redis in the postgres env) the four
    # share it, and per process (LocMem) they cannot exceed it anyway, since 4 calls of SLOW s
    # each make at most 4 / SLOW a second, well under BUDGET / WINDOW.
    assert 4 / SLOW < BUDGET / WINDOW
    overrides = _worker_overrides(settings, LEASE_SECONDS=30)
    loop = ("--loop", "--max-seconds", "600", "--idle-sleep", "0.02")
    outputs = []
    with (
        timed(out),
        override_settings(OMNISEND=settings),
        probing_calls(emulator, open_transactions_end()) as seen,
    ):
        limit_emulator(emulator)
        make_users()
        emulator.add_fault("/api/*", "latency", seconds=SLOW)
        workers = [start_drain(overrides, *loop) for _ in range(4)]
        try:
            done = wait_until(
                lambda: not SyncState.objects.filter(dirty=True).exists(), HANG + USERS
            )
        finally:
            outputs = [stop(w) for w in workers]
    out.check("drained", done, "timed out")
    for _, err in outputs:
        out.check("no worker traceback", "Traceback" not in err, err[-500:])
    # Exact, not timed: each request is probed while its sender waits on it (probing_calls).
    out.check(
        "no transaction held over an API call",
        not seen.held and seen.probed >= USERS,
        f"{len(seen.held)} of {seen.probed} requests found a transaction that did not end "
        f"while they waited, e.g. {seen.held[:3]}",
    )
    out.check(
        f"{CONCURRENT_CALLS} calls in flight at once",
        seen.concurrent is True,
        f"the first {CONCURRENT_CALLS} requests were never in flight together",
    )
    # Throughput is speed, so it is measured and reported, not asserted: §4.3 asks for 110 of
    # the 120 calls a minute 4 workers allow at 2 s; benchmarks/faults.py compares
    # ``utilisation`` (server-measured, from the first to the last moment all 4 were in
    # flight) with that target. A test cannot promise it on a loaded machine.
    out.utilisation = round(steady_utilisation(writes_of(api_entries(emulator)), workers=4), 4)
    out.note(
        f"{out.utilisation:.1%} of 4 calls kept in flight (target {THROUGHPUT_TARGET:.1%}, "
        f"benchmarks/faults.py); {seen.probed} requests probed"
    )
    # Up to 4 requests on their way at once. In a shared cache the four share BUDGET; per
    # process, each worker's requests arrive at least SLOW apart, far fewer than BUDGET.
    finish(out, emulator, in_flight=4)
    return out


def m13_concurrent(emulator, base: dict[str, Any]) -> Outcome:
    """4 drain processes work while the users are being saved (5 saves each)."""
    from tests.workers import start_drain, stop, wait_until

    out = Outcome("M13 4 workers + concurrent saves")
    settings = scaled(base)
    per_worker = max(1, BUDGET // 4)
    overrides = _worker_overrides(settings, RATE_LIMIT=per_worker, LEASE_SECONDS=30)
    loop = ("--loop", "--max-seconds", "600", "--idle-sleep", "0.02")
    outputs = []
    with timed(out), override_settings(OMNISEND=settings):
        limit_emulator(emulator)
        emulator.add_fault("/api/*", "latency", seconds=0.005)
        workers = [start_drain(overrides, *loop) for _ in range(4)]
        try:
            users = [
                User.objects.create_user(f"user{n}", email_for(n), "x", first_name="New")
                for n in range(USERS)
            ]
            for r in range(SAVES - 1):
                edit(users, tag=f"r{r}")
            done = wait_until(
                lambda: not SyncState.objects.filter(dirty=True).exists(), HANG + USERS
            )
        finally:
            outputs = [stop(w) for w in workers]
    out.check("drained", done, "timed out")
    for _, err in outputs:
        out.check("no worker traceback", "Traceback" not in err, err[-500:])
    # Each of the 4 processes keeps a quarter of the budget (per process on LocMem; in a
    # shared cache the four share one quarter) and has one request in flight at most.
    finish(out, emulator, budget=4 * per_worker, in_flight=4)
    overlaps = overlapping_writes(api_entries(emulator))
    out.check("never 2 writes in flight per email", not overlaps, overlaps[:3])
    out.note(f"{out.writes} writes for {USERS * SAVES} saves")
    return out


def _synced_users(emulator) -> list:
    users = make_users()
    limit_emulator(emulator)
    drain_until_clean()
    return users


def _sync_rows() -> list[tuple]:
    return list(SyncState.objects.order_by("pk").values_list())


def m14_rollback(emulator, base: dict[str, Any]) -> Outcome:
    """Saves (and creations) inside atomic() blocks that raise: nothing reaches the outbox."""
    out = Outcome("M14 rollback storm")
    with timed(out), override_settings(OMNISEND=scaled(base)):
        users = _synced_users(emulator)
        before, requests_before = _sync_rows(), len(api_entries(emulator))
        for i, user in enumerate(users):
            try:
                with transaction.atomic():
                    if i % 2:  # a savepoint rolled back inside a transaction that commits
                        try:
                            with transaction.atomic():
                                _save_five(user)
                                raise RuntimeError("rolled back")
                        except RuntimeError:
                            pass
                    else:
                        _save_five(user)
                        User.objects.create_user(f"ghost{i}", f"ghost{i}@example.com", "x")
                        raise RuntimeError("rolled back")
            except RuntimeError:
                pass
            user.refresh_from_db()
        after = _sync_rows()
        out.check("0 SyncState changes", after == before, f"{len(after)} vs {len(before)} rows")
        drain_until_clean()
        sent = len(api_entries(emulator)) - requests_before
        out.check("0 requests", sent == 0, sent)
    finish(out, emulator)
    return out


def _save_five(user) -> None:
    for s in range(SAVES):
        user.first_name = f"Rolled back {s}"
        user.save()


def m15_consent(emulator, base: dict[str, Any]) -> Outcome:
    """N/2 contacts unsubscribed inside Omnisend, then edited: none re-subscribed.

    Every user opted in in Django (sent once, at the first sync). A third of the unsubscribed
    then have a newer opt-in recorded in Django, still older than the unsubscribe: the
    subscribe guard must see the later unsubscribe and send the profile only.
    """
    out = Outcome("M15 unsubscribed then edited")
    settings = scaled(base, ADAPTER="tests.faults.adapters.ConsentMatrixAdapter")
    decisions = ConsentMatrixAdapter.decisions
    unsubscribed: dict[str, float] = {}
    try:
        with timed(out), override_settings(OMNISEND=settings):
            users = make_users()
            opted_in = timezone.now() - timedelta(hours=1)
            for user in users:
                decisions[user.pk] = Consent(subscribed=True, at=opted_in)
            limit_emulator(emulator)
            drain_until_clean()
            newer = timezone.now() - timedelta(seconds=1)
            for i, user in enumerate(users[::2]):
                if i % 3 == 0:
                    decisions[user.pk] = Consent(subscribed=True, at=newer)
                emulator.unsubscribe(user.email)
                unsubscribed[user.email] = emulator.clock()
            edit(users, tag="edited")
            drain_until_clean()
            call_command("omnisend_reconcile", "--all", verbosity=0)
            drain_until_clean()
            conflicts = SyncState.objects.filter(reason="consent_conflict").count()
            want = len(range(0, len(users[::2]), 3))
            out.check("guard stripped the stale opt-ins", conflicts == want, f"{conflicts}/{want}")
            kept = sum(
                1
                for u in users[1::2]
                if (emulator.get_contact(u.email) or {}).get("status") == "subscribed"
            )
            out.check("the others stay subscribed", kept == len(users[1::2]), kept)
    finally:
        decisions.clear()
    finish(out, emulator, unsubscribed=unsubscribed, consent_given=True)
    for email in unsubscribed:
        status = (emulator.get_contact(email) or {}).get("status")
        if status != "unsubscribed":
            out.check("all still unsubscribed", False, f"{email}: {status}")
    bad = [
        e
        for e in writes_of(api_entries(emulator))
        if email_of(e) in unsubscribed
        and e.time >= unsubscribed[email_of(e)]
        and any(s in (e.body or b"") for s in (b'"subscribed"', b'"nonSubscribed"'))
    ]
    out.check("0 status requests for them", not bad, len(bad))
    out.note(f"{len(unsubscribed)} unsubscribed inside Omnisend")
    return out


def m16_logins(emulator, base: dict[str, Any]) -> Outcome:
    """10 logins per user (``update_last_login``): no dirty row, no request."""
    out = Outcome("M16 login noise")
    with timed(out), override_settings(OMNISEND=scaled(base)):
        users = _synced_users(emulator)
        before, requests_before = _sync_rows(), len(api_entries(emulator))
        for _ in range(10):
            for user in users:
                update_last_login(None, user)
        dirty = SyncState.objects.filter(dirty=True).count()
        out.check("0 dirty rows", dirty == 0 and _sync_rows() == before, dirty)
        drain()
        sent = len(api_entries(emulator)) - requests_before
        out.check("0 requests", sent == 0, sent)
    finish(out, emulator)
    out.note(f"{10 * len(users)} logins")
    return out


def m17_flip_flop(emulator, base: dict[str, Any]) -> Outcome:
    """Every user's e-mail goes A -> B -> A between two drains (SECURITY-RELIABILITY M17).

    (A drain after the change to B would, per R-DI-4, give B its own contact and tag A's.)
    """
    out = Outcome("M17 email A->B->A")
    with timed(out), override_settings(OMNISEND=scaled(base)):
        users = _synced_users(emulator)
        ids = dict(SyncState.objects.values_list("user_id", "contact_id"))
        for variant in ("+b", ""):
            for user in users:
                user.email = email_for(int(user.username[4:]), variant)
                user.save()
        drain_until_clean()
        b_contacts = [c["email"] for c in emulator.contacts() if "+b@" in c["email"]]
        out.check("0 contacts for B", not b_contacts, b_contacts[:3])
        rows = list(SyncState.objects.select_related("user"))
        rebound = [
            r.user.email for r in rows if r.email != r.user.email or r.contact_id != ids[r.user_id]
        ]
        out.check("bound to A (same contact)", not rebound, rebound[:3])
        out.check("one contact per user", len(emulator.contacts()) == USERS, "")
    finish(out, emulator)
    return out


def time_passes(seconds: float) -> None:
    """``seconds`` pass for the sync tables: every lease and scheduled retry ends that sooner.

    The batch lease (``bulk.BATCH_LEASE_SECONDS``, 30 minutes) and the waits for an open batch
    (``bulk.BATCH_POLL_SECONDS``, ``erasure.BATCH_WAIT_SECONDS``) are constants, not settings,
    so M21 cannot shrink them as the other scenarios shrink theirs: it moves every schedule
    back instead (as tests/bulk/test_settlement.py does), which is all the passing of that
    time changes in our tables.
    """
    back = timedelta(seconds=seconds)
    for model in (SyncState, OutboxItem):
        model.objects.update(next_attempt_at=F("next_attempt_at") - back)
        model.objects.exclude(lease_until=None).update(lease_until=F("lease_until") - back)


def existing_users(count: int = USERS) -> list:
    """``count`` users that existed before the app was installed (bulk-created: no mark)."""
    User.objects.bulk_create(
        User(username=f"user{n}", email=email_for(n), first_name=f"F{n}", last_name=f"L{n % 7}")
        for n in range(count)
    )
    return list(User.objects.order_by("pk"))


def erasures_left() -> int:
    return OutboxItem.objects.filter(
        kind=OutboxItem.Kind.ERASURE, state=OutboxItem.State.PENDING
    ).count()


def m21_erasure_in_open_batch(emulator, base: dict[str, Any]) -> Outcome:
    """Users deleted and saved again while their backfill batches wait at Omnisend (issue 14).

    ``omnisend_sync_contacts`` posts every user in batches that Omnisend leaves ``pending``
    and stops at its deadline (an interrupted backfill). Then 10 % of the users are deleted
    (a fifth of those saved just before), 10 % saved with newer names, and the batches'
    leases run out: the drain must follow the batches, not send those rows alone, and the
    erasures must wait. Omnisend then processes the batches, which create every contact, the
    deleted users' included; the drain settles them, sends the newer names and erases.
    """
    from django_omnisend.sync import bulk, erasure

    out = Outcome("M21 erasure during an unsettled batch")
    defer = 3600.0  # Omnisend's delay (emulator clock), moved past explicitly below
    # The backfill's deadline: long enough to post every batch (the check below says when it
    # was not); its polls until then only find the batches pending.
    backfill_seconds = 2 + USERS / 250
    with timed(out), override_settings(OMNISEND=scaled(base)):
        users = existing_users()
        limit_emulator(emulator)
        emulator.configure(batch_processing="deferred", batch_delay=defer)
        started = emulator.clock()
        call_command(
            "omnisend_sync_contacts",
            "--no-progress",
            "--max-seconds",
            str(backfill_seconds),
            stdout=io.StringIO(),
        )
        posts = [
            e.time for e in api_entries(emulator) if (e.method, e.path) == ("POST", "/api/batches")
        ]
        last = max(posts, default=started) - started
        out.note(
            f"{len(posts)} batches, the last {last:.1f} s into a {backfill_seconds:g} s backfill"
        )
        in_batch = set(SyncState.objects.exclude(batch_id="").values_list("user_id", flat=True))
        out.check(
            "every user posted in a batch",
            len(in_batch) == USERS,
            f"{len(in_batch)} of {USERS} in a batch when the backfill stopped",
        )
        deleted = [u for u in users if u.pk in in_batch and u.pk % 10 == 0]
        resaved = [u for u in users if u.pk in in_batch and u.pk % 10 == 5]
        for user in deleted[::5]:  # a newer state, then the deletion
            user.first_name = "Saved before deletion"
            user.save()
        for user in deleted:
            user.delete()
        edit(resaved, tag="newer")
        gone = {u.email for u in deleted}
        queued = OutboxItem.objects.filter(kind=OutboxItem.Kind.ERASURE)
        waiting = sum(1 for item in queued if (item.payload or {}).get("batch_id"))
        out.check(
            "each erasure waits for its batch",
            queued.count() == len(gone) == waiting,
            f"{queued.count()} erasures, {waiting} waiting for a batch, {len(gone)} deleted",
        )

        # The batches' leases run out while Omnisend is still on them; the drain meets the
        # rows and the erasures (twice: the waits for an open batch run out as well).
        before = len(api_entries(emulator))
        for wait in (bulk.BATCH_LEASE_SECONDS, bulk.BATCH_POLL_SECONDS):
            time_passes(wait + 1)
            drain()
        early = writes_of(api_entries(emulator))
        out.check("nothing written while the batches are open", not early, len(early))
        out.check("no contact before Omnisend processes", not emulator.contacts(), "")
        out.check("erasures still waiting", erasures_left() == len(gone), erasures_left())
        follows = [e for e in api_entries(emulator)[before:] if e.path.startswith("/api/batches/")]
        out.check("the drain followed the batches", bool(follows), "no batch read")

        # Omnisend processes the batches (the deleted users' contacts are created now), and
        # the drain settles them, sends the newer states and erases, one wait at a time.
        emulator.advance_clock(2 * defer + 1)
        emulator.tick()
        for _ in range(10):
            if not (SyncState.objects.filter(dirty=True).exists() or erasures_left()):
                break
            time_passes(max(bulk.BATCH_POLL_SECONDS, erasure.BATCH_WAIT_SECONDS) + 1)
            drain_until_clean()
            drain()  # the erasures (drain_until_clean looks at the sync rows only)
        out.check("erasures sent", erasures_left() == 0, f"{erasures_left()} still pending")

    finish(out, emulator)
    # A deleted user's contact is either absent or anonymised, never theirs any more: so it
    # is not an "extra" contact (the common check counts every contact without a user).
    contacts = {c["email"]: c for c in emulator.contacts()}
    extra = sorted(set(contacts) - {u.email for u in User.objects.all()} - gone)
    out.extra = len(extra)
    out.check("0 extra contacts", not extra, extra[:3])
    personal = []
    for email in sorted(gone):
        contact = contacts.get(email)
        if contact is None:
            continue
        if (
            (contact["firstName"], contact["lastName"]) != ("", "")
            or set(contact.get("tags") or []) - {erasure.ERASED_TAG}
            or contact.get("status") != "unsubscribed"
        ):
            personal.append(email)
    out.check("0 deleted users' data left", not personal, personal[:3])
    erased = sum(1 for email in gone if email in contacts)
    limited = Counter(f"{e.method} {e.path}" for e in api_entries(emulator) if e.status == 429)
    if limited:  # which of Omnisend's limits (the tags endpoint has its own, 60 a minute)
        out.note(f"429 from Omnisend: {dict(limited)}")
    out.note(
        f"{len(gone)} deleted ({erased} contacts anonymised), {len(resaved)} saved again, "
        f"{len(in_batch)} users in open batches"
    )
    return out


# -- M19/M20: requests that outlive their leases (issue 14's fencing) ---------------------------

#: M19: the lease every worker holds its rows under, and how long every answer takes while
#: the fault lasts (longer than the lease).
SHORT_LEASE = 0.05
LATE = 2 * SHORT_LEASE
#: How long M19's answers stay slower than the lease: a scaled storm, as in M3-M5 (8 s at
#: 200 users, 80 s at 2,000). While it lasts no row settles for good: every request outlives
#: its lease, an idle worker takes the row over, and the late answer marks it again, so the
#: taker's outcome never clears it (measured with the fault never ending: 4,653 writes for
#: 200 users in 260 s, not drained). Check E016 keeps real settings out of that regime.
SLOW_PHASE = USERS / 25
#: Extra time a share of the answers take on top (both scenarios): answers then land out of
#: the order their requests were sent in, so an older state can land after a newer one.
STRAGGLE, STRAGGLE_RATE = SHORT_LEASE, 0.3
#: Every answer's latency outside M19's storm: keeps requests in flight, shorter than a lease.
QUICK = 0.005
#: M20: every answer's latency (the lease is long; requests stay in flight a while).
SKEWED_LATENCY = 0.02
#: Users' profiles are edited again while the drains run, once at each of these shares of the
#: storm (M19) or of the contacts created (M20): requests in flight then carry older states.
EDIT_AT = (1 / 3, 2 / 3)
#: libfaketime (Debian's ``faketime`` package; ``.ci/run`` installs it) for M20's worker.
FAKETIME_LIB = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"


def faketime_env(ahead: float) -> dict[str, str]:
    """The environment of a process whose clocks run ``ahead`` seconds ahead.

    Leases are read from the wall clock (``time.time()``, ``datetime.now()``). libfaketime
    moves the monotonic clock too: left real (``FAKETIME_DONT_FAKE_MONOTONIC``), its
    ``clock_nanosleep`` fails every ``time.sleep`` with EINVAL (0.9.10). Faked, timed lock
    waits hang instead; a drain worker makes none (it naps with ``time.sleep``).
    """
    return {"LD_PRELOAD": FAKETIME_LIB, "FAKETIME": f"+{ahead:g}s"}


def clock_ahead(env: dict[str, str]) -> float:
    """How far ahead a Python process started with ``env`` reads the wall clock (seconds).

    The smaller of ``time.time()``'s and ``datetime.now()``'s lead, against this process's
    clock read before the child starts (its start-up time is added, never subtracted).
    """
    import subprocess
    import sys

    code = (
        "import time, datetime; "
        "print(time.time(), datetime.datetime.now(datetime.timezone.utc).timestamp())"
    )
    before = time.time()
    output = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return min(float(value) for value in output.split()) - before


def repeated_writes(entries: Iterable) -> int:
    """Contact writes that sent a state already sent for that e-mail (same names).

    With no fault that leaves an outcome unknown, a state is written twice only when a row
    was taken over (its lease ran out, or looked run out) or marked again by a late answer.
    """
    seen: dict[str, set] = defaultdict(set)
    repeated = 0
    for entry in writes_of(entries):
        body = entry.json or {}
        state = (body.get("firstName"), body.get("lastName"))
        repeated += state in seen[email_of(entry)]
        seen[email_of(entry)].add(state)
    return repeated


def late_landings(entries: Iterable) -> int:
    """Contact writes answered after a later-sent write for the same e-mail was answered.

    Server-measured: with latency faults a write is applied at the end of its wait, so such
    a write put an older state over a newer one (the fence must then send the newest again).
    """
    spans = defaultdict(list)
    for entry in writes_of(entries):
        spans[email_of(entry)].append((entry.time, entry.time + entry.duration))
    late = 0
    for intervals in spans.values():
        intervals.sort()
        for i, (_, end) in enumerate(intervals):
            late += any(later_end < end for _, later_end in intervals[i + 1 :])
    return late


def workers_budget(per_worker: int, workers: list[tuple[dict[str, Any], Any]]) -> int:
    """What drain ``workers`` (overrides, extra env) admit per ``WINDOW`` in all.

    Each is given ``RATE_LIMIT = per_worker``. Where the budget is shared (the database
    without Redis, as here with a LocMem cache; or a shared cache) they draw on one budget.
    Counted by the database server's clock (PostgreSQL, MariaDB/MySQL) it is one whatever
    the workers' clocks say; counted by the process's clock (SQLite, a cache) a worker whose
    clock runs ahead counts in sub-windows the others never read: one budget per clock, and
    none may erase another's. Kept per process, one budget each.
    """
    from django_omnisend.ratelimit import RateLimiter

    probe = RateLimiter(budget=per_worker, window=WINDOW)
    if probe.store == "process":
        return len(workers) * per_worker
    if probe.store == "database" and probe.database.server_clock:
        return per_worker
    clocks = {json.dumps(env, sort_keys=True) for _, env in workers}
    return len(clocks) * per_worker


def _leases_overrun(
    emulator,
    base: dict[str, Any],
    out: Outcome,
    workers: list[tuple[dict[str, Any], dict[str, str] | None]],
    *,
    latency: float,
    storm: float | None = None,
    mid_request: bool = False,
) -> None:
    """Drain with ``workers`` (overrides, extra env) while users are edited; check M19/M20.

    Every answer takes ``latency`` on top of ``QUICK`` (for ``storm`` seconds only, when
    given), a share ``STRAGGLE`` more. ``mid_request``: two writes for one e-mail must have
    been in flight at once (a takeover while a request was on its way). The workers run
    until no row is dirty; an answer that lands after that with its lease lost marks its row
    again, and the rows so marked are drained here once the workers stopped, as a running
    worker would.
    """
    from tests.workers import start_drain, stop, wait_until

    loop = ("--loop", "--max-seconds", "600", "--idle-sleep", "0.02")
    outputs = []
    with timed(out), override_settings(OMNISEND=scaled(base)):
        users = make_users()
        limit_emulator(emulator)
        emulator.add_fault("/api/*", "latency", seconds=QUICK)
        sent_before = len(api_entries(emulator))

        def slow_down() -> float:
            window = {} if storm is None else {"duration": storm}
            emulator.add_fault("/api/*", "latency", seconds=latency, **window)
            emulator.add_fault("/api/*", "latency", seconds=STRAGGLE, rate=STRAGGLE_RATE, **window)
            return emulator.clock()

        if storm is None:
            began = slow_down()
        procs = [start_drain(overrides, *loop, env=env) for overrides, env in workers]
        edited = 0
        try:
            if storm is not None:
                # The slow phase starts once the workers send: started with them, it could
                # pass while they are still starting up (seconds on a loaded machine: M19
                # then saw no answer slower than the lease) and prove nothing.
                wait_until(lambda: len(api_entries(emulator)) > sent_before, HANG, interval=0.02)
                began = slow_down()
            for r, share in enumerate(EDIT_AT):
                if storm is None:
                    moment = lambda s=share: len(emulator.contacts()) >= USERS * s  # noqa: E731
                else:
                    moment = lambda s=share: emulator.clock() >= began + storm * s  # noqa: E731
                if wait_until(moment, HANG, interval=0.02):
                    edit(users, tag=f"e{r}")
                    edited += 1
            done = wait_until(
                lambda: not SyncState.objects.filter(dirty=True).exists(), HANG + USERS
            )
        finally:
            outputs = [stop(p) for p in procs]
        marked_late = SyncState.objects.filter(dirty=True).count()
        drain_until_clean()
    out.check("drained", done, "timed out")
    out.check("edited while draining", edited == len(EDIT_AT), f"{edited}/{len(EDIT_AT)}")
    for _, err in outputs:
        out.check("no worker traceback", "Traceback" not in err, err[-500:])
    per_worker = workers[0][0]["RATE_LIMIT"]
    # Each process has one request in flight.
    finish(out, emulator, budget=workers_budget(per_worker, workers), in_flight=len(workers))
    entries = api_entries(emulator)
    # The scenario's premise, measured on the emulator's side: two writes for one e-mail in
    # flight at once happen only when a worker took a row over while another's request for
    # it was still on its way (its lease ran out, or looked run out to a clock ahead).
    overlaps = len(overlapping_writes(entries))
    landed, repeated = late_landings(entries), repeated_writes(entries)
    out.check("rows taken over", repeated > 0, "no state was ever written twice")
    if mid_request:
        out.check("rows taken over mid-request", overlaps > 0, "no two writes ever overlapped")
    out.note(
        f"{overlaps} takeovers mid-request, {repeated} states written again, "
        f"{landed} answers landed after a newer write's, "
        f"{marked_late} rows marked again by answers after the workers' last pass; "
        f"{out.writes} writes for {USERS} users"
    )


def m19_lease_expiry(emulator, base: dict[str, Any]) -> Outcome:
    """For ``SLOW_PHASE`` s every answer is slower than the lease; 3 drain processes.

    A lease of ``SHORT_LEASE`` s (check E016 refuses it: the workers skip the checks) against
    answers of ``LATE`` s or more: each request outlives its lease, another worker claims the
    row and sends the newer state, and the late answer lands afterwards. Users are edited
    meanwhile. Fencing must leave no row clean with an older state than the database's.
    """
    from django_omnisend.ratelimit import RateLimiter

    out = Outcome("M19 lease expiry, 3 workers")
    # The scenario's budget in all: whole to each worker when they share it (the database
    # budget here), a third each when every process keeps its own.
    shared = RateLimiter(budget=BUDGET, window=WINDOW).shared
    per_worker = BUDGET if shared else max(1, BUDGET // 3)
    overrides = _worker_overrides(scaled(base), RATE_LIMIT=per_worker, LEASE_SECONDS=SHORT_LEASE)
    _leases_overrun(
        emulator,
        base,
        out,
        [(overrides, None)] * 3,
        latency=LATE,
        storm=SLOW_PHASE,
        mid_request=True,
    )
    slow = [e for e in writes_of(api_entries(emulator)) if e.duration > SHORT_LEASE]
    out.check("answers slower than the lease", slow, "none")
    out.note(f"{len(slow)} writes answered after more than the lease ({SHORT_LEASE:g} s)")
    return out


def m20_skewed_clock(emulator, base: dict[str, Any]) -> Outcome:
    """One of 3 drain processes reads a wall clock ahead of the others by twice the lease.

    The lease is long enough for check E016 (no request outlives it), so only the clock is
    wrong: to the skewed worker (libfaketime, ``FAKETIME_LIB``) every lease the others hold
    looks run out, so it claims their rows while their requests are on the way, and the rows
    it claims look leased to them for far longer. Users are edited meanwhile.
    """
    from django_omnisend.sync.policy import LEASE_FLOOR, request_seconds_bound

    out = Outcome("M20 skewed-clock worker")
    settings = scaled(base)
    lease = request_seconds_bound(settings["REQUEST_TIMEOUT"]) / LEASE_FLOOR + 1
    ahead = 2 * lease
    skewed = faketime_env(ahead)
    measured = clock_ahead(skewed)
    # Fails, not skips, when the preload does not take: the scenario would prove nothing.
    if not out.check(
        "the skewed worker's clock runs ahead by more than the lease",
        lease < measured < ahead + HANG,
        f"{measured:.1f} s ahead (want {ahead:g}, lease {lease:g})",
    ):
        return out
    per_worker = max(1, BUDGET // 3)
    overrides = _worker_overrides(settings, RATE_LIMIT=per_worker, LEASE_SECONDS=lease)
    workers = [(overrides, None), (overrides, None), (overrides, skewed)]
    _leases_overrun(emulator, base, out, workers, latency=SKEWED_LATENCY)
    out.note(f"lease {lease:g} s, one worker {ahead:g} s ahead")
    return out


SCENARIOS: dict[str, Callable[..., Outcome]] = {
    "M1": m1_baseline,
    "M2": m2_flaky,
    "M3": m3_storm_hint,
    "M4": m4_storm_no_hint,
    "M5": m5_outage,
    "M6": m6_apply_then_timeout,
    "M7": m7_resets,
    "M8": m8_truncated,
    "M9": m9_slow,
    "M10": m10_poison,
    "M11": m11_revoke,
    "M12": m12_sigkill,
    "M13": m13_concurrent,
    "M14": m14_rollback,
    "M15": m15_consent,
    "M16": m16_logins,
    "M17": m17_flip_flop,
    "M19": m19_lease_expiry,
    "M20": m20_skewed_clock,
    "M21": m21_erasure_in_open_batch,
}


def report(outcome: Outcome) -> None:
    """Append ``outcome`` to ``$FAULT_MATRIX_REPORT`` (JSON lines) when that is set."""
    path = os.environ.get("FAULT_MATRIX_REPORT")
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(outcome.as_dict()) + "\n")

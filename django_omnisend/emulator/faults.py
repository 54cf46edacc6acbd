"""Seeded fault injection, switchable at run time.

Each rule added with :meth:`FaultInjector.add` owns its own ``random.Random`` seeded from the
emulator seed, the rule's position and its route/kind (string seeds are hashed with SHA-512 by
``random``, so this is stable across processes and ``PYTHONHASHSEED``). Every request that
matches a rule consumes exactly one draw from that rule's RNG, in the order requests reach the
injector, and the rule fires when the draw is below ``rate``. So for a given seed, the same
sequence of requests sees the same sequence of faults; ``clear()`` restarts numbering so a
re-added schedule replays identically.

Kinds: ``429`` (``retry_after``: int, or None to omit it), ``500``, ``503``, ``400``
(``detail``), ``latency`` (``seconds``, added before handling; several may add up),
``apply_then_hang`` (``seconds``: apply the write, then stall the response past the client's
timeout), ``reset_before`` / ``reset_after`` (close the socket with an RST before/after applying
the request), ``truncate`` (answer the real response with its JSON body cut in half).

A rule may be limited in time as well as in count: ``expires_at`` (an emulator-clock reading,
set by ``Emulator.add_fault(..., duration=seconds)``) ends it, so "a 429 storm for 120 s, then
healthy" needs no test-side timing. An expired rule still draws (like an exhausted one), so
the rules after it keep their schedule. :meth:`FaultInjector.remove` drops one rule by id.
"""

from __future__ import annotations

import fnmatch
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

FAULT_KINDS = (
    "429",
    "500",
    "503",
    "400",
    "latency",
    "apply_then_hang",
    "reset_before",
    "reset_after",
    "truncate",
)
#: Default parameters per kind.
DEFAULT_PARAMS: dict[str, dict[str, Any]] = {
    "429": {"retry_after": 1},
    "latency": {"seconds": 0.5},
    "apply_then_hang": {"seconds": 15.0},
    "400": {"detail": "Injected validation failure."},
}


@dataclass
class FaultRule:
    """One fault schedule: which requests, what happens, how often."""

    id: int
    route: str
    kind: str
    rate: float
    params: dict[str, Any]
    times: int | None
    rng: random.Random = field(repr=False)
    fired: int = 0
    seen: int = 0
    #: Clock reading from which the rule no longer fires (None: never expires).
    expires_at: float | None = None

    def matches(self, method: str, path: str) -> bool:
        """``"*"``, ``"/api/contacts*"`` (any method) or ``"POST /api/contacts"`` (glob path)."""
        route = self.route.strip()
        if " " in route:
            want_method, pattern = route.split(None, 1)
            if want_method.upper() not in ("*", method.upper()):
                return False
        else:
            pattern = route
        return fnmatch.fnmatchcase(path, pattern)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready description of the rule and its counters."""
        return {
            "id": self.id,
            "route": self.route,
            "kind": self.kind,
            "rate": self.rate,
            "params": self.params,
            "times": self.times,
            "fired": self.fired,
            "seen": self.seen,
            "expires_at": self.expires_at,
        }


@dataclass
class FaultPlan:
    """What the injector decided for one request."""

    latency: float = 0.0
    #: The first non-latency rule that fired (at most one terminal fault per request).
    rule: FaultRule | None = None

    @property
    def kind(self) -> str | None:
        """The terminal fault kind, or None."""
        return self.rule.kind if self.rule else None


class FaultInjector:
    """Holds the rules and draws from their RNGs; thread-safe."""

    def __init__(self, seed: int | str | None = 0, clock: Callable[[], float] = time.time) -> None:
        self.seed = seed
        #: Read to expire rules with ``expires_at`` (the emulator passes its own clock).
        self.clock = clock
        self._rules: list[FaultRule] = []
        self._counter = 0
        self._lock = threading.Lock()

    def add(
        self,
        route: str,
        kind: str,
        rate: float = 1.0,
        times: int | None = None,
        expires_at: float | None = None,
        **params: Any,
    ) -> FaultRule:
        """Add a rule; ``times`` caps how often it fires (None = unlimited), ``expires_at``
        (a :attr:`clock` reading) ends it."""
        kind = str(kind)
        if kind not in FAULT_KINDS:
            raise ValueError(f"Unknown fault kind {kind!r}; use one of {FAULT_KINDS}")
        if not 0.0 <= float(rate) <= 1.0:
            raise ValueError("rate must be between 0 and 1")
        merged = {**DEFAULT_PARAMS.get(kind, {}), **params}
        with self._lock:
            rule_id = self._counter
            self._counter += 1
            # Not for security: a reproducible schedule is the point.
            rng = random.Random(f"{self.seed}/{rule_id}/{route}/{kind}")  # noqa: S311
            rule = FaultRule(rule_id, route, kind, float(rate), merged, times, rng)
            rule.expires_at = None if expires_at is None else float(expires_at)
            self._rules.append(rule)
            return rule

    def remove(self, rule_id: int) -> bool:
        """Drop the rule with this id (numbering is kept); False if there was none."""
        with self._lock:
            kept = [r for r in self._rules if r.id != rule_id]
            removed = len(kept) != len(self._rules)
            self._rules[:] = kept
            return removed

    def clear(self) -> None:
        """Remove every rule and restart rule numbering (so schedules replay)."""
        with self._lock:
            self._rules.clear()
            self._counter = 0

    def rules(self) -> list[FaultRule]:
        """The current rules, in the order they are evaluated."""
        with self._lock:
            return list(self._rules)

    def plan(self, method: str, path: str) -> FaultPlan:
        """Draw once from every matching rule, in rule order, and combine the results."""
        plan = FaultPlan()
        with self._lock:
            now = self.clock() if any(r.expires_at is not None for r in self._rules) else 0.0
            for rule in self._rules:
                if not rule.matches(method, path):
                    continue
                rule.seen += 1
                draw = rule.rng.random()
                exhausted = (rule.times is not None and rule.fired >= rule.times) or (
                    rule.expires_at is not None and now >= rule.expires_at
                )
                if exhausted or draw >= rule.rate:
                    continue
                if rule.kind == "latency":
                    rule.fired += 1
                    plan.latency += float(rule.params.get("seconds", 0.0))
                elif plan.rule is None:
                    rule.fired += 1
                    plan.rule = rule
        return plan

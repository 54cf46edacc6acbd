"""``manage.py omnisend_status``: connection, budget and sync health, for people and monitors.

Reads the database and the rate-limit cache, and verifies the credential with one cheap call
(``GET /contacts?limit=1``, see :func:`django_omnisend.sync.health.verify_credential`) unless
``--offline`` is given. Never shows a secret (credentials appear as their fingerprint).

Exit codes: ``0`` healthy; ``2`` unhealthy (the reasons are printed, and with ``--json`` listed
under ``"problems"``); ``1`` bad options. Unhealthy means any of:

* no usable credentials (no active connection and no ``OMNISEND["API_KEY"]``, or the connection
  needs a reconnect, or its secrets cannot be decrypted);
* Omnisend refused the credential just now (401, 403, 410), or could not be reached, so the
  credential is not verified (the report says since when it is known to have worked);
* a paused connection (Omnisend answered 401/403/410 and delivery waits for a reconnect);
* any dead row (a contact sync or an event/erasure that gave up);
* the oldest pending change is older than ``--max-age`` seconds (default 900).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, cast

from django.core.management.base import BaseCommand, CommandError
from django.db import connections, router
from django.db.models import Count
from django.utils import timezone

from django_omnisend import crypto
from django_omnisend.conf import omnisend_settings
from django_omnisend.connect import DEFAULT_KEY, connection_for_key, owners
from django_omnisend.models import Connection, DeliveryControl, OutboxItem, SyncState
from django_omnisend.redaction import redact
from django_omnisend.sync import health as health_module
from django_omnisend.sync import triggers
from django_omnisend.sync.health import Verification, health, verify_credential
from django_omnisend.text import moment, shorten

#: Exit code when the sync is unhealthy (``CommandError.returncode``).
UNHEALTHY = 2
#: Longest error text shown in the plain output.
ERROR_PREVIEW = 300


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def owner_table(only: str | None = None) -> list[dict[str, Any]]:
    """One row per owner (the site included) that has a connection in use, or ``only``'s.

    Each row: owner label and key, the connection's brand and state (``paused`` when delivery
    waits for a reconnect), and the owner's pending and dead sync rows. Never a secret.
    """
    rows: dict[str, Connection | None] = {}
    candidates = Connection.objects.exclude(status=Connection.Status.REVOKED).order_by("pk")
    if only is not None:
        rows[only] = None
    for conn in candidates:
        key = _owner_key_of(conn)
        if only is None or key == only:
            rows.setdefault(key, None)
    table = []
    for key in rows:
        sync_key = f"{owners.OWNER_KEY_PREFIX}{key}" if key else DEFAULT_KEY
        conn: Connection | None = connection_for_key(sync_key)  # type: ignore[no-redef]
        states = SyncState.objects.filter(connection_key=sync_key)
        paused = DeliveryControl.objects.filter(connection_key=sync_key, paused=True).exists()
        state = "not connected" if conn is None else conn.status
        if conn is not None and paused:
            state = "paused"
        problem = ""
        if conn is None:
            problem = "not connected" if key else ""
        elif conn.status == Connection.Status.NEEDS_RECONNECT or conn.undecryptable:
            problem = "needs a reconnect"
        elif paused:
            problem = "delivery paused until a reconnect"
        table.append(
            {
                "owner": key or "site",
                "connection_key": sync_key,
                "id": getattr(conn, "pk", None),
                "brand_id": getattr(conn, "brand_id", ""),
                "brand_name": getattr(conn, "brand_name", ""),
                "auth_type": getattr(conn, "auth_type", ""),
                "fingerprint": getattr(conn, "fingerprint", ""),
                "state": state,
                "pending": states.filter(dirty=True).count(),
                "dead": states.filter(state=SyncState.State.DEAD).count(),
                "problem": problem,
            }
        )
    return table


def _owner_key_of(conn: Connection) -> str:
    if conn.owner_type_id is None:
        return ""
    from django.contrib.contenttypes.models import ContentType

    ct = ContentType.objects.get_for_id(conn.owner_type_id)
    return f"{ct.app_label}.{ct.model}:{conn.owner_id}"


def connection_info() -> dict[str, Any]:
    """The credentials the default connection key uses now (never a secret)."""
    connection = connection_for_key(DEFAULT_KEY)
    if connection is not None:
        usable = (
            connection.status == Connection.Status.ACTIVE
            and not connection.undecryptable
            and bool(connection.secret)
            # An expired token without a refresh token cannot be renewed.
            and not (connection.expires_soon(within=0) and not connection.refresh_token)
        )
        return {
            "source": "connection",
            "id": connection.pk,
            "brand_id": connection.brand_id,
            "brand_name": connection.brand_name,
            "auth_type": connection.auth_type,
            "status": connection.status,
            "status_reason": connection.status_reason,
            "fingerprint": connection.fingerprint,
            "usable": usable,
            "rate_limit_key": connection.rate_limit_key,
        }
    api_key = omnisend_settings.api_key
    if api_key:
        from django_omnisend.api import ApiKeyAuth

        return {
            "source": "settings",
            "brand_id": ApiKeyAuth(api_key).brand_id,
            "auth_type": Connection.AuthType.API_KEY.value,
            "status": "active",
            "fingerprint": crypto.fingerprint(api_key),
            "usable": True,
            "rate_limit_key": ApiKeyAuth(api_key).brand_id or "default",
        }
    return {"source": None, "usable": False, "rate_limit_key": None}


def budget_info(key: str | None) -> dict[str, Any]:
    """The shared budget's current use for ``key`` (None when it is per process)."""
    from django_omnisend.ratelimit import RateLimiter

    limiter = RateLimiter()
    info: dict[str, Any] = {
        "limit": limiter.budget,
        "window_seconds": limiter.window,
        "shared": limiter.shared,
        "used": None,
    }
    if key and limiter.shared:
        try:
            info["used"] = limiter.usage(key)
        except Exception as exc:  # a cache outage must not hide the rest of the report
            info["error"] = f"{type(exc).__name__}"
    return info


def last_error() -> dict[str, Any] | None:
    """The most recent recorded error of a sync row or outbox item (already sanitised)."""
    candidates = []
    row = (
        SyncState.objects.exclude(last_error="")
        .order_by("-updated_at", "-pk")
        .values("user_id", "state", "last_status", "last_error", "updated_at")
        .first()
    )
    if row:
        candidates.append(
            {
                "source": "sync",
                "user_id": row["user_id"],
                "state": row["state"],
                "status": row["last_status"],
                "error": redact(row["last_error"]),
                "at": row["updated_at"],
            }
        )
    item = (
        OutboxItem.objects.exclude(last_error="")
        .order_by("-pk")
        .values("pk", "kind", "state", "last_status", "last_error", "next_attempt_at")
        .first()
    )
    if item:
        candidates.append(
            {
                "source": item["kind"],
                "outbox_id": item["pk"],
                "state": item["state"],
                "status": item["last_status"],
                "error": redact(item["last_error"]),
                "at": None,
            }
        )
    if not candidates:
        return None
    # Outbox items keep no "when"; a sync row's error wins unless only the outbox has one.
    chosen = candidates[0]
    chosen["at"] = _iso(cast("datetime | None", chosen["at"]))
    return chosen


def marking_info() -> dict[str, Any]:
    """How saves mark users, and whether the database's triggers agree (default database)."""
    conn = connections[router.db_for_write(SyncState)]
    present = conn.vendor in triggers.VENDORS and bool(triggers.installed(conn))
    current = present and triggers.is_current(conn)
    if triggers.wanted():
        state = "installed" if current else ("out of date" if present else "missing")
    else:
        state = "leftover" if present else "none"
    return {"mark_with": omnisend_settings.mark_with, "triggers": state}


def reason_counts() -> dict[str, int]:
    """How many sync rows carry each reason (skips, conflicts), most common first."""
    rows = (
        SyncState.objects.exclude(reason="")
        .values("reason")
        .annotate(n=Count("pk"))
        .order_by("-n", "reason")
    )
    return {row["reason"]: row["n"] for row in rows}


def credential_info(conn: dict[str, Any], verify: bool) -> dict[str, Any]:
    """The outcome of verifying the credential now (skipped offline or without one)."""
    if not verify:
        found = Verification(health_module.NOT_VERIFIED, "--offline")
    elif not conn["usable"]:
        found = Verification(health_module.NOT_VERIFIED, "no usable credential")
    else:
        found = verify_credential(DEFAULT_KEY)
    return {
        "verified": found.verified,
        "outcome": found.outcome,
        "detail": found.detail,
        "todo": found.todo,
        "last_accepted": _iso(found.last_accepted),
    }


def credential_problem(credential: dict[str, Any]) -> str:
    """The problem line for a refused or unverifiable credential ("" when there is none)."""
    if credential["outcome"] == health_module.REJECTED:
        return credential["detail"]
    if credential["outcome"] == health_module.UNREACHABLE:
        return (
            f"Omnisend unreachable ({credential['detail']}): credential not verified "
            f"{_since(credential)}. {credential['todo']}"
        )
    return ""


def _since(credential: dict[str, Any]) -> str:
    when = credential["last_accepted"]
    return f"since {moment(datetime.fromisoformat(when))}" if when else "(never accepted yet)"


def collect(max_age: float, verify: bool = True) -> dict[str, Any]:
    """Everything the command shows, JSON-serialisable, with ``problems`` (empty = healthy).

    ``verify=False`` makes no API call (``--offline``).
    """
    now = timezone.now()
    conn = connection_info()
    state = health()
    age = state.oldest_pending_age
    outbox_dead = OutboxItem.objects.filter(state=OutboxItem.State.DEAD).count()
    gates = [
        {
            "connection_key": c.connection_key,
            "paused": c.paused,
            "paused_reason": c.paused_reason,
            "paused_at": _iso(c.paused_at),
            "cooldown_until": _iso(
                c.cooldown_until if c.cooldown_until and c.cooldown_until > now else None
            ),
            "breaker_open_until": _iso(
                c.breaker_open_until
                if c.breaker_open_until and c.breaker_open_until > now
                else None
            ),
            "pulled_until": _iso(c.pulled_until),
        }
        for c in DeliveryControl.objects.order_by("connection_key")
    ]
    problems = []
    if not conn["usable"]:
        if conn["source"] is None:
            problems.append("no credentials: connect Omnisend in the admin or set API_KEY")
        else:
            problems.append(f"connection not usable ({conn['status']}): reconnect in the admin")
    for key, reason in state.paused:
        problems.append(f"connection {key!r} paused: {reason or 'needs reconnect'}")
    budget = budget_info(conn["rate_limit_key"])  # before the check takes its request
    credential = credential_info(conn, verify)
    if credential_problem(credential):
        problems.append(credential_problem(credential))
    if state.dead:
        problems.append(f"{state.dead} dead contact sync(s)")
    if outbox_dead:
        problems.append(f"{outbox_dead} dead event/erasure(s)")
    if age is not None and age.total_seconds() > max_age:
        problems.append(
            f"oldest pending change is {int(age.total_seconds())} s old (max {max_age:g} s)"
        )
    return {
        "healthy": not problems,
        "problems": problems,
        "sync_users": omnisend_settings.sync_users,
        "marking": marking_info(),
        "connection": {k: v for k, v in conn.items() if k != "rate_limit_key"},
        "credential": credential,
        "budget": budget,
        "counts": {
            "pending": state.pending,
            "failed": state.failed,
            "dead": state.dead,
            "skipped": state.skipped,
            "synced": state.synced,
            "outbox_pending": state.outbox_pending,
            "outbox_dead": outbox_dead,
        },
        # Why rows are skipped or held back (duplicate_email, consent_conflict, ...): counts.
        "reasons": reason_counts(),
        "oldest_pending": _iso(state.oldest_pending),
        "oldest_pending_age_seconds": round(age.total_seconds(), 1) if age is not None else None,
        "paused": [{"connection_key": k, "reason": r} for k, r in state.paused],
        "controls": gates,
        "last_error": last_error(),
    }


def credential_line(credential: dict[str, Any]) -> str:
    """How the credential check went, for the plain output."""
    outcome, detail = credential["outcome"], credential["detail"]
    if outcome == health_module.VERIFIED:
        return f"verified ({detail})"
    if outcome == health_module.REJECTED:
        return f"refused just now, {detail}"
    if outcome == health_module.UNREACHABLE:
        return (
            f"not verified {_since(credential)}: Omnisend unreachable, {detail}. "
            f"{credential['todo']}"
        )
    return f"not verified ({detail})"


class Command(BaseCommand):
    help = (
        "Show the Omnisend connection (verified with one API call unless --offline), request "
        "budget and sync health; exits 2 when unhealthy (credential refused, Omnisend "
        "unreachable, paused, no usable credentials, dead rows, or pending changes older than "
        "--max-age)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON (for monitoring).")
        parser.add_argument(
            "--offline",
            action="store_true",
            help="Make no API call: report without verifying the credential.",
        )
        scope = parser.add_mutually_exclusive_group()
        scope.add_argument(
            "--owner",
            metavar="APP_LABEL.MODEL:PK",
            help="Show the connection of one owner (e.g. shops.shop:3; 'site' for the site's).",
        )
        scope.add_argument(
            "--all",
            action="store_true",
            help="Show a table of every owner's connection: owner, brand, state, pending rows.",
        )
        parser.add_argument(
            "--max-age",
            type=float,
            default=900.0,
            help="Seconds the oldest pending change may wait before it counts as unhealthy.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["max_age"] < 0:
            raise CommandError("--max-age must not be negative.")
        if options["owner"] is not None or options["all"]:
            self._owners(options)
            return
        report = collect(options["max_age"], verify=not options["offline"])
        if options["json"]:
            self.stdout.write(json.dumps(report, indent=2, default=str))
        else:
            self._print(report)
        if not report["healthy"]:
            raise CommandError(
                "Omnisend sync is unhealthy: " + "; ".join(report["problems"]),
                returncode=UNHEALTHY,
            )

    def _owners(self, options: dict[str, Any]) -> None:
        if options["all"]:
            rows = owner_table()
        else:
            key = "" if options["owner"] == "site" else options["owner"]
            try:
                owners.owner_from_key(key)
            except owners.InvalidOwner as exc:
                raise CommandError(
                    f"{exc} Name an owner as app_label.model:pk (e.g. shops.shop:3), or 'site'."
                ) from None
            rows = owner_table(key)
        problems = [f"{r['owner']}: {r['problem']}" for r in rows if r["problem"]]
        if options["json"]:
            self.stdout.write(
                json.dumps({"owners": rows, "healthy": not problems}, indent=2, default=str)
            )
        else:
            self._print_table(rows)
        if problems:
            raise CommandError(
                "Omnisend connections are unhealthy: " + "; ".join(problems),
                returncode=UNHEALTHY,
            )

    def _print_table(self, rows: list[dict[str, Any]]) -> None:
        header = ("Owner", "Brand", "State", "Auth", "Credential", "Pending", "Dead")
        table = [header] + [
            (
                r["owner"],
                f"{r['brand_name'] or '?'} ({r['brand_id'] or '?'})" if r["brand_id"] else "—",
                r["state"],
                r["auth_type"] or "—",
                r["fingerprint"] or "—",
                str(r["pending"]),
                str(r["dead"]),
            )
            for r in rows
        ]
        widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
        for row in table:
            self.stdout.write(
                "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip()
            )
        if not rows:
            self.stdout.write("No Omnisend connections.")

    def _print(self, report: dict[str, Any]) -> None:
        out = self.stdout.write
        conn = report["connection"]
        if conn["source"] == "connection":
            brand = conn["brand_name"] or "?"
            out(
                f"Connection: {brand} (brand {conn['brand_id'] or '?'}), "
                f"{conn['auth_type']}, {conn['status']}, credential {conn['fingerprint']}"
                + (f" — {conn['status_reason']}" if conn["status_reason"] else "")
            )
        elif conn["source"] == "settings":
            out(
                f"Connection: API key from settings (brand {conn['brand_id'] or '?'}), "
                f"credential {conn['fingerprint']}"
            )
        else:
            out("Connection: none")
        out(f"Credential: {credential_line(report['credential'])}")
        budget = report["budget"]
        limit, window = budget["limit"], f"{budget['window_seconds']:g} s"
        if budget["used"] is not None:
            out(f"Budget: {budget['used']}/{limit} requests in the last {window}")
        else:
            why = "usage unavailable" if budget["shared"] else "per-process budget (not shared)"
            out(f"Budget: limit {limit} per {window}, {why}")
        counts = report["counts"]
        out(
            "Sync: "
            + ", ".join(f"{name.replace('_', ' ')} {n}" for name, n in counts.items())
            + ("" if report["sync_users"] else " (SYNC_USERS is off)")
        )
        marking = report["marking"]
        advice = {
            "missing": " (missing: the receiver marks meanwhile; run migrate)",
            "out of date": " (out of date: run migrate)",
            "leftover": " (triggers left on the user table: run migrate)",
        }
        out(f"Marking: {marking['mark_with']}{advice.get(marking['triggers'], '')}")
        if report["reasons"]:
            reasons = ", ".join(f"{name} {n}" for name, n in report["reasons"].items())
            out(f"Reasons: {reasons}")
        age = report["oldest_pending_age_seconds"]
        out(f"Oldest pending: {'none' if age is None else f'{age:g} s ago'}")
        for gate in report["controls"]:
            notes = [
                f"paused ({gate['paused_reason'] or 'needs reconnect'})" if gate["paused"] else "",
                f"cooling down until {gate['cooldown_until']}" if gate["cooldown_until"] else "",
                f"breaker open until {gate['breaker_open_until']}"
                if gate["breaker_open_until"]
                else "",
                f"pulled until {gate['pulled_until']}" if gate["pulled_until"] else "",
            ]
            notes = [n for n in notes if n]
            if notes:
                out(f"Connection {gate['connection_key']!r}: {', '.join(notes)}")
        error = report["last_error"]
        if error:
            text = shorten(error["error"], ERROR_PREVIEW)
            out(f"Last error ({error['source']}, {error['state']}): {text}")
        out("Healthy" if report["healthy"] else "UNHEALTHY: " + "; ".join(report["problems"]))

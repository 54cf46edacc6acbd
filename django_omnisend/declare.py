"""Bring Omnisend's event metadata in line with the site's declarations, idempotently.

:func:`declare_events` reads what one brand has (``POST /event-metadata/query`` with the
properties), then per declaration: ``POST`` when the event is not declared there, ``PUT`` with
the declaration when something is missing or different (a property, a display name, a
description), nothing when Omnisend already holds it all. Omnisend never removes a property,
so properties that exist only in Omnisend are kept and reported. A property whose declared
type differs cannot be changed (Omnisend answers 409): it is reported without a request.
``dry_run`` makes the read only. No Django models are used here: the caller gives the client.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .event_declarations import NODE_TEXTS, EventDeclaration
from .exceptions import Conflict, NotFound, OmnisendAPIError, PermissionDenied, ValidationError

CREATED = "created"
MERGED = "merged"
UNCHANGED = "unchanged"
FAILED = "failed"
#: The query category used to read declarations back.
QUERY_CATEGORY = "segments"


@dataclass
class Outcome:
    """What happened (or would happen, in a dry run) to one declaration."""

    name: str
    origin: str
    action: str
    changes: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    error: str = ""

    def as_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return {
            "name": self.name,
            "origin": self.origin,
            "action": self.action,
            "changes": self.changes,
            "kept": self.kept,
            "error": self.error,
        }


def _diff(
    wanted: dict[str, Any], remote: dict[str, Any], where: str
) -> tuple[list[str], list[str], list[str]]:
    """``(changes, conflicts, kept)`` between declared nodes and Omnisend's nodes."""
    changes: list[str] = []
    conflicts: list[str] = []
    kept = [f"{where}{name}" for name in remote if name not in wanted]
    for name, node in wanted.items():
        have = remote.get(name)
        path = f"{where}{name}"
        if not isinstance(have, dict):
            changes.append(f"add property {path} ({node['type']})")
            continue
        if have.get("type") != node["type"]:
            if have.get("explicitlyDefined"):
                conflicts.append(
                    f"property {path} is declared in Omnisend as {have.get('type')}, here as "
                    f"{node['type']}; Omnisend cannot change a declared type: declare a "
                    "property with a new name instead"
                )
                continue
            changes.append(f"declare property {path} as {node['type']}")
        elif not have.get("explicitlyDefined"):
            changes.append(f"declare property {path} ({node['type']}, seen in sent events)")
        for key in NODE_TEXTS.values():
            if key in node and have.get(key) != node[key]:
                changes.append(f"set {key} of {path}")
        if node.get("properties"):
            sub = _diff(node["properties"], have.get("properties") or {}, f"{path}.")
            changes += sub[0]
            conflicts += sub[1]
            kept += sub[2]
    return changes, conflicts, kept


def plan(declaration: EventDeclaration, remote: dict[str, Any] | None) -> Outcome:
    """The outcome for ``declaration`` given Omnisend's ``EventItem`` (None: not declared)."""
    outcome = Outcome(declaration.name, declaration.origin, UNCHANGED)
    if remote is None or not remote.get("explicitlyDefined"):
        outcome.action = CREATED
        outcome.changes = [f"declare with {len(declaration.properties)} properties"]
        return outcome
    changes, conflicts, kept = _diff(declaration.properties, remote.get("properties") or {}, "")
    if remote.get("displayName") != declaration.display_name:
        changes.insert(0, "set displayName")
    outcome.kept = kept
    if conflicts:
        outcome.action = FAILED
        outcome.error = "; ".join(conflicts)
        outcome.changes = changes
        return outcome
    if changes:
        outcome.action = MERGED
        outcome.changes = changes
    return outcome


def _explain(exc: OmnisendAPIError, declaration: EventDeclaration) -> str:
    what = f"event {declaration.name!r} (origin {declaration.origin!r})"
    if isinstance(exc, PermissionDenied):
        return (
            f"Omnisend refused to declare {what}: the credential lacks permission (403). "
            "Declaring events needs the events.write scope: keep it in OMNISEND['SCOPES'] and "
            "reconnect, or give the API key the Events permission."
        )
    if isinstance(exc, ValidationError):
        return (
            f"Omnisend refused the declaration of {what} (400: {exc.detail or exc.title}). "
            "Fix it in register_event() or OMNISEND['EVENTS'] and run the command again."
        )
    return f"Declaring {what} failed: {exc}"


def _remote_items(client: Any, declarations: list[EventDeclaration]) -> dict[Any, Any]:
    items = client.event_metadata.query(
        QUERY_CATEGORY,
        events=sorted({d.name for d in declarations}),
        include_properties=True,
    )
    remote: dict[tuple[str, str], dict[str, Any]] = {}
    for item in items:
        for origin in item.get("origins") or []:
            key = (item.get("name"), origin)
            # A declared item wins over an inferred one for the same name and origin.
            if key not in remote or item.get("explicitlyDefined"):
                remote[key] = item
    return remote


def declare_events(
    client: Any, declarations: Iterable[EventDeclaration], *, dry_run: bool = False
) -> list[Outcome]:
    """Declare or merge ``declarations`` in the client's brand; one :class:`Outcome` each.

    A refused declaration (400, 409) is reported in its outcome and the others still go; a
    403, 401 or an unreachable Omnisend raises, since every other declaration would fail alike
    (a 403 is raised as ``PermissionDenied`` with a message saying which scope to grant).
    """
    declarations = list(declarations)
    if not declarations:
        return []
    remote = _remote_items(client, declarations)
    outcomes = []
    for declaration in declarations:
        outcome = plan(declaration, remote.get(declaration.key))
        outcomes.append(outcome)
        if dry_run or outcome.action in (UNCHANGED, FAILED):
            continue
        try:
            if outcome.action == CREATED:
                try:
                    client.event_metadata.declare(declaration.as_request())
                except Conflict:
                    # Declared meanwhile (another run, or a POST whose answer was lost).
                    client.event_metadata.merge(declaration.as_request())
                    outcome.action = MERGED
            else:
                client.event_metadata.merge(declaration.as_request())
        except PermissionDenied as exc:
            raise PermissionDenied(
                _explain(exc, declaration), status=exc.status, detail=exc.detail
            ) from exc
        except (ValidationError, Conflict, NotFound) as exc:
            outcome.action = FAILED
            outcome.error = _explain(exc, declaration)
    return outcomes

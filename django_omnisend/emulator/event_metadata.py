"""Event metadata (Event Metadata API, version ``2026-preview``): declared custom events.

Rules implemented here:

* An event is identified by ``name`` + ``origin``. ``POST /event-metadata`` declares one:
  ``displayName`` and at least one property are required, optional fields must be omitted
  rather than ``null``; 201 ``{event}`` with every node ``explicitlyDefined``. A declared
  ``name``/``origin`` pair, or a recommended event's name, → 409.
* ``PUT /event-metadata`` merges into a declared event (404 when there is none): only what is
  sent changes, no property is removed, and an explicitly defined property's ``type`` cannot
  change (409). 200 ``{event}``.
* Property nodes need a ``type`` from the spec's enum; only ``struct``/``structList`` nodes
  carry child ``properties``.
* ``POST /event-metadata/query``: ``category`` (``automations``, ``events``, ``segments``)
  is required; the answer lists the declared events and, as ``explicitlyDefined: false`` with
  inferred property types, the custom events the brand has sent through ``POST /events``
  without declaring them; ``events`` / ``origins`` filter exactly, ``includeProperties`` adds
  the property trees, ``excludeCustomEvents`` leaves every one of them out (the emulator has
  no global lexicon of Omnisend's own events).
* 400s are plain ``Problem`` bodies (no ``errors[]``), as this API declares them.
"""

from __future__ import annotations

import copy
from typing import Any

from .problems import ApiError, FieldError
from .state import State
from .validation import Checker, require_object

PROPERTY_TYPES = (
    "string",
    "stringList",
    "integer",
    "integerList",
    "float",
    "floatList",
    "boolean",
    "booleanList",
    "date",
    "dateList",
    "struct",
    "structList",
)
CATEGORIES = ("automations", "events", "segments")
#: Omnisend's recommended events (its global lexicon): a custom declaration may not reuse them.
RECOMMENDED_EVENTS = frozenset(
    {
        "placed order",
        "paid for order",
        "order fulfilled",
        "order canceled",
        "order refunded",
        "ordered product",
        "started checkout",
        "added product to cart",
        "viewed product",
    }
)
NODE_TEXT = ("displayName", "description", "group")


def _bad_request(errors: list[FieldError]) -> ApiError:
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors)
    return ApiError(400, f"Invalid request: {detail}", with_errors=False)


def _check_nodes(c: Checker, nodes: Any, prefix: str) -> None:
    if not c.obj(nodes, prefix.rstrip(".")):
        return
    for name, node in nodes.items():
        p = f"{prefix}{name}."
        if not c.obj(node, p.rstrip(".")):
            continue
        for key, value in node.items():
            if value is None:
                c.add(f"{p}{key}", "invalid_value", "Omit optional fields instead of null.")
        if "type" not in node:
            c.add(f"{p}type", "required", "Field is required.")
        c.enum(node, "type", PROPERTY_TYPES, p)
        for key in NODE_TEXT:
            if node.get(key) is not None:
                c.string(node, key, p)
        if node.get("properties") is not None:
            if node.get("type") not in ("struct", "structList"):
                c.add(f"{p}properties", "invalid_value", "Only struct properties have children.")
            _check_nodes(c, node["properties"], f"{p}properties.")


def validate_write(body: Any, *, create: bool) -> dict[str, Any]:
    """``WriteEventRequest`` for POST (``create``) or PUT; a plain 400 on failure."""
    try:
        body = require_object(body)
    except ApiError as exc:
        raise _bad_request(exc.errors) from None
    c = Checker()
    required = ("name", "origin", "displayName") if create else ("name", "origin")
    for key in required:
        if not isinstance(body.get(key), str) or not body.get(key):
            c.add(key, "required", "Field is required.")
    for key, value in body.items():
        if value is None and key not in required:
            c.add(key, "invalid_value", "Omit optional fields instead of null.")
    if body.get("displayName") is not None:
        c.string(body, "displayName")
    if body.get("properties") is not None:
        _check_nodes(c, body["properties"], "properties.")
    if create and not (isinstance(body.get("properties"), dict) and body["properties"]):
        c.add("properties", "required", "Declare at least one property.")
    if c.errors:
        raise _bad_request(c.errors)
    return body


def _store(state: State, brand_id: str) -> dict[str, dict[str, Any]]:
    return state.event_metadata.setdefault(brand_id, {})


def _key(name: str, origin: str) -> str:
    return f"{origin}\x1f{name}"


def _declared_nodes(nodes: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for name, node in nodes.items():
        stored = {k: node[k] for k in ("type", *NODE_TEXT) if k in node}
        stored["explicitlyDefined"] = True
        if node.get("properties"):
            stored["properties"] = _declared_nodes(node["properties"])
        out[name] = stored
    return out


def declare(state: State, brand_id: str, body: Any) -> dict[str, Any]:
    """``POST /event-metadata``: store a new declaration; 409 when it exists or collides."""
    body = validate_write(body, create=True)
    store = _store(state, brand_id)
    key = _key(body["name"], body["origin"])
    if key in store:
        raise ApiError(
            409,
            f"Event '{body['name']}' from origin '{body['origin']}' is already declared; "
            "merge changes with PUT.",
        )
    if body["name"] in RECOMMENDED_EVENTS:
        raise ApiError(409, f"'{body['name']}' is one of Omnisend's recommended events.")
    record = {
        "name": body["name"],
        "origin": body["origin"],
        "displayName": body["displayName"],
        "properties": _declared_nodes(body["properties"]),
    }
    store[key] = record
    return record


def _merge_nodes(stored: dict[str, Any], sent: dict[str, Any], where: str) -> None:
    for name, node in sent.items():
        old = stored.get(name)
        if old is None:
            stored[name] = _declared_nodes({name: node})[name]
            continue
        if old.get("explicitlyDefined") and old["type"] != node["type"]:
            raise ApiError(
                409,
                f"Property '{where}{name}' is declared as {old['type']}; its type cannot change.",
            )
        old["type"] = node["type"]
        old["explicitlyDefined"] = True
        for key in NODE_TEXT:
            if key in node:
                old[key] = node[key]
        if node.get("properties"):
            _merge_nodes(old.setdefault("properties", {}), node["properties"], f"{where}{name}.")


def merge(state: State, brand_id: str, body: Any) -> dict[str, Any]:
    """``PUT /event-metadata``: merge into a declared event; 404 when there is none."""
    body = validate_write(body, create=False)
    record = _store(state, brand_id).get(_key(body["name"], body["origin"]))
    if record is None:
        raise ApiError(
            404,
            f"Event '{body['name']}' from origin '{body['origin']}' is not declared; "
            "declare it with POST first.",
        )
    merged = copy.deepcopy(record)  # all or nothing: a 409 halfway changes nothing
    if "displayName" in body:
        merged["displayName"] = body["displayName"]
    _merge_nodes(merged["properties"], body.get("properties") or {}, "")
    record.clear()
    record.update(merged)
    return record


def to_item(record: dict[str, Any], *, with_properties: bool, declared: bool) -> dict[str, Any]:
    """An ``EventItem``."""
    item: dict[str, Any] = {
        "name": record["name"],
        "displayName": record["displayName"],
        "origins": [record["origin"]],
        "explicitlyDefined": declared,
    }
    if with_properties:
        item["properties"] = copy.deepcopy(record["properties"])
    return item


def _infer(value: Any) -> dict[str, Any]:
    """A ``PropertyNode`` guessed from a value sent in an event."""
    if isinstance(value, bool):
        return {"type": "boolean", "explicitlyDefined": False}
    if isinstance(value, int):
        return {"type": "integer", "explicitlyDefined": False}
    if isinstance(value, float):
        return {"type": "float", "explicitlyDefined": False}
    if isinstance(value, dict):
        children = {k: _infer(v) for k, v in value.items()}
        return {"type": "struct", "explicitlyDefined": False, "properties": children}
    if isinstance(value, list):
        first = value[0] if value else ""
        if isinstance(first, dict):
            node = _infer(first)
            return {**node, "type": "structList"}
        scalar = _infer(first)["type"]
        return {"type": f"{scalar}List", "explicitlyDefined": False}
    return {"type": "string", "explicitlyDefined": False}


def _sent_events(state: State, brand_id: str) -> dict[str, dict[str, Any]]:
    """Custom events received through ``POST /events``, by key, with inferred properties."""
    seen: dict[str, dict[str, Any]] = {}
    for event in state.events.get(brand_id, []):
        name, origin = event.get("eventName"), event.get("origin") or "api"
        if not name or name in RECOMMENDED_EVENTS:
            continue
        record = seen.setdefault(
            _key(name, origin),
            {"name": name, "origin": origin, "displayName": name, "properties": {}},
        )
        for prop, value in (event.get("properties") or {}).items():
            record["properties"].setdefault(prop, _infer(value))
    return seen


def query(state: State, brand_id: str, body: Any) -> dict[str, Any]:
    """``POST /event-metadata/query``: an ``EventsResponse``."""
    try:
        body = require_object(body)
    except ApiError as exc:
        raise _bad_request(exc.errors) from None
    c = Checker()
    if "category" not in body:
        c.add("category", "required", "Field is required.")
    c.enum(body, "category", CATEGORIES)
    c.string_list(body, "events", 1000)
    c.string_list(body, "origins", 1000)
    for key in ("includeProperties", "excludeCustomEvents"):
        if key in body and not isinstance(body[key], bool):
            c.add(key, "invalid_type", "Must be a boolean.")
    if c.errors:
        raise _bad_request(c.errors)
    if body.get("excludeCustomEvents"):
        return {"events": []}
    declared = _store(state, brand_id)
    inferred = {k: v for k, v in _sent_events(state, brand_id).items() if k not in declared}
    names = set(body["events"]) if body.get("events") else None
    origins = set(body["origins"]) if body.get("origins") else None
    items = []
    for records, is_declared in ((declared, True), (inferred, False)):
        for record in records.values():
            if names is not None and record["name"] not in names:
                continue
            if origins is not None and record["origin"] not in origins:
                continue
            items.append(
                to_item(
                    record,
                    with_properties=bool(body.get("includeProperties")),
                    declared=is_declared,
                )
            )
    items.sort(key=lambda i: (i["name"], i["origins"]))
    return {"events": items}

"""The site's custom events and their properties, as declared to Omnisend's Event Metadata API.

Omnisend uses a custom event's properties in segments and automations only once the event is
*declared* (``POST /event-metadata``: name + origin, a display name, at least one property).
Declarations come from three places, merged by ``(name, origin)``:

* :func:`register_event` calls, usually in an app's ``omnisend_events.py`` module, which
  :func:`declared_events` imports from every installed app (like ``admin.py``);
* the ``OMNISEND["EVENTS"]`` setting: ``{"plan upgraded": {"properties": {"plan": "string"},
  "display_name": "Plan upgraded"}}``.

A property is a type name (``"string"``, ``"integerList"``, ``"struct"``...) or a dict with
``type`` and optional ``display_name``/``description``/``group`` and, for ``struct`` and
``structList``, child ``properties``. ``manage.py omnisend_declare_events`` sends them.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .exceptions import ImproperlyConfigured

#: Property types of Omnisend's ``PropertyNode`` (Event Metadata API, 2026-03-15).
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
#: Omnisend's recommended events: their schemas are Omnisend's, a site cannot declare them.
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
#: Our keyword -> Omnisend's field, for a property node's texts.
NODE_TEXTS = {"display_name": "displayName", "description": "description", "group": "group"}


@dataclass(frozen=True)
class EventDeclaration:
    """One custom event: ``properties`` are normalised ``WritePropertyNode`` dicts."""

    name: str
    origin: str
    display_name: str
    properties: dict[str, dict[str, Any]] = field(hash=False)

    @property
    def key(self) -> tuple[str, str]:
        """``(name, origin)``: how Omnisend identifies a declared event."""
        return (self.name, self.origin)

    def as_request(self) -> dict[str, Any]:
        """The ``WriteEventRequest`` body for ``POST``/``PUT /event-metadata``."""
        return {
            "name": self.name,
            "origin": self.origin,
            "displayName": self.display_name,
            "properties": self.properties,
        }


_registry: dict[tuple[str, str], EventDeclaration] = {}
_lock = threading.Lock()


def _node(name: str, spec: Any, where: str) -> dict[str, Any]:
    if isinstance(spec, str):
        spec = {"type": spec}
    if not isinstance(spec, Mapping):
        raise ImproperlyConfigured(
            f"Property {where}{name!r} must be a type name or a dict with 'type', "
            f"not {type(spec).__name__}."
        )
    kind = spec.get("type")
    if kind not in PROPERTY_TYPES:
        raise ImproperlyConfigured(
            f"Property {where}{name!r} has type {kind!r}; use one of: {', '.join(PROPERTY_TYPES)}."
        )
    unknown = set(spec) - {"type", "properties", *NODE_TEXTS, *NODE_TEXTS.values()}
    if unknown:
        raise ImproperlyConfigured(
            f"Property {where}{name!r} has unknown keys {sorted(unknown)}; allowed: type, "
            "display_name, description, group, properties."
        )
    node: dict[str, Any] = {"type": kind}
    for ours, theirs in NODE_TEXTS.items():
        text = spec.get(ours, spec.get(theirs))
        if text is not None:  # Omnisend refuses null: an unset text is left out
            node[theirs] = str(text)
    children = spec.get("properties")
    if children is not None:
        if kind not in ("struct", "structList"):
            raise ImproperlyConfigured(
                f"Property {where}{name!r} is a {kind}; only struct and structList properties "
                "have child properties."
            )
        node["properties"] = _nodes(children, f"{where}{name}.")
    return node


def _nodes(properties: Any, where: str = "") -> dict[str, dict[str, Any]]:
    if not isinstance(properties, Mapping):
        raise ImproperlyConfigured(f"Properties {where or ''}must be a dict of name -> type.")
    out = {}
    for name, spec in properties.items():
        if not isinstance(name, str) or not name.strip():
            raise ImproperlyConfigured(f"A property name under {where or 'the event'} is empty.")
        out[name] = _node(name, spec, where)
    return out


def build_declaration(
    name: str,
    properties: Mapping[str, Any],
    *,
    display_name: str | None = None,
    origin: str | None = None,
) -> EventDeclaration:
    """A validated :class:`EventDeclaration`; raises ``ImproperlyConfigured`` saying what to fix."""
    if not isinstance(name, str) or not name.strip():
        raise ImproperlyConfigured("An Omnisend event declaration needs a non-empty name.")
    if name in RECOMMENDED_EVENTS:
        raise ImproperlyConfigured(
            f"{name!r} is one of Omnisend's recommended events; its properties are Omnisend's "
            "own and cannot be declared. Give your custom event another name."
        )
    nodes = _nodes(properties, f"{name}: ")
    if not nodes:
        raise ImproperlyConfigured(
            f"Omnisend event {name!r} needs at least one property to be declared."
        )
    if origin is None:
        from .conf import omnisend_settings

        origin = omnisend_settings.event_origin
    return EventDeclaration(
        name=name,
        origin=origin,
        display_name=display_name or name[:1].upper() + name[1:],
        properties=nodes,
    )


def register_event(
    name: str,
    properties: Mapping[str, Any],
    *,
    display_name: str | None = None,
    origin: str | None = None,
) -> EventDeclaration:
    """Declare the custom event ``name`` with ``properties`` (``{"plan": "string", ...}``).

    ``origin`` defaults to ``OMNISEND["EVENT_ORIGIN"]`` (what :func:`send_event` sends), and
    ``display_name`` to the name with a capital. Registering the same declaration again is
    harmless; a different one for the same name and origin raises ``ImproperlyConfigured``.
    """
    declaration = build_declaration(name, properties, display_name=display_name, origin=origin)
    with _lock:
        existing = _registry.get(declaration.key)
        if existing is not None and existing != declaration:
            raise ImproperlyConfigured(
                f"Omnisend event {name!r} (origin {declaration.origin!r}) is registered twice "
                "with different properties; keep one register_event() call for it."
            )
        _registry[declaration.key] = declaration
    return declaration


def unregister_event(name: str, origin: str | None = None) -> None:
    """Forget a registered event (tests, or an app that replaces another's declaration)."""
    if origin is None:
        from .conf import omnisend_settings

        origin = omnisend_settings.event_origin
    with _lock:
        _registry.pop((name, origin), None)


def _from_settings() -> list[EventDeclaration]:
    from .conf import omnisend_settings

    events = omnisend_settings.events
    if not isinstance(events, Mapping):
        raise ImproperlyConfigured(
            'OMNISEND["EVENTS"] must be a dict: {"event name": {"properties": {...}}}.'
        )
    out = []
    for name, spec in events.items():
        if not isinstance(spec, Mapping) or "properties" not in spec:
            raise ImproperlyConfigured(
                f'OMNISEND["EVENTS"][{name!r}] must be a dict with "properties" (and optional '
                '"display_name", "origin").'
            )
        out.append(
            build_declaration(
                name,
                spec["properties"],
                display_name=spec.get("display_name"),
                origin=spec.get("origin"),
            )
        )
    return out


def declared_events() -> list[EventDeclaration]:
    """Every declaration: ``omnisend_events`` modules of installed apps, then the setting.

    A declaration in ``OMNISEND["EVENTS"]`` replaces a registered one of the same name and
    origin (settings are the deploy-time word). Sorted by name, then origin.
    """
    from django.utils.module_loading import autodiscover_modules

    autodiscover_modules("omnisend_events")
    with _lock:
        merged = dict(_registry)
    for declaration in _from_settings():
        merged[declaration.key] = declaration
    return [merged[key] for key in sorted(merged)]

"""The registry of custom events: what it accepts, what it refuses and how it says so."""

from __future__ import annotations

import sys

import pytest
from django.test import modify_settings, override_settings

from django_omnisend.event_declarations import declared_events, register_event
from django_omnisend.exceptions import ImproperlyConfigured


def test_register_normalises_properties_into_omnisend_nodes():
    declaration = register_event(
        "plan upgraded",
        {
            "plan": "string",
            "seats": {"type": "integer", "display_name": "Seats", "group": "Billing"},
            "billing": {"type": "struct", "properties": {"interval": "string"}},
        },
    )
    assert declaration.as_request() == {
        "name": "plan upgraded",
        "origin": "api",
        "displayName": "Plan upgraded",
        "properties": {
            "plan": {"type": "string"},
            "seats": {"type": "integer", "displayName": "Seats", "group": "Billing"},
            "billing": {"type": "struct", "properties": {"interval": {"type": "string"}}},
        },
    }
    assert [d.name for d in declared_events()] == ["plan upgraded"]


@pytest.mark.parametrize(
    ("name", "properties", "message"),
    [
        ("plan upgraded", {"plan": "text"}, "use one of"),
        ("plan upgraded", {}, "at least one property"),
        ("placed order", {"x": "string"}, "recommended events"),
        ("", {"x": "string"}, "non-empty name"),
        ("plan upgraded", {"plan": {"type": "string", "properties": {"a": "string"}}}, "struct"),
        ("plan upgraded", {"plan": {"type": "string", "colour": "red"}}, "unknown keys"),
    ],
)
def test_invalid_declarations_say_what_to_fix(name, properties, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        register_event(name, properties)


def test_the_same_event_registered_twice_differently_is_refused():
    register_event("plan upgraded", {"plan": "string"})
    register_event("plan upgraded", {"plan": "string"})  # the same again: harmless
    with pytest.raises(ImproperlyConfigured, match="registered twice"):
        register_event("plan upgraded", {"plan": "integer"})


def test_the_setting_declares_and_wins_over_code(settings):
    register_event("plan upgraded", {"plan": "string"})
    events = {
        "plan upgraded": {"properties": {"plan": "string", "seats": "integer"}},
        "trial started": {"properties": {"days": "integer"}, "display_name": "Trial"},
    }
    with override_settings(OMNISEND={**settings.OMNISEND, "EVENTS": events}):
        found = {d.name: d for d in declared_events()}
    assert set(found) == {"plan upgraded", "trial started"}
    assert set(found["plan upgraded"].properties) == {"plan", "seats"}
    assert found["trial started"].display_name == "Trial"


def test_a_malformed_setting_is_refused(settings):
    events = {"plan upgraded": {"plan": "string"}}  # no "properties" level
    with (
        override_settings(OMNISEND={**settings.OMNISEND, "EVENTS": events}),
        pytest.raises(ImproperlyConfigured, match='"properties"'),
    ):
        declared_events()


def test_apps_omnisend_events_modules_are_discovered():
    sys.modules.pop("tests.declarations.shopapp.omnisend_events", None)  # import it afresh
    with modify_settings(INSTALLED_APPS={"append": "tests.declarations.shopapp"}):
        found = {d.name: d for d in declared_events()}
    assert set(found) == {"gift card redeemed"}
    assert found["gift card redeemed"].properties == {
        "amount": {"type": "float"},
        "code": {"type": "string"},
    }

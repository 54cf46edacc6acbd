"""Declarations of the stand-in app, found by ``declared_events()`` autodiscovery."""

from django_omnisend.event_declarations import register_event

register_event("gift card redeemed", {"amount": "float", "code": "string"})

"""Customer events (docs: reference/omnisend-api.rst): validation, contact upsert, historical
deduplication, log.

``POST /events`` answers 202 with no body. ``eventName`` is required; ``origin`` and
``contact`` are not (the schema requires neither) unless the emulator is strict. Consent,
opt-in and opt-out channels are ``email``, ``sms`` or ``phone`` (read as ``sms``; Omnisend's own
SDK sends it); strict mode allows only the schema's ``email``/``sms`` and checks Omnisend's
recommended events (``placed order`` …): documented ``eventVersion`` and properties. The
event's ``contact``, when given, is created or updated; opt-ins and opt-outs change channel
statuses under the same status-date rule as contact writes. An event with an ``eventID`` and
an ``eventTime`` older than ``event_history_seconds`` is historical and is recorded only once.
"""

from __future__ import annotations

import uuid
from typing import Any

from . import recommended
from .config import EmulatorConfig
from .contacts import apply_fields, new_record, set_channel
from .event_metadata import RECOMMENDED_EVENTS
from .problems import bad_request
from .state import State
from .times import format_rfc3339, parse_rfc3339
from .validation import EMAIL_RE, PHONE_RE, UUID_RE, Checker, require_object

CONTACT_LIMITS = {
    "firstName": 50,
    "lastName": 50,
    "address": 500,
    "city": 100,
    "state": 100,
    "country": 100,
    "countryCode": 3,
    "postalCode": 20,
    "phone": 15,
}


def validate_event(body: Any, config: EmulatorConfig) -> dict[str, Any]:
    """Check an ``EventRequest``; raise a 400 listing every problem."""
    body = require_object(body)
    c = Checker()
    # eventName: an event without a name cannot trigger anything (a named decision, README).
    required = ("eventName", "origin") if config.strict else ("eventName",)
    for key in required:
        if not isinstance(body.get(key), str) or not body.get(key):
            c.add(key, "required", "Field is required.")
    c.string(body, "origin")
    c.string(body, "eventVersion")
    if config.strict and body.get("eventName") in RECOMMENDED_EVENTS:
        # Recommended events carry a documented eventVersion (docs: reference/omnisend-api.rst)
        # and properties; a wrong one is the mistake the app's event builders must never make,
        # so strict mode catches it (Omnisend itself accepts the event and its automations
        # miss it).
        recommended.check(c, body)
    if "eventID" in body and (
        not isinstance(body["eventID"], str) or not UUID_RE.match(body["eventID"])
    ):
        c.add("eventID", "invalid_format", "Must be a UUID (v4-v7).")
    c.timestamp(body, "eventTime")
    if "properties" in body:
        c.obj(body["properties"], "properties")
    contact = body.get("contact")
    if contact is None:
        if config.strict:
            c.add("contact", "required", "Field is required.")
    elif c.obj(contact, "contact"):
        _validate_contact(c, contact, config)
    c.raise_if_any()
    return body


def _validate_contact(c: Checker, contact: dict[str, Any], config: EmulatorConfig) -> None:
    p = "contact."
    if not any(contact.get(k) for k in ("id", "email", "phone")):
        c.add("contact", "required", "Give at least one of id, email, phone.")
    for key in ("id", "email", "birthdate", "gender"):
        c.string(contact, key, p)
    for key, limit in CONTACT_LIMITS.items():
        c.string(contact, key, p, max_len=limit)
    if isinstance(contact.get("email"), str) and not EMAIL_RE.match(contact["email"]):
        c.add(f"{p}email", "invalid_format", "Must be a valid email address")
    if isinstance(contact.get("phone"), str) and not PHONE_RE.match(contact["phone"]):
        c.add(f"{p}phone", "invalid_format", "Must be a phone number in E.164 format")
    c.enum(contact, "gender", ("m", "f"), p)
    c.date(contact, "birthdate", p)
    c.string_list(contact, "tags", 100, p)
    c.custom_properties(contact, prefix=p)
    for key, limit in (("consents", 100), ("optIns", 10), ("optOuts", 10)):
        items = contact.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            c.add(f"{p}{key}", "invalid_type", "Must be an array.")
            continue
        if len(items) > limit:
            c.add(f"{p}{key}", "too_many", f"Must have at most {limit} items.")
        for i, item in enumerate(items):
            ip = f"{p}{key}[{i}]."
            if not c.obj(item, ip.rstrip(".")):
                continue
            channel = item.get("channel")
            allowed = ("email", "sms") if config.strict else ("email", "sms", "phone")
            if channel not in allowed:
                c.add(f"{ip}channel", "invalid_value", f"Must be one of: {', '.join(allowed)}.")
            c.timestamp(item, "createdAt", ip)
            c.string(item, "source", ip, max_len=100)
            c.string(item, "reason", ip, max_len=100)
            c.string(item, "ip", ip)
            c.string(item, "userAgent", ip, max_len=200)


def record_event(
    state: State, brand_id: str, body: Any, now: float, config: EmulatorConfig
) -> dict[str, Any]:
    """Validate, upsert the contact, log the event; returns the logged record."""
    body = validate_event(body, config)
    log = state.events.setdefault(brand_id, [])
    event_time = parse_rfc3339(body["eventTime"]) if "eventTime" in body else now
    historical = event_time is not None and event_time < now - config.event_history_seconds
    key = (body.get("eventID"), format_rfc3339(event_time or now))
    duplicate = (
        historical
        and body.get("eventID") is not None
        and any(
            e.get("eventID") == key[0] and e["_eventTime"] == key[1]
            for e in log
            if not e["_duplicate"]
        )
    )
    contact_id = (
        None
        if duplicate or body.get("contact") is None
        else _upsert_contact(state, brand_id, body["contact"], now, config)
    )
    entry = {
        **body,
        "eventID": body.get("eventID") or str(uuid.uuid4()),
        "_eventTime": key[1],
        "_receivedAt": format_rfc3339(now),
        "_contactID": contact_id,
        "_duplicate": bool(duplicate),
    }
    log.append(entry)
    return entry


def _upsert_contact(
    state: State, brand_id: str, contact: dict[str, Any], now: float, config: EmulatorConfig
) -> str:
    book = state.book(brand_id)
    rec = None
    if contact.get("id"):
        rec = book.get(contact["id"])
        if rec is None and not (contact.get("email") or contact.get("phone")):
            raise bad_request("contact.id", "not_found", "No contact has this id.")
    if rec is None and contact.get("email"):
        rec = book.find_email(contact["email"])
    if rec is None and contact.get("phone"):
        rec = book.find_phone(contact["phone"])
    if rec is None:
        rec = new_record(state, now)
        book.add(rec)
    for kind, channel in (("email", "email"), ("phone", "sms")):
        value = contact.get(kind)
        if not value or rec.get(kind) == value:
            continue
        owner = book.find_email(value) if kind == "email" else book.find_phone(value)
        if owner is not None:
            continue  # owned by another contact: ignored, as for contact writes
        book.set_identifier(rec, kind, value)
        if channel not in rec["channels"]:
            set_channel(rec, channel, "nonSubscribed", now)
    for key, status in (("optIns", "subscribed"), ("optOuts", "unsubscribed")):
        for item in contact.get(key) or []:
            at = parse_rfc3339(item.get("createdAt")) if "createdAt" in item else now
            set_channel(rec, _channel(item["channel"]), status, at if at is not None else now)
    for item in contact.get("consents") or []:
        created = parse_rfc3339(item.get("createdAt")) if "createdAt" in item else now
        entry = {
            "channel": _channel(item["channel"]),
            "createdAt": created if created is not None else now,
        }
        entry.update({k: item[k] for k in ("ip", "source", "userAgent") if k in item})
        rec["consents"].append(entry)
    fields = {
        k: v
        for k, v in contact.items()
        if k not in ("id", "email", "phone", "consents", "optIns", "optOuts")
    }
    apply_fields(rec, fields, now)
    return rec["id"]


def _channel(name: str) -> str:
    return "sms" if name == "phone" else name

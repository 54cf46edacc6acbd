"""Contact semantics of API 2026-03-15 (docs: reference/omnisend-api.rst, 'Contacts'): validation,
upsert, PATCH, list, tags.

Rules implemented here:

* E-mail identifiers are compared exactly (case-sensitive); one e-mail and one phone per contact.
* ``POST`` upserts on the e-mail identifier (201 new / 200 existing). A secondary identifier owned
  by another contact is ignored; a request whose only identifier is taken is refused with 400.
* ``PATCH`` changes only what is supplied; an identifier owned by another contact → 409.
* Status-date rule: a channel status whose ``statusChangedAt`` is older than the stored one is
  ignored; an omitted date means now. An identifier sent without ``channels`` gives a *new*
  identifier ``nonSubscribed`` and leaves an existing one untouched (docs:
  reference/omnisend-api.rst, 'Contacts').
* ``createdAt`` is stored as ``customProperties.externalCreated``; ``updatedAt`` moves on every
  write; ``sendWelcomeMessage`` (default true) is recorded and welcome messages are counted.
* Lists: every filter, the mutual-exclusion 400s, sort/direction, opaque base64 cursors that
  carry filters + sort + position, 400 on changed filters or ``after`` + ``before``.
"""

from __future__ import annotations

import base64
import json
from typing import Any

from .config import EmulatorConfig
from .problems import ApiError, FieldError, bad_request, validation_error
from .state import ContactBook, State
from .times import format_rfc3339, parse_rfc3339
from .validation import EMAIL_RE, PHONE_RE, Checker, require_object

CHANNEL_OF = {"email": "email", "phone": "sms"}
STATUSES = ("subscribed", "nonSubscribed", "unsubscribed")
PROFILE_FIELDS = (
    "firstName",
    "lastName",
    "address",
    "city",
    "state",
    "postalCode",
    "country",
    "countryCode",
    "gender",
    "birthdate",
)
#: Country names the emulator can turn into ISO codes when ``countryCode`` is absent.
COUNTRY_CODES = {
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "united kingdom": "GB",
    "great britain": "GB",
    "lithuania": "LT",
    "germany": "DE",
    "france": "FR",
    "spain": "ES",
    "italy": "IT",
    "canada": "CA",
    "australia": "AU",
    "netherlands": "NL",
    "poland": "PL",
    "ireland": "IE",
    "sweden": "SE",
    "japan": "JP",
}

LIST_PARAMS = (
    "limit",
    "after",
    "before",
    "sort",
    "direction",
    "email",
    "phone",
    "status",
    "segmentID",
    "tag",
    "updatedAtFrom",
)
FILTERS = ("email", "phone", "status", "segmentID", "tag", "updatedAtFrom")


# -- validation -------------------------------------------------------------------------------


def validate_contact_request(body: Any) -> dict[str, Any]:
    """Check a ``ContactRequest`` body; raise a 400 listing every problem."""
    body = require_object(body)
    c = Checker()
    idents = body.get("identifiers")
    if "identifiers" in body:
        if not isinstance(idents, list):
            c.add("identifiers", "invalid_type", "Must be an array.")
        else:
            seen: dict[str, int] = {}
            for i, ident in enumerate(idents):
                _validate_identifier(c, ident, f"identifiers[{i}].")
                if isinstance(ident, dict) and ident.get("type") in CHANNEL_OF:
                    seen[ident["type"]] = seen.get(ident["type"], 0) + 1
            for kind, count in seen.items():
                if count > 1:
                    c.add("identifiers", "duplicate", f"At most one {kind} identifier per contact.")
    for key in PROFILE_FIELDS:
        c.string(body, key)
    c.enum(body, "gender", ("m", "f"))
    c.date(body, "birthdate")
    if isinstance(body.get("countryCode"), str) and not _is_country_code(body["countryCode"]):
        c.add("countryCode", "invalid_format", "Must be an ISO 3166-1 alpha-2 code.")
    c.timestamp(body, "createdAt")
    c.string_list(body, "tags", 100)
    c.custom_properties(body)
    c.raise_if_any()
    return body


def _is_country_code(value: str) -> bool:
    return len(value) == 2 and value.isascii() and value.isalpha()


def _validate_identifier(c: Checker, ident: Any, p: str) -> None:
    if not c.obj(ident, p.rstrip(".")):
        return
    kind = ident.get("type")
    if "type" not in ident:
        c.add(f"{p}type", "required", "Field is required.")
    elif kind not in CHANNEL_OF:
        c.add(f"{p}type", "invalid_value", "Must be one of: email, phone.")
    value = ident.get("id")
    if "id" not in ident:
        c.add(f"{p}id", "required", "Field is required.")
    elif not isinstance(value, str) or not value:
        c.add(f"{p}id", "invalid_type", "Must be a non-empty string.")
    elif kind == "email" and not EMAIL_RE.match(value):
        c.add(f"{p}id", "invalid_format", "Must be a valid email address")
    elif kind == "phone" and not PHONE_RE.match(value):
        c.add(f"{p}id", "invalid_format", "Must be a phone number in E.164 format")
    if "channels" in ident and c.obj(ident["channels"], f"{p}channels"):
        for name, channel in ident["channels"].items():
            cp = f"{p}channels.{name}."
            if kind in CHANNEL_OF and name != CHANNEL_OF[kind]:
                c.add(
                    cp.rstrip("."),
                    "invalid_value",
                    f"A {kind} identifier has only the {CHANNEL_OF[kind]} channel.",
                )
            if not c.obj(channel, cp.rstrip(".")):
                continue
            if "status" not in channel:
                c.add(f"{cp}status", "required", "Field is required.")
            c.enum(channel, "status", STATUSES, cp)
            c.timestamp(channel, "statusChangedAt", cp)
    if "consent" in ident and c.obj(ident["consent"], f"{p}consent"):
        consent = ident["consent"]
        c.timestamp(consent, "createdAt", f"{p}consent.")
        for key in ("ip", "source", "userAgent"):
            c.string(consent, key, f"{p}consent.")
    if "sendWelcomeMessage" in ident and not isinstance(ident["sendWelcomeMessage"], bool):
        c.add(f"{p}sendWelcomeMessage", "invalid_type", "Must be a boolean.")
    c.string(ident, "source", p)


# -- records ----------------------------------------------------------------------------------


def new_record(state: State, now: float) -> dict[str, Any]:
    """A blank contact record (internal shape; see :func:`to_response`)."""
    return {
        "id": state.new_id(now),
        "seq": state.next_seq(),
        "email": None,
        "phone": None,
        "channels": {},
        "profile": {},
        "tags": [],
        "customProperties": {},
        "segments": [],
        "statusHistory": [],
        "optIns": [],
        "consents": [],
        "createdAt": now,
        "updatedAt": now,
        "welcomeMessages": 0,
        "sendWelcomeMessage": {},
    }


def to_response(rec: dict[str, Any]) -> dict[str, Any]:
    """The ``ContactResponse`` for a record (only fields the schema declares)."""
    out: dict[str, Any] = {"id": rec["id"]}
    identifiers = []
    if rec.get("email"):
        out["email"] = rec["email"]
        identifiers.append(_identifier(rec, "email", rec["email"]))
    # Live responses carry null, not [], for no phone (docs: reference/omnisend-api.rst, 'Live
    # behaviour').
    out["phone"] = [rec["phone"]] if rec.get("phone") else None
    if rec.get("phone"):
        identifiers.append(_identifier(rec, "phone", rec["phone"]))
    if rec.get("email") and "email" in rec["channels"]:
        out["status"] = rec["channels"]["email"]["status"]
    for key in PROFILE_FIELDS:
        if key in rec["profile"]:
            out[key] = rec["profile"][key]
    out.setdefault("gender", "")  # live: "" where unset (docs: omnisend-api.rst)
    out["tags"] = list(rec["tags"])
    out["segments"] = list(rec["segments"])
    out["customProperties"] = dict(rec["customProperties"]) or None  # live: null when none
    out["identifiers"] = identifiers
    latest = sorted(
        (
            {"channel": ch, "status": v["status"], "statusChangedAt": v["statusChangedAt"]}
            for ch, v in rec["channels"].items()
        ),
        key=lambda s: s["statusChangedAt"],
    )
    out["statuses"] = [
        {**s, "statusChangedAt": format_rfc3339(s["statusChangedAt"])} for s in latest
    ]
    if rec.get("undatedStatuses"):  # see Emulator.unsubscribe(dated=False)
        for status in out["statuses"]:
            del status["statusChangedAt"]
        for ident in identifiers:
            for channel in ident["channels"].values():
                del channel["statusChangedAt"]
    out["optIns"] = [
        {"channel": o["channel"], "optInAt": format_rfc3339(o["optInAt"])}
        for o in sorted(rec["optIns"], key=lambda o: o["optInAt"])
    ]
    out["consents"] = [
        {**c, "createdAt": format_rfc3339(c["createdAt"])}
        for c in sorted(rec["consents"], key=lambda c: c["createdAt"])
    ]
    out["createdAt"] = format_rfc3339(rec["createdAt"])
    out["updatedAt"] = format_rfc3339(rec["updatedAt"])
    return out


def _identifier(rec: dict[str, Any], kind: str, value: str) -> dict[str, Any]:
    channel = CHANNEL_OF[kind]
    ident: dict[str, Any] = {"type": kind, "id": value, "channels": {}}
    if channel in rec["channels"]:
        state = rec["channels"][channel]
        ident["channels"][channel] = {
            "status": state["status"],
            "statusChangedAt": format_rfc3339(state["statusChangedAt"]),
        }
    return ident


def snapshot(rec: dict[str, Any]) -> dict[str, Any]:
    """``to_response`` plus emulator-only ``_welcome_messages`` and ``_send_welcome_message``."""
    out = to_response(rec)
    out["_welcome_messages"] = rec["welcomeMessages"]
    out["_send_welcome_message"] = dict(rec["sendWelcomeMessage"])
    return out


# -- writes -----------------------------------------------------------------------------------


def set_channel(
    rec: dict[str, Any],
    channel: str,
    status: str,
    at: float,
    *,
    welcome: bool | None = None,
    config: EmulatorConfig | None = None,
) -> bool:
    """Apply one channel status with the status-date rule; True when it was applied."""
    current = rec["channels"].get(channel)
    if current is not None and at < current["statusChangedAt"]:
        return False  # older than what Omnisend already has: ignored
    changed = current is None or current["status"] != status
    rec["channels"][channel] = {"status": status, "statusChangedAt": at}
    rec.pop("undatedStatuses", None)  # a dated write: responses carry dates again
    if changed:
        rec["statusHistory"].append({"channel": channel, "status": status, "statusChangedAt": at})
        if status == "subscribed":
            rec["optIns"].append({"channel": channel, "optInAt": at})
            if welcome and config is not None and config.welcome_messages == "subscribed":
                rec["welcomeMessages"] += 1
    return True


def _apply_identifier(
    book: ContactBook,
    rec: dict[str, Any],
    ident: dict[str, Any],
    now: float,
    config: EmulatorConfig,
) -> None:
    kind = ident["type"]
    channel = CHANNEL_OF[kind]
    is_new = rec.get(kind) != ident["id"]
    if is_new:
        book.set_identifier(rec, kind, ident["id"])
    welcome = ident.get("sendWelcomeMessage", True)
    rec["sendWelcomeMessage"][channel] = welcome
    if is_new and welcome and config.welcome_messages == "new":
        rec["welcomeMessages"] += 1
    channels = ident.get("channels")
    if channels:
        for name, value in channels.items():
            at = parse_rfc3339(value.get("statusChangedAt")) if "statusChangedAt" in value else now
            set_channel(
                rec,
                name,
                value["status"],
                at if at is not None else now,
                welcome=welcome,
                config=config,
            )
    elif channel not in rec["channels"]:
        # No channels on a new identifier → nonSubscribed; existing status untouched.
        set_channel(rec, channel, "nonSubscribed", now)
    consent = ident.get("consent")
    if isinstance(consent, dict):
        created = parse_rfc3339(consent.get("createdAt")) if "createdAt" in consent else now
        entry = {"channel": channel, "createdAt": created if created is not None else now}
        for key in ("ip", "source", "userAgent"):
            if key in consent:
                entry[key] = consent[key]
        rec["consents"].append(entry)


def apply_fields(rec: dict[str, Any], body: dict[str, Any], now: float) -> None:
    """Profile fields, country derivation, tags (added), custom properties (merged)."""
    for key in PROFILE_FIELDS:
        if key in body and key not in ("country", "countryCode"):
            rec["profile"][key] = body[key]
    if "countryCode" in body:
        rec["profile"]["countryCode"] = body["countryCode"].upper()
    if "country" in body:
        rec["profile"]["country"] = body["country"]
        derived = COUNTRY_CODES.get(body["country"].strip().lower())
        if "countryCode" not in body and derived:
            rec["profile"]["countryCode"] = derived
    if "createdAt" in body:
        rec["customProperties"]["externalCreated"] = body["createdAt"]
    for tag in body.get("tags") or []:
        if tag not in rec["tags"]:
            rec["tags"].append(tag)
    rec["customProperties"].update(body.get("customProperties") or {})
    rec["updatedAt"] = now


def upsert(
    state: State, brand_id: str, body: Any, now: float, config: EmulatorConfig
) -> tuple[dict[str, Any], bool]:
    """``POST /contacts``: returns ``(record, created)``; raises ApiError on a 400."""
    body = validate_contact_request(body)
    book = state.book(brand_id)
    idents = body.get("identifiers") or []
    if not idents:
        raise bad_request(
            "identifiers", "required", "At least one identifier (email or phone) is required."
        )
    email = next((i for i in idents if i["type"] == "email"), None)
    phone = next((i for i in idents if i["type"] == "phone"), None)
    rec = book.find_email(email["id"]) if email else None
    created = rec is None
    if rec is None and email is None and phone is not None and book.find_phone(phone["id"]):
        # The only identifier belongs to another contact → not created.
        raise bad_request(
            "identifiers[0].id", "already_exists", "The only identifier belongs to another contact."
        )
    usable = []
    for ident in idents:
        owner = (
            book.find_email(ident["id"])
            if ident["type"] == "email"
            else book.find_phone(ident["id"])
        )
        if owner is not None and (rec is None or owner["id"] != rec["id"]):
            continue  # a secondary identifier owned by another contact is ignored
        usable.append(ident)
    if rec is None:
        rec = new_record(state, now)
        book.add(rec)
    for ident in usable:
        _apply_identifier(book, rec, ident, now, config)
    apply_fields(rec, body, now)
    return rec, created


def patch(
    state: State, brand_id: str, rec: dict[str, Any], body: Any, now: float, config: EmulatorConfig
) -> dict[str, Any]:
    """``PATCH /contacts/{id}`` or ``?email=``: partial update; 409 on a taken identifier."""
    body = validate_contact_request(body)
    book = state.book(brand_id)
    idents = body.get("identifiers") or []
    for ident in idents:
        owner = (
            book.find_email(ident["id"])
            if ident["type"] == "email"
            else book.find_phone(ident["id"])
        )
        if owner is not None and owner["id"] != rec["id"]:
            raise ApiError(409, f"Contact identifier '{ident['id']}' already exists.")
    for ident in idents:
        _apply_identifier(book, rec, ident, now, config)
    apply_fields(rec, body, now)
    return rec


def find_for_patch(
    state: State, brand_id: str, contact_id: str | None, email: str | None
) -> dict[str, Any]:
    """The record a PATCH targets, or a 404 problem."""
    book = state.book(brand_id)
    rec = book.get(contact_id) if contact_id is not None else book.find_email(email or "")
    if rec is None:
        raise ApiError(404, "Contact not found.")
    return rec


# -- list -------------------------------------------------------------------------------------


def _encode_cursor(payload: dict[str, Any]) -> str:
    raw = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(value: str, name: str) -> dict[str, Any]:
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != 1:
            raise ValueError
        key = data["k"]
        if not (isinstance(key, list) and len(key) == 2):
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise bad_request(name, "invalid_cursor", "The cursor is not valid.") from None
    return data


def list_contacts(book: ContactBook, query: dict[str, list[str]]) -> dict[str, Any]:
    """``GET /contacts``: the ``ListContactsResponse`` for these query parameters."""
    c = Checker()
    params: dict[str, str] = {}
    for name, values in query.items():
        if len(values) > 1:
            c.add(name, "duplicate", "Give this parameter once.")
        params[name] = values[-1]
    c.raise_if_any()
    if "after" in params and "before" in params:
        raise bad_request(
            "after", "invalid_combination", "Use either 'after' or 'before', not both."
        )
    cursor_name = "after" if "after" in params else "before" if "before" in params else None
    cursor = _decode_cursor(params[cursor_name], cursor_name) if cursor_name else None

    filters = {k: params[k] for k in FILTERS if k in params}
    sort = params.get("sort")
    direction = params.get("direction")
    if cursor is not None:
        changed = [k for k in FILTERS if k in params and params[k] != cursor["f"].get(k)]
        if sort is not None and sort != cursor["s"]:
            changed.append("sort")
        if direction is not None and direction != cursor["d"]:
            changed.append("direction")
        if changed:
            raise validation_error(
                [
                    FieldError(k, "cursor_mismatch", "Differs from the cursor's value.")
                    for k in changed
                ],
                "Filters and sort cannot change while paging; start again without a cursor.",
            )
        filters, sort, direction = cursor["f"], cursor["s"], cursor["d"]
    sort = sort or "createdAt"
    direction = direction or "desc"

    c.enum({"sort": sort}, "sort", ("createdAt", "updatedAt"))
    c.enum({"direction": direction}, "direction", ("asc", "desc"))
    c.enum(filters, "status", STATUSES)
    limit_text = params.get("limit")
    limit = cursor["l"] if cursor is not None and limit_text is None else 100
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 250:
            c.add("limit", "out_of_range", "Must be an integer from 1 to 250.")
        else:
            limit = int(limit_text)
    since = None
    if "updatedAtFrom" in filters:
        since = parse_rfc3339(filters["updatedAtFrom"])
        if since is None:
            c.add("updatedAtFrom", "invalid_format", "Must be an RFC 3339 timestamp.")
        others = [k for k in ("email", "phone", "status", "segmentID", "tag") if k in filters]
        for other in others:
            c.add(other, "invalid_combination", "Cannot be combined with updatedAtFrom.")
    if "tag" in filters and "status" in filters:
        c.add("tag", "invalid_combination", "Cannot be combined with status.")
    c.raise_if_any()

    def keep(rec: dict[str, Any]) -> bool:
        if "email" in filters and rec.get("email") != filters["email"]:
            return False
        if "phone" in filters and rec.get("phone") != filters["phone"]:
            return False
        if (
            "status" in filters
            and rec["channels"].get("email", {}).get("status") != filters["status"]
        ):
            return False
        if "segmentID" in filters and filters["segmentID"] not in rec["segments"]:
            return False
        if "tag" in filters and filters["tag"] not in rec["tags"]:
            return False
        return not (since is not None and rec["updatedAt"] < since)

    def key(rec: dict[str, Any]) -> tuple[float, int]:
        return (rec[sort], rec["seq"])

    ordered = sorted(
        (r for r in book.records.values() if keep(r)), key=key, reverse=direction == "desc"
    )

    def beyond(k: tuple[float, int], pos: tuple[float, int]) -> bool:
        return k > pos if direction == "asc" else k < pos

    def cursor_for(rec: dict[str, Any]) -> str:
        return _encode_cursor(
            {"v": 1, "f": filters, "s": sort, "d": direction, "k": list(key(rec)), "l": limit}
        )

    if cursor is None or cursor_name == "after":
        start = 0
        if cursor is not None:
            pos = tuple(cursor["k"])
            start = next((i for i, r in enumerate(ordered) if beyond(key(r), pos)), len(ordered))
        page = ordered[start : start + limit]
        has_more = start + limit < len(ordered)
        after = cursor_for(page[-1]) if page and has_more else None
        before = cursor_for(page[0]) if page and start > 0 else None
    else:
        pos = tuple(cursor["k"])
        end = sum(1 for r in ordered if beyond(pos, key(r)))
        start = max(0, end - limit)
        page = ordered[start:end]
        has_more = start > 0
        before = cursor_for(page[0]) if page and start > 0 else None
        after = cursor_for(page[-1]) if page and end < len(ordered) else None
    return {
        "contacts": [to_response(r) for r in page],
        "paging": {
            "limit": limit,
            "hasMore": has_more,
            "cursors": {"after": after, "before": before},
        },
    }


# -- tags -------------------------------------------------------------------------------------


def validate_tags_request(body: Any) -> dict[str, Any]:
    """``AddTagsRequest`` / ``RemoveTagsRequest``: tags 1-100, at least one selector."""
    body = require_object(body)
    c = Checker()
    if "tags" not in body:
        c.add("tags", "required", "Field is required.")
    c.string_list(body, "tags", 100, min_items=1)
    for key in ("contactIDs", "emails", "phones"):
        c.string_list(body, key, 250)
    c.string(body, "segmentID")
    if not any(body.get(k) for k in ("contactIDs", "emails", "phones", "segmentID")):
        c.add(
            "contactIDs", "required", "Give at least one of contactIDs, emails, phones, segmentID."
        )
    c.raise_if_any()
    return body


def apply_tags(book: ContactBook, op: str, body: dict[str, Any], now: float) -> int:
    """Add (``op="add"``) or remove tags on the selected contacts; returns how many matched."""
    selected: dict[str, dict[str, Any]] = {}
    for cid in body.get("contactIDs") or []:
        if (rec := book.get(cid)) is not None:
            selected[rec["id"]] = rec
    for email in body.get("emails") or []:
        if (rec := book.find_email(email)) is not None:
            selected[rec["id"]] = rec
    for phone in body.get("phones") or []:
        if (rec := book.find_phone(phone)) is not None:
            selected[rec["id"]] = rec
    if body.get("segmentID"):
        for rec in book.records.values():
            if body["segmentID"] in rec["segments"]:
                selected[rec["id"]] = rec
    for rec in selected.values():
        if op == "add":
            rec["tags"].extend(t for t in dict.fromkeys(body["tags"]) if t not in rec["tags"])
        else:
            rec["tags"] = [t for t in rec["tags"] if t not in body["tags"]]
        rec["updatedAt"] = now
    return len(selected)

"""The emulator's data store: brands, OAuth clients and credentials, contacts, events, batches,
products, product categories and event metadata.

Plain dicts of JSON-native values, so the whole store can be written to and read from a JSON
file (``--state-file``). Contacts live in one :class:`ContactBook` per brand that keeps exact,
case-sensitive indexes on e-mail and phone. Nothing here locks: the :class:`Emulator` holds one
lock around every read and write.
"""

from __future__ import annotations

import json
import os
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The 26 scopes Omnisend advertises (docs: reference/omnisend-api.rst, 'Scopes').
ALL_SCOPES = (
    "contacts.read",
    "contacts.write",
    "products.read",
    "products.write",
    "events.read",
    "events.write",
    "accounts.write",
    "sessions.write",
    "brands.read",
    "brands.write",
    "automations.read",
    "automations.write",
    "campaigns.read",
    "campaigns.write",
    "reports.read",
    "analytics.read",
    "segments.read",
    "segments.write",
    "email-templates.read",
    "email-templates.write",
    "images.read",
    "images.write",
    "forms.read",
    "forms.write",
    "brand-assets.read",
    "brand-assets.write",
)

#: Scopes granted when an authorize request names none (the app's default set).
DEFAULT_GRANT = ["contacts.read", "contacts.write", "events.write", "brands.read"]

STATE_VERSION = 1


class ContactBook:
    """One brand's contacts by id, with exact e-mail and phone indexes."""

    def __init__(self, records: dict[str, dict[str, Any]] | None = None) -> None:
        self.records: dict[str, dict[str, Any]] = records if records is not None else {}
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, str] = {}
        for rec in self.records.values():
            self._index(rec)

    def _index(self, rec: dict[str, Any]) -> None:
        if rec.get("email"):
            self.by_email[rec["email"]] = rec["id"]
        if rec.get("phone"):
            self.by_phone[rec["phone"]] = rec["id"]

    def get(self, contact_id: str) -> dict[str, Any] | None:
        """The record with this id, or None."""
        return self.records.get(contact_id)

    def find_email(self, email: str) -> dict[str, Any] | None:
        """The record owning this exact (case-sensitive) e-mail, or None."""
        cid = self.by_email.get(email)
        return self.records.get(cid) if cid else None

    def find_phone(self, phone: str) -> dict[str, Any] | None:
        """The record owning this phone number, or None."""
        cid = self.by_phone.get(phone)
        return self.records.get(cid) if cid else None

    def add(self, rec: dict[str, Any]) -> None:
        """Store a new record and index its identifiers."""
        self.records[rec["id"]] = rec
        self._index(rec)

    def set_identifier(self, rec: dict[str, Any], kind: str, value: str | None) -> None:
        """Give ``rec`` a new e-mail (``kind="email"``) or phone, keeping the indexes right."""
        index = self.by_email if kind == "email" else self.by_phone
        old = rec.get(kind)
        if old and index.get(old) == rec["id"]:
            del index[old]
        rec[kind] = value
        if value:
            index[value] = rec["id"]

    def all(self) -> list[dict[str, Any]]:
        """Every record, in creation order."""
        return sorted(self.records.values(), key=lambda r: r["seq"])


@dataclass
class State:
    """Everything the emulator remembers between requests."""

    brands: dict[str, dict[str, Any]] = field(default_factory=dict)
    clients: dict[str, dict[str, Any]] = field(default_factory=dict)
    api_keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    refresh_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    codes: dict[str, dict[str, Any]] = field(default_factory=dict)
    consents: dict[str, dict[str, Any]] = field(default_factory=dict)
    books: dict[str, ContactBook] = field(default_factory=dict)
    events: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    batches: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Per brand: products by id, categories by categoryID, event declarations by origin+name.
    products: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    categories: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    event_metadata: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    #: Tag operations waiting for their delay: ``{brand_id, due, op, body}``.
    pending_tags: list[dict[str, Any]] = field(default_factory=list)
    seq: int = 0

    def next_seq(self) -> int:
        """A process-wide increasing counter (creation order, id suffixes)."""
        self.seq += 1
        return self.seq

    def new_id(self, now: float) -> str:
        """A 24-hex id shaped like a MongoDB ObjectId: 8 hex of time, 16 of counter."""
        return f"{int(now) & 0xFFFFFFFF:08x}{self.next_seq():016x}"

    def book(self, brand_id: str) -> ContactBook:
        """The contact book of a brand (created empty on first use)."""
        if brand_id not in self.books:
            self.books[brand_id] = ContactBook()
        return self.books[brand_id]

    # -- persistence -----------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of the whole store."""
        return {
            "version": STATE_VERSION,
            "brands": self.brands,
            "clients": self.clients,
            "api_keys": self.api_keys,
            "access_tokens": self.access_tokens,
            "refresh_tokens": self.refresh_tokens,
            "contacts": {brand: book.records for brand, book in self.books.items()},
            "events": self.events,
            "batches": self.batches,
            "products": self.products,
            "categories": self.categories,
            "event_metadata": self.event_metadata,
            "pending_tags": self.pending_tags,
            "seq": self.seq,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> State:
        """Rebuild a store written by :meth:`to_json` (codes and consent pages are not kept)."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"Unsupported emulator state version {data.get('version')!r}")
        return cls(
            brands=data.get("brands", {}),
            clients=data.get("clients", {}),
            api_keys=data.get("api_keys", {}),
            access_tokens=data.get("access_tokens", {}),
            refresh_tokens=data.get("refresh_tokens", {}),
            books={b: ContactBook(recs) for b, recs in data.get("contacts", {}).items()},
            events=data.get("events", {}),
            batches=data.get("batches", {}),
            products=data.get("products", {}),
            categories=data.get("categories", {}),
            event_metadata=data.get("event_metadata", {}),
            pending_tags=data.get("pending_tags", []),
            seq=int(data.get("seq", 0)),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the store atomically (temp file + rename) so a crash never leaves half a file."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".emulator-", suffix=".json", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(self.to_json(), fh, indent=1, sort_keys=True)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> State:
        """Read a store saved by :meth:`save`."""
        with open(path, encoding="utf-8") as fh:
            return cls.from_json(json.load(fh))


def new_secret(nbytes: int = 24) -> str:
    """An unguessable URL-safe token."""
    return secrets.token_urlsafe(nbytes)

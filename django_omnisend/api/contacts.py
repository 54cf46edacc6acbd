"""``client.contacts``: upsert, read, page through, update and tag contacts."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..exceptions import (
    PagingError,
)
from .resources import Resource


class ContactResult(dict):
    """The ``ContactResponse`` of an upsert, plus whether Omnisend created the contact.

    It is the contact dict itself (``result["id"]``), with ``result.created`` (True on 201,
    False on 200 = an existing contact was updated) and ``result.status``; the dict's keys
    are exactly Omnisend's.
    """

    def __init__(self, data: Mapping[str, Any], *, status: int) -> None:
        super().__init__(data)
        self.status = status
        self.created = status == 201


class Contacts(Resource):
    """``/contacts``: upsert, read, page through, update and tag contacts."""

    def upsert(self, body: Mapping[str, Any]) -> ContactResult:
        """``POST /contacts``: create the contact or update the one owning the e-mail.

        Returns a :class:`ContactResult` (the ``ContactResponse`` dict) whose ``.created`` is
        True on 201 (created) and False on 200 (updated). Retried when safe: setting absolute
        values keyed by the e-mail twice is harmless.
        """
        response = self.client.request("POST", "/contacts", json_body=dict(body), retry=True)
        return ContactResult(response.data or {}, status=response.status)

    def get(self, contact_id: str) -> dict[str, Any]:
        """``GET /contacts/{id}``; raises :class:`~django_omnisend.exceptions.NotFound`."""
        return self.client._get(f"/contacts/{quote(str(contact_id), safe='')}")

    def get_by_email(self, email: str) -> dict[str, Any] | None:
        """``GET /contacts?email=``: the contact with exactly this e-mail, or None.

        The match is exact and case-sensitive on Omnisend's side; normalise before calling.
        """
        page = self.client._get("/contacts", {"email": email})
        contacts = (page or {}).get("contacts") or []
        return contacts[0] if contacts else None

    def list(self, **filters: Any) -> dict[str, Any]:
        """``GET /contacts`` one page: ``{"contacts": [...], "paging": {...}}``."""
        return self.client._get("/contacts", filters)

    def iterate(self, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every contact matching ``filters``, fetched lazily page by page.

        ``filters`` are the API's query parameters (``limit``, ``sort``, ``direction``,
        ``email``, ``phone``, ``status``, ``segmentID``, ``tag``, ``updatedAtFrom``; datetimes
        are sent as RFC 3339). Stops when ``hasMore`` is false or ``after`` is null; raises
        :class:`~django_omnisend.exceptions.PagingError` if a cursor comes back twice.
        """
        params = {k: v for k, v in filters.items() if v is not None}
        seen: set[str] = set()
        while True:
            page = self.client._get("/contacts", params) or {}
            yield from page.get("contacts") or []
            paging = page.get("paging") or {}
            after = (paging.get("cursors") or {}).get("after")
            if not paging.get("hasMore") or not after:
                return
            if after in seen:
                raise PagingError("Omnisend returned the same contacts cursor twice.")
            seen.add(after)
            # Filters are encoded in the cursor; repeating identical ones is tolerated.
            params = {**params, "after": after}

    def update(self, contact_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /contacts/{id}``: change only the supplied fields (404, 409 possible)."""
        path = f"/contacts/{quote(str(contact_id), safe='')}"
        return self.client.request("PATCH", path, json_body=dict(body)).data

    def update_by_email(self, email: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PATCH /contacts?email=``: change only the supplied fields of that contact."""
        return self.client.request(
            "PATCH", "/contacts", params={"email": email}, json_body=dict(body)
        ).data

    def add_tags(
        self,
        tags: Iterable[str],
        *,
        emails: Iterable[str] | None = None,
        contact_ids: Iterable[str] | None = None,
        phones: Iterable[str] | None = None,
        segment_id: str | None = None,
    ) -> None:
        """``POST /contacts/tags`` (202, applied asynchronously; 60 requests/min)."""
        body = _tags_body(tags, emails, contact_ids, phones, segment_id)
        self.client.request("POST", "/contacts/tags", json_body=body, retry=True, expect_json=False)

    def remove_tags(
        self,
        tags: Iterable[str],
        *,
        emails: Iterable[str] | None = None,
        contact_ids: Iterable[str] | None = None,
        phones: Iterable[str] | None = None,
        segment_id: str | None = None,
    ) -> None:
        """``DELETE /contacts/tags`` with a JSON body (202, asynchronous)."""
        body = _tags_body(tags, emails, contact_ids, phones, segment_id)
        self.client.request(
            "DELETE", "/contacts/tags", json_body=body, retry=True, expect_json=False
        )


def _tags_body(
    tags: Iterable[str],
    emails: Iterable[str] | None,
    contact_ids: Iterable[str] | None,
    phones: Iterable[str] | None,
    segment_id: str | None,
) -> dict[str, Any]:
    if isinstance(tags, str):
        tags = [tags]
    body: dict[str, Any] = {"tags": list(tags)}
    for name, values in (("emails", emails), ("contactIDs", contact_ids), ("phones", phones)):
        if values is not None:
            body[name] = [values] if isinstance(values, str) else list(values)
    if segment_id:
        body["segmentID"] = segment_id
    if not body["tags"]:
        raise ValueError("add_tags/remove_tags need at least one tag")
    if len(body) == 1:
        raise ValueError("give emails=, contact_ids=, phones= or segment_id=")
    return body

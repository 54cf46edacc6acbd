"""The API's smaller resources: events, batches, products, categories, brands and event
metadata, each an attribute of :class:`~django_omnisend.api.OmnisendClient`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

if TYPE_CHECKING:
    from .client import OmnisendClient


class Resource:
    def __init__(self, client: OmnisendClient) -> None:
        self.client = client


class Events(Resource):
    """``/events``: customer events."""

    def send(self, body: Mapping[str, Any], *, retry: bool = False) -> str:
        """``POST /events`` (202). Returns the ``eventID`` sent.

        ``eventID`` (a UUID4) is generated once if absent, so every retry of this call sends the
        same one; ``origin`` defaults to ``OMNISEND["EVENT_ORIGIN"]``. Not retried after a 5xx
        or transport failure unless ``retry=True``: Omnisend deduplicates only historical
        events, so a resent live event may be delivered twice.
        """
        payload = dict(body)
        payload.setdefault("eventID", str(uuid.uuid4()))
        payload.setdefault("origin", self.client.event_origin)
        self.client.request("POST", "/events", json_body=payload, retry=retry, expect_json=False)
        return str(payload["eventID"])


#: Batch statuses after which Omnisend does no more work on a batch.
BATCH_SETTLED = ("finished", "stopped")


class Batches(Resource):
    """``/batches``: asynchronous bulk writes of 1-100 items."""

    def create(
        self,
        endpoint: str,
        items: Iterable[Mapping[str, Any]],
        method: str = "POST",
        origin: str | None = None,
        *,
        retry: bool = False,
    ) -> dict[str, Any]:
        """``POST /batches``: ``{"batchID", "totalCount"}``. Never resent unless ``retry=True``.

        Raises ValueError for fewer than 1 or more than 100 items (Omnisend's limit).
        """
        items = [dict(item) for item in items]
        if not 1 <= len(items) <= 100:
            raise ValueError(f"a batch holds 1-100 items, not {len(items)}")
        body: dict[str, Any] = {"method": method, "endpoint": endpoint, "items": items}
        if origin:
            body["origin"] = origin
        return self.client.request("POST", "/batches", json_body=body, retry=retry).data

    def get(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}``: the ``Batch`` with its progress counters."""
        return self.client._get(f"/batches/{quote(str(batch_id), safe='')}")

    def items(self, batch_id: str) -> dict[str, Any]:
        """``GET /batches/{id}/items``: the ``Batch`` with per-item ``responses``/``errors``."""
        return self.client._get(f"/batches/{quote(str(batch_id), safe='')}/items")

    def list(self, endpoint: str, **filters: Any) -> dict[str, Any]:
        """``GET /batches?endpoint=`` one page: ``{"batches": [...], "paging": {...}}``."""
        return self.client._get("/batches", {"endpoint": endpoint, **filters})

    def iterate(self, endpoint: str, **filters: Any) -> Iterator[dict[str, Any]]:
        """Every batch of ``endpoint`` (offset paging), fetched lazily page by page.

        ``filters``: ``limit``, ``status``, ``dateFrom``, ``dateTo``, ``offset``.
        """
        params = {k: v for k, v in filters.items() if v is not None}
        offset = int(params.pop("offset", 0))
        while True:
            page = self.client._get("/batches", {"endpoint": endpoint, **params, "offset": offset})
            batches = (page or {}).get("batches") or []
            yield from batches
            paging = (page or {}).get("paging") or {}
            limit = int(paging.get("limit") or params.get("limit") or 100)
            if not batches or not paging.get("next") or len(batches) < limit:
                return
            offset += len(batches)


def _iterate_offset(client: OmnisendClient, path: str, key: str, params: dict[str, Any]):
    """Every item under ``key`` of an offset-paged list, page by page (``next`` ends it)."""
    offset = int(params.pop("offset", 0))
    while True:
        page = client._get(path, {**params, "offset": offset}) or {}
        items = page.get(key) or []
        yield from items
        if not items or not (page.get("paging") or {}).get("next"):
            return
        offset += len(items)


class Products(Resource):
    """``/products``: the brand's product catalog (ids are the shop's own)."""

    def _path(self, product_id: str) -> str:
        return f"/products/{quote(str(product_id), safe='')}"

    def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /products`` (201 ``{id}``); :class:`~.exceptions.Conflict` when it exists.

        Not resent after a 5xx or timeout unless the caller retries: a create that landed
        answers 409 the next time, which the caller turns into a replace.
        """
        return self.client.request("POST", "/products", json_body=dict(body)).data or {}

    def replace(self, product_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /products/{id}``: replace the whole product (404 when it does not exist)."""
        path = self._path(product_id)
        return self.client.request("PUT", path, json_body=dict(body)).data or {}

    def get(self, product_id: str) -> dict[str, Any]:
        """``GET /products/{id}``; raises :class:`~.exceptions.NotFound`."""
        return self.client._get(self._path(product_id))

    def delete(self, product_id: str) -> None:
        """``DELETE /products/{id}`` (204; :class:`~.exceptions.NotFound` when unknown)."""
        self.client.request("DELETE", self._path(product_id), expect_json=False)

    def list(self, **params: Any) -> dict[str, Any]:
        """``GET /products`` one page: ``{"products": [...], "paging": {...}}``."""
        return self.client._get("/products", params)

    def iterate(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every product (``limit`` up to 250, ``sort``), fetched lazily page by page."""
        return _iterate_offset(self.client, "/products", "products", dict(params))


class Categories(Resource):
    """``/product-categories``: the brand's product categories."""

    def _path(self, category_id: str) -> str:
        return f"/product-categories/{quote(str(category_id), safe='')}"

    def create(self, category_id: str, title: str) -> dict[str, Any]:
        """``POST /product-categories`` (201); :class:`~.exceptions.Conflict` when taken."""
        body = {"categoryID": category_id, "title": title}
        return self.client.request("POST", "/product-categories", json_body=body).data or {}

    def update(self, category_id: str, title: str) -> dict[str, Any]:
        """``PATCH /product-categories/{id}``: a new title (there is no PUT)."""
        path = self._path(category_id)
        return self.client.request("PATCH", path, json_body={"title": title}).data or {}

    def get(self, category_id: str) -> dict[str, Any]:
        """``GET /product-categories/{id}``; raises :class:`~.exceptions.NotFound`."""
        return self.client._get(self._path(category_id))

    def delete(self, category_id: str) -> None:
        """``DELETE /product-categories/{id}`` (204; NotFound when unknown)."""
        self.client.request("DELETE", self._path(category_id), expect_json=False)

    def list(self, **params: Any) -> dict[str, Any]:
        """``GET /product-categories`` one page: ``{"categories": [...], "paging": {...}}``."""
        return self.client._get("/product-categories", params)

    def iterate(self, **params: Any) -> Iterator[dict[str, Any]]:
        """Every category, fetched lazily page by page."""
        return _iterate_offset(self.client, "/product-categories", "categories", dict(params))


class Brands(Resource):
    """``/brands/current``."""

    def current(self) -> dict[str, Any]:
        """``GET /brands/current``: ``brandID``, ``name``, ``website``, ``connected``, ..."""
        return self.client._get("/brands/current")

    def connect(
        self, platform: str, version: str, website: str, currency: str | None = None
    ) -> None:
        """``POST /brands/current`` (OAuth only): mark this site as the brand's connected store."""
        body = {"platform": platform, "version": version, "website": website}
        if currency:
            body["currency"] = currency
        self.client.request(
            "POST", "/brands/current", json_body=body, retry=True, expect_json=False
        )


class EventMetadata(Resource):
    """``/event-metadata``: declarations of custom events (needs ``events.write`` to write)."""

    def declare(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /event-metadata`` (201): declare a new event; returns its ``EventItem``.

        ``body`` is a ``WriteEventRequest`` (``name``, ``origin``, ``displayName``, at least one
        property). Raises :class:`~django_omnisend.exceptions.Conflict` when the name and origin
        are declared already (merge with :meth:`merge`) or name a recommended event. Not
        resent after a 5xx or timeout (a POST); a caller that resends it gets a 409 if the
        first one was stored.
        """
        response = self.client.request("POST", "/event-metadata", json_body=dict(body))
        return (response.data or {}).get("event") or {}

    def merge(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``PUT /event-metadata`` (200): merge into a declared event; returns its ``EventItem``.

        Only what ``body`` carries changes; nothing is removed. A declared property's type
        cannot change (:class:`~django_omnisend.exceptions.Conflict`); an undeclared event is
        :class:`~django_omnisend.exceptions.NotFound`.
        """
        response = self.client.request("PUT", "/event-metadata", json_body=dict(body))
        return (response.data or {}).get("event") or {}

    def query(
        self,
        category: str = "segments",
        *,
        events: Iterable[str] | None = None,
        origins: Iterable[str] | None = None,
        include_properties: bool = False,
        exclude_custom_events: bool = False,
    ) -> list[dict[str, Any]]:
        """``POST /event-metadata/query``: the ``EventItem`` list usable in ``category``.

        ``category`` is ``automations``, ``events`` or ``segments``; ``events``/``origins``
        filter by exact name. A read, so it is retried like a GET.
        """
        body: dict[str, Any] = {"category": category}
        if events is not None:
            body["events"] = list(events)
        if origins is not None:
            body["origins"] = list(origins)
        if include_properties:
            body["includeProperties"] = True
        if exclude_custom_events:
            body["excludeCustomEvents"] = True
        response = self.client.request("POST", "/event-metadata/query", json_body=body, retry=True)
        return list((response.data or {}).get("events") or [])

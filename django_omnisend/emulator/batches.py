"""Batches (docs: reference/omnisend-api.rst): 1-100 items, processed immediately or deferred,
offset-paged list.

Each item goes through the same code as the single-item endpoint (a ``process_item`` callback
supplied by ``api.py``), and its HTTP status and body are kept as ``responseCode`` and
``response``. Deferred batches advance with the emulator clock and are brought up to date
lazily whenever anything is read: ``pending`` until ``createdAt + batch_delay``, then
``inProgress`` with half the items done, then ``finished`` at ``createdAt + 2 * batch_delay``;
``stopped`` once ``batch_stop_after_errors`` items failed. ``GET /batches/{id}`` returns the
counters, ``/items`` adds ``responses`` (items that succeeded) and ``errors`` (items that failed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from .config import EmulatorConfig
from .problems import ApiError
from .state import State
from .times import date_of, format_rfc3339, valid_date
from .validation import Checker, require_object

ENDPOINTS = ("products", "contacts", "events", "categories")
LIST_ENDPOINTS = ("products", "contacts", "events")
STATUSES = ("pending", "inProgress", "finished", "stopped")
WRITE_SCOPE = {
    "contacts": "contacts.write",
    "events": "events.write",
    "products": "products.write",
    "categories": "products.write",
}
READ_SCOPE = {
    "contacts": "contacts.read",
    "events": "events.read",
    "products": "products.read",
    "categories": "products.read",
}
LIST_PARAMS = ("offset", "limit", "status", "dateFrom", "dateTo", "endpoint")

#: ``(brand_id, endpoint, method, item, now) -> (responseCode, response)``
ItemProcessor = Callable[[str, str, str, Any, float], tuple[int, Any]]


def validate_batch(body: Any) -> dict[str, Any]:
    """``CreateBatchRequest``: method POST|PUT, endpoint enum, 1-100 items."""
    body = require_object(body)
    c = Checker()
    for key in ("method", "endpoint", "items"):
        if key not in body:
            c.add(key, "required", "Field is required.")
    c.enum(body, "method", ("POST", "PUT"))
    c.enum(body, "endpoint", ENDPOINTS)
    c.string(body, "origin")
    items = body.get("items")
    if "items" in body:
        if not isinstance(items, list):
            c.add("items", "invalid_type", "Must be an array.")
        elif not 1 <= len(items) <= 100:
            c.add("items", "out_of_range", f"Must have 1 to 100 items (got {len(items)}).")
    c.raise_if_any()
    return body


def create(
    state: State,
    brand_id: str,
    body: dict[str, Any],
    now: float,
    config: EmulatorConfig,
    process_item: ItemProcessor,
) -> dict[str, Any]:
    """Store a new batch and, in immediate mode, process it at once."""
    batch_id = state.new_id(now)
    batch = {
        "batchID": batch_id,
        "brand_id": brand_id,
        "method": body["method"],
        "endpoint": body["endpoint"],
        "origin": body.get("origin", "api"),
        "status": "pending",
        "createdAt": now,
        "startedAt": None,
        "endedAt": None,
        "mode": config.batch_processing,
        "delay": config.batch_delay if config.batch_processing == "deferred" else 0.0,
        "stopAfter": config.batch_stop_after_errors,
        "items": [{"itemID": state.new_id(now), "request": item} for item in body["items"]],
        "done": 0,
        "errorsCount": 0,
    }
    state.batches.setdefault(brand_id, {})[batch_id] = batch
    advance(batch, now, process_item)
    return batch


def advance(batch: dict[str, Any], now: float, process_item: ItemProcessor) -> None:
    """Bring a batch up to date with the clock (see the module docstring)."""
    if batch["status"] in ("finished", "stopped"):
        return
    start = batch["createdAt"] + batch["delay"]
    if now < start:
        return
    total = len(batch["items"])
    batch["status"] = "inProgress"
    batch["startedAt"] = batch["startedAt"] or start
    target = total if now >= start + batch["delay"] else total // 2
    while batch["done"] < target:
        item = batch["items"][batch["done"]]
        code, response = process_item(
            batch["brand_id"], batch["endpoint"], batch["method"], item["request"], now
        )
        item.update(responseCode=code, response=response, status="finished")
        batch["done"] += 1
        if code >= 400:
            batch["errorsCount"] += 1
            if batch["stopAfter"] is not None and batch["errorsCount"] >= batch["stopAfter"]:
                batch["status"] = "stopped"
                batch["endedAt"] = now
                return
    if batch["done"] >= total:
        batch["status"] = "finished"
        batch["endedAt"] = now


def to_batch(batch: dict[str, Any], with_items: bool = False) -> dict[str, Any]:
    """The ``Batch`` schema object (with ``responses``/``errors`` for ``/items``)."""
    out: dict[str, Any] = {
        "batchID": batch["batchID"],
        "method": batch["method"],
        "endpoint": batch["endpoint"],
        "origin": batch["origin"],
        "status": batch["status"],
        "createdAt": format_rfc3339(batch["createdAt"]),
        "totalCount": len(batch["items"]),
        "finishedCount": batch["done"],
        "errorsCount": batch["errorsCount"],
    }
    for key in ("startedAt", "endedAt"):
        if batch[key] is not None:
            out[key] = format_rfc3339(batch[key])
    if with_items:
        done = [
            {k: item[k] for k in ("itemID", "request", "response", "responseCode", "status")}
            for item in batch["items"]
            if "responseCode" in item
        ]
        out["responses"] = [i for i in done if i["responseCode"] < 400]
        out["errors"] = [i for i in done if i["responseCode"] >= 400]
    return out


def list_batches(
    state: State, brand_id: str, params: dict[str, str], api_base: str
) -> dict[str, Any]:
    """``GET /batches``: ``ListBatchesResponse`` with offset paging (``next``/``previous`` URLs)."""
    c = Checker()
    if "endpoint" not in params:
        c.add("endpoint", "required", "Parameter is required.")
    c.enum(params, "endpoint", LIST_ENDPOINTS)
    c.enum(params, "status", STATUSES)
    offset, limit = 0, 100
    if "offset" in params:
        if not params["offset"].isdigit():
            c.add("offset", "out_of_range", "Must be an integer >= 0.")
        else:
            offset = int(params["offset"])
    if "limit" in params:
        if not params["limit"].isdigit() or not 1 <= int(params["limit"]) <= 250:
            c.add("limit", "out_of_range", "Must be an integer from 1 to 250.")
        else:
            limit = int(params["limit"])
    for key in ("dateFrom", "dateTo"):
        if key in params and not valid_date(params[key]):
            c.add(key, "invalid_format", "Must be a date in yyyy-mm-dd format.")
    c.raise_if_any()
    rows = [
        b
        for b in state.batches.get(brand_id, {}).values()
        if b["endpoint"] == params["endpoint"]
        and ("status" not in params or b["status"] == params["status"])
        and ("dateFrom" not in params or date_of(b["createdAt"]) >= params["dateFrom"])
        and ("dateTo" not in params or date_of(b["createdAt"]) <= params["dateTo"])
    ]
    rows.sort(key=lambda b: b["createdAt"], reverse=True)
    page = rows[offset : offset + limit]
    paging: dict[str, Any] = {"offset": offset, "limit": limit}
    base = {k: v for k, v in params.items() if k not in ("offset", "limit")}
    if offset + limit < len(rows):
        paging["next"] = (
            f"{api_base}/batches?{urlencode({**base, 'limit': limit, 'offset': offset + limit})}"
        )
    if offset > 0:
        prev = max(0, offset - limit)
        paging["previous"] = (
            f"{api_base}/batches?{urlencode({**base, 'limit': limit, 'offset': prev})}"
        )
    return {"batches": [to_batch(b) for b in page], "paging": paging}


def get_batch(state: State, brand_id: str, batch_id: str) -> dict[str, Any]:
    """The stored batch or a 404 problem."""
    batch = state.batches.get(brand_id, {}).get(batch_id)
    if batch is None:
        raise ApiError(404, f"Batch '{batch_id}' not found.")
    return batch

"""The catalog backfill behind ``omnisend_sync_products``: everything through ``/batches``.

Categories first (products name them), then products, 100 to a ``POST /batches``; each
batch is polled until Omnisend has processed it, and the items it refused as existing (409)
go again in ``PUT`` batches, which replace them. Invalid products (see
:func:`~django_omnisend.catalog.adapter.validate_product`) are left out and reported.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..api.resources import BATCH_SETTLED
from ..connect import client_for_key
from ..exceptions import OmnisendError
from .adapter import ProductAdapter, validate_category, validate_product

#: Omnisend's ceiling per batch.
BATCH_SIZE = 100
#: Give up waiting for one batch after this long (the command says so; rerun it).
POLL_TIMEOUT_SECONDS = 600.0


@dataclass
class BackfillReport:
    """What a backfill did (or, with ``dry_run``, would do)."""

    products: int = 0
    categories: int = 0
    #: ``(what, problems)`` of products and categories left out as invalid.
    invalid: list[tuple[str, list[str]]] = field(default_factory=list)
    #: Items Omnisend refused, by HTTP status, and a few of their ids and reasons.
    failed: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    batches: int = 0


@dataclass
class _Plan:
    """Bodies to send per connection key: categories and products."""

    categories: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    products: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


def plan(adapter: ProductAdapter, report: BackfillReport) -> _Plan:
    """Build and validate every category and product body (no request)."""
    out = _Plan()
    for instance in adapter.get_categories():
        body = adapter.get_category(instance).as_body()
        problems = validate_category(body)
        if problems:
            report.invalid.append((f"category {body.get('categoryID')!r}", problems))
            continue
        out.categories.setdefault(adapter.get_connection_key(instance), []).append(body)
    for instance in adapter.get_products():
        if not adapter.should_sync(instance):
            continue
        body = adapter.get_product(instance).as_body()
        problems = validate_product(body)
        if problems:
            report.invalid.append((f"product {body.get('id')!r}", problems))
            continue
        out.products.setdefault(adapter.get_connection_key(instance), []).append(body)
    return out


def backfill(
    adapter: ProductAdapter,
    *,
    dry_run: bool = False,
    sleep: Callable[[float], Any] = time.sleep,
) -> BackfillReport:
    """Send the whole catalog (``dry_run``: only build and validate it)."""
    report = BackfillReport()
    todo = plan(adapter, report)
    if dry_run:
        report.categories = sum(len(v) for v in todo.categories.values())
        report.products = sum(len(v) for v in todo.products.values())
        return report
    for key in sorted(set(todo.categories) | set(todo.products)):
        with client_for_key(key) as client:
            report.categories += _send_all(
                client, "categories", "categoryID", todo.categories.get(key, []), report, sleep
            )
            report.products += _send_all(
                client, "products", "id", todo.products.get(key, []), report, sleep
            )
    return report


def _chunks(items: list[Any], size: int) -> Iterable[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _send_all(client, endpoint: str, id_key: str, bodies, report, sleep) -> int:
    """POST ``bodies`` in batches, then PUT the ones that existed; returns how many landed."""
    by_id = {body[id_key]: body for body in bodies}
    existing: list[dict[str, Any]] = []
    sent = 0
    for chunk in _chunks(list(by_id.values()), BATCH_SIZE):
        ok, conflicts = _run_batch(client, endpoint, "POST", chunk, id_key, report, sleep)
        sent += ok
        existing += [by_id[i] for i in conflicts if i in by_id]
    for chunk in _chunks(existing, BATCH_SIZE):
        ok, _ = _run_batch(client, endpoint, "PUT", chunk, id_key, report, sleep)
        sent += ok
    return sent


def _run_batch(client, endpoint, method, chunk, id_key, report, sleep) -> tuple[int, list[str]]:
    """One batch, waited for: ``(items that succeeded, ids refused with 409)``."""
    created = client.batches.create(endpoint, chunk, method)
    report.batches += 1
    batch_id = created["batchID"]
    started, wait = time.monotonic(), 0.2
    while client.batches.get(batch_id).get("status") not in BATCH_SETTLED:
        if time.monotonic() - started > POLL_TIMEOUT_SECONDS:
            raise OmnisendError(
                f"Omnisend has not finished {endpoint} batch {batch_id} after "
                f"{POLL_TIMEOUT_SECONDS:.0f} s; run the command again later (it replaces "
                "what exists, so nothing is duplicated)."
            )
        sleep(wait)
        wait = min(wait * 2, 10.0)
    items = client.batches.items(batch_id)
    conflicts = []
    for error in items.get("errors") or []:
        code = int(error.get("responseCode") or 0)
        item_id = (error.get("request") or {}).get(id_key, "?")
        if code == 409 and method == "POST":
            conflicts.append(item_id)
            continue
        report.failed[code] += 1
        if len(report.failures) < 20:
            detail = (error.get("response") or {}).get("detail", "") if error else ""
            report.failures.append(f"{endpoint} {item_id!r}: HTTP {code} {detail}".strip())
    return len(items.get("responses") or []), conflicts


__all__ = ["BackfillReport", "backfill", "plan"]

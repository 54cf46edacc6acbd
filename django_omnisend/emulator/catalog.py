"""Products and product categories (API 2026-03-15, Products and Product Categories specs).

Rules implemented here:

* ``POST /products`` creates (201 ``{id}``); an id the brand already has → 409. ``PUT
  /products/{id}`` replaces an existing product (200 ``{id}``; unknown → 404; a body ``id``
  other than the path's → 400). ``DELETE`` → 204 (unknown → 404). ``GET`` one → ``Product``.
* ``Product`` requires ``currency, id, status, title, url``; ``Variant`` requires ``id, price,
  title, url``; lengths and list sizes as the spec declares them.
* Categories: ``POST`` ``{categoryID, title}`` (201 ``{categoryID}``, 409 when taken), ``PATCH
  {title}`` (200 ``{categoryID}``), ``DELETE`` 204; there is no ``PUT``.
* Lists use offset paging (``offset`` ≥ 0, ``limit`` 1-250, default 100) with ``next`` /
  ``previous`` URLs like ``GET /batches``; ``sort`` as the spec enumerates, newest first.
* The same functions serve batch items (``endpoint`` products/categories): ``POST`` creates,
  ``PUT`` replaces (a category's ``PUT`` item changes its title).
"""

from __future__ import annotations

import copy
from typing import Any
from urllib.parse import urlencode

from .problems import ApiError
from .state import State
from .times import format_rfc3339
from .validation import Checker, require_object

STOCK_STATUSES = ("inStock", "outOfStock", "notAvailable")
PRODUCT_SORTS = ("date", "updatedAt", "createdAt")
CATEGORY_SORTS = ("title", "updatedAt", "createdAt")
LIST_PARAMS = ("offset", "limit", "sort")

#: Product string fields and their maximum lengths (None: no limit declared).
PRODUCT_STRINGS: dict[str, int | None] = {
    "id": 100,
    "title": 255,
    "url": 1000,
    "currency": None,
    "defaultImageUrl": 1000,
    "description": 1000,
    "type": 100,
    "vendor": 100,
    "createdAt": None,
    "updatedAt": None,
}
VARIANT_STRINGS: dict[str, int | None] = {
    "id": 100,
    "title": 255,
    "url": 1000,
    "sku": 255,
    "defaultImageUrl": 1000,
    "description": 1000,
}


# -- validation -------------------------------------------------------------------------------


def _required(c: Checker, body: dict[str, Any], keys: tuple[str, ...], prefix: str = "") -> None:
    for key in keys:
        if key not in body:
            c.add(f"{prefix}{key}", "required", "Field is required.")


def _number(c: Checker, body: dict[str, Any], key: str, prefix: str) -> None:
    value = body.get(key)
    if key in body and (isinstance(value, bool) or not isinstance(value, int | float)):
        c.add(f"{prefix}{key}", "invalid_type", "Must be a number.")


def validate_product(body: Any) -> dict[str, Any]:
    """Check a ``Product`` body; raise a 400 listing every problem."""
    body = require_object(body)
    c = Checker()
    _required(c, body, ("currency", "id", "status", "title", "url"))
    for key, limit in PRODUCT_STRINGS.items():
        c.string(body, key, max_len=limit)
    if isinstance(body.get("id"), str) and not body["id"]:
        c.add("id", "required", "Must not be empty.")
    c.enum(body, "status", STOCK_STATUSES)
    c.string_list(body, "categoryIDs", 100)
    c.string_list(body, "images", 300)
    c.string_list(body, "tags", 100)
    variants = body.get("variants")
    if "variants" in body:
        if not isinstance(variants, list):
            c.add("variants", "invalid_type", "Must be an array.")
        elif not 1 <= len(variants) <= 500:
            c.add("variants", "out_of_range", "Must have 1 to 500 items.")
        else:
            for i, variant in enumerate(variants):
                p = f"variants[{i}]."
                if not c.obj(variant, p.rstrip(".")):
                    continue
                _required(c, variant, ("id", "price", "title", "url"), p)
                for key, limit in VARIANT_STRINGS.items():
                    c.string(variant, key, p, max_len=limit)
                _number(c, variant, "price", p)
                _number(c, variant, "strikeThroughPrice", p)
                c.enum(variant, "status", STOCK_STATUSES, p)
                c.string_list(variant, "images", 300, p)
    c.raise_if_any()
    return body


def validate_category(body: Any, *, create: bool) -> dict[str, Any]:
    """``CreateCategoryRequest`` (``create``) or ``UpdateCategoryRequest``."""
    body = require_object(body)
    c = Checker()
    _required(c, body, ("categoryID", "title") if create else ("title",))
    c.string(body, "title", max_len=255)
    if create:
        c.string(body, "categoryID", max_len=100)
        if body.get("categoryID") == "":
            c.add("categoryID", "too_short", "Must be 1 to 100 characters.")
    c.raise_if_any()
    return body


# -- products ---------------------------------------------------------------------------------


def _products(state: State, brand_id: str) -> dict[str, dict[str, Any]]:
    return state.products.setdefault(brand_id, {})


def _stamp(record: dict[str, Any], now: float, created: float | None = None) -> dict[str, Any]:
    """Internal times for sorting; the body's own createdAt/updatedAt are kept as sent."""
    record["_created"] = now if created is None else created
    record["_updated"] = now
    return record


def create_product(state: State, brand_id: str, body: Any, now: float) -> dict[str, Any]:
    """``POST /products``: the new product; 409 when the id exists."""
    body = validate_product(body)
    products = _products(state, brand_id)
    if body["id"] in products:
        raise ApiError(409, f"Product '{body['id']}' already exists; replace it with PUT.")
    record = _stamp(copy.deepcopy(body), now)
    record["_seq"] = state.next_seq()
    products[body["id"]] = record
    return record


def replace_product(
    state: State, brand_id: str, product_id: str, body: Any, now: float
) -> dict[str, Any]:
    """``PUT /products/{id}``: replace an existing product; 404 when unknown."""
    body = validate_product(body)
    if body["id"] != product_id:
        c = Checker()
        c.add("id", "invalid_value", "Must equal the product ID in the path.")
        c.raise_if_any()
    old = get_product(state, brand_id, product_id)
    record = _stamp(copy.deepcopy(body), now, created=old["_created"])
    record["_seq"] = old["_seq"]
    _products(state, brand_id)[product_id] = record
    return record


def get_product(state: State, brand_id: str, product_id: str) -> dict[str, Any]:
    """The stored product or a 404 problem."""
    record = _products(state, brand_id).get(product_id)
    if record is None:
        raise ApiError(404, f"Product '{product_id}' not found.")
    return record


def delete_product(state: State, brand_id: str, product_id: str) -> None:
    """``DELETE /products/{id}``; 404 when unknown."""
    get_product(state, brand_id, product_id)
    del _products(state, brand_id)[product_id]


def to_product(record: dict[str, Any]) -> dict[str, Any]:
    """The ``Product`` schema object: what was sent, with ``createdAt``/``updatedAt`` filled."""
    out = {k: copy.deepcopy(v) for k, v in record.items() if not k.startswith("_")}
    out.setdefault("createdAt", format_rfc3339(record["_created"]))
    out.setdefault("updatedAt", format_rfc3339(record["_updated"]))
    return out


# -- categories -------------------------------------------------------------------------------


def _categories(state: State, brand_id: str) -> dict[str, dict[str, Any]]:
    return state.categories.setdefault(brand_id, {})


def create_category(state: State, brand_id: str, body: Any, now: float) -> dict[str, Any]:
    """``POST /product-categories``: the new category; 409 when the id exists."""
    body = validate_category(body, create=True)
    categories = _categories(state, brand_id)
    if body["categoryID"] in categories:
        raise ApiError(
            409, f"Category '{body['categoryID']}' already exists; change it with PATCH."
        )
    record = {"categoryID": body["categoryID"], "title": body["title"]}
    record = _stamp(record, now)
    record["_seq"] = state.next_seq()
    categories[body["categoryID"]] = record
    return record


def get_category(state: State, brand_id: str, category_id: str) -> dict[str, Any]:
    """The stored category or a 404 problem."""
    record = _categories(state, brand_id).get(category_id)
    if record is None:
        raise ApiError(404, f"Category '{category_id}' not found.")
    return record


def update_category(
    state: State, brand_id: str, category_id: str, body: Any, now: float
) -> dict[str, Any]:
    """``PATCH /product-categories/{id}``: a new title; 404 when unknown."""
    body = validate_category(body, create=False)
    record = get_category(state, brand_id, category_id)
    record["title"] = body["title"]
    record["_updated"] = now
    return record


def delete_category(state: State, brand_id: str, category_id: str) -> None:
    """``DELETE /product-categories/{id}``; 404 when unknown."""
    get_category(state, brand_id, category_id)
    del _categories(state, brand_id)[category_id]


def to_category(record: dict[str, Any]) -> dict[str, Any]:
    """``GetCategoryResponse`` / ``CategoryListItem``."""
    return {
        "categoryID": record["categoryID"],
        "title": record["title"],
        "createdAt": format_rfc3339(record["_created"]),
        "updatedAt": format_rfc3339(record["_updated"]),
    }


# -- lists ------------------------------------------------------------------------------------


def list_page(
    records: list[dict[str, Any]],
    params: dict[str, str],
    sorts: tuple[str, ...],
    url: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """One offset page of ``records`` and its ``Paging`` object (400 on bad parameters)."""
    c = Checker()
    c.enum(params, "sort", sorts)
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
    c.raise_if_any()
    sort = params.get("sort", "createdAt")
    if sort == "title":
        rows = sorted(records, key=lambda r: (r["title"], r["_seq"]))
    else:  # "date" is the creation date; newest first, like GET /batches
        field = "_updated" if sort == "updatedAt" else "_created"
        rows = sorted(records, key=lambda r: (r[field], r["_seq"]), reverse=True)
    page = rows[offset : offset + limit]
    paging: dict[str, Any] = {"offset": offset, "limit": limit}
    base = {k: v for k, v in params.items() if k not in ("offset", "limit")}
    if offset + limit < len(rows):
        paging["next"] = f"{url}?{urlencode({**base, 'limit': limit, 'offset': offset + limit})}"
    if offset > 0:
        previous = max(0, offset - limit)
        paging["previous"] = f"{url}?{urlencode({**base, 'limit': limit, 'offset': previous})}"
    return page, paging


def list_products(
    state: State, brand_id: str, params: dict[str, str], api_base: str
) -> dict[str, Any]:
    """``GET /products``: ``ListProductsResponse``."""
    page, paging = list_page(
        list(_products(state, brand_id).values()), params, PRODUCT_SORTS, f"{api_base}/products"
    )
    return {"products": [to_product(r) for r in page], "paging": paging}


def list_categories(
    state: State, brand_id: str, params: dict[str, str], api_base: str
) -> dict[str, Any]:
    """``GET /product-categories``: ``GetCategoriesResponse``."""
    page, paging = list_page(
        list(_categories(state, brand_id).values()),
        params,
        CATEGORY_SORTS,
        f"{api_base}/product-categories",
    )
    return {"categories": [to_category(r) for r in page], "paging": paging}


# -- batch items ------------------------------------------------------------------------------


def batch_item(
    state: State, brand_id: str, endpoint: str, method: str, item: Any, now: float
) -> tuple[int, Any]:
    """One ``products``/``categories`` batch item: ``(responseCode, response)``."""
    if endpoint == "products":
        if method == "PUT":
            product_id = item.get("id") if isinstance(item, dict) else None
            record = replace_product(state, brand_id, str(product_id or ""), item, now)
            return 200, {"id": record["id"]}
        record = create_product(state, brand_id, item, now)
        return 201, {"id": record["id"]}
    if method == "PUT":
        category_id = item.get("categoryID") if isinstance(item, dict) else None
        record = update_category(state, brand_id, str(category_id or ""), item, now)
        return 200, {"categoryID": record["categoryID"]}
    record = create_category(state, brand_id, item, now)
    return 201, {"categoryID": record["categoryID"]}

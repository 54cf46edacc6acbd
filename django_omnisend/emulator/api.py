"""The API under ``/api`` (version 2026-03-15) and the legacy v4 e-mail lookup.

``handle_api`` is the gateway every ``/api`` request passes, in this order: ``Omnisend-Version``
(missing/malformed 400, retired 410, later dates resolve to 2026-03-15), credentials (Bearer or
``Omnisend-API-Key``, 401), route (404/405), rate limit (429, per brand), scope (403; it names
the missing scope only in strict mode, as Omnisend's gateway never does), unknown query
parameters (400), then the handler under the emulator's lock. Handlers are thin: the rules live
in ``contacts.py``, ``events.py``, ``batches.py``, ``catalog.py`` and ``event_metadata.py``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import batches, catalog, contacts, event_metadata, events
from .config import API_VERSION
from .http import BodyError, Request, Response
from .problems import ApiError, FieldError, bad_request, validation_error
from .times import valid_date
from .validation import Checker, require_object

if TYPE_CHECKING:  # pragma: no cover
    from .core import Emulator
    from .ledger import LedgerEntry


@dataclass
class Auth:
    """Who is calling: credential kind, brand and granted scopes."""

    kind: str  # "bearer" or "api_key"
    brand_id: str
    scopes: frozenset[str]


@dataclass
class Call:
    """One authenticated API call being handled."""

    emu: Emulator
    request: Request
    auth: Auth
    now: float
    args: dict[str, str] = field(default_factory=dict)

    @property
    def brand_id(self) -> str:
        """The caller's brand."""
        return self.auth.brand_id

    def require(self, scope: str) -> None:
        """403 unless the credential carries ``scope`` (named in the detail only when strict)."""
        if scope not in self.auth.scopes:
            if not self.emu.config.strict:
                # Omnisend's gateway rejects the key before Omnisend sees it (docs:
                # reference/omnisend-api.rst).
                raise ApiError(403, "Forbidden.")
            what = (
                "API key lacks the permission"
                if self.auth.kind == "api_key"
                else "token lacks the scope"
            )
            raise ApiError(403, f"Insufficient permissions: the {what} '{scope}'.")

    def body(self) -> Any:
        """The JSON body, or a 400 problem when it is not JSON."""
        try:
            return self.request.json()
        except BodyError as exc:
            raise bad_request("body", "invalid_json", str(exc)) from None


Handler = Callable[[Call], Response]


@dataclass
class Route:
    """One API operation."""

    method: str
    pattern: re.Pattern[str]
    handler: Handler
    scope: str | None
    params: tuple[str, ...] = ()
    #: Extra rate-limit bucket (``"tags"`` for /contacts/tags).
    bucket: str | None = None


# -- handlers ---------------------------------------------------------------------------------


def list_contacts(call: Call) -> Response:
    """GET /contacts."""
    book = call.emu.state.book(call.brand_id)
    return Response.json(200, contacts.list_contacts(book, call.request.query))


def post_contact(call: Call) -> Response:
    """POST /contacts: upsert, 201 created / 200 updated."""
    rec, created = contacts.upsert(
        call.emu.state, call.brand_id, call.body(), call.now, call.emu.config
    )
    return Response.json(201 if created else 200, contacts.to_response(rec))


def get_contact(call: Call) -> Response:
    """GET /contacts/{id}."""
    rec = call.emu.state.book(call.brand_id).get(call.args["id"])
    if rec is None:
        raise ApiError(404, "Contact not found.")
    return Response.json(200, contacts.to_response(rec))


def patch_contact(call: Call) -> Response:
    """PATCH /contacts/{id}."""
    rec = contacts.find_for_patch(call.emu.state, call.brand_id, call.args["id"], None)
    return _patch(call, rec)


def patch_contact_by_email(call: Call) -> Response:
    """PATCH /contacts?email=…"""
    values = call.request.query.get("email")
    if not values or not values[0]:
        raise bad_request("email", "required", "Query parameter 'email' is required.")
    body = call.body()
    contacts.validate_contact_request(body)
    rec = contacts.find_for_patch(call.emu.state, call.brand_id, None, values[0])
    return _patch(call, rec, body)


def _patch(call: Call, rec: dict[str, Any], body: Any = None) -> Response:
    body = call.body() if body is None else body
    rec = contacts.patch(call.emu.state, call.brand_id, rec, body, call.now, call.emu.config)
    return Response.json(200, contacts.to_response(rec))


def _tags(op: str) -> Handler:
    def handler(call: Call) -> Response:
        body = contacts.validate_tags_request(call.body())
        call.emu.state.pending_tags.append(
            {
                "brand_id": call.brand_id,
                "due": call.now + call.emu.config.tags_delay,
                "op": op,
                "body": body,
            }
        )
        call.emu.tick_locked(call.now)
        return Response.empty(202)

    handler.__doc__ = (
        f"{'POST' if op == 'add' else 'DELETE'} /contacts/tags: 202, applied after tags_delay."
    )
    return handler


def post_event(call: Call) -> Response:
    """POST /events: 202, no body."""
    events.record_event(call.emu.state, call.brand_id, call.body(), call.now, call.emu.config)
    return Response.empty(202)


def post_batch(call: Call) -> Response:
    """POST /batches: 201 ``{batchID, totalCount}``."""
    body = batches.validate_batch(call.body())
    call.require(batches.WRITE_SCOPE[body["endpoint"]])
    batch = batches.create(
        call.emu.state, call.brand_id, body, call.now, call.emu.config, call.emu.process_batch_item
    )
    return Response.json(201, {"batchID": batch["batchID"], "totalCount": len(batch["items"])})


def list_batches(call: Call) -> Response:
    """GET /batches?endpoint=… (offset paging)."""
    params = call.request.query_first()
    if params.get("endpoint") in batches.LIST_ENDPOINTS:
        call.require(batches.READ_SCOPE[params["endpoint"]])
    api_base = _base_url(call.request) + "/api"
    return Response.json(200, batches.list_batches(call.emu.state, call.brand_id, params, api_base))


def get_batch(call: Call) -> Response:
    """GET /batches/{batchID}."""
    batch = batches.get_batch(call.emu.state, call.brand_id, call.args["id"])
    call.require(batches.READ_SCOPE[batch["endpoint"]])
    return Response.json(200, batches.to_batch(batch))


def get_batch_items(call: Call) -> Response:
    """GET /batches/{batchID}/items."""
    batch = batches.get_batch(call.emu.state, call.brand_id, call.args["id"])
    call.require(batches.READ_SCOPE[batch["endpoint"]])
    return Response.json(200, batches.to_batch(batch, with_items=True))


def list_products(call: Call) -> Response:
    """GET /products (offset paging)."""
    base = _base_url(call.request) + "/api"
    params = call.request.query_first()
    return Response.json(200, catalog.list_products(call.emu.state, call.brand_id, params, base))


def post_product(call: Call) -> Response:
    """POST /products: 201 ``{id}``, 409 when the id exists."""
    record = catalog.create_product(call.emu.state, call.brand_id, call.body(), call.now)
    return Response.json(201, {"id": record["id"]})


def get_product(call: Call) -> Response:
    """GET /products/{productID}."""
    record = catalog.get_product(call.emu.state, call.brand_id, call.args["id"])
    return Response.json(200, catalog.to_product(record))


def put_product(call: Call) -> Response:
    """PUT /products/{productID}: replace, 200 ``{id}``."""
    record = catalog.replace_product(
        call.emu.state, call.brand_id, call.args["id"], call.body(), call.now
    )
    return Response.json(200, {"id": record["id"]})


def delete_product(call: Call) -> Response:
    """DELETE /products/{productID}: 204."""
    catalog.delete_product(call.emu.state, call.brand_id, call.args["id"])
    return Response.empty(204)


def list_categories(call: Call) -> Response:
    """GET /product-categories (offset paging)."""
    base = _base_url(call.request) + "/api"
    params = call.request.query_first()
    return Response.json(200, catalog.list_categories(call.emu.state, call.brand_id, params, base))


def post_category(call: Call) -> Response:
    """POST /product-categories: 201 ``{categoryID}``, 409 when it exists."""
    record = catalog.create_category(call.emu.state, call.brand_id, call.body(), call.now)
    return Response.json(201, {"categoryID": record["categoryID"]})


def get_category(call: Call) -> Response:
    """GET /product-categories/{categoryID}."""
    record = catalog.get_category(call.emu.state, call.brand_id, call.args["id"])
    return Response.json(200, catalog.to_category(record))


def patch_category(call: Call) -> Response:
    """PATCH /product-categories/{categoryID}: a new title, 200 ``{categoryID}``."""
    record = catalog.update_category(
        call.emu.state, call.brand_id, call.args["id"], call.body(), call.now
    )
    return Response.json(200, {"categoryID": record["categoryID"]})


def delete_category(call: Call) -> Response:
    """DELETE /product-categories/{categoryID}: 204."""
    catalog.delete_category(call.emu.state, call.brand_id, call.args["id"])
    return Response.empty(204)


def _metadata_body(call: Call) -> Any:
    try:
        return call.body()
    except ApiError as exc:  # this API declares a plain Problem for 400
        exc.with_errors = False
        raise


def post_event_metadata(call: Call) -> Response:
    """POST /event-metadata: 201 ``{event}``."""
    record = event_metadata.declare(call.emu.state, call.brand_id, _metadata_body(call))
    return Response.json(
        201, {"event": event_metadata.to_item(record, with_properties=True, declared=True)}
    )


def put_event_metadata(call: Call) -> Response:
    """PUT /event-metadata: merge, 200 ``{event}``."""
    record = event_metadata.merge(call.emu.state, call.brand_id, _metadata_body(call))
    return Response.json(
        200, {"event": event_metadata.to_item(record, with_properties=True, declared=True)}
    )


def query_event_metadata(call: Call) -> Response:
    """POST /event-metadata/query: 200 ``EventsResponse``."""
    return Response.json(
        200, event_metadata.query(call.emu.state, call.brand_id, _metadata_body(call))
    )


def get_brand(call: Call) -> Response:
    """GET /brands/current."""
    brand = call.emu.state.brands[call.brand_id]
    return Response.json(200, {k: brand[k] for k in BRAND_FIELDS})


def post_brand(call: Call) -> Response:
    """POST /brands/current: OAuth only; marks the brand connected to a platform."""
    if call.auth.kind != "bearer":
        raise ApiError(
            403, "POST /brands/current requires an OAuth access token; API keys cannot call it."
        )
    call.require("brands.write")
    body = require_object(call.body())
    c = Checker()
    for key in ("platform", "version", "website"):
        if key not in body:
            c.add(key, "required", "Field is required.")
        c.string(body, key, max_len=10 if key == "version" else None)
    c.string(body, "currency")
    c.raise_if_any()
    brand = call.emu.state.brands[call.brand_id]
    brand.update({k: body[k] for k in ("platform", "version", "website", "currency") if k in body})
    brand["connected"] = True
    # The connect-store how-to (2026-08-26) answers brandID; the spec's empty 200 is outdated.
    return Response.json(200, {"brandID": brand["brandID"]})


BRAND_FIELDS = (
    "brandID",
    "connected",
    "currency",
    "name",
    "platform",
    "timezone",
    "version",
    "website",
)


def _r(
    method: str,
    path: str,
    handler: Handler,
    scope: str | None,
    params: tuple[str, ...] = (),
    bucket: str | None = None,
) -> Route:
    regex = re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", path) + "$")
    return Route(method, regex, handler, scope, params, bucket)


ROUTES: list[Route] = [
    _r("GET", "/contacts", list_contacts, "contacts.read", contacts.LIST_PARAMS),
    _r("POST", "/contacts", post_contact, "contacts.write"),
    _r("PATCH", "/contacts", patch_contact_by_email, "contacts.write", ("email",)),
    _r("POST", "/contacts/tags", _tags("add"), "contacts.write", bucket="tags"),
    _r("DELETE", "/contacts/tags", _tags("remove"), "contacts.write", bucket="tags"),
    _r("GET", "/contacts/{id}", get_contact, "contacts.read"),
    _r("PATCH", "/contacts/{id}", patch_contact, "contacts.write"),
    _r("POST", "/events", post_event, "events.write"),
    _r("POST", "/batches", post_batch, None),
    _r("GET", "/batches", list_batches, None, batches.LIST_PARAMS),
    _r("GET", "/batches/{id}", get_batch, None),
    _r("GET", "/batches/{id}/items", get_batch_items, None),
    _r("GET", "/products", list_products, "products.read", catalog.LIST_PARAMS),
    _r("POST", "/products", post_product, "products.write"),
    _r("GET", "/products/{id}", get_product, "products.read"),
    _r("PUT", "/products/{id}", put_product, "products.write"),
    _r("DELETE", "/products/{id}", delete_product, "products.write"),
    _r("GET", "/product-categories", list_categories, "products.read", catalog.LIST_PARAMS),
    _r("POST", "/product-categories", post_category, "products.write"),
    _r("GET", "/product-categories/{id}", get_category, "products.read"),
    _r("PATCH", "/product-categories/{id}", patch_category, "products.write"),
    _r("DELETE", "/product-categories/{id}", delete_category, "products.write"),
    # The spec lists events.write for declarations and no scope for the query.
    _r("POST", "/event-metadata", post_event_metadata, "events.write"),
    _r("PUT", "/event-metadata", put_event_metadata, "events.write"),
    _r("POST", "/event-metadata/query", query_event_metadata, None),
    _r("GET", "/brands/current", get_brand, "brands.read"),
    _r("POST", "/brands/current", post_brand, None),
]


# -- gateway ----------------------------------------------------------------------------------


def _base_url(request: Request) -> str:
    env = request.environ
    host = (
        env.get("HTTP_HOST")
        or f"{env.get('SERVER_NAME', '127.0.0.1')}:{env.get('SERVER_PORT', '80')}"
    )
    return f"{env.get('wsgi.url_scheme', 'http')}://{host}"


#: ``Omnisend-Version`` values that are not dates but are documented (docs:
#: reference/omnisend-api.rst, 'API versions').
PREVIEW_VERSIONS = frozenset({"2026-preview"})


def check_version(request: Request) -> None:
    """Apply the ``Omnisend-Version`` rules (docs: reference/omnisend-api.rst, 'API versions')."""
    value = request.header("Omnisend-Version")
    if value is None or not value.strip():
        raise validation_error(
            [FieldError("Omnisend-Version", "required", "Header is required.")],
            "The Omnisend-Version header is required (e.g. 2026-03-15).",
        )
    value = value.strip()
    if value in PREVIEW_VERSIONS:
        return  # documented values that resolve to the newest API (docs: omnisend-api.rst)
    if not valid_date(value):
        raise validation_error(
            [FieldError("Omnisend-Version", "invalid_format", "Must be a date like 2026-03-15.")],
            f"Omnisend-Version '{value[:40]}' is not a valid version.",
        )
    if value < API_VERSION:
        raise ApiError(410, f"API version {value} has been retired; use {API_VERSION}.")


def authenticate(
    emu: Emulator, request: Request, now: float, *, allow_api_key: bool = True
) -> Auth:
    """Resolve the ``Authorization`` header to a brand and scopes, or raise a 401."""
    header = (request.header("Authorization") or "").strip()
    if not header:
        raise ApiError(
            401,
            "Authentication is missing: send 'Authorization: Bearer <token>' "
            "or 'Omnisend-API-Key <key>'.",
        )
    scheme, _, credential = header.partition(" ")
    credential = credential.strip()
    with emu.lock:
        if scheme.lower() == "bearer":
            token = emu.state.access_tokens.get(credential)
            if token is None or token["revoked"] or token["expires_at"] <= now:
                raise ApiError(401, "The access token is invalid, expired or revoked.")
            return Auth("bearer", token["brand_id"], frozenset(token["scopes"]))
        if scheme.lower() == "omnisend-api-key" and allow_api_key:
            key = emu.state.api_keys.get(credential)
            if key is None or key.get("revoked"):
                raise ApiError(401, "The API key is invalid.")
            return Auth("api_key", key["brand_id"], frozenset(key["scopes"]))
    raise ApiError(401, "Unsupported authorization scheme.")


def _find_route(method: str, path: str) -> tuple[Route, dict[str, str]]:
    allowed = []
    for route in ROUTES:
        match = route.pattern.match(path)
        if match:
            if route.method == method:
                return route, match.groupdict()
            allowed.append(route.method)
    if allowed:
        raise ApiError(
            405, f"Method {method} is not allowed here; use {', '.join(sorted(set(allowed)))}."
        )
    raise ApiError(404, f"No API operation at {path}.")


def _rate_limit(
    emu: Emulator, brand_id: str, bucket: str | None, entry: LedgerEntry
) -> list[tuple[str, str]]:
    config = emu.config
    if not config.rate_limit_enabled:
        return []
    buckets = {"all": config.rate_limit}
    if bucket == "tags":
        buckets["tags"] = config.tags_rate_limit
    decision = emu.limiter.acquire(brand_id, buckets, config.window_seconds, emu.clock)
    entry.time = decision.now
    entry.rate_counted = decision.allowed
    headers: list[tuple[str, str]] = []
    if config.rate_limit_headers:
        headers = [
            ("X-Rate-Limit-Limit", str(decision.limit)),
            ("X-Rate-Limit-Remaining", str(decision.remaining)),
            ("X-Rate-Limit-Reset", str(decision.retry_after)),
        ]
    if not decision.allowed:
        raise ApiError(429, "Too many requests.", retry_after=decision.retry_after, headers=headers)
    return headers


def handle_api(emu: Emulator, request: Request, entry: LedgerEntry) -> Response:
    """Answer one ``/api/...`` request (see the module docstring for the order of checks)."""
    headers: list[tuple[str, str]] = []
    try:
        check_version(request)
        auth = authenticate(emu, request, entry.time)
        entry.brand_id = auth.brand_id
        route, args = _find_route(request.method, request.path[len("/api") :] or "/")
        headers = _rate_limit(emu, auth.brand_id, route.bucket, entry)
        call = Call(emu, request, auth, entry.time, args)
        if route.scope:
            call.require(route.scope)
        unknown = sorted(set(request.query) - set(route.params))
        if unknown:
            raise validation_error(
                [
                    FieldError(name, "unknown_parameter", "Unknown query parameter.")
                    for name in unknown
                ],
                f"Unknown query parameter(s): {', '.join(unknown)}.",
            )
        with emu.lock:
            emu.tick_locked(call.now)
            response = route.handler(call)
    except ApiError as exc:
        response = exc.response()
        if not exc.headers:
            response.headers.extend(headers)
        return response
    response.headers.extend(headers)
    return response


def handle_v4(emu: Emulator, request: Request, entry: LedgerEntry) -> Response:
    """``GET /v4/contacts/email:{email}`` with a Bearer token, answering like v4 did."""

    def error(status: int, message: str) -> Response:
        return Response.json(status, {"error": message, "statusCode": status})

    if request.method != "GET" or not request.path.startswith("/v4/contacts/email:"):
        return error(404, "Not found")
    try:
        auth = authenticate(emu, request, entry.time, allow_api_key=False)
        entry.brand_id = auth.brand_id
        _rate_limit(emu, auth.brand_id, None, entry)
    except ApiError as exc:
        return error(exc.status, exc.detail)
    if "contacts.read" not in auth.scopes:
        return error(403, "Missing scope 'contacts.read'.")
    email = request.path[len("/v4/contacts/email:") :]
    with emu.lock:
        emu.tick_locked(entry.time)
        rec = emu.state.book(auth.brand_id).find_email(email)
        if rec is None:
            return error(404, "Contact not found")
        body = contacts.to_response(rec)
    body["contactID"] = body["id"]
    return Response.json(200, body)

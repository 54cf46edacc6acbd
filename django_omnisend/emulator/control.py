"""``/__emulator__/...``: the Python control API over HTTP, as JSON (for other processes).

========================  ==========================================================
``GET /``                 URLs, demo client, newest API key, config
``GET|POST /config``      read / change :class:`EmulatorConfig` fields
``POST /reset``           back to the post-construction state
``POST /clock``           ``{"advance": seconds}``
``POST /tick``            apply due delayed tags and batch progress now
``GET|DELETE /ledger``    entries (``?path_prefix=&method=``) / clear
``GET|POST /contacts``    snapshot (``?brand_id=``) / seed one (``{"brand_id", ...body}``)
``POST /unsubscribe``     ``{"email", "brand_id"?, "at"?, "updated_at"?}`` ("inside Omnisend")
``GET /events``           received events (``?brand_id=``)
``GET /batches``          stored batches with items (``?brand_id=``)
``GET|POST|DELETE /faults``  list / add ``{"route", "kind", "rate", "times", ...params}`` / clear
``POST /brands``          add a brand; ``POST /clients`` register a client
``POST /api-keys``        ``{"brand_id"?, "scopes"?}`` → ``{"api_key"}``
``POST /tokens``          ``{"brand_id"?, "scopes"?, "client_id"?}`` → token response
``POST /revoke``          ``{"token"}``
========================  ==========================================================

These endpoints are not recorded in the ledger, not rate limited and never faulted.

They answer this machine's tools, not web pages (:func:`refusal`): any page can make a browser
send a "simple" cross-site POST (``text/plain``, a form, or no body) to ``127.0.0.1``, and a
DNS-rebinding page can read answers under its own name. So the ``Host`` header must be loopback
(403 otherwise), every POST and every body must be ``Content-Type: application/json`` (415:
a browser sends that cross-site only after a CORS preflight, which the emulator never grants),
and when the emulator has a control token the :data:`TOKEN_HEADER` header must carry it (403).
"""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .hosts import host_header_is_loopback
from .http import BodyError, Request, Response
from .times import parse_rfc3339

if TYPE_CHECKING:  # pragma: no cover
    from .core import Emulator


#: The request header that carries the control token, when the emulator was given one.
TOKEN_HEADER = "Emulator-Control-Token"


class ControlError(Exception):
    """A bad control request (400)."""


def refusal(emu: Emulator, request: Request) -> Response | None:
    """The answer refusing a control request a web page could have sent, or None to serve it."""
    if not host_header_is_loopback(request.header("Host")):
        return Response.json(
            403,
            {
                "error": "The control API answers loopback Host headers only "
                "(127.0.0.1, [::1], localhost)."
            },
        )
    token = emu.control_token
    if token is not None:
        sent = request.header(TOKEN_HEADER) or ""
        # Constant time: the answer must not tell how much of a guess was right.
        if not hmac.compare_digest(sent.encode(), token.encode()):
            return Response.json(
                403, {"error": f"The control API needs the control token in {TOKEN_HEADER}."}
            )
    if (request.method == "POST" or request.body) and not _is_json(request.header("Content-Type")):
        return Response.json(
            415,
            {
                "error": "Control requests with a body, and every POST, need "
                "Content-Type: application/json."
            },
        )
    return None


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


def _body(request: Request) -> dict[str, Any]:
    if not request.body:
        return {}
    try:
        data = request.json()
    except BodyError as exc:
        raise ControlError(str(exc)) from None
    if not isinstance(data, dict):
        raise ControlError("The body must be a JSON object.")
    return data


def handle(emu: Emulator, request: Request) -> Response:
    """Answer one control request (after :func:`refusal` let it through)."""
    refused = refusal(emu, request)
    if refused is not None:
        return refused
    path = request.path[len("/__emulator__") :].rstrip("/") or "/"
    method = request.method
    q = request.query_first()
    try:
        body = _body(request)
        result = _dispatch(emu, method, path, q, body)
    except ControlError as exc:
        return Response.json(400, {"error": str(exc)})
    except (ValueError, TypeError, KeyError) as exc:
        return Response.json(400, {"error": f"{type(exc).__name__}: {exc}"})
    if result is None:
        return Response.json(404, {"error": f"No control endpoint {method} {path}"})
    return Response.json(200, result)


def _dispatch(
    emu: Emulator, method: str, path: str, q: dict[str, str], body: dict[str, Any]
) -> Any:
    brand = body.pop("brand_id", None) or q.get("brand_id")
    routes: dict[tuple[str, str], Any] = {
        ("GET", "/"): lambda: emu.describe(),
        ("GET", "/config"): lambda: emu.config.as_dict(),
        ("POST", "/config"): lambda: (emu.configure(**body), emu.config.as_dict())[1],
        ("POST", "/reset"): lambda: (emu.reset(), {"ok": True})[1],
        ("POST", "/clock"): lambda: (
            emu.advance_clock(float(body.get("advance", 0))),
            {"now": emu.clock()},
        )[1],
        ("POST", "/tick"): lambda: (emu.tick(), {"ok": True})[1],
        ("GET", "/ledger"): lambda: [
            e.as_dict() for e in emu.ledger_for(q.get("path_prefix", ""), q.get("method") or None)
        ],
        ("DELETE", "/ledger"): lambda: (emu.clear_ledger(), {"ok": True})[1],
        ("GET", "/contacts"): lambda: emu.contacts(brand),
        ("POST", "/contacts"): lambda: emu.seed_contact(brand, **body),
        ("POST", "/unsubscribe"): lambda: emu.unsubscribe(
            body["email"],
            brand,
            at=_when(body.get("at")),
            updated_at=_when(body.get("updated_at")),
        ),
        ("GET", "/events"): lambda: emu.events(brand),
        ("GET", "/batches"): lambda: emu.batches(brand),
        ("GET", "/faults"): lambda: emu.faults_list(),
        ("POST", "/faults"): lambda: emu.add_fault(**body),
        ("DELETE", "/faults"): lambda: (emu.clear_faults(), {"ok": True})[1],
        ("POST", "/brands"): lambda: emu.add_brand(brand, **body),
        ("POST", "/clients"): lambda: (emu.add_client(brand_id=brand, **body), {"ok": True})[1],
        ("POST", "/api-keys"): lambda: {"api_key": emu.issue_api_key(brand, body.get("scopes"))},
        ("POST", "/tokens"): lambda: emu.issue_token(
            brand, body.get("scopes"), body.get("client_id")
        ),
        ("POST", "/revoke"): lambda: (emu.revoke_token(body["token"]), {"ok": True})[1],
    }
    produce = routes.get((method, path))
    return produce() if produce else None


def _when(value: Any) -> datetime | None:
    if value is None:
        return None
    ts = parse_rfc3339(value)
    if ts is None:
        raise ControlError("'at' must be an RFC 3339 timestamp.")
    return datetime.fromtimestamp(ts).astimezone()

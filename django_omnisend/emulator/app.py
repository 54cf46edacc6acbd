"""The emulator's WSGI application: ledger, faults, then routing.

Every request except the ``/__emulator__`` control endpoints is recorded in the ledger and
passes the fault injector before it is routed: ``latency`` sleeps first; ``reset_before`` and the
error kinds (``429``, ``500``, ``503``, ``400``) answer without touching state; ``reset_after``,
``apply_then_hang`` and ``truncate`` let the request be applied, then drop the connection, stall
past the client's timeout, or cut the JSON body in half.
"""

from __future__ import annotations

import sys
import time
import traceback
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from . import api, control, oauth
from .faults import FaultRule
from .hosts import host_header_is_loopback
from .http import Request, Response
from .ledger import LedgerEntry
from .problems import ApiError, FieldError, validation_error
from .server import AbortConnection

if TYPE_CHECKING:  # pragma: no cover
    from .core import Emulator

OAUTH_ROUTES: dict[str, Callable[[Emulator, Request], Response]] = {
    "/oauth2/authorize": oauth.authorize,
    "/oauth2/token": oauth.token,
    "/oauth2/revoke": oauth.revoke,
    "/oauth2/register": oauth.register,
    "/.well-known/oauth-authorization-server": oauth.metadata,
    "/.well-known/jwks.json": oauth.jwks,
}


def fault_response(rule: FaultRule) -> Response:
    """The canned answer of an error fault (429/500/503/400)."""
    if rule.kind == "429":
        retry_after = rule.params.get("retry_after")
        err = ApiError(
            429,
            "Too many requests.",
            retry_after=retry_after,
            include_retry_after=retry_after is not None,
        )
    elif rule.kind == "400":
        detail = str(rule.params.get("detail") or "Injected validation failure.")
        err = validation_error([FieldError("body", "injected", detail)], detail)
    else:
        err = ApiError(
            int(rule.kind),
            "Injected server error." if rule.kind == "500" else "Service unavailable.",
        )
    return err.response()


class EmulatorApp:
    """The WSGI callable bound to one :class:`~.core.Emulator`."""

    def __init__(self, emu: Emulator) -> None:
        self.emu = emu

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        """WSGI entry point."""
        request = Request.from_environ(environ)
        if request.path.startswith("/__emulator__"):
            response = self._safe(lambda: control.handle(self.emu, request))
        else:
            response = self._handle(request)
        status = f"{response.status} {_reason(response.status)}"
        headers = [(k, v) for k, v in response.headers if k.lower() != "content-length"]
        headers.append(("Content-Length", str(len(response.body))))
        start_response(status, headers)
        return [response.body]

    def _handle(self, request: Request) -> Response:
        emu = self.emu
        started = time.monotonic()
        query = {k: v[0] if len(v) == 1 else v for k, v in request.query.items()}
        entry = LedgerEntry(
            request.method, request.path, query, dict(request.headers), request.body, emu.clock()
        )
        emu.record(entry)
        plan = emu.faults.plan(request.method, request.path)
        entry.fault = plan.kind
        if plan.latency:
            emu.stopping.wait(plan.latency)
        rule = plan.rule
        if rule is not None and rule.kind == "reset_before":
            entry.duration = time.monotonic() - started
            raise AbortConnection
        if rule is not None and rule.kind in ("429", "500", "503", "400"):
            response = fault_response(rule)
        else:
            response = self._safe(lambda: self._route(request, entry))
            emu.after_request(request)
            if rule is not None and rule.kind == "reset_after":
                entry.duration = time.monotonic() - started
                raise AbortConnection
            if rule is not None and rule.kind == "apply_then_hang":
                emu.stopping.wait(float(rule.params.get("seconds", 15.0)))
            if rule is not None and rule.kind == "truncate" and response.body:
                response.body = response.body[: max(1, len(response.body) // 2)]
        entry.status = response.status
        entry.response_body = response.body
        entry.duration = time.monotonic() - started
        return response

    def _route(self, request: Request, entry: LedgerEntry) -> Response:
        path = request.path
        if path == "/api" or path.startswith("/api/"):
            return api.handle_api(self.emu, request, entry)
        if path.startswith("/v4/"):
            return api.handle_v4(self.emu, request, entry)
        handler = OAUTH_ROUTES.get(path)
        if handler is not None:
            return handler(self.emu, request)
        if path == "/" and request.method == "GET":
            # It shows the demo client's secret and an API key: not to a DNS-rebinding page.
            if not host_header_is_loopback(request.header("Host")):
                return Response(
                    403,
                    b"The start page answers loopback Host headers only.\n",
                    [("Content-Type", "text/plain; charset=utf-8")],
                )
            return Response(
                200,
                self.emu.describe_text(oauth.base_url(request)).encode(),
                [("Content-Type", "text/plain; charset=utf-8")],
            )
        return ApiError(404, f"Nothing at {path}.").response()

    @staticmethod
    def _safe(produce: Callable[[], Response]) -> Response:
        try:
            return produce()
        except AbortConnection:
            raise
        except Exception:
            traceback.print_exc(file=sys.stderr)
            return ApiError(500, "Unexpected error in the emulator.").response()


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"

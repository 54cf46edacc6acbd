"""Minimal request/response objects over a WSGI environ (no framework).

Handlers take a :class:`Request` and return a :class:`Response`; ``app.py`` turns the response
into the WSGI ``start_response`` call.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

#: Largest request body the emulator reads (Omnisend advises keeping batches under ~1 MB).
MAX_BODY = 8 * 1024 * 1024


class BodyError(ValueError):
    """The request body is not what the endpoint accepts (bad JSON, too large)."""


@dataclass
class Request:
    """An incoming HTTP request, read completely before any handler runs."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    environ: dict[str, Any] = field(repr=False, default_factory=dict)

    @classmethod
    def from_environ(cls, environ: dict[str, Any]) -> Request:
        """Build a request from a WSGI environ, reading ``wsgi.input`` up to CONTENT_LENGTH."""
        headers: dict[str, str] = {}
        for key, value in environ.items():
            if key.startswith("HTTP_"):
                headers[key[5:].replace("_", "-").title()] = value
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        body = environ["wsgi.input"].read(min(length, MAX_BODY)) if length > 0 else b""
        path = environ.get("PATH_INFO", "/") or "/"
        # PEP 3333 hands PATH_INFO over as latin-1 decoded bytes; re-decode as UTF-8.
        with contextlib.suppress(UnicodeEncodeError, UnicodeDecodeError):
            path = path.encode("latin-1").decode("utf-8")
        return cls(
            method=environ.get("REQUEST_METHOD", "GET").upper(),
            path=path,
            query_string=environ.get("QUERY_STRING", ""),
            headers=headers,
            body=body,
            environ=environ,
        )

    def header(self, name: str, default: str | None = None) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return default

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters, every value kept (``?a=1&a=2`` → ``{"a": ["1", "2"]}``)."""
        return parse_qs(self.query_string, keep_blank_values=True)

    def query_first(self) -> dict[str, str]:
        """Query parameters, first value of each."""
        return {key: values[0] for key, values in self.query.items()}

    def json(self) -> Any:
        """The body parsed as JSON; raises :class:`BodyError` when it is not valid JSON."""
        if not self.body:
            raise BodyError("The request body is empty; a JSON document is required.")
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BodyError(f"The request body is not valid JSON: {exc}") from None

    def form(self) -> dict[str, str]:
        """An ``application/x-www-form-urlencoded`` body, first value of each field."""
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("The form body is not UTF-8.") from None
        return {key: values[0] for key, values in parse_qs(text, keep_blank_values=True).items()}


@dataclass
class Response:
    """What a handler answers: status, headers and the full body."""

    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def json(cls, status: int, data: Any, headers: list[tuple[str, str]] | None = None) -> Response:
        """A JSON response (``application/json``, as Omnisend declares even for problems)."""
        body = json.dumps(data, separators=(",", ":")).encode()
        return cls(status, body, [("Content-Type", "application/json"), *(headers or [])])

    @classmethod
    def empty(cls, status: int) -> Response:
        """A response without a body (202 Accepted, 200 from POST /brands/current)."""
        return cls(status, b"", [])

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        """An HTML page that must never be cached or framed (the consent page)."""
        return cls(
            status,
            text.encode("utf-8"),
            [
                ("Content-Type", "text/html; charset=utf-8"),
                ("Cache-Control", "no-store"),
                ("X-Frame-Options", "DENY"),
                ("Referrer-Policy", "no-referrer"),
            ],
        )

    @classmethod
    def redirect(cls, location: str) -> Response:
        """A 302 redirect."""
        return cls(302, b"", [("Location", location), ("Cache-Control", "no-store")])

    def header(self, name: str) -> str | None:
        """Case-insensitive lookup of a response header."""
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json_body(self) -> Any:
        """The body parsed as JSON, or None when empty or not JSON."""
        return json_or_none(self.body)


def json_or_none(body: bytes) -> Any:
    """``body`` parsed as JSON, or None when it is empty or not JSON (inspection helpers)."""
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def add_query(url: str, params: dict[str, str]) -> str:
    """Append ``params`` to ``url``'s query string, keeping what it already has."""
    parts = urlsplit(url)
    extra = urlencode(params)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))

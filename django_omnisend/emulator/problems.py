"""RFC 9457 problem bodies exactly as Omnisend's OpenAPI files declare them.

``Problem`` = ``type, title, status, detail, instance``; ``ValidationProblem`` adds ``errors[]``
of ``{field, code, message}``; ``RateLimitProblem`` adds ``retryAfter``. Handlers raise
:class:`ApiError`; the gateway renders it with a fresh ``urn:omnisend:request:<uuid>``.
Only the problem types Omnisend documents are used: ``validation-failed`` (400), ``not-found``
(404), ``rate-limit-exceeded`` (429) and the generic ``problem`` for every other status.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from .http import Response

TYPE_BASE = "https://problems.omnisend.com/"

#: status → (type slug, title); slugs are only the documented ones (docs:
#: reference/omnisend-api.rst, 'Errors').
KINDS: dict[int, tuple[str, str]] = {
    400: ("validation-failed", "Validation failed"),
    401: ("problem", "Unauthorized"),
    403: ("problem", "Forbidden"),
    404: ("not-found", "Not found"),
    405: ("problem", "Method not allowed"),
    409: ("problem", "Conflict"),
    410: ("problem", "API version retired"),
    429: ("rate-limit-exceeded", "Rate limit exceeded"),
    500: ("problem", "Internal server error"),
    503: ("problem", "Service unavailable"),
}


def instance_urn() -> str:
    """A fresh request trace id in Omnisend's format."""
    return f"urn:omnisend:request:{uuid.uuid4()}"


@dataclass
class FieldError:
    """One failed field of a validation problem."""

    field: str
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        """The ``FieldError`` schema object."""
        return {"field": self.field, "code": self.code, "message": self.message}


@dataclass
class ApiError(Exception):
    """An error answer of the API, rendered as a problem body."""

    status: int
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    retry_after: int | None = None
    #: For 429 only: whether to include ``retryAfter`` (some endpoints omit it).
    include_retry_after: bool = True
    #: For 400 only: whether the body carries ``errors[]`` (a ``ValidationProblem``); the
    #: operations that declare a plain ``Problem`` for 400 (event metadata) answer without it.
    with_errors: bool = True
    headers: list[tuple[str, str]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"{self.status} {self.detail}"

    def body(self) -> dict[str, Any]:
        """The problem object for this error."""
        return problem_body(
            self.status,
            self.detail,
            errors=self.errors,
            retry_after=self.retry_after if self.include_retry_after else None,
            with_errors=self.with_errors,
        )

    def response(self) -> Response:
        """The HTTP response carrying this problem."""
        return Response.json(self.status, self.body(), self.headers)


def problem_body(
    status: int,
    detail: str,
    *,
    errors: list[FieldError] | None = None,
    retry_after: int | None = None,
    with_errors: bool = True,
) -> dict[str, Any]:
    """Build a problem object; 400s carry ``errors`` (possibly empty) unless ``with_errors``
    is false."""
    slug, title = KINDS.get(status, ("problem", "Problem"))
    body: dict[str, Any] = {
        "type": TYPE_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
        "instance": instance_urn(),
    }
    if status == 400 and with_errors:
        body["errors"] = [e.as_dict() for e in errors or []]
    if retry_after is not None:
        body["retryAfter"] = int(retry_after)
    return body


def validation_error(errors: list[FieldError], detail: str | None = None) -> ApiError:
    """A 400 listing every failed field."""
    return ApiError(400, detail or "One or more fields are invalid.", errors=list(errors))


def bad_request(field_name: str, code: str, message: str) -> ApiError:
    """A 400 with a single field error."""
    return validation_error([FieldError(field_name, code, message)], detail=message)

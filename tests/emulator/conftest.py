"""Helpers for the emulator's own tests: an API caller that validates every answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import requests

from django_omnisend.emulator import Emulator
from tests.openapi import validate_request, validate_response

VERSION = "2026-03-15"


class Api:
    """Calls ``emulator.api_url + path`` and checks the answer against the OpenAPI files.

    Every response body is validated (strictly: no undeclared properties, complete problem
    bodies) against the schema for its status; request bodies are validated unless
    ``check_request=False`` (for deliberately invalid bodies).
    """

    def __init__(self, emulator: Emulator, session: requests.Session, authorization: str) -> None:
        self.emulator = emulator
        self.session = session
        self.authorization = authorization

    def __call__(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Any = None,
        headers: dict[str, str] | None = None,
        authorization: str | None = None,
        version: str | None = VERSION,
        check_request: bool = False,
        timeout: float = 5,
    ) -> requests.Response:
        authorization = self.authorization if authorization is None else authorization
        sent = {"Authorization": authorization} if authorization else {}
        if version is not None:
            sent["Omnisend-Version"] = version
        sent.update(headers or {})
        if check_request and json is not None:
            validate_request(method, path, json)
        response = self.session.request(
            method,
            self.emulator.api_url + path,
            json=json,
            params=params,
            headers=sent,
            timeout=timeout,
        )
        validate_response(method, path, response.status_code, response.content, strict=True)
        return response

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self("DELETE", path, **kwargs)


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@pytest.fixture
def api_key(emulator: Emulator) -> str:
    return emulator.issue_api_key()


@pytest.fixture
def api(emulator: Emulator, http: requests.Session, api_key: str) -> Api:
    return Api(emulator, http, f"Omnisend-API-Key {api_key}")


def contact(
    email: str, status: str | None = None, at: str | None = None, **fields: Any
) -> dict[str, Any]:
    """A ContactRequest with one e-mail identifier (channels only when ``status`` is given)."""
    ident: dict[str, Any] = {"type": "email", "id": email}
    if status is not None:
        channel: dict[str, Any] = {"status": status}
        if at is not None:
            channel["statusChangedAt"] = at
        ident["channels"] = {"email": channel}
    if "sendWelcomeMessage" in fields:
        ident["sendWelcomeMessage"] = fields.pop("sendWelcomeMessage")
    return {"identifiers": [ident], **fields}


def problem(response: requests.Response) -> dict[str, Any]:
    """The problem body, checked for RFC 9457 members and the urn instance."""
    body = response.json()
    assert body["status"] == response.status_code
    assert body["type"].startswith("https://problems.omnisend.com/")
    assert body["instance"].startswith("urn:omnisend:request:")
    assert response.headers["Content-Type"] == "application/json"
    return body

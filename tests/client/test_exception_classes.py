"""Our exceptions are caught by the Django and requests handlers host code already has."""

from __future__ import annotations

import pickle

import django.core.exceptions
import pytest
import requests

from django_omnisend import exceptions
from django_omnisend.client import ApiKeyAuth, BearerAuth, OmnisendClient
from django_omnisend.crypto import encrypt


def test_django_improperly_configured_catches_ours(settings):
    """A real raise from our code (no encryption key outside DEBUG), caught as Django's."""
    settings.DEBUG = False
    settings.OMNISEND = {"ENCRYPTION_KEYS": []}
    with pytest.raises(django.core.exceptions.ImproperlyConfigured) as caught:
        encrypt("secret")
    assert isinstance(caught.value, exceptions.OmnisendImproperlyConfigured)
    assert isinstance(caught.value, exceptions.OmnisendError)
    assert "ENCRYPTION_KEYS" in str(caught.value)


def test_registration_error_is_improperly_configured_too():
    assert issubclass(exceptions.RegistrationError, django.core.exceptions.ImproperlyConfigured)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("ImproperlyConfigured", "OmnisendImproperlyConfigured"),
        ("ValidationError", "OmnisendValidationError"),
        ("PermissionDenied", "OmnisendPermissionDenied"),
    ],
)
def test_the_former_names_are_the_same_classes(old, new):
    assert getattr(exceptions, old) is getattr(exceptions, new)
    assert getattr(exceptions, new).__name__ == new  # tracebacks no longer read like Django's


def _contact(email: str) -> dict:
    return {"identifiers": [{"type": "email", "id": email, "channels": {}}]}


def test_api_errors_are_requests_http_errors(emulator):
    """Real error answers from the emulator, caught by a plain ``except requests.HTTPError``."""
    client = OmnisendClient(
        ApiKeyAuth(emulator.issue_api_key()), api_url=emulator.api_url, max_retries=0
    )
    with pytest.raises(requests.HTTPError) as caught:
        client.contacts.upsert(_contact("not-an-email"))
    assert type(caught.value) is exceptions.OmnisendValidationError
    assert caught.value.status == 400

    token = emulator.issue_token(scopes=["contacts.read"])["access_token"]
    client = OmnisendClient(BearerAuth(token), api_url=emulator.api_url, max_retries=0)
    with pytest.raises(requests.HTTPError) as caught:
        client.contacts.upsert(_contact("scope@example.com"))
    assert type(caught.value) is exceptions.OmnisendPermissionDenied
    assert caught.value.status == 403
    # Not Django's PermissionDenied: a view would answer the visitor 403 for the site's
    # credential problem.
    assert not isinstance(caught.value, django.core.exceptions.PermissionDenied)


def test_transport_errors_are_requests_exceptions_without_the_request():
    """Nothing listens on port 9: the connection is refused, and ``except
    requests.RequestException`` catches our error, which holds no request or response."""
    client = OmnisendClient(ApiKeyAuth("k"), api_url="http://127.0.0.1:9/api", max_retries=0)
    with pytest.raises(requests.RequestException) as caught:
        client.contacts.get("someone-id")
    error = caught.value
    assert isinstance(error, exceptions.TransportError)
    assert error.kind == "connection"
    assert error.request is None and error.response is None
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), copy.kind, str(copy)) == (type(error), "connection", str(error))

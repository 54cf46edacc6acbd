"""Django's technical 500 page after a 401 in a host view shows no token (issue 15 item 5).

A host view calls ``get_client().brands.current()`` on an OAuth connection whose access and
refresh tokens Omnisend has revoked; the ``AuthenticationError`` escapes the view and Django
renders its DEBUG=True error page (the test client with ``raise_request_exception=False``).
The page lists every frame's locals and the exception's chain; none may show a token or the
client secret. Also after a transport failure (connection refused), whose ``requests`` and
``urllib3`` frames hold the ``Authorization`` header when chained.
"""

from __future__ import annotations

import socket

import pytest
from django.http import HttpResponse
from django.test import Client, override_settings
from django.urls import path

from django_omnisend.connect import get_client

from .test_client_tokens import oauth_connection


def brand_view(request):
    """A host view that talks to Omnisend and lets errors escape (as a real bug would)."""
    client = get_client(**({"api_url": request.GET["api_url"]} if "api_url" in request.GET else {}))
    return HttpResponse(client.brands.current()["brandID"])


urlpatterns = [path("brand/", brand_view)]


def error_page(url: str) -> str:
    with override_settings(DEBUG=True):
        response = Client(raise_request_exception=False).get(url)
    assert response.status_code == 500
    return response.content.decode()


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_technical_500_after_a_401_shows_no_token(emulator, emulator_settings):
    _, token = oauth_connection(emulator)
    emulator.revoke_token(token["access_token"])
    emulator.revoke_token(token["refresh_token"])
    page = error_page("/brand/")
    assert "AuthenticationError" in page  # it is the page of that error
    for secret in (token["access_token"], token["refresh_token"], emulator.demo_client_secret):
        assert secret not in page


@pytest.mark.urls(__name__)
@pytest.mark.django_db
def test_technical_500_after_a_refused_connection_shows_no_token(emulator, emulator_settings):
    _, token = oauth_connection(emulator)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    page = error_page(f"/brand/?api_url=http://127.0.0.1:{port}/api")
    assert "TransportError" in page
    assert token["access_token"] not in page

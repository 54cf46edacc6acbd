"""The strict emulator checks recommended events as Omnisend documents them (API 2026-03-15)."""

from __future__ import annotations

import pytest

from django_omnisend import commerce
from django_omnisend.api import ApiKeyAuth, OmnisendClient
from django_omnisend.exceptions import ValidationError

from .test_builders import _every_event

CONTACT = {"email": "guest@example.com"}


@pytest.fixture
def strict_client(emulator):
    emulator.configure(strict=True)
    with OmnisendClient(ApiKeyAuth(emulator.issue_api_key()), api_url=emulator.api_url) as client:
        yield client


def test_strict_emulator_accepts_every_builder_output(strict_client, emulator):
    for event in _every_event():
        strict_client.events.send(commerce.as_request(event, CONTACT, "api"))
    assert len(emulator.events()) == len(_every_event())


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"eventVersion": "v1"}, "eventVersion"),
        ({"eventVersion": ""}, "eventVersion"),
        ({"properties": {"currency": "EUR"}}, "properties.orderID"),
    ],
)
def test_strict_emulator_refuses_a_wrong_version_or_missing_property(strict_client, change, field):
    body = {**commerce.as_request(_every_event()[0], CONTACT, "api"), **change}
    with pytest.raises(ValidationError) as caught:
        strict_client.events.send(body)
    assert field in str(caught.value.detail) + str(caught.value.errors)

"""The drain's "requests N" counts requests that reached the wire, checked against the emulator."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import override_settings

from django_omnisend.models import Connection
from django_omnisend.sync import drain

pytestmark = pytest.mark.django_db


def make_users(count):
    for n in range(count):
        get_user_model().objects.create_user(f"user{n}", f"user{n}@example.com")


def test_requests_the_budget_refused_are_not_counted(sync_settings, emulator, api_requests):
    make_users(12)
    out = StringIO()
    with override_settings(OMNISEND={**sync_settings, "RATE_LIMIT": 5}):
        call_command("omnisend_drain", "--once", stdout=out)
    received = len(api_requests())
    assert 0 < received < 12  # the budget refused some
    assert re.search(r"\brequests (\d+)\b", out.getvalue()).group(1) == str(received)


def test_a_request_resent_after_a_token_refresh_counts_twice(sync_settings, emulator, api_requests):
    tokens = emulator.issue_token()
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo Shop")
    connection.set_tokens("expired-at-omnisend", tokens["refresh_token"], expires_in=3600)
    connection.save()
    make_users(1)
    result = drain()
    assert result.synced == 1
    assert [e.status for e in api_requests()] == [401, 201]
    assert result.requests == len(api_requests()) == 2

"""The typed settings: one property per ``OMNISEND`` key, always read fresh."""

from __future__ import annotations

import os
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest
from django.test import override_settings

from django_omnisend.conf import DEFAULTS, OmnisendSettings, omnisend_settings

#: Properties whose value is derived, not the key's value as set (documented on each).
DERIVED = {
    "CLIENT_REGISTRATION": "also False while CLIENT_ID is set",
    "SCOPES": "gains products.* with catalog sync",
    "API_URL": "without a trailing slash",
}


def _property(key: str) -> property:
    prop = getattr(OmnisendSettings, key.lower(), None)
    assert isinstance(prop, property), f"OmnisendSettings has no property {key.lower()}"
    return prop


def _runtime_types(key: str) -> tuple[type, ...]:
    """The classes a property's return annotation allows (``float | None`` -> float, None)."""
    hint = typing.get_type_hints(_property(key).fget)["return"]
    if hint is typing.Any:
        return (object,)
    args = (
        typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else ()
    )
    options = args or (hint,)
    return tuple(typing.get_origin(o) or o for o in options)


@pytest.mark.parametrize("key", sorted(DEFAULTS))
@override_settings(OMNISEND={})
def test_every_key_has_a_typed_property_that_reads_its_default(key):
    value = getattr(omnisend_settings, key.lower())
    assert isinstance(value, _runtime_types(key)), (key, value)
    if key not in DERIVED and not isinstance(DEFAULTS[key], list):
        assert value == DEFAULTS[key]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("LEASE_SECONDS", 90, 90.0),
        ("MAX_ATTEMPTS", 3, 3),
        ("TASK_BACKEND", None, None),
        ("TASK_QUEUE", "omnisend", "omnisend"),
        ("EVENT_HISTORY_SECONDS", None, None),
        ("EVENT_HISTORY_SECONDS", 60, 60.0),
        ("NOISE_FIELDS", ("last_login", "updated"), ["last_login", "updated"]),
        ("API_URL", "http://127.0.0.1:9/api/", "http://127.0.0.1:9/api"),
        ("CLIENT_ID", None, ""),
        ("EVENTS", {"signed up": {}}, {"signed up": {}}),
        ("MARK_WITH", "trigger", "trigger"),
    ],
)
def test_a_property_reads_the_project_value_fresh(key, value, expected):
    before = getattr(omnisend_settings, key.lower())
    with override_settings(OMNISEND={key: value}):
        got = getattr(omnisend_settings, key.lower())
        assert got == expected
        assert isinstance(got, _runtime_types(key))
        assert omnisend_settings.get(key) == value  # get() returns the value as set
    assert getattr(omnisend_settings, key.lower()) == before  # nothing was cached


def test_client_registration_is_off_while_a_client_id_is_set():
    with override_settings(OMNISEND={"CLIENT_REGISTRATION": True}):
        assert omnisend_settings.client_registration is True
    with override_settings(OMNISEND={"CLIENT_REGISTRATION": True, "CLIENT_ID": "c"}):
        assert omnisend_settings.client_registration is False


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="NOPE"):
        omnisend_settings.get("NOPE")
    with pytest.raises(AttributeError):
        omnisend_settings.NOPE  # noqa: B018


def test_the_defaults_are_read_when_django_settings_are_not_configured():
    """The HTTP client works standalone: no DJANGO_SETTINGS_MODULE, no settings.configure()."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    code = (
        "from django.conf import settings; assert not settings.configured\n"
        "from django_omnisend.client import ApiKeyAuth, OmnisendClient\n"
        "c = OmnisendClient(ApiKeyAuth('k'))\n"
        "print(c.api_url, c.timeout, c.max_retries)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == [DEFAULTS["API_URL"], str(float(DEFAULTS["REQUEST_TIMEOUT"])), "2"]

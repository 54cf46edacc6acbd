"""Reasons people act on: shortened at word boundaries, and naming why delivery is held."""

from __future__ import annotations

import pytest

from django_omnisend.text import shorten

SENTENCE = "The stored credentials cannot be decrypted; reconnect (OAuth) or enter the API key."


@pytest.mark.parametrize("limit", range(12, len(SENTENCE) + 5))
def test_shorten_ends_on_a_whole_word_within_the_limit(limit):
    short = shorten(SENTENCE, limit)
    assert len(short) <= limit
    if len(SENTENCE) <= limit:
        assert short == SENTENCE
    else:
        assert short.endswith("…")
        kept = short.removesuffix("…").split()
        words = SENTENCE.split()[: len(kept)]
        # Whole words; punctuation before the ellipsis is dropped ("decrypted;" -> "decrypted…").
        assert kept[:-1] == words[:-1] and kept[-1] == words[-1].rstrip(",;:")


def test_shorten_keeps_spacing_and_cuts_only_a_word_longer_than_the_limit():
    assert shorten("a  b\tc", 10) == "a  b\tc"
    assert shorten("x" * 50, 10) == "x" * 9 + "…"
    assert shorten("short " + "y" * 50, 20) == "short…"


def make_user(name="jane"):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(name, f"{name}@example.com")


def drain_output(*args):
    """``omnisend_drain ARGS``: its output, and its error message ("" when it exits 0)."""
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    try:
        call_command("omnisend_drain", *args, stdout=out, stderr=StringIO())
    except CommandError as exc:
        assert exc.returncode == 1
        return out.getvalue(), str(exc)
    return out.getvalue(), ""


@pytest.mark.django_db
def test_the_drain_says_why_a_connection_is_paused(sync_settings, emulator):
    from django.test import override_settings

    make_user()
    key = "65f0a1b2c3d4e5f600000001-not-a-real-key"
    with override_settings(OMNISEND={**sync_settings, "API_KEY": key}):
        first = drain_output("--once")
        again = drain_output("--once")  # held by the pause: no request
    for output, error in (first, again):
        assert "paused: default (credential rejected (401). Omnisend says:" in output
        assert error.startswith("Delivery to connection 'default' is paused: credential rejected")
        for text in (output, error):
            assert 'OMNISEND["API_KEY"]' in text and key not in text


@pytest.mark.django_db
def test_a_retired_api_version_pauses_until_the_setting_is_fixed(sync_settings, emulator):
    from django.test import override_settings

    from django_omnisend.models import Connection, SyncState

    make_user()
    with override_settings(OMNISEND={**sync_settings, "API_VERSION": "2025-01-01"}):
        output, error = drain_output("--once")
        assert "paused: default (API version retired (410)." in output
        assert 'OMNISEND["API_VERSION"]' in error
        assert "requests 0" in drain_output("--once")[0]  # still paused
    assert drain_output("--once") == (
        "synced 1, unchanged 0, skipped 0, retrying 0, dead 0, events 0, erasures 0, "
        "deferred 0, requests 1\n",
        "",
    )  # the fixed setting resumes delivery
    assert not SyncState.objects.filter(dirty=True).exists()
    assert not Connection.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("fault", "settings_change", "expected"),
    [
        pytest.param(
            {"kind": "reset_before"}, {}, "closed the connection before answering", id="reset"
        ),
        pytest.param(
            {"kind": "latency", "seconds": 2.0},
            {"REQUEST_TIMEOUT": 0.3},
            "did not answer in time (timeout)",
            id="timeout",
        ),
        pytest.param({"kind": "503"}, {}, "Omnisend answered 503", id="503"),
        pytest.param(
            None,
            {"API_URL": "http://api.omnisend.invalid/api"},
            "the host name of api.omnisend.invalid could not be resolved (DNS)",
            id="dns",
        ),
    ],
)
def test_the_drain_names_why_omnisend_did_not_answer(
    sync_settings, emulator, fault, settings_change, expected
):
    from django.test import override_settings

    make_user()
    if fault:
        emulator.add_fault(route="POST /api/contacts", **fault)
    with override_settings(OMNISEND={**sync_settings, **settings_change}):
        _, message = drain_output("--once")
    assert message.startswith("Omnisend unreachable: ") and expected in message
    assert "jane@example.com" not in message and sync_settings["API_KEY"] not in message

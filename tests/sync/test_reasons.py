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
    from io import StringIO

    from django.core.management import call_command

    out = StringIO()
    call_command("omnisend_drain", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.mark.django_db
def test_the_drain_says_why_a_connection_is_paused(sync_settings, emulator):
    from django.test import override_settings

    make_user()
    key = "65f0a1b2c3d4e5f600000001-not-a-real-key"
    with override_settings(OMNISEND={**sync_settings, "API_KEY": key}):
        first = drain_output("--once")
        again = drain_output("--once")  # held by the pause: no request
    for output in (first, again):
        assert "paused: default (credential rejected (401). Omnisend says:" in output
        assert 'OMNISEND["API_KEY"]' in output and key not in output


@pytest.mark.django_db
def test_a_retired_api_version_pauses_until_the_setting_is_fixed(sync_settings, emulator):
    from django.test import override_settings

    from django_omnisend.models import Connection, SyncState

    make_user()
    with override_settings(OMNISEND={**sync_settings, "API_VERSION": "2025-01-01"}):
        output = drain_output("--once")
        assert "paused: default (API version retired (410)." in output
        assert 'OMNISEND["API_VERSION"]' in output
        assert "requests 0" in drain_output("--once")  # still paused
    assert "synced 1" in drain_output("--once")  # the fixed setting resumes delivery
    assert not SyncState.objects.filter(dirty=True).exists()
    assert not Connection.objects.exists()

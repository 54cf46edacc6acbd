"""``omnisend_status``: what an operator and a monitor see, and the exit-code contract."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings
from django.utils import timezone

from django_omnisend import crypto, ratelimit
from django_omnisend.models import Connection, OutboxItem, SyncState
from django_omnisend.ratelimit import RateLimiter
from django_omnisend.sync import drain
from django_omnisend.sync import gates as delivery
from django_omnisend.text import moment
from tests.sync.outage import omnisend_down

pytestmark = pytest.mark.django_db

User = get_user_model()


def status(*args: str) -> tuple[str, int]:
    """The command's stdout and exit code (0, or the CommandError's returncode)."""
    out = StringIO()
    try:
        call_command("omnisend_status", *args, stdout=out)
    except CommandError as exc:
        return out.getvalue(), exc.returncode
    return out.getvalue(), 0


def make_user(name="jane"):
    return User.objects.create_user(username=name, email=f"{name}@example.com", first_name="J")


def test_healthy_with_the_settings_api_key(sync_settings, emulator):
    make_user()
    drain()
    output, code = status()
    assert code == 0
    key = sync_settings["API_KEY"]
    assert f"API key from settings (brand {emulator.default_brand_id})" in output
    assert f"credential {crypto.fingerprint(key)}" in output
    assert key not in output and key.partition("-")[2] not in output
    assert "synced 1" in output and "Oldest pending: none" in output
    assert output.rstrip().endswith("Healthy")


def test_json_output_parses(sync_settings, emulator):
    make_user()
    make_user("joe")
    drain()
    SyncState.objects.filter(user__username="joe").update(
        dirty=True, state=SyncState.State.PENDING, dirtied_at=timezone.now()
    )
    output, code = status("--json")
    report = json.loads(output)
    assert code == 0 and report["healthy"] is True and report["problems"] == []
    assert report["counts"]["synced"] == 1 and report["counts"]["pending"] == 1
    assert report["connection"]["source"] == "settings"
    assert report["connection"]["auth_type"] == "api_key"
    assert report["oldest_pending_age_seconds"] < 60
    assert report["budget"]["limit"] == 300 and report["budget"]["window_seconds"] == 60
    assert sync_settings["API_KEY"] not in output


def test_connection_row_shows_brand_and_fingerprint_never_the_secret(sync_settings, emulator):
    key = emulator.issue_api_key()
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo Shop")
    connection.set_api_key(key)
    connection.save()
    output, code = status()
    assert code == 0
    assert f"Connection: Demo Shop (brand {emulator.default_brand_id}), api_key, active" in output
    assert connection.fingerprint in output and key not in output
    report = json.loads(status("--json")[0])
    assert report["connection"]["brand_name"] == "Demo Shop"
    assert key not in json.dumps(report)


def test_connection_needing_reconnect_is_unhealthy(sync_settings, emulator):
    connection = Connection(brand_id="b1", brand_name="Demo Shop")
    connection.set_tokens("old-token")
    connection.status = Connection.Status.NEEDS_RECONNECT
    connection.status_reason = "Omnisend rejected the access token (HTTP 401)."
    connection.save()
    output, code = status()
    assert code == 2
    assert "needs_reconnect" in output and "rejected the access token" in output
    assert "old-token" not in output


def test_no_credentials_is_unhealthy(emulator_settings):
    with override_settings(OMNISEND={**emulator_settings, "API_KEY": ""}):
        output, code = status()
    assert code == 2 and "Connection: none" in output and "no credentials" in output


def test_paused_connection_is_unhealthy(sync_settings, emulator):
    delivery.pause("default", "401: Omnisend rejected the API key")
    output, code = status()
    assert code == 2
    assert "connection 'default' paused: 401: Omnisend rejected the API key" in output
    report = json.loads(status("--json")[0])
    assert report["paused"] == [
        {"connection_key": "default", "reason": "401: Omnisend rejected the API key"}
    ]
    with pytest.raises(CommandError) as excinfo:
        call_command("omnisend_status", stdout=StringIO())
    assert excinfo.value.returncode == 2 and "paused" in str(excinfo.value)


def test_dead_rows_are_unhealthy_and_the_last_error_shows(sync_settings, emulator):
    user = make_user()
    SyncState.objects.filter(user=user).update(
        state=SyncState.State.DEAD,
        dirty=False,
        reason="validation",
        last_status=400,
        last_error="ValidationError: gender: Must be m or f.",
    )
    output, code = status()
    assert code == 2 and "1 dead contact sync(s)" in output
    assert "Last error (sync, dead): ValidationError: gender: Must be m or f." in output


def test_dead_outbox_items_are_unhealthy(sync_settings, emulator):
    OutboxItem.objects.create(
        kind=OutboxItem.Kind.EVENT, state=OutboxItem.State.DEAD, last_error="ValidationError: x"
    )
    output, code = status()
    assert code == 2 and "1 dead event/erasure(s)" in output
    assert json.loads(status("--json")[0])["last_error"]["source"] == "event"


def test_stale_pending_is_unhealthy_with_max_age(sync_settings, emulator):
    user = make_user()
    SyncState.objects.filter(user=user).update(dirtied_at=timezone.now() - timedelta(seconds=1200))
    output, code = status()
    assert code == 2 and "oldest pending change is 1200 s old (max 900 s)" in output
    assert status("--max-age", "3600")[1] == 0
    report = json.loads(status("--json", "--max-age", "60")[0])
    assert report["healthy"] is False and report["oldest_pending_age_seconds"] >= 1200


def test_shared_budget_usage_is_shown(sync_settings, emulator, monkeypatch):
    # Pretend the test cache (LocMem) is a shared one, as Redis would be in production.
    monkeypatch.setattr(ratelimit, "cache_is_shared", lambda cache: True)
    make_user()
    make_user("joe")
    drain()
    report = json.loads(status("--json", "--offline")[0])
    assert report["budget"]["shared"] is True and report["budget"]["used"] == 2
    assert "Budget: 2/300 requests in the last 60 s" in status("--offline")[0]
    # The credential check draws from the budget too; the figure shown is from before it.
    assert "Budget: 2/300 requests" in status()[0]
    assert "Budget: 3/300 requests" in status()[0]


@pytest.mark.parametrize("shared", [True, False], ids=["shared", "per-process"])
def test_ratelimiter_usage_is_read_only(shared):
    from django.core.cache import caches

    clock = [1000.0]
    limiter = RateLimiter(
        "brand",
        budget=5,
        window=60,
        cache=caches["default"] if shared else None,
        shared=shared,
        clock=lambda: clock[0],
    )
    assert limiter.usage() == 0
    for _ in range(3):
        assert limiter.try_acquire() == 0.0
    assert limiter.usage() == limiter.usage() == 3  # reading takes no slot
    assert limiter.try_acquire() == 0.0 and limiter.usage() == 4
    clock[0] += 62  # the window (plus margin) has slid past them
    assert limiter.usage() == 0


def test_bad_max_age_is_a_usage_error(sync_settings):
    with pytest.raises(CommandError, match="max-age") as excinfo:
        call_command("omnisend_status", "--max-age", "-1")
    assert excinfo.value.returncode == 1


def test_expired_token_without_refresh_token_is_unusable(sync_settings):
    connection = Connection(brand_id="b1", brand_name="Demo Shop")
    connection.set_tokens("short-lived", expires_in=1)
    connection.expires_at = timezone.now() - timedelta(minutes=1)
    connection.save()
    output, code = status()
    assert code == 2 and "connection not usable (active)" in output
    connection.refresh_token = "can-refresh"
    connection.save()
    assert status("--offline")[1] == 0  # a refresh token makes it usable
    output, code = status()  # but Omnisend does not know this one
    assert code == 2 and "needs a reconnect" in output


@pytest.mark.triggers
def test_marking_mode_and_trigger_state_are_shown(sync_settings, emulator):
    from django_omnisend.sync import triggers

    output, _ = status()
    assert "Marking: signal\n" in output
    trigger_settings = {**sync_settings, "MARK_WITH": "trigger"}
    with override_settings(OMNISEND=trigger_settings):
        output, _ = status()
        assert "Marking: trigger (missing: the receiver marks meanwhile; run migrate)" in output
        triggers.install()
        report = json.loads(status("--json")[0])
        assert report["marking"] == {"mark_with": "trigger", "triggers": "installed"}
    output, _ = status()  # back to "signal" with the triggers still there
    assert "Marking: signal (triggers left on the user table: run migrate)" in output


def last_word_is_whole(shown: str, source: str) -> bool:
    """Whether ``shown`` (maybe shortened with "…") ends with a whole word of ``source``."""
    words = shown.removesuffix("…").split()
    return bool(words) and words[-1] in source.split()


def test_changed_encryption_keys_never_cut_a_reason_mid_word(sync_settings, emulator):
    from cryptography.fernet import Fernet

    from django_omnisend.connect import client_for_key
    from django_omnisend.exceptions import NeedsReconnect

    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo Shop")
    connection.set_api_key(emulator.issue_api_key())
    connection.save()
    make_user()
    rotated = {**sync_settings, "ENCRYPTION_KEYS": [Fernet.generate_key().decode()]}
    with override_settings(OMNISEND=rotated):
        with pytest.raises(CommandError, match="needs reconnect"):
            call_command("omnisend_drain", "--once", stdout=StringIO(), stderr=StringIO())
        with pytest.raises(NeedsReconnect) as excinfo:
            client_for_key("default")
        source = str(excinfo.value)
        report = json.loads(status("--json")[0])
        output, code = status()
    assert code == 2
    (paused,) = report["paused"]
    assert "cannot be decrypted" in paused["reason"]
    assert last_word_is_whole(paused["reason"], source), paused["reason"]
    for line in output.splitlines():
        if "paused" in line:
            assert last_word_is_whole(line.rstrip(")"), source), line


def test_a_long_last_error_is_shortened_at_a_word_boundary(sync_settings, emulator):
    user = make_user()
    text = "ValidationError: " + "abcdefghij " * 60
    SyncState.objects.filter(user=user).update(state=SyncState.State.FAILED, last_error=text)
    output, _ = status()
    (line,) = [line for line in output.splitlines() if line.startswith("Last error")]
    assert line.endswith("abcdefghij…") and len(line) < 350


# -- the credential is verified with one cheap call --------------------------------------------


def verification_requests(api_requests):
    return [(e.method, e.path, e.query) for e in api_requests()]


def test_status_verifies_the_credential_with_one_cheap_call(sync_settings, emulator, api_requests):
    output, code = status()
    assert code == 0 and "Credential: verified (Omnisend accepted it just now)" in output
    assert verification_requests(api_requests) == [("GET", "/api/contacts", {"limit": "1"})]
    report = json.loads(status("--json")[0])
    assert report["credential"]["verified"] is True
    assert report["credential"]["outcome"] == "verified"


def test_a_wrong_api_key_is_not_healthy(sync_settings, emulator, api_requests):
    key = f"{emulator.default_brand_id}-not-the-real-secret"
    with override_settings(OMNISEND={**sync_settings, "API_KEY": key}):
        output, code = status()
        report = json.loads(status("--json")[0])
    assert code == 2
    assert "Credential: refused just now, credential rejected (401)" in output
    assert "Healthy" not in output
    (problem,) = report["problems"]
    assert problem.startswith("credential rejected (401). Omnisend says: The API key is invalid.")
    assert 'OMNISEND["API_KEY"]' in problem
    assert report["credential"]["verified"] is False
    assert key not in output + json.dumps(report) and key.partition("-")[2] not in output
    assert len(api_requests()) == 2  # one per run


def test_a_key_without_the_contacts_permission_is_not_healthy(sync_settings, emulator):
    key = emulator.issue_api_key(scopes=["contacts.write", "events.write"])
    with override_settings(OMNISEND={**sync_settings, "API_KEY": key}):
        output, code = status()
    assert code == 2 and "permission denied (403)" in output and "contacts.read" in output


def test_a_rejected_connection_row_is_flagged_for_a_reconnect(sync_settings, emulator):
    key = emulator.issue_api_key()
    connection = Connection(brand_id=emulator.default_brand_id, brand_name="Demo Shop")
    connection.set_api_key(key)
    connection.save()
    assert status()[1] == 0
    connection.refresh_from_db()
    assert connection.checked_at is not None  # "last checked at" in the admin
    emulator.revoke_api_key(key)
    output, code = status()
    assert code == 2 and "credential rejected (401)" in output
    connection.refresh_from_db()
    assert connection.status == Connection.Status.NEEDS_RECONNECT


def test_unreachable_omnisend_is_stated_not_verified_since(sync_settings, emulator):
    make_user()
    drain()
    synced_at = SyncState.objects.get().synced_at
    with omnisend_down(sync_settings) as down:
        output, code = status()
        report = json.loads(status("--json")[0])
    assert code == 2 and "Healthy" not in output
    since = moment(synced_at)
    assert f"Credential: not verified since {since}" in output
    (problem,) = report["problems"]
    assert problem.startswith(
        f"Omnisend unreachable (connection refused by {down['host']}): credential not verified "
        f"since {since}"
    )
    assert 'OMNISEND["API_URL"]' in problem
    assert report["credential"]["outcome"] == "unreachable"
    assert report["credential"]["last_accepted"] == synced_at.isoformat()


def test_offline_skips_the_call(sync_settings, emulator, api_requests):
    with omnisend_down(sync_settings):
        output, code = status("--offline")
    assert code == 0 and "Credential: not verified (--offline)" in output
    assert status("--offline")[1] == 0 and api_requests() == []

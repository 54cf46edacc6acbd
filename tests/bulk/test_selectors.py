"""Which users ``omnisend_sync_contacts`` covers: ``--all`` (the README's spelling) and the
filters, which ``--all`` contradicts."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import override_settings

from .test_sync_contacts import existing_users, sync_contacts

pytestmark = pytest.mark.django_db

User = get_user_model()


def test_all_sends_every_user(sync_settings, emulator):
    existing_users(3)  # bulk-created: no sync rows
    with override_settings(OMNISEND={**sync_settings, "SYNC_USERS": False}):
        User.objects.create_user(username="late", email="late@example.com")
    User.objects.create_user(username="known", email="known@example.com")  # marked by save()

    out = sync_contacts("--all")

    assert "Marked 5 users for sync." in out and "Sent 5," in out
    assert {c["email"] for c in emulator.contacts()} == {
        "user0@example.com",
        "user1@example.com",
        "user2@example.com",
        "late@example.com",
        "known@example.com",
    }


def test_no_selector_means_every_user_too(sync_settings, emulator):
    existing_users(2)
    assert "Dry run: 2 users selected" in sync_contacts("--dry-run")
    assert "Dry run: 2 users selected" in sync_contacts("--dry-run", "--all")


@pytest.mark.parametrize(
    "selector", [["--since", "2020-01-01"], ["--user-id", "1"], ["--never-synced"]]
)
def test_all_with_a_filter_is_refused_before_anything_is_marked(sync_settings, selector):
    existing_users(2)
    with pytest.raises(CommandError, match=f"--all.*{selector[0]}") as excinfo:
        sync_contacts("--all", *selector)
    assert "drop" in str(excinfo.value)
    from django_omnisend.models import SyncState

    assert not SyncState.objects.exists()


def test_help_lists_all_and_the_default(capsys):
    with pytest.raises(SystemExit):
        call_command("omnisend_sync_contacts", "--help")
    text = " ".join(capsys.readouterr().out.split())
    assert "--all" in text
    assert "Every user (the default when no filter is given)" in text

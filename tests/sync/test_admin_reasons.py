"""Hostile and unusual addresses end with a reason an admin can act on, never a crashed drain.

Each row's reason code is shown in the sync admin as a sentence saying what happened and what
to do; the drain keeps going past every one of them and sends nothing that breaks the rules.
"""

from __future__ import annotations

import html

import pytest
from django.contrib.auth import get_user_model
from django.test import override_settings

from django_omnisend.models import SyncState
from django_omnisend.sync import drain
from django_omnisend.sync.reasons import REASONS, describe

pytestmark = pytest.mark.django_db

User = get_user_model()

#: Address typed at sign-up -> the reason its row must carry.
HOSTILE = {
    "not-an-address": "invalid_email",
    "two@@example.com": "invalid_email",
    "j\u0430ne@example.com": "invalid_email",  # Cyrillic a
    "jane@exa\u200bmple.com": "invalid_email",  # zero-width space
    "JANE@Example.COM": "duplicate_email",  # a case variant of the owner's address
    "": "no_email",
}


def test_every_reason_the_code_records_has_a_sentence():
    from django_omnisend.sync import identity, payloads
    from django_omnisend.sync import policy as sync

    codes = {
        value
        for name, value in vars(payloads.SkipReason).items()
        if name.isupper() and isinstance(value, str)
    }
    codes |= {binding.value for binding in identity.Binding} - {"bound"}
    codes |= {sync.UNVERIFIED, sync.CONSENT_OUTDATED, "consent_conflict", "discarded"}
    codes |= {"email_conflict", "validation", "max_attempts", "error"}
    assert codes - set(REASONS) == set()
    for code in codes:
        text = describe(code)
        assert text.endswith(".") and len(text) > 40, code


def test_an_http_status_reason_names_the_status():
    assert "HTTP 422" in describe("http_422")
    assert describe("") == ""
    assert "some_new_reason" in describe("some_new_reason")


def test_hostile_addresses_get_reasons_the_admin_explains(
    sync_settings, emulator, admin_client, admin_user
):
    owner = User.objects.create_user("owner", "jane@example.com", first_name="Owner")
    users = {
        address: User.objects.create_user(f"u{n}", address, first_name="Typed")
        for n, address in enumerate(HOSTILE)
    }
    with override_settings(OMNISEND={**sync_settings}):
        drain()
    reasons = {a: SyncState.objects.get(user=u).reason for a, u in users.items()}
    assert reasons == HOSTILE
    assert SyncState.objects.get(user=owner).state == SyncState.State.SYNCED
    # Of all these, only the owner's contact was written, with the owner's names (beside the
    # admin_client fixture's superuser, where its user model gives it an address).
    written = {c["email"] for c in emulator.contacts()}
    assert written - {admin_user.email} == {"jane@example.com"}
    assert emulator.get_contact("jane@example.com")["firstName"] == "Owner"

    page = admin_client.get("/admin/django_omnisend/syncstate/")
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    for reason in set(HOSTILE.values()):
        assert describe(reason) in text
    row = SyncState.objects.get(user=users["not-an-address"])
    detail = admin_client.get(f"/admin/django_omnisend/syncstate/{row.pk}/change/")
    assert detail.status_code == 200
    assert describe("invalid_email") in html.unescape(detail.content.decode())

"""A user model whose default manager hides some users (soft deletes) (issue 14).

The drain loads each user through ``_default_manager``; a site whose default manager filters
out soft-deleted users leaves their sync rows pointing at users it cannot load. Such a row is
skipped with a reason, not left dirty and re-claimed every lease for ever; a later save (the
user restored) marks it again.

The test user model is ``auth.User``, whose default manager filters nothing; giving it one that
does (``is_active`` as the soft-delete flag) stands in for a site's own user model, which the
test settings cannot swap per test.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import UserManager

from django_omnisend.models import SyncState
from django_omnisend.sync import drain
from django_omnisend.sync.policy import USER_NOT_LOADABLE

pytestmark = pytest.mark.django_db

User = get_user_model()


class NotSoftDeleted(UserManager):
    """A default manager that hides soft-deleted (here: inactive) users."""

    def get_queryset(self):
        return super().get_queryset().filter(is_active=True)


@pytest.fixture
def soft_deleting_manager(monkeypatch):
    manager = NotSoftDeleted()
    manager.model, manager.name = User, "objects"
    monkeypatch.setattr(User._meta, "default_manager", manager)
    assert User._default_manager is manager


def test_a_user_the_default_manager_hides_is_skipped_not_retried(
    sync_settings, emulator, soft_deleting_manager, contact_writes
):
    user = User.objects.create_user("jane", "jane@example.com", "x", first_name="Jane")
    user.is_active = False  # soft-deleted before its first sync
    user.save()
    assert not User._default_manager.filter(pk=user.pk).exists()

    result = drain()
    row = SyncState.objects.get(user_id=user.pk)
    assert result.skipped[USER_NOT_LOADABLE] == 1, result.as_dict()
    assert (row.dirty, row.state, row.reason) == (False, SyncState.State.SKIPPED, USER_NOT_LOADABLE)
    assert (row.lease_owner, row.lease_until) == ("", None)
    assert contact_writes() == 0
    assert drain().processed == 0  # not claimed again

    user.is_active = True  # restored: the save marks it and it is sent
    user.save()
    assert SyncState.objects.get(user_id=user.pk).dirty
    assert drain().synced == 1
    row = SyncState.objects.get(user_id=user.pk)
    assert (row.dirty, row.state, row.reason) == (False, SyncState.State.SYNCED, "")
    assert emulator.get_contact("jane@example.com")["firstName"] == "Jane"

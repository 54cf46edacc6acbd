"""Signal receivers on the user model: mark the outbox, nothing else.

``post_save`` marks the user's sync row dirty in the same transaction as the save (when the
save runs in one), unless database triggers do it inside the save's own statement
(``OMNISEND["MARK_WITH"] = "trigger"``, see :mod:`django_omnisend.sync.triggers`); ``pre_delete``
queues an erasure inside the delete's own transaction. No HTTP ever happens here; a
django.tasks nudge is scheduled with ``on_commit`` so a rolled-back transaction wakes nobody.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_save, pre_delete, pre_save
from django.utils import timezone

from ..adapter import get_adapter
from ..conf import omnisend_settings
from ..models import SyncState
from ..tasks import nudge_drain_on_commit
from . import erasure, triggers
from . import marking as outbox

_DISPATCH_SAVE = "django_omnisend.receivers.user_saved"
_DISPATCH_PRE_SAVE = "django_omnisend.receivers.user_saving"
_DISPATCH_DELETE = "django_omnisend.receivers.user_deleting"


def connect_receivers() -> None:
    """Connect the receivers to ``AUTH_USER_MODEL`` (called from ``AppConfig.ready``).

    They are always connected and check ``OMNISEND["SYNC_USERS"]`` on each call, so the
    setting can be changed at run time and in tests with ``override_settings``.
    """
    user_model = get_user_model()
    pre_save.connect(user_saving, sender=user_model, dispatch_uid=_DISPATCH_PRE_SAVE)
    post_save.connect(user_saved, sender=user_model, dispatch_uid=_DISPATCH_SAVE)
    pre_delete.connect(user_deleting, sender=user_model, dispatch_uid=_DISPATCH_DELETE)


def user_saving(sender: Any, instance: Any, raw: bool, using: str, **kwargs: Any) -> None:
    """Keep the mark triggers off a user that a fixture load is writing."""
    if raw and triggers.active(using):
        triggers.suppress(using, instance.pk)


def user_saved(
    sender: Any,
    instance: Any,
    created: bool,
    raw: bool,
    update_fields: Any,
    using: str = "default",
    **kwargs: Any,
) -> None:
    """Mark the saved user dirty (skipping fixture loads and login-only saves)."""
    if raw:
        if triggers.active(using):
            triggers.release(using, instance.pk, created)
        return
    if not omnisend_settings.sync_users:
        return
    if update_fields is not None and set(update_fields) <= set(omnisend_settings.noise_fields):
        return
    if not triggers.active(using):
        key = get_adapter().get_connection_key(instance)
        outbox.mark_dirty(instance.pk, key)
    nudge_drain_on_commit()


def user_deleting(sender: Any, instance: Any, **kwargs: Any) -> None:
    """Queue the erasure of the contacts the user is bound to, before the cascade.

    Only contacts our records bind to this user (see :func:`erasure.targets`): deleting an
    account that owned nothing erases nothing, whatever address it holds.
    """
    if not omnisend_settings.sync_users:
        return
    now = timezone.now()
    # A batch's lease is not an upsert in flight: that erasure waits for the batch instead.
    leases = {
        s.connection_key: s.lease_until
        for s in SyncState.objects.filter(user_id=instance.pk, lease_until__gt=now, batch_id="")
    }
    for target in erasure.targets(instance.pk):
        not_before = now
        lease_until = leases.get(target.connection_key)
        if lease_until:
            # A drain may have this user's upsert in flight: erase after its lease ends,
            # so the anonymisation is the last write Omnisend sees.
            not_before = lease_until + timedelta(seconds=1)
        outbox.add_erasure(
            connection_key=target.connection_key,
            email=target.email,
            contact_id=target.contact_id,
            not_before=not_before,
            batch_id=target.batch_id,
        )
    nudge_drain_on_commit()

"""Signals host code can listen to, in django-anymail's style: each documents its arguments.

Connect a receiver as usual::

    from django.dispatch import receiver
    from django_omnisend.signals import connected

    @receiver(connected)
    def on_connected(sender, connection, user, **kwargs): ...

No signal ever carries a token or an API key; ``connection`` is the model instance, whose
``__str__``/``__repr__`` show only the brand, status and fingerprint.
"""

from __future__ import annotations

from django.dispatch import Signal

__all__ = ["connected", "contact_sync_failed", "contact_synced", "disconnected"]

#: Sent after a Connection becomes active (a new OAuth connection, a reconnect to the same brand,
#: or a confirmed switch to a different brand).
#:
#: - ``sender``: the :class:`~django_omnisend.models.Connection` class
#: - ``connection``: the active ``Connection`` instance (brand id, name, scopes filled in)
#: - ``user``: the staff user who connected it, or ``None`` (e.g. management commands)
connected = Signal()

#: Sent after a Connection stops being usable on purpose: disconnected in the admin or replaced
#: by a confirmed switch to another brand. Its tokens are already revoked (best effort) and deleted.
#:
#: - ``sender``: the :class:`~django_omnisend.models.Connection` class
#: - ``connection``: the ``Connection`` instance, now with status ``revoked``
#: - ``user``: the staff user who disconnected it, or ``None``
disconnected = Signal()

#: Sent by the sync after Omnisend accepted a user's contact.
#:
#: - ``sender``: the user model class
#: - ``user``: the user instance whose current row was sent
#: - ``contact_id``: Omnisend's contact ID (``str``)
#: - ``created``: ``True`` when Omnisend created the contact, ``False`` when it updated it
#: - ``sync_state``: the :class:`~django_omnisend.models.SyncState` row after the update
contact_synced = Signal()

#: Sent by the sync when sending a user's contact failed.
#:
#: - ``sender``: the user model class
#: - ``user``: the user instance (``None`` if it was deleted meanwhile)
#: - ``error``: the exception (an :class:`~django_omnisend.exceptions.OmnisendError`)
#: - ``permanent``: ``True`` when the item is dead or was rejected (400/422) and will not be
#:   retried by itself; ``False`` when a retry is scheduled or the connection is paused
#: - ``sync_state``: the :class:`~django_omnisend.models.SyncState` row after the update
contact_sync_failed = Signal()

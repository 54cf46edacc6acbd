"""Signals host code can listen to, in django-anymail's style: each documents its arguments.

Connect a receiver as usual::

    from django.dispatch import receiver
    from django_omnisend.signals import connected

    @receiver(connected)
    def on_connected(sender, connection, user, **kwargs): ...

No signal ever carries a token or an API key; ``connection`` is the model instance, whose
``__str__``/``__repr__`` show only the brand, status and fingerprint.

The contact signals are sent with ``send_robust()`` once the outcome is saved: a receiver that
raises is logged by Django (logger ``django.dispatch``) and can neither undo the saved outcome
nor stop the sync from delivering everyone else (as a bug in the adapter cannot either).
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

#: Sent by the drain and by bulk syncs (``omnisend_sync_contacts``) after Omnisend accepted a
#: user's contact and the outcome was saved on the user's sync row.
#:
#: - ``sender``: the user model class (``get_user_model()``)
#: - ``user``: the user instance whose current row was sent, or ``None`` if the user was
#:   deleted while the contact was on its way
#: - ``contact_id``: Omnisend's contact ID (``str``)
#: - ``created``: ``True`` when Omnisend created the contact (it answered 201), ``False`` when
#:   it updated an existing one (200, or a change of e-mail address)
#: - ``sync_state``: the :class:`~django_omnisend.models.SyncState` row as saved with this
#:   outcome, or ``None`` if it no longer exists (its user was deleted)
contact_synced = Signal()

#: Sent by the drain and by bulk syncs after Omnisend answered a user's contact with an error
#: (or the site's adapter raised building it) and the outcome was saved on the sync row. Not
#: sent for rows put off without a request (a paused connection, a cooldown, a full budget).
#:
#: - ``sender``: the user model class (``get_user_model()``)
#: - ``user``: the user instance, or ``None`` if it was deleted meanwhile
#: - ``error``: the exception, an :class:`~django_omnisend.exceptions.OmnisendError`
#:   (``error.status`` is the HTTP status, ``None`` for timeouts and adapter errors)
#: - ``permanent``: ``True`` when the contact will not be retried by itself: it was rejected
#:   with an answer a retry would not change (such as 400/409/422), ran out of attempts, or its
#:   row is gone; ``False`` when a retry is scheduled or the connection is paused until it is
#:   reconnected
#: - ``sync_state``: the :class:`~django_omnisend.models.SyncState` row as saved with this
#:   outcome, or ``None`` if it no longer exists
contact_sync_failed = Signal()

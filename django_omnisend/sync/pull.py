"""Reading contact changes made inside Omnisend (``omnisend_pull``): unsubscribes and statuses.

Omnisend has no outbound contact webhooks, so changes made there (an unsubscribe link, an edit
in the app) are polled: ``GET /contacts?updatedAtFrom=<pulled_until>&sort=updatedAt&direction=asc``
with cursor paging. Each contact is matched to a user (the sync row's contact id, else its
e-mail, else a user whose normalised e-mail is the contact's) and its e-mail channel status is
handed to :meth:`ContactAdapter.record_status` when it is newer than both the consent Django
last sent (``SyncState.consent_sent_at``) and the adapter's own record (``get_consent().at``).

Rules:

* Nothing is ever marked dirty and nothing is written to Omnisend: the pull only reads.
* After a hand-over the sync row's ``consent_sent_at`` moves forward to the change's time:
  Omnisend already holds that status, and it ignores any status dated earlier, so no Django
  decision at or before that moment is worth sending. That keeps a later profile sync from
  echoing the status back, and makes the pull idempotent even with the default (no-op) hook.
* ``nonSubscribed`` on a contact Django never sent a status for is Omnisend's default for a new
  contact, not a decision, and is not handed over.
* ``DeliveryControl.pulled_until`` is the largest ``updatedAt`` processed (contacts come oldest
  first). It is saved after every chunk and never moves back. The next run starts
  :data:`PULL_OVERLAP` (5 minutes) before it: a change Omnisend dates before a change already
  read but lists only later (replication lag, a long write inside Omnisend) is still found.
  Re-reading the overlap is harmless: the rules above hand nothing over twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db.models import Q
from django.db.models.functions import Lower
from django.utils import timezone

from ..adapter import ContactAdapter, get_adapter, normalize_email
from ..exceptions import NotConnected
from ..models import DeliveryControl, SyncState
from . import gates as delivery
from .payloads import parse_rfc3339, rfc3339

#: Contacts matched to users per round of queries (and per ``pulled_until`` save).
CHUNK = 250
#: Where a first pull starts when no ``since`` is given.
DEFAULT_LOOKBACK = timedelta(days=1)
#: How far before the newest ``updatedAt`` already pulled each run reads again: a change
#: Omnisend dates earlier but lists only later (replication lag, a long write) is not missed.
PULL_OVERLAP = timedelta(minutes=5)

STATUSES = ("subscribed", "nonSubscribed", "unsubscribed")


@dataclass
class PullResult:
    """What one :func:`pull` did (``handed_over`` = would hand over, with ``dry_run``)."""

    connection_key: str
    since: datetime
    pulled_until: datetime | None = None
    read: int = 0
    matched: int = 0
    handed_over: int = 0
    unknown: int = 0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["since"] = rfc3339(self.since)
        data["pulled_until"] = rfc3339(self.pulled_until) if self.pulled_until else None
        return data


def email_status(contact: dict[str, Any]) -> tuple[str, datetime | None]:
    """The contact's e-mail channel ``(status, statusChangedAt)``; ``("", None)`` if none."""
    for ident in contact.get("identifiers") or []:
        channel = ((ident or {}).get("channels") or {}).get("email")
        if (ident or {}).get("type") == "email" and isinstance(channel, dict):
            status = channel.get("status") or ""
            return status, parse_rfc3339(channel.get("statusChangedAt") or "")
    for entry in contact.get("statuses") or []:
        if isinstance(entry, dict) and entry.get("channel") == "email":
            return entry.get("status") or "", parse_rfc3339(entry.get("statusChangedAt") or "")
    return "", None


def start_point(key: str, since: datetime | None = None) -> datetime:
    """Where a pull of ``key`` starts: ``since``, else :data:`PULL_OVERLAP` before
    ``pulled_until``, else a day ago."""
    if since is not None:
        return since
    stored = (
        DeliveryControl.objects.filter(connection_key=key)
        .values_list("pulled_until", flat=True)
        .first()
    )
    if stored is None:
        return timezone.now() - DEFAULT_LOOKBACK
    return stored - PULL_OVERLAP


def save_pulled_until(key: str, moment: datetime) -> None:
    """Move ``key``'s resume point forward to ``moment`` (never back)."""
    DeliveryControl.objects.get_or_create(connection_key=key)
    DeliveryControl.objects.filter(connection_key=key).filter(
        Q(pulled_until__isnull=True) | Q(pulled_until__lt=moment)
    ).update(pulled_until=moment)


class _Matcher:
    """Maps a chunk of contacts to users with a handful of queries."""

    def __init__(self, key: str, adapter: ContactAdapter) -> None:
        self.key = key
        self.adapter = adapter
        self.user_model = get_user_model()

    def match(self, contacts: list[dict[str, Any]]) -> list[tuple[Any, SyncState | None]]:
        ids = {str(c.get("id")) for c in contacts if c.get("id")}
        emails = {e for e in (normalize_email(c.get("email")) for c in contacts) if e is not None}
        states = list(
            SyncState.objects.filter(connection_key=self.key).filter(
                Q(contact_id__in=ids) | Q(email__in=emails) | Q(address__in=emails)
            )
        )
        by_id = {s.contact_id: s for s in states if s.contact_id}
        by_email: dict[str, SyncState] = {}
        for state in states:  # the owner of an address (its binding) comes first
            if state.address:
                by_email[state.address] = state
        for state in states:
            if state.email:
                by_email.setdefault(state.email, state)
        users = self.user_model._default_manager.in_bulk({s.user_id for s in states})
        bound = {s.email for s in states if s.email} | {s.address for s in states if s.address}
        by_user_email = self._users_by_email(emails - bound)

        matched: list[tuple[Any, SyncState | None]] = []
        for contact in contacts:
            email = normalize_email(contact.get("email"))
            found = by_id.get(str(contact.get("id") or "")) or (by_email.get(email or ""))
            if found is not None and found.user_id in users:
                matched.append((users[found.user_id], found))
            elif email and email in by_user_email:
                matched.append((by_user_email[email], None))
            else:
                matched.append((None, None))
        return matched

    def _users_by_email(self, emails: set[str]) -> dict[str, Any]:
        """Users without a sync row for these addresses: the oldest active owner of each."""
        if not emails:
            return {}
        field = self.user_model.get_email_field_name()
        try:
            self.user_model._meta.get_field(field)
        except FieldDoesNotExist:  # the adapter supplies addresses: no column to search
            return {}
        candidates = (
            self.user_model._default_manager.annotate(_omnisend_email=Lower(field))
            .filter(_omnisend_email__in=emails)
            .order_by("pk")
        )
        found: dict[str, Any] = {}
        for user in sorted(candidates, key=lambda u: (not getattr(u, "is_active", True), u.pk)):
            email = self.adapter.get_email(user)
            if not email or email not in emails or email in found:
                continue
            if self.key != "default" and str(self.adapter.get_connection_key(user)) != self.key:
                continue
            found[email] = user
        return found


def _newer(
    adapter: ContactAdapter,
    user: Any,
    state: SyncState | None,
    status: str,
    changed_at: datetime | None,
) -> bool:
    """Whether Omnisend's status is news to Django (see the module docstring)."""
    if status not in STATUSES or changed_at is None:
        return False
    sent = state.consent_sent_at if state is not None else None
    if sent is None and status == "nonSubscribed":
        return False
    if sent is not None and changed_at <= sent:
        return False
    recorded = adapter.get_consent(user)
    return recorded is None or recorded.at < changed_at


def pull(
    key: str = "default",
    *,
    since: datetime | None = None,
    dry_run: bool = False,
    client: Any = None,
    chunk: int = CHUNK,
) -> PullResult:
    """Read contacts of ``key`` changed since ``since`` (default: the stored resume point).

    Raises :class:`~django_omnisend.exceptions.NotConnected` when the connection is paused or
    has no credentials, and the client's errors for failed requests; the resume point reached
    so far is saved either way.
    """
    from ..connect import client_for_key, credential_fingerprint

    start = start_point(key, since)
    result = PullResult(connection_key=key, since=start, dry_run=dry_run)
    gate = delivery.gate(key, credential=credential_fingerprint(key))
    if gate.paused:
        raise NotConnected(f"Delivery to {key!r} is paused: {gate.reason}")
    adapter = get_adapter()
    matcher = _Matcher(key, adapter)
    own_client = client is None
    client = client or client_for_key(key)
    done: datetime | None = None

    def process(contacts: list[dict[str, Any]]) -> None:
        nonlocal done
        for contact, (user, state) in zip(contacts, matcher.match(contacts), strict=True):
            if user is None:
                result.unknown += 1
            else:
                result.matched += 1
                status, changed_at = email_status(contact)
                if _newer(adapter, user, state, status, changed_at):
                    result.handed_over += 1
                    if not dry_run:
                        assert changed_at is not None  # _newer() is False without a time
                        adapter.record_status(user, status, changed_at, contact)
                        if state is not None:
                            SyncState.objects.filter(pk=state.pk).filter(
                                Q(consent_sent_at__isnull=True) | Q(consent_sent_at__lt=changed_at)
                            ).update(consent_sent_at=changed_at)
            updated = parse_rfc3339(contact.get("updatedAt") or "")
            if updated is not None and (done is None or updated > done):
                done = updated
        if done is not None and not dry_run:
            save_pulled_until(key, done)

    try:
        pending: list[dict[str, Any]] = []
        for contact in client.contacts.iterate(
            updatedAtFrom=rfc3339(start), sort="updatedAt", direction="asc", limit=250
        ):
            result.read += 1
            pending.append(contact)
            if len(pending) >= chunk:
                process(pending)
                pending = []
        if pending:
            process(pending)
    finally:
        if own_client:
            client.close()
    if dry_run:
        result.pulled_until = done or start
        return result
    if done is None:
        save_pulled_until(key, start)  # nothing changed since the start: resume there
    result.pulled_until = (
        DeliveryControl.objects.filter(connection_key=key)
        .values_list("pulled_until", flat=True)
        .first()
    )
    return result

"""Sending one user's contact: the upsert (or the ``PATCH`` of a known contact), the
subscribe guard, an e-mail change's tag, and the outcome.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from django.utils import timezone

from .. import exceptions
from ..models import SyncState
from . import batches as batching
from . import identity
from .drain_host import DrainHost
from .payloads import SkipReason, date_creation, parse_rfc3339, without_channels
from .policy import CONSENT_OUTDATED, EMAIL_CHANGED_TAG, UNKNOWN, UNVERIFIED, LeaseLost, error_text


class ContactRows(DrainHost):
    """Mixin of :class:`~django_omnisend.sync.loop.Drain`: one contact's request."""

    # -- contacts ---------------------------------------------------------------------------

    def contact_row(self, row: SyncState) -> None:
        """Sync ``row``, or settle the batch it is still in (never sent past it).

        A row in a batch whose lease ran out (a backfill or a drain that stopped before
        settling it) is never sent on its own while the batch is open: a newer state sent now
        could be overwritten by the batch landing later. Its batch joins this pass's
        outstanding ones, polled through the batch list (not a request per batch or row);
        the batch's other rows wait with it, so they are not claimed one by one meanwhile.
        """
        if row.batch_id:
            self.outstanding.setdefault(row.batch_id, row.connection_key)
            batching.postpone([row.batch_id], batching.BATCH_POLL_SECONDS)
            return
        self.sync_row(row)

    def sync_row(self, row: SyncState) -> None:
        prepared = self.prepared.pop(row.pk, None)
        if prepared is None:  # not claimed by a round (the bulk sync's single rows)
            self.prepare([row])
            prepared = self.prepared.pop(row.pk)
        user, plan, verified = prepared.user, prepared.plan, prepared.verified
        if user is None:  # deleted since the claim, or hidden by the manager (a soft delete)
            self._not_loadable(row)
            return
        if prepared.error is not None:
            # A bug in the site's adapter fails this user (with backoff), not the whole pass.
            self.signal_failed(row, user, prepared.error, self.failed(row, prepared.error))
            return
        if prepared.binding not in (None, identity.Binding.BOUND):
            return  # waits for its address (recorded when binding)
        release = {"lease_until": None, "lease_owner": ""}
        if plan.skip_reason in (SkipReason.NO_EMAIL, SkipReason.INVALID_EMAIL):
            identity.release(row)  # the user no longer has the address it owned
        if plan.skip_reason:
            self.result.skipped[plan.skip_reason] += 1
            self.save_outcome(
                row,
                clean={
                    "dirty": False,
                    "state": SyncState.State.SKIPPED,
                    "reason": plan.skip_reason,
                    "attempts": 0,
                    "last_error": "",
                    **release,
                },
                newer=release,
            )
            return
        if (
            plan.consent is None
            and row.payload_hash
            and plan.email == row.email
            and plan.payload_hash == row.payload_hash
        ):
            self.result.unchanged += 1
            self.save_outcome(
                row,
                clean={"dirty": False, "state": SyncState.State.SYNCED, "attempts": 0, **release},
                newer=release,
            )
            return
        if not self.gate_allows(row):
            return
        client = self.client(row)
        if client is None:
            return
        reason = ""
        withheld = None
        if not verified and plan.consent is not None and plan.consent.subscribed:
            # ``subscribed`` only for a verified address: the opt-in waits (consent_sent_at
            # stays put), and is sent by the first sync after the address is verified.
            withheld = plan.consent
            plan = replace(plan, body=without_channels(plan.body), consent=None)
            reason = UNVERIFIED
        # This row never wrote this address: the contact may exist without being ours.
        fresh = plan.email != row.email
        wants_welcome = bool(plan.body["identifiers"][0].get("sendWelcomeMessage"))
        existing: Any = UNKNOWN
        #: The address a contact write was sent for (its outcome may be unknown).
        attempted: list[str] = []
        try:
            if fresh and (not verified or wants_welcome):
                existing = self.send(row, client.contacts.get_by_email, plan.email)
                if existing and not verified:
                    self._unverified_existing(row)
                    return
            # A welcome only for a contact that did not exist, and only at a verified address.
            welcome = fresh and verified and wants_welcome and existing is None
            plan.body["identifiers"][0]["sendWelcomeMessage"] = welcome
            if existing is None:
                date_creation(plan.body, row.created_at, withheld)
            body = plan.body
            if plan.consent is not None and plan.consent.subscribed:
                body, reason = self._guard_subscribe(row, client, plan, existing)
            result = self._write_contact(row, client, plan, body, attempted)
        except LeaseLost:
            # Lost before a request (the upsert, if sent, went out under our lease).
            self.lease_lost(row, wrote=bool(attempted))
            return
        except exceptions.OmnisendError as exc:
            written = attempted[0] if attempted else ""
            self.signal_failed(row, user, exc, self.failed(row, exc, written=written))
            return
        except Exception as exc:  # requests' own errors the client did not wrap
            error = exceptions.TransportError(error_text(exc), kind="transport")
            written = attempted[0] if attempted else ""
            self.signal_failed(row, user, error, self.failed(row, error, written=written))
            raise
        self.succeeded(row.connection_key)
        sent_status = body["identifiers"][0].get("channels", {}).get("email", {}).get("status")
        if sent_status == "subscribed" and result.get("status") not in (None, "subscribed"):
            # Omnisend kept a status dated after the opt-in (its status-date rule): say so
            # rather than look subscribed. Record the confirmation time as the consent's.
            reason = CONSENT_OUTDATED
        contact_id = str(result.get("id") or "") or row.contact_id
        done = {
            "contact_id": contact_id,
            "email": plan.email,
            "payload_hash": plan.payload_hash,
            "last_status": 200,
            "last_error": "",
            "batch_id": "",
            **release,
        }
        if plan.consent is not None:
            done["consent_sent_at"] = plan.consent.at
        now = timezone.now()
        # An upsert says whether it created the contact (201); a PATCH changed an existing one.
        created = getattr(result, "created", False)

        def synced() -> None:
            self.result.synced += 1
            self.signal_synced(row, user, contact_id, created=created)

        self.save_outcome(
            row,
            clean={
                "dirty": False,
                "state": SyncState.State.SYNCED,
                "reason": reason,
                "attempts": 0,
                "synced_at": now,
                **done,
            },
            # A newer save arrived while the request was in flight: send again, and with no
            # payload hash, since a worker that lost its lease meanwhile (it moves the
            # generation too) may have written after us.
            newer={**done, "payload_hash": "", "next_attempt_at": now},
            wrote=True,
            then=synced,
        )

    def _guard_subscribe(self, row, client, plan, existing=UNKNOWN) -> tuple[dict, str]:
        """Never let a Django opt-in override a later unsubscribe made inside Omnisend.

        ``existing`` is the contact when it was already looked up (None: there is none).
        """
        if existing is UNKNOWN:
            existing = self.send(row, client.contacts.get_by_email, plan.email)
        if not existing or existing.get("status") != "unsubscribed":
            return plan.body, ""
        changed = [
            s.get("statusChangedAt", "")
            for s in existing.get("statuses") or []
            if s.get("channel") == "email" and s.get("status") == "unsubscribed"
        ]
        # max() raises TypeError when one time is unreadable (None) and another is not: a
        # defect mypy found, left for a fix with its failing test first (reported).
        latest = max((parse_rfc3339(c) for c in changed if c), default=None)  # type: ignore[type-var]
        # Fail closed: an unsubscribe whose time cannot be read may be newer than the opt-in.
        if latest is None or latest >= plan.consent.at:
            return without_channels(plan.body), "consent_conflict"
        return plan.body, ""

    def _write_contact(self, row, client, plan, body, attempted: list[str]):
        """Upsert ``body``; after an e-mail change, tag the contact left behind
        (docs: guides/identity.rst, 'E-mail changes').

        The e-mail identifier is never moved to another contact: the new address gets its own
        contact (no channel status unless a new opt-in for a verified address), and the old
        one stays as it is apart from the tag, no longer synced by this user.
        ``attempted`` gets the address once the upsert is sent (its outcome may be unknown).
        """
        attempted.append(plan.email)
        try:
            result = self.send(row, client.contacts.upsert, body)
        except LeaseLost:
            # ``send`` raises it before the request: nothing of ours can land after the
            # new owner's write, so its outcome stands (no new generation, no resend).
            attempted.clear()
            raise
        if row.email and row.email != plan.email:
            if row.contact_id:
                selector = {"contact_ids": [row.contact_id]}
            else:  # bound by a bulk sync, which does not learn ids
                selector = {"emails": [row.email]}
            self.send(row, client.contacts.add_tags, [EMAIL_CHANGED_TAG], **selector)
        return result

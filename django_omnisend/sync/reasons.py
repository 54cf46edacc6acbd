"""What each sync row reason code means, as a sentence saying what happened and what to do.

Rows store short machine-readable codes (filterable, stable across languages); the admin and
reports show these sentences beside them.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _

#: Reason code -> what happened and what to do.
REASONS = {
    "excluded": _(
        "The adapter's should_sync() leaves this user out (inactive, staff, or a site rule); "
        "nothing is sent."
    ),
    "no_email": _("The user has no e-mail address; the user is sent once one is saved."),
    "invalid_email": _(
        "The e-mail address is malformed or contains invisible or look-alike characters; "
        "nothing is sent until it is corrected on the user."
    ),
    "duplicate_email": _(
        "Another user of this connection owns this address (it was bound first); this user "
        "is sent when that user moves to another address or is deleted."
    ),
    "erasure_pending": _(
        "The previous owner of this address was deleted and the erasure of their contact is "
        "still queued; this user is sent once it has been sent."
    ),
    "unverified_email": _(
        "The address is not verified: no opt-in is sent and a contact Omnisend already held "
        "is left untouched. Call django_omnisend.mark_for_sync(user) once it is verified."
    ),
    "consent_conflict": _(
        "Omnisend holds an unsubscribe at least as recent as the site's opt-in (or with no "
        "date), so the opt-in was not sent; the person has to opt in again."
    ),
    "consent_outdated": _(
        "Omnisend kept an e-mail status dated after the site's opt-in (changed inside "
        "Omnisend), so the opt-in had no effect; the person has to opt in again."
    ),
    "discarded": _("Discarded by an administrator; the user is sent again at their next change."),
    "email_conflict": _(
        "Omnisend refused the address because another contact holds it (HTTP 409); resolve "
        "it in Omnisend, then use Retry now."
    ),
    "validation": _(
        "Omnisend refused the data (HTTP 400); the last error names the field. Correct it "
        "(or the adapter), then use Retry now."
    ),
    "max_attempts": _(
        "Omnisend kept failing and the retries gave up; see the last error, then use Retry "
        "now once Omnisend answers."
    ),
    "user_not_loadable": _(
        "The user cannot be loaded through the user model's default manager (for example "
        "soft-deleted); nothing is sent until the user is saved again."
    ),
    "error": _("Sending failed; the last error says why. Use Retry now once it is fixed."),
}


def describe(reason: str) -> str:
    """The sentence for ``reason`` ("" for none); unknown codes are named as they are."""
    if not reason:
        return ""
    if reason in REASONS:
        return str(REASONS[reason])
    if reason.startswith("http_") and reason[5:].isdigit():
        return str(
            _(
                "Omnisend answered HTTP %(status)s, which is not retried; the last error says "
                "why. Use Retry now once it is fixed."
            )
            % {"status": reason[5:]}
        )
    return str(_("Reason %(reason)s; the last error says more.") % {"reason": reason})

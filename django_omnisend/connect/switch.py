"""Brand switch rules the callback and the confirm page share: store probed tokens by the
brand rules (:mod:`~django_omnisend.connect.binding`), activate a pending brand (retiring the
others of its owner), or cancel it.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.views.decorators.debug import sensitive_variables

from ..api import oauth
from ..models import Connection
from ..signals import connected
from . import binding, lifecycle


@sensitive_variables()
def revocable(tokens: oauth.TokenResponse, client_id: str) -> list[lifecycle.Revocable]:
    pairs = [(tokens.refresh_token, "refresh_token"), (tokens.access_token, "access_token")]
    return [(value, hint, client_id) for value, hint in pairs if value]


@sensitive_variables()
def bind_tokens(
    tokens: oauth.TokenResponse,
    brand: dict[str, Any],
    user: Any,
    owner: Any = None,
    *,
    client_id: str = "",
) -> tuple[Connection, bool, list[lifecycle.Revocable]]:
    """Store the probed tokens for ``owner`` by the brand rules every credential follows (see
    :mod:`~django_omnisend.binding`). Returns (connection, needs_confirmation, stale tokens)."""
    credential = binding.Credential.from_tokens(tokens, client_id=client_id)
    bound = binding.bind(credential, brand, user, owner=owner)
    return bound.connection, bound.needs_confirmation, bound.stale


def switch(pending: Connection, user: Any) -> list[Connection]:
    """Retire every other connection in use (active or flagged) and activate ``pending``, then
    revoke and signal."""
    from ..signals import disconnected

    tokens: list[lifecycle.Revocable] = []
    owner = pending.owner
    with transaction.atomic():
        retired = list(same_owner(pending).select_for_update().in_use().exclude(pk=pending.pk))
        for old in retired:
            tokens.extend(lifecycle.retire(old, f"Replaced by the brand {pending.brand_id}."))
        binding.check_brand_free(pending.brand_id, {"pk": pending.pk})
        pending.status = Connection.Status.ACTIVE
        pending.status_reason = ""
        pending.save(update_fields=["status", "status_reason", "updated_at"])
        for old in retired:
            disconnected.send(sender=Connection, connection=old, user=user, owner=owner)
        connected.send(sender=Connection, connection=pending, user=user, owner=owner)
    lifecycle.revoke_tokens(tokens)
    return retired


def same_owner(row: Connection) -> Any:
    """The connections of ``row``'s owner (the site's when it has none)."""
    if row.owner_type_id is None:
        return Connection.objects.of_owner(None)
    return Connection.objects.filter(owner_type_id=row.owner_type_id, owner_id=row.owner_id)


def cancel(pending: Connection) -> None:
    """Drop the pending brand (the active one stays) and revoke its tokens at Omnisend."""
    with transaction.atomic():
        tokens = lifecycle.tokens_to_revoke(pending)
        pending.delete()
    lifecycle.revoke_tokens(tokens)

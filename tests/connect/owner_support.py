"""Shared pieces of the owner (multi-tenant) tests: shops as ``auth.Group`` rows, adapters.

Any model instance can own a connection; the tests use ``django.contrib.auth`` groups as the
"shops" so no test-only model is needed. A shop's staff are the group's members.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from django_omnisend import connect
from django_omnisend.adapter import ContactAdapter
from django_omnisend.connect import binding, owners
from django_omnisend.connect.permissions import ConnectionAdapter

SHOP_A_BRAND = "brand-shop-a"
SHOP_B_BRAND = "brand-shop-b"


def add_shop_brands(emulator: Any) -> None:
    """Two more brands in the emulator, one per shop."""
    emulator.add_brand(SHOP_A_BRAND, name="Shop A brand")
    emulator.add_brand(SHOP_B_BRAND, name="Shop B brand")


def bind_by_token(emulator: Any, owner: Any, brand_id: str, user: Any = None) -> binding.Bound:
    """Tokens for ``brand_id`` as if consent was given, probed over HTTP, bound to ``owner``."""
    tokens = emulator.issue_token(brand_id)
    brand = connect.probe_credentials(access_token=tokens["access_token"])
    credential = binding.Credential(
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token", ""),
        expires_in=tokens.get("expires_in"),
        scopes=tuple(tokens.get("scope", "").split()),
    )
    return binding.bind(credential, brand, user, owner=owner)


class ShopContactAdapter(ContactAdapter):
    """Members sync to their shop's brand: the connection key of their first group.

    Users in no shop are no contacts at all (the site has no brand of its own here).
    """

    def should_sync(self, user: Any) -> bool:
        return super().should_sync(user) and Group.objects.filter(user=user).exists()

    def get_connection_key(self, user: Any) -> str:
        group = Group.objects.filter(user=user).order_by("pk").first()
        return owners.connection_key(group)


class ShopConnectionAdapter(ConnectionAdapter):
    """A shop's members may manage its connection; the site's stays with the default rule."""

    def can_manage_connection(self, request: Any, owner: Any) -> bool:
        if isinstance(owner, Group):
            user = request.user
            return bool(user.is_authenticated and owner.user_set.filter(pk=user.pk).exists())
        return super().can_manage_connection(request, owner)


def approve_as_brand(emulator: Any, authorize_url: str, brand_id: str) -> dict[str, str]:
    """Open the emulator's consent page, pick ``brand_id`` and approve; the callback query."""
    import re
    from urllib.parse import parse_qs, urlsplit

    import requests

    emulator.configure(auto_approve=False)
    page = requests.get(authorize_url, timeout=10)
    assert page.status_code == 200, page.text[:500]
    assert f'value="{brand_id}"' in page.text, "the consent page offers the brand"
    consent = re.search(r'name="consent" value="([^"]+)"', page.text).group(1)
    action = re.search(r'<form method="post" action="([^"]+)"', page.text).group(1)
    answer = requests.post(
        action,
        data={"consent": consent, "decision": "approve", "brand_id": brand_id},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code in (302, 303), answer.text[:500]
    return {k: v[0] for k, v in parse_qs(urlsplit(answer.headers["Location"]).query).items()}

"""The ``OMNISEND`` settings dict: one map of defaults and typed accessors.

Values are read from ``django.conf.settings`` on every access (nothing is cached), so
``override_settings(OMNISEND={...})`` in tests and per-request settings changes behave.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

#: Every key the app understands, with its default. The README's settings table is checked
#: against this map by a test, and ``checks.py`` warns about keys that are not in it.
DEFAULTS: dict[str, Any] = {
    # OAuth 2.0 client credentials issued by Omnisend. Empty: the first Connect registers the
    # site (RFC 7591) and keeps the issued pair encrypted in the database; settings always win.
    "CLIENT_ID": "",
    "CLIENT_SECRET": "",
    # Register the site as an OAuth client at the first Connect when CLIENT_ID is empty.
    "CLIENT_REGISTRATION": True,
    # client_name and client_uri sent when registering; empty: the Site (django.contrib.sites)
    # or the host of REDIRECT_URI.
    "CLIENT_NAME": "",
    "CLIENT_URI": "",
    # Registration endpoint; empty: from the server metadata (RFC 8414) at AUTHORIZE_URL's
    # origin, else that origin's /oauth2/register (Omnisend's documented endpoint).
    "REGISTRATION_URL": "",
    # Exact callback URL registered with Omnisend; empty means reverse() it, in DEBUG only.
    "REDIRECT_URI": "",
    "SCOPES": ["contacts.read", "contacts.write", "events.write", "brands.read"],
    # Deploy-time endpoints (overridable for the emulator; never editable in the admin).
    "AUTHORIZE_URL": "https://app.omnisend.com/oauth2/authorize",
    "TOKEN_URL": "https://app.omnisend.com/oauth2/token",
    "REVOKE_URL": "https://app.omnisend.com/oauth2/revoke",
    "API_URL": "https://api.omnisend.com/api",
    "API_VERSION": "2026-03-15",
    # API-key mode: a site with a key needs no OAuth connection.
    "API_KEY": "",
    # Fernet keys, newest first, that encrypt stored tokens and keys.
    "ENCRYPTION_KEYS": [],
    # User -> contact sync.
    "SYNC_USERS": False,
    "ADAPTER": "django_omnisend.adapter.ContactAdapter",
    # Who may connect and disconnect which owner's brand (a tenant's staff, ...).
    "CONNECTION_ADAPTER": "django_omnisend.connection_adapter.ConnectionAdapter",
    # Requests per minute per brand: our share of Omnisend's 400/min.
    "RATE_LIMIT": 300,
    # Seconds the RATE_LIMIT budget covers (Omnisend's window is a minute; tests scale it).
    "RATE_LIMIT_WINDOW": 60,
    # Requests per RATE_LIMIT_WINDOW to /contacts/tags, which Omnisend limits to 60 a minute
    # on its own (they count toward RATE_LIMIT too).
    "TAGS_RATE_LIMIT": 50,
    # Django cache alias that holds the shared rate budget (needs atomic incr to be shared).
    "RATE_LIMIT_CACHE": "default",
    # Seconds per request (connect and read).
    "REQUEST_TIMEOUT": 10,
    # In-call retries of safe requests before the error reaches the caller.
    "MAX_RETRIES": 2,
    # Seconds to wait after a 429 that names no wait (Retry-After or body retryAfter).
    "RETRY_AFTER_DEFAULT": 60,
    # Base of the sync retry backoff and of the circuit breaker, in seconds (doubles per try).
    "RETRY_BACKOFF": 30,
    # django.tasks backend alias used to wake the drain; None = rely on omnisend_drain.
    "TASK_BACKEND": "default",
    # Queue of that backend the drain task goes to; None = the task's default ("default").
    "TASK_QUEUE": None,
    # ``origin`` sent with customer events.
    "EVENT_ORIGIN": "api",
    # Seconds after its eventTime when Omnisend treats an event as historical and drops a
    # repeat of its eventID (undocumented: an hour assumed, plus margin). An event whose first
    # send may have landed (timeout, 5xx) is retried only then, so it is never counted twice.
    "EVENT_HISTORY_SECONDS": 3900,
    # Deliveries tried before a sync item is dead (about a day with the default backoff).
    "MAX_ATTEMPTS": 12,
    # Seconds a drain worker holds a claimed row before another worker may take it; longer
    # than one drain request can take (check E016: 75 s with REQUEST_TIMEOUT = 10).
    "LEASE_SECONDS": 120,
    # User fields whose saves alone never mark a user for sync.
    "NOISE_FIELDS": ["last_login"],
    # Key of the HMAC that erasure records keep instead of the address; "" derives one from
    # SECRET_KEY. Keep it stable: a pending erasure is found by this hash.
    "HASH_KEY": "",
    # Days a dead (given-up) erasure keeps the address for a retry before only the hash stays.
    "ERASURE_RETENTION_DAYS": 30,
    # Treat every user's address as verified (ContactAdapter.is_email_verified) when no
    # verification record exists, e.g. a site that imports a list it already confirmed.
    "TRUST_EMAILS": False,
    # How saves mark users: "signal" (a post_save statement) or "trigger" (database
    # triggers on the user table, SQLite/PostgreSQL, installed by migrate).
    "MARK_WITH": "signal",
    # Custom events declared by ``manage.py omnisend_declare_events`` besides register_event():
    # {"event name": {"properties": {"plan": "string"}, "display_name": "...", "origin": "..."}}.
    "EVENTS": {},
    # Decides where Omnisend's JavaScript snippet may run (cookie consent) and how products
    # look in viewed-product events: a TrackingAdapter subclass.
    "TRACKING_ADAPTER": "django_omnisend.tracking.TrackingAdapter",
    # Omnisend's snippet loader, which {% omnisend_snippet %} adds to the page.
    "SNIPPET_URL": "https://omnisnippet1.com/inshop/launcher-v2.js",
    # Catalog sync: dotted path of a ProductAdapter subclass; "" turns it off. When set,
    # saves and deletes of its models reach Omnisend's catalog and SCOPES gain products.*.
    "PRODUCT_ADAPTER": "",
}

#: Scopes catalog sync needs on top of ``SCOPES`` (read: the backfill polls its batches).
CATALOG_SCOPES = ("products.read", "products.write")


class OmnisendSettings:
    """Typed, always-fresh view of ``settings.OMNISEND`` merged over :data:`DEFAULTS`."""

    @property
    def user_settings(self) -> dict[str, Any]:
        """The raw ``OMNISEND`` dict from the project settings (empty when unset)."""
        value = getattr(django_settings, "OMNISEND", None)
        return value if isinstance(value, dict) else {}

    def get(self, name: str) -> Any:
        """Return setting ``name``: the project's value, else the default."""
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown django-omnisend setting {name!r}.")
        return self.user_settings.get(name, DEFAULTS[name])

    def __getattr__(self, name: str) -> Any:
        if name.isupper():
            return self.get(name)
        raise AttributeError(name)

    # Typed accessors for the keys the code reads most.
    @property
    def api_url(self) -> str:
        return str(self.get("API_URL")).rstrip("/")

    @property
    def api_version(self) -> str:
        return str(self.get("API_VERSION"))

    @property
    def api_key(self) -> str:
        return str(self.get("API_KEY") or "")

    @property
    def scopes(self) -> list[str]:
        """``SCOPES``, plus the ``products.*`` scopes when catalog sync is on."""
        scopes = list(self.get("SCOPES"))
        if self.catalog_sync:
            scopes += [s for s in CATALOG_SCOPES if s not in scopes]
        return scopes

    @property
    def catalog_sync(self) -> bool:
        """Whether catalog sync is on (a ``PRODUCT_ADAPTER`` is named)."""
        return bool(self.get("PRODUCT_ADAPTER"))

    @property
    def request_timeout(self) -> float:
        return float(self.get("REQUEST_TIMEOUT"))

    @property
    def rate_limit(self) -> int:
        return int(self.get("RATE_LIMIT"))

    @property
    def encryption_keys(self) -> list[str]:
        return list(self.get("ENCRYPTION_KEYS") or [])

    @property
    def client_registration(self) -> bool:
        """Whether the first Connect may register the site (no ``CLIENT_ID`` configured)."""
        return bool(self.get("CLIENT_REGISTRATION")) and not self.get("CLIENT_ID")

    @property
    def oauth_mode(self) -> bool:
        """Whether the site connects by OAuth: a client is configured, or it will register one
        at the first Connect (no ``API_KEY`` either, so OAuth is the only way in)."""
        return bool(self.get("CLIENT_ID")) or (self.client_registration and not self.api_key)

    @property
    def sync_users(self) -> bool:
        return bool(self.get("SYNC_USERS"))


#: The one instance the app reads settings through.
omnisend_settings = OmnisendSettings()

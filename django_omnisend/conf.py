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
    """Typed, always-fresh view of ``settings.OMNISEND`` merged over :data:`DEFAULTS`.

    One property per key, named after it in lower case and typed with what the code uses
    (``omnisend_settings.lease_seconds`` is a float); check ``django_omnisend.E002`` reports a
    value of the wrong type at startup. Nothing is cached, so ``override_settings`` works.
    ``get("KEY")`` stays for code that reads a key by name.
    """

    @property
    def user_settings(self) -> dict[str, Any]:
        """The raw ``OMNISEND`` dict from the project settings (empty when unset).

        Empty too when Django settings are not configured, so the HTTP client works
        standalone with the defaults.
        """
        if not django_settings.configured:
            return {}
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

    def _str(self, name: str) -> str:
        return str(self.get(name) or "")

    def _optional_str(self, name: str) -> str | None:
        value = self.get(name)
        return None if value is None else str(value)

    # OAuth client and endpoints.
    @property
    def client_id(self) -> str:
        return self._str("CLIENT_ID")

    @property
    def client_secret(self) -> str:
        return self._str("CLIENT_SECRET")

    @property
    def client_registration(self) -> bool:
        """Whether the first Connect may register the site: ``CLIENT_REGISTRATION`` is on and
        no ``CLIENT_ID`` is configured (settings always win over a registered client)."""
        return bool(self.get("CLIENT_REGISTRATION")) and not self.client_id

    @property
    def client_name(self) -> str:
        return self._str("CLIENT_NAME")

    @property
    def client_uri(self) -> str:
        return self._str("CLIENT_URI")

    @property
    def registration_url(self) -> str:
        return self._str("REGISTRATION_URL")

    @property
    def redirect_uri(self) -> str:
        return self._str("REDIRECT_URI")

    @property
    def scopes(self) -> list[str]:
        """``SCOPES``, plus the ``products.*`` scopes when catalog sync is on."""
        scopes = [str(s) for s in self.get("SCOPES") or ()]
        if self.catalog_sync:
            scopes += [s for s in CATALOG_SCOPES if s not in scopes]
        return scopes

    @property
    def authorize_url(self) -> str:
        return self._str("AUTHORIZE_URL")

    @property
    def token_url(self) -> str:
        return self._str("TOKEN_URL")

    @property
    def revoke_url(self) -> str:
        return self._str("REVOKE_URL")

    @property
    def api_url(self) -> str:
        """``API_URL`` without a trailing slash."""
        return self._str("API_URL").rstrip("/")

    @property
    def api_version(self) -> str:
        return self._str("API_VERSION")

    @property
    def api_key(self) -> str:
        return self._str("API_KEY")

    @property
    def encryption_keys(self) -> list[str]:
        return list(self.get("ENCRYPTION_KEYS") or [])

    @property
    def oauth_mode(self) -> bool:
        """Whether the site connects by OAuth: a client is configured, or it will register one
        at the first Connect (no ``API_KEY`` either, so OAuth is the only way in)."""
        return bool(self.client_id) or (self.client_registration and not self.api_key)

    # Sync.
    @property
    def sync_users(self) -> bool:
        return bool(self.get("SYNC_USERS"))

    @property
    def adapter(self) -> str:
        """Dotted path of the ``ContactAdapter`` subclass."""
        return self._str("ADAPTER")

    @property
    def connection_adapter(self) -> str:
        """Dotted path of the ``ConnectionAdapter`` subclass."""
        return self._str("CONNECTION_ADAPTER")

    @property
    def task_backend(self) -> str | None:
        """django.tasks backend alias that wakes the drain; None: only ``omnisend_drain``."""
        return self._optional_str("TASK_BACKEND")

    @property
    def task_queue(self) -> str | None:
        return self._optional_str("TASK_QUEUE")

    @property
    def max_attempts(self) -> int:
        return int(self.get("MAX_ATTEMPTS"))

    @property
    def lease_seconds(self) -> float:
        return float(self.get("LEASE_SECONDS"))

    @property
    def noise_fields(self) -> list[str]:
        return [str(name) for name in self.get("NOISE_FIELDS") or ()]

    @property
    def hash_key(self) -> str:
        return self._str("HASH_KEY")

    @property
    def erasure_retention_days(self) -> float:
        return float(self.get("ERASURE_RETENTION_DAYS"))

    @property
    def trust_emails(self) -> bool:
        return bool(self.get("TRUST_EMAILS"))

    @property
    def mark_with(self) -> str:
        """``"signal"`` or ``"trigger"`` (check ``django_omnisend.E011`` rejects others)."""
        return self._str("MARK_WITH")

    # Requests, budgets and retries.
    @property
    def rate_limit(self) -> int:
        return int(self.get("RATE_LIMIT"))

    @property
    def rate_limit_window(self) -> float:
        return float(self.get("RATE_LIMIT_WINDOW"))

    @property
    def tags_rate_limit(self) -> int:
        return int(self.get("TAGS_RATE_LIMIT"))

    @property
    def rate_limit_cache(self) -> str:
        return self._str("RATE_LIMIT_CACHE")

    @property
    def request_timeout(self) -> float:
        return float(self.get("REQUEST_TIMEOUT"))

    @property
    def max_retries(self) -> int:
        return int(self.get("MAX_RETRIES"))

    @property
    def retry_after_default(self) -> Any:
        """``RETRY_AFTER_DEFAULT`` as set: callers pass it through ``bounded_wait``, which
        turns anything that is not a usable number into None."""
        return self.get("RETRY_AFTER_DEFAULT")

    @property
    def retry_backoff(self) -> float:
        return float(self.get("RETRY_BACKOFF"))

    # Events, tracking and catalog.
    @property
    def event_origin(self) -> str:
        return str(self.get("EVENT_ORIGIN"))

    @property
    def event_history_seconds(self) -> float | None:
        """None: retry a maybe-sent event at the usual backoff."""
        value = self.get("EVENT_HISTORY_SECONDS")
        return None if value is None else float(value)

    @property
    def events(self) -> dict[str, dict[str, Any]]:
        return dict(self.get("EVENTS") or {})

    @property
    def tracking_adapter(self) -> str:
        """Dotted path of the ``TrackingAdapter`` subclass."""
        return self._str("TRACKING_ADAPTER")

    @property
    def snippet_url(self) -> str:
        return str(self.get("SNIPPET_URL"))

    @property
    def product_adapter(self) -> str:
        """Dotted path of the ``ProductAdapter`` subclass; "" when catalog sync is off."""
        return self._str("PRODUCT_ADAPTER")

    @property
    def catalog_sync(self) -> bool:
        """Whether catalog sync is on (a ``PRODUCT_ADAPTER`` is named)."""
        return bool(self.product_adapter)


#: The one instance the app reads settings through.
omnisend_settings = OmnisendSettings()

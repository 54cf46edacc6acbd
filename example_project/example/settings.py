"""Settings of the example project, read from the environment with django-environ.

Values come from the process environment, then from ``example_project/.env`` (copy
``.env.example``); the environment wins. With no Omnisend credentials the site runs against the
package's bundled emulator (``manage.py demo`` starts it); put real client credentials (or an API
key) into ``.env`` and it talks to Omnisend instead.
"""

from pathlib import Path

import environ

from django_omnisend.emulator import EmulatorConfig

BASE_DIR = Path(__file__).resolve().parent.parent  # example_project/

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")  # never overrides variables already set

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env("SECRET_KEY", default="django-insecure-example-project-only")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The server and the drain worker write the same file. A deferred transaction that read
    # first cannot wait for the other's write lock (SQLite answers "database is locked" at
    # once); taking the lock at BEGIN makes it wait, up to the busy timeout.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": 20}
    )
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before staticfiles: its `runserver` (loopback only) replaces the one staticfiles adds.
    "members",
    "store",
    "django.contrib.staticfiles",
    "django_omnisend",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
ROOT_URLCONF = "example.urls"
WSGI_APPLICATION = "example.wsgi.application"
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
STATIC_URL = "/static/"
# Sign-up confirmation links are "sent" by printing the e-mail on the server's console.
EMAIL_BACKEND = env("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "store:index"
LOGOUT_REDIRECT_URL = "home"
# The OAuth callback is a top-level navigation from Omnisend: "Lax" (Django's default) sends the
# session cookie with it, "Strict" would not.
SESSION_COOKIE_SAMESITE = "Lax"
#: The site's public address: the store's catalog and events carry absolute product URLs,
#: built by the drain worker where there is no request (`demo` sets it to its own address).
SITE_URL = env("SITE_URL", default="http://127.0.0.1:8000")

# -- Omnisend ---------------------------------------------------------------------------------

_client_id = env("OMNISEND_CLIENT_ID", default="")
_api_key = env("OMNISEND_API_KEY", default="")

#: True when the site talks to the bundled emulator instead of Omnisend: the default when no
#: Omnisend credentials are configured (set OMNISEND_USE_EMULATOR to force either way).
USE_EMULATOR = env.bool("OMNISEND_USE_EMULATOR", default=not (_client_id or _api_key))

_mark_with = env("OMNISEND_MARK_WITH", default="signal")

OMNISEND = {
    "ENCRYPTION_KEYS": env.list("OMNISEND_ENCRYPTION_KEYS", default=[]),
    "SYNC_USERS": True,
    # Shops' members sync to their shop's brand. A database trigger cannot ask the adapter
    # which brand a user belongs to, so with triggers everyone syncs to the site's brand.
    "ADAPTER": "members.adapter.NewsletterAdapter"
    if _mark_with == "trigger"
    else "members.adapter.ShopNewsletterAdapter",
    # Who may connect a shop's brand: its staff (the site's: staff with the permission).
    "CONNECTION_ADAPTER": "members.adapter.ShopConnectionAdapter",
    # "trigger": database triggers mark users inside the save (installed by migrate).
    "MARK_WITH": _mark_with,
    # Deliveries are made by the `omnisend_drain --loop` worker that `manage.py demo` starts.
    "TASK_BACKEND": None,
    # The store's catalog syncs to the site's brand; its pages run Omnisend's snippet only
    # after the cookie banner's "yes".
    "PRODUCT_ADAPTER": "store.omnisend.StoreProductAdapter",
    "TRACKING_ADAPTER": "store.tracking.ConsentCookieTracking",
}
# Timing knobs the example's tests turn down (to see a faulted order resent and counted once
# in seconds, not an hour); unset, the package's defaults apply.
for _name, _cast in (
    ("EVENT_HISTORY_SECONDS", float),
    ("REQUEST_TIMEOUT", float),
    ("RETRY_BACKOFF", float),
):
    if env.str(f"OMNISEND_{_name}", default=""):
        OMNISEND[_name] = _cast(env.str(f"OMNISEND_{_name}"))

if USE_EMULATOR:
    _emulator = EmulatorConfig()
    EMULATOR_URL = env("OMNISEND_EMULATOR_URL", default="http://127.0.0.1:8787").rstrip("/")
    #: What `manage.py demo` needs to start the emulator the settings point at.
    EXAMPLE_EMULATOR = {
        "URL": EMULATOR_URL,
        "STATE_FILE": env("OMNISEND_EMULATOR_STATE", default=str(BASE_DIR / "emulator_state.json")),
        # A fixed key of the emulator's default brand, so sign-ups sync before anyone connects.
        "API_KEY": f"{_emulator.default_brand_id}-example-project-not-secret",
    }
    OMNISEND.update(
        {
            # The emulator's demo OAuth client; the redirect URI is derived from the request in
            # DEBUG, and `demo` registers http://127.0.0.1:PORT and http://localhost:PORT.
            "CLIENT_ID": _emulator.demo_client_id,
            "CLIENT_SECRET": _emulator.demo_client_secret,
            "AUTHORIZE_URL": f"{EMULATOR_URL}/oauth2/authorize",
            "TOKEN_URL": f"{EMULATOR_URL}/oauth2/token",
            "REVOKE_URL": f"{EMULATOR_URL}/oauth2/revoke",
            "API_URL": f"{EMULATOR_URL}/api",
            "API_KEY": EXAMPLE_EMULATOR["API_KEY"],
        }
    )
else:
    EXAMPLE_EMULATOR = None
    OMNISEND.update(
        {
            "CLIENT_ID": _client_id,
            "CLIENT_SECRET": env("OMNISEND_CLIENT_SECRET", default=""),
            # The exact callback URL registered with Omnisend, e.g.
            # https://example.com/omnisend/callback/ (derived from the request in DEBUG if empty).
            "REDIRECT_URI": env("OMNISEND_REDIRECT_URI", default=""),
            "API_KEY": _api_key,
        }
    )

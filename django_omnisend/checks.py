"""System checks for the ``OMNISEND`` settings.

Every message has a stable id (``django_omnisend.E0xx`` for errors, ``W0xx`` for warnings)
and a hint that names the setting to change, so ``manage.py check`` tells a person what
happened and what to do. Ids are never reused for a different meaning.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.utils.module_loading import import_string

from .conf import DEFAULTS, omnisend_settings

if TYPE_CHECKING:
    from .adapter import ContactAdapter

logger = logging.getLogger(__name__)

#: Expected Python types per key; ``None`` in a tuple means the key may be set to None.
EXPECTED_TYPES: dict[str, tuple[type | None, ...]] = {
    "CLIENT_ID": (str,),
    "CLIENT_SECRET": (str,),
    "CLIENT_REGISTRATION": (bool,),
    "CLIENT_NAME": (str,),
    "CLIENT_URI": (str,),
    "REGISTRATION_URL": (str,),
    "REDIRECT_URI": (str,),
    "SCOPES": (list, tuple),
    "AUTHORIZE_URL": (str,),
    "TOKEN_URL": (str,),
    "REVOKE_URL": (str,),
    "API_URL": (str,),
    "API_VERSION": (str,),
    "API_KEY": (str,),
    "ENCRYPTION_KEYS": (list, tuple),
    "SYNC_USERS": (bool,),
    "ADAPTER": (str,),
    "CONNECTION_ADAPTER": (str,),
    "RATE_LIMIT": (int,),
    "RATE_LIMIT_WINDOW": (int, float),
    "TAGS_RATE_LIMIT": (int,),
    "RATE_LIMIT_CACHE": (str,),
    "RETRY_AFTER_DEFAULT": (int, float),
    "RETRY_BACKOFF": (int, float),
    "REQUEST_TIMEOUT": (int, float),
    "MAX_RETRIES": (int,),
    "TASK_BACKEND": (str, None),
    "TASK_QUEUE": (str, None),
    "EVENT_ORIGIN": (str,),
    "MAX_ATTEMPTS": (int,),
    "LEASE_SECONDS": (int, float),
    "NOISE_FIELDS": (list, tuple),
    "MARK_WITH": (str,),
    "HASH_KEY": (str,),
    "ERASURE_RETENTION_DAYS": (int, float),
    "TRUST_EMAILS": (bool,),
    "PRODUCT_ADAPTER": (str,),
    "EVENT_HISTORY_SECONDS": (int, float, None),
    "EVENTS": (dict,),
    "TRACKING_ADAPTER": (str,),
    "SNIPPET_URL": (str,),
}

#: Keys that hold URLs which must be https outside DEBUG (or http to a loopback host).
URL_KEYS = (
    "AUTHORIZE_URL",
    "TOKEN_URL",
    "REVOKE_URL",
    "REGISTRATION_URL",
    "API_URL",
    "REDIRECT_URI",
)

#: Omnisend's documented ceiling; a budget above it only earns 429s.
OMNISEND_RATE_LIMIT = 400
#: Omnisend's own limit for /contacts/tags, per minute per brand.
OMNISEND_TAGS_RATE_LIMIT = 60


def is_loopback_url(url: str) -> bool:
    """Whether ``url`` is ``http://`` to this machine: 127.0.0.0/8, ``::1`` or ``localhost``.

    Only the exact name ``localhost`` counts (not ``localhost.example.com``), and addresses
    only in their standard form (``127.0.0.1.nip.io`` and ``2130706433`` are other hosts as
    far as this check knows). Loopback traffic never crosses a network, so http is safe there.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        return False
    host = parts.hostname.lower()  # without brackets, port or user info
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    return address.is_loopback or bool(mapped and mapped.is_loopback)


def _type_name(types: tuple[type | None, ...]) -> str:
    return " or ".join("None" if t is None else t.__name__ for t in types)


def _has_type(value: Any, types: tuple[type | None, ...]) -> bool:
    if value is None:
        return None in types
    # bool is an int subclass: RATE_LIMIT=True is a mistake, not a number.
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, tuple(t for t in types if t is not None))


@checks.register("django_omnisend")
def check_settings_shape(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """OMNISEND must be a dict of known keys with values of the right types."""
    raw = getattr(settings, "OMNISEND", {})
    if not isinstance(raw, dict):
        return [
            checks.Error(
                f"OMNISEND must be a dict, not {type(raw).__name__}.",
                hint='Set OMNISEND = {"API_KEY": ..., ...} in your settings.',
                id="django_omnisend.E001",
            )
        ]
    messages: list[checks.CheckMessage] = []
    for key in sorted(raw):
        if key not in DEFAULTS:
            close = difflib.get_close_matches(str(key), DEFAULTS, n=1)
            hint = (
                f'Did you mean OMNISEND["{close[0]}"]?'
                if close
                else ("Remove it; the known keys are listed in the README's settings table.")
            )
            messages.append(
                checks.Warning(
                    f'Unknown setting OMNISEND["{key}"].', hint=hint, id="django_omnisend.W002"
                )
            )
            continue
        types = EXPECTED_TYPES[key]
        if not _has_type(raw[key], types):
            messages.append(
                checks.Error(
                    f'OMNISEND["{key}"] must be {_type_name(types)}, '
                    f"not {type(raw[key]).__name__}.",
                    hint=f'Fix OMNISEND["{key}"]; its default is {DEFAULTS[key]!r}.',
                    id="django_omnisend.E002",
                )
            )
    return messages


def _settings_ok() -> bool:
    return not any(m.is_serious() for m in check_settings_shape())


@checks.register("django_omnisend")
def check_credentials(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """There must be some way to reach Omnisend, and OAuth needs both halves of its pair."""
    if not _settings_ok():
        return []
    messages: list[checks.CheckMessage] = []
    client_id = omnisend_settings.client_id
    client_secret = omnisend_settings.client_secret
    api_key = omnisend_settings.api_key
    if bool(client_id) != bool(client_secret):
        missing = "CLIENT_SECRET" if client_id else "CLIENT_ID"
        messages.append(
            checks.Error(
                f'OMNISEND["{missing}"] is empty but its OAuth partner is set.',
                hint=f'Set OMNISEND["{missing}"] to the value Omnisend issued with your '
                "OAuth client, or clear both to use an API key.",
                id="django_omnisend.E004",
            )
        )
    registering = not api_key and omnisend_settings.client_registration
    if registering:
        # Zero setup (issue 18): the first Connect registers the site with Omnisend.
        messages.append(
            checks.Info(
                'No Omnisend client credentials are configured: the first "Connect Omnisend" '
                "registers this site as an OAuth client (dynamic client registration) and keeps "
                "the issued credentials encrypted in the database.",
                hint='To use credentials Omnisend issued instead, set OMNISEND["CLIENT_ID"] and '
                'OMNISEND["CLIENT_SECRET"]; they always win. OMNISEND["CLIENT_REGISTRATION"] = '
                "False turns registration off.",
                id="django_omnisend.I001",
            )
        )
    elif not api_key and not (client_id and client_secret):
        if omnisend_settings.sync_users:
            messages.append(
                checks.Error(
                    'OMNISEND["SYNC_USERS"] is on but there are no Omnisend credentials.',
                    hint='Set OMNISEND["API_KEY"], or OMNISEND["CLIENT_ID"] and '
                    '["CLIENT_SECRET"] and connect in the admin.',
                    id="django_omnisend.E008",
                )
            )
        else:
            messages.append(
                checks.Warning(
                    "No Omnisend credentials are configured, so django-omnisend cannot connect.",
                    hint='Set OMNISEND["API_KEY"], or OMNISEND["CLIENT_ID"] and '
                    '["CLIENT_SECRET"] for the "Connect Omnisend" button.',
                    id="django_omnisend.W001",
                )
            )
    if (client_id or registering) and not settings.DEBUG and not omnisend_settings.redirect_uri:
        messages.append(
            checks.Error(
                'OMNISEND["REDIRECT_URI"] is empty, and it is only derived from the request '
                "in DEBUG.",
                hint='Set OMNISEND["REDIRECT_URI"] to the exact callback URL registered with '
                "Omnisend, e.g. https://example.com/omnisend/callback/.",
                id="django_omnisend.E009",
            )
        )
    return messages


@checks.register("django_omnisend")
def check_adapter(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """OMNISEND["ADAPTER"] must import to a ContactAdapter subclass."""
    if not _settings_ok():
        return []
    path = omnisend_settings.adapter
    try:
        adapter = import_string(path)
    except ImportError as exc:
        return [
            checks.Error(
                f'OMNISEND["ADAPTER"] = {path!r} cannot be imported: {exc}.',
                hint="Give the dotted path of a ContactAdapter subclass, e.g. "
                '"myproject.omnisend.MyAdapter".',
                id="django_omnisend.E003",
            )
        ]
    from .adapter import ContactAdapter

    if not (isinstance(adapter, type) and issubclass(adapter, ContactAdapter)):
        return [
            checks.Error(
                f'OMNISEND["ADAPTER"] = {path!r} is not a ContactAdapter subclass.',
                hint="Subclass django_omnisend.adapter.ContactAdapter and point "
                'OMNISEND["ADAPTER"] at it.',
                id="django_omnisend.E003",
            )
        ]
    return _check_email_source(adapter)


def _check_email_source(adapter: type[ContactAdapter]) -> list:
    """The default ``get_email()`` reads the user model's e-mail attribute: it must exist."""
    from django.contrib.auth import get_user_model

    from .adapter import ContactAdapter

    if not omnisend_settings.sync_users or adapter.get_email is not ContactAdapter.get_email:
        return []
    user_model = get_user_model()
    name_of = getattr(user_model, "get_email_field_name", None)
    name = name_of() if callable(name_of) else "email"
    if hasattr(user_model, name):
        return []
    return [
        checks.Error(
            f"The user model {user_model._meta.label} has no {name!r} field or attribute, and "
            f'OMNISEND["ADAPTER"] does not override get_email(): no user could be synced.',
            hint="Override ContactAdapter.get_email(user) to return the user's address (for "
            "example from a profile model), or set EMAIL_FIELD on the user model.",
            id="django_omnisend.E015",
        )
    ]


@checks.register("django_omnisend")
def check_urls(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """Outside DEBUG, tokens and codes only travel over https (or http to a loopback host)."""
    if settings.DEBUG or not _settings_ok():
        return []
    messages: list[checks.CheckMessage] = []
    for key in URL_KEYS:
        value = omnisend_settings.get(key)
        if value and urlsplit(value).scheme != "https" and not is_loopback_url(value):
            messages.append(
                checks.Error(
                    f'OMNISEND["{key}"] = {value!r} is not an https URL.',
                    hint=f'Use https for OMNISEND["{key}"] when DEBUG is False; OAuth codes '
                    "and tokens must not cross the network in clear text (http is accepted "
                    "only for 127.0.0.0/8, [::1] and localhost).",
                    id="django_omnisend.E005",
                )
            )
    return messages


@checks.register("django_omnisend")
def check_encryption_keys(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """Stored tokens need real keys in production and valid Fernet keys everywhere."""
    if not _settings_ok():
        return []
    from cryptography.fernet import Fernet

    keys = omnisend_settings.encryption_keys
    for index, key in enumerate(keys):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            return [
                checks.Error(
                    f'OMNISEND["ENCRYPTION_KEYS"][{index}] is not a valid Fernet key.',
                    hint='Generate one with: python -c "from cryptography.fernet import '
                    'Fernet; print(Fernet.generate_key().decode())"',
                    id="django_omnisend.E007",
                )
            ]
    if keys:
        return []
    if not settings.DEBUG:
        return [
            checks.Error(
                'OMNISEND["ENCRYPTION_KEYS"] is empty, so tokens cannot be stored encrypted.',
                hint="Set it to a list of Fernet keys, newest first, e.g. from the environment. "
                'Generate one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
                id="django_omnisend.E006",
            )
        ]
    return [
        checks.Warning(
            'OMNISEND["ENCRYPTION_KEYS"] is empty; a development key derived from SECRET_KEY '
            "is used (DEBUG only).",
            hint='Set OMNISEND["ENCRYPTION_KEYS"] before deploying; tokens stored with the '
            "development key will then need a reconnect.",
            id="django_omnisend.W003",
        )
    ]


@checks.register("django_omnisend")
def check_rate_limit(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """The budgets must be positive and not above Omnisend's own limits."""
    if not _settings_ok():
        return []
    messages: list[checks.CheckMessage] = []
    for name, limit, advice in (
        ("RATE_LIMIT", OMNISEND_RATE_LIMIT, "ideally 300"),
        ("TAGS_RATE_LIMIT", OMNISEND_TAGS_RATE_LIMIT, "ideally 50"),
    ):
        value = int(omnisend_settings.get(name))
        default = DEFAULTS[name]
        if value <= 0:
            messages.append(
                checks.Error(
                    f'OMNISEND["{name}"] = {value} would never send a request.',
                    hint=f"Use a positive number of requests per minute; the default is {default}.",
                    id="django_omnisend.E010",
                )
            )
        elif value > limit:
            messages.append(
                checks.Warning(
                    f'OMNISEND["{name}"] = {value} is above Omnisend\'s {limit} requests per '
                    "minute per brand.",
                    hint=f"Keep it at or below {limit}, {advice}, to leave room for other apps "
                    "on the brand.",
                    id="django_omnisend.W004",
                )
            )
    return messages


@checks.register("django_omnisend")
def check_lease(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """A drain request must end before its lease does (else another worker sends too)."""
    if not _settings_ok():
        return []
    from .sync.policy import LEASE_FLOOR, request_seconds_bound

    lease = omnisend_settings.lease_seconds
    timeout = omnisend_settings.request_timeout
    bound = request_seconds_bound(timeout)
    # A request starts with at least LEASE_FLOOR of a lease ahead of it (see _Drain.send).
    if timeout > 0 and lease * LEASE_FLOOR > bound:
        return []
    needed = bound / LEASE_FLOOR
    return [
        checks.Error(
            f'OMNISEND["LEASE_SECONDS"] = {lease:g} does not outlast one drain request: with '
            f'OMNISEND["REQUEST_TIMEOUT"] = {timeout:g} a request can take up to {bound:g} s '
            "(waiting for the rate budget, connecting, reading, and after a 401 a token "
            "refresh and one resend), and starts with at least "
            f"{LEASE_FLOOR:.0%} of a lease ahead of it.",
            hint=f'Raise OMNISEND["LEASE_SECONDS"] above {needed:g} (the default is '
            f'{DEFAULTS["LEASE_SECONDS"]}) or lower OMNISEND["REQUEST_TIMEOUT"] (must be '
            "positive): a lease that ends mid-request lets another worker send the row too.",
            id="django_omnisend.E016",
        )
    ]


@checks.register("django_omnisend", deploy=True)
def check_rate_limit_cache(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """The rate budget must live where every worker process shares it.

    A shared cache (Redis, Memcached) is the fast path; without one the budget lives in the
    database (``RateBudgetSlot``, SQLite, PostgreSQL or MariaDB/MySQL), which every process
    shares too. Only when neither can be had (an unsupported database, or the table routed to
    an alias that does not exist) does each process keep its own budget. A deployment
    (``check --deploy``) is assumed to run several processes, so that is reported there;
    development (plain ``check``) runs one, where the per-process budget is exact.
    """
    if not _settings_ok():
        return []
    from .budget_db import database_budget_alias
    from .ratelimit import cache_alias_is_shared

    alias = omnisend_settings.rate_limit_cache
    if cache_alias_is_shared(alias) or database_budget_alias() is not None:
        return []
    caches = getattr(settings, "CACHES", {})
    backend = caches.get(alias, {}).get("BACKEND", "") if alias in caches else ""
    what = f"backend {backend}" if backend else "no such alias in CACHES"
    return [
        checks.Warning(
            f'OMNISEND["RATE_LIMIT_CACHE"] = {alias!r} ({what}) has no atomic increments '
            "shared between processes, and no database can hold the budget (the "
            "RateBudgetSlot table needs SQLite, PostgreSQL or MariaDB/MySQL), so each worker "
            "keeps its own rate budget.",
            hint='Point OMNISEND["RATE_LIMIT_CACHE"] at a Redis or Memcached cache (e.g. '
            "django.core.cache.backends.redis.RedisCache), or route django_omnisend's "
            "RateBudgetSlot to a supported database; otherwise several workers together "
            'can exceed OMNISEND["RATE_LIMIT"] and Omnisend answers 429.',
            id="django_omnisend.W005",
        )
    ]


@checks.register("django_omnisend")
def check_task_backend(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """With sync on, OMNISEND["TASK_BACKEND"] must name a real, non-immediate backend."""
    if not _settings_ok() or not omnisend_settings.sync_users:
        return []
    from .tasks import backend_problem

    problem = backend_problem()
    if not problem:
        return []
    return [
        checks.Warning(
            f"Syncs will not wake a drain through django.tasks: {problem}.",
            hint="Configure a worker backend (e.g. django-tasks-db or django-tasks-rq) and "
            'name it in OMNISEND["TASK_BACKEND"] (and one of its QUEUES in '
            'OMNISEND["TASK_QUEUE"]), or set TASK_BACKEND to None and run "manage.py '
            'omnisend_drain --loop" (or cron).',
            id="django_omnisend.W006",
        )
    ]


#: The values OMNISEND["MARK_WITH"] accepts.
MARK_WITH_CHOICES = ("signal", "trigger")


@checks.register("django_omnisend")
def check_mark_with(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """OMNISEND["MARK_WITH"] is "signal" or "trigger", and triggers can work here."""
    if not _settings_ok():
        return []
    value = omnisend_settings.mark_with
    if value not in MARK_WITH_CHOICES:
        return [
            checks.Error(
                f'OMNISEND["MARK_WITH"] = {value!r} is not one of "signal", "trigger".',
                hint='Use "signal" (the default: a post_save receiver marks users) or '
                '"trigger" (database triggers on the user table, SQLite and PostgreSQL).',
                id="django_omnisend.E011",
            )
        ]
    if value != "trigger":
        return []
    from .sync import triggers

    found = triggers.problems()
    if not found:
        return []
    return [
        checks.Error(
            'OMNISEND["MARK_WITH"] = "trigger" cannot work here: ' + "; ".join(found) + ".",
            hint='Set OMNISEND["MARK_WITH"] = "signal" (the default), or remove the cause.',
            id="django_omnisend.E012",
        )
    ]


@checks.register(checks.Tags.database)
def check_mark_triggers(
    app_configs: Iterable[Any] | None = None, databases: Iterable[str] | None = None, **kwargs: Any
) -> list:
    """The user table's mark triggers match OMNISEND["MARK_WITH"] (``check --database``)."""
    if not databases or not _settings_ok() or check_mark_with():
        return []
    from django.db import connections

    from .sync import triggers

    messages: list[checks.CheckMessage] = []
    for alias in databases:
        conn = connections[alias]
        if conn.vendor not in triggers.VENDORS:
            continue
        try:
            current, present = triggers.is_current(conn), bool(triggers.installed(conn))
        except Exception as exc:  # tables not migrated yet: nothing to compare
            logger.debug("Could not read the triggers of %r: %s", alias, exc)
            continue
        if triggers.wanted() and not current:
            messages.append(
                checks.Warning(
                    f"The user mark triggers on database {alias!r} are "
                    f"{'out of date' if present else 'missing'}; saves are marked by the "
                    "post_save receiver until they are installed.",
                    hint='Run "manage.py migrate", which installs them after migrating.',
                    id="django_omnisend.W007",
                )
            )
        elif not triggers.wanted() and present:
            messages.append(
                checks.Warning(
                    f"Database {alias!r} still has user mark triggers, but "
                    + (
                        'OMNISEND["SYNC_USERS"] is off: they keep marking users'
                        if omnisend_settings.mark_with == "trigger"
                        else 'OMNISEND["MARK_WITH"] is "signal": saves are marked twice'
                    )
                    + ", and fixture loads are marked.",
                    hint='Run "manage.py migrate", which removes them.',
                    id="django_omnisend.W007",
                )
            )
    return messages


#: The line a site's ROOT_URLCONF needs (any prefix works).
URL_INCLUDE = 'path("omnisend/", include("django_omnisend.urls"))'
CALLBACK = "django_omnisend:callback"


def _callback_path() -> str | None:
    """The callback's path in this site's URLconf, or None when it cannot be reversed."""
    from django.urls import NoReverseMatch, reverse

    try:
        return reverse(CALLBACK)
    except NoReverseMatch:
        return None


@checks.register("django_omnisend", checks.Tags.urls)
def check_url_include(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """With OAuth configured, the app's URLs must be included under their namespace.

    The "Connect Omnisend" button on the admin's connection page and the OAuth callback
    reverse them; without the include that page is a 500 (``NoReverseMatch``). A site with
    only an API key uses none of the app's views, so it is not asked to include them.
    """
    if not _settings_ok() or not omnisend_settings.oauth_mode:
        return []
    try:
        found = _callback_path()
    except Exception as exc:  # a broken URLconf: Django's own URL checks report it
        logger.debug("Could not load the URLconf to look for %s: %s", CALLBACK, exc)
        return []
    if found is not None:
        return []
    return [
        checks.Error(
            f'The URL {CALLBACK!r} cannot be reversed, so the admin\'s "Connect Omnisend" '
            "button and the OAuth callback fail (NoReverseMatch).",
            hint=f"Add {URL_INCLUDE} to the urlpatterns of your ROOT_URLCONF "
            f"({settings.ROOT_URLCONF!s}); then set "
            'OMNISEND["REDIRECT_URI"] to the full URL of its callback/ page.',
            id="django_omnisend.E013",
        )
    ]


@checks.register("django_omnisend", checks.Tags.urls)
def check_redirect_uri(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """OMNISEND["REDIRECT_URI"], when set, must lead to this site's OAuth callback view."""
    from django.urls import Resolver404, resolve

    value = omnisend_settings.redirect_uri if _settings_ok() else ""
    if not value:
        return []
    try:
        callback = _callback_path()
    except Exception as exc:  # a broken URLconf: Django's own URL checks report it
        logger.debug("Could not load the URLconf to look for %s: %s", CALLBACK, exc)
        return []
    if callback is None:
        return []  # the include is missing: check_url_include says so
    path = urlsplit(value).path or "/"
    prefix = (settings.FORCE_SCRIPT_NAME or "").rstrip("/")
    if prefix and path.startswith(prefix + "/"):
        path = path[len(prefix) :]
    if path.endswith(callback):
        # The callback's own path, or that path under a prefix the web server adds
        # (SCRIPT_NAME), which cannot be known here.
        return []
    try:
        found = f"the view {resolve(path).view_name!r}"
    except Resolver404:
        found = "no view (404)"
    parts = urlsplit(value)
    suggested = f"{parts.scheme or 'https'}://{parts.netloc or 'example.com'}{prefix}{callback}"
    hint = (
        f'Set OMNISEND["REDIRECT_URI"] = "{suggested}" (this site\'s callback) and register '
        "exactly that URL with Omnisend."
    )
    if path + "/" == callback:
        hint = "Add the trailing slash. " + hint
    return [
        checks.Error(
            f'OMNISEND["REDIRECT_URI"] = {value!r} leads to {found}, not to the OAuth '
            f"callback ({CALLBACK}), so Omnisend's redirect after approval would fail.",
            hint=hint,
            id="django_omnisend.E014",
        )
    ]


#: The session engine that keeps the whole session in the browser's cookie.
SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"


@checks.register("django_omnisend")
def check_session_engine(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """With OAuth configured, the session must live on the server.

    A started connection keeps its PKCE ``code_verifier`` and ``state`` in the session. With
    ``signed_cookies`` they sit, signed but readable, in the browser's cookie, so whoever reads
    that cookie (or the browser's storage) holds the verifier that PKCE assumes never left the
    server.
    """
    if not _settings_ok() or not omnisend_settings.oauth_mode:
        return []
    engine = str(getattr(settings, "SESSION_ENGINE", "") or "")
    try:
        from django.contrib.sessions.backends.signed_cookies import SessionStore as Signed

        signed = engine == SIGNED_COOKIES or issubclass(
            import_string(f"{engine}.SessionStore"), Signed
        )
    except (ImportError, TypeError):  # a broken engine: Django reports it when it is used
        signed = False
    if not signed:
        return []
    return [
        checks.Warning(
            f"SESSION_ENGINE is {engine!r}: the PKCE verifier of a started Omnisend connection "
            "would be kept in the browser's cookie, not on the server.",
            hint="Use a server-side session engine (the default database engine, cache or "
            "cached_db) on the site that connects Omnisend.",
            id="django_omnisend.W008",
        )
    ]


@checks.register("django_omnisend")
def check_product_adapter(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """OMNISEND["PRODUCT_ADAPTER"], when set, must import to a ProductAdapter subclass."""
    if not _settings_ok() or not omnisend_settings.catalog_sync:
        return []
    path = omnisend_settings.product_adapter
    from .catalog.adapter import ProductAdapter

    try:
        adapter = import_string(path)
    except ImportError as exc:
        problem = f"cannot be imported: {exc}"
    else:
        if isinstance(adapter, type) and issubclass(adapter, ProductAdapter):
            return []
        problem = "is not a ProductAdapter subclass"
    return [
        checks.Error(
            f'OMNISEND["PRODUCT_ADAPTER"] = {path!r} {problem}.',
            hint="Give the dotted path of a django_omnisend.product_adapter.ProductAdapter "
            'subclass, or "" to turn catalog sync off.',
            id="django_omnisend.E017",
        )
    ]


@checks.register("django_omnisend", checks.Tags.database)
def check_catalog_scopes(app_configs: Iterable[Any] | None = None, **kwargs: Any) -> list:
    """With catalog sync on, the site's OAuth connection must hold the ``products.*`` scopes.

    A database check (``manage.py check --database default``, and ``migrate``): it reads
    the connection row.
    """
    if not kwargs.get("databases") or not _settings_ok() or not omnisend_settings.catalog_sync:
        return []
    from django.db import DatabaseError

    from .catalog import missing_scopes
    from .connect import DEFAULT_KEY, connection_for_key

    try:
        missing = missing_scopes(connection_for_key(DEFAULT_KEY))
    except DatabaseError:  # not migrated yet: nothing to compare
        return []
    if not missing:
        return []
    return [
        checks.Warning(
            f"Catalog sync is on but the Omnisend connection was not granted "
            f"{' '.join(missing)}: every product write will be refused (403).",
            hint="Reconnect Omnisend (the Connect page asks for the products scopes now), or "
            'set OMNISEND["PRODUCT_ADAPTER"] = "" to turn catalog sync off.',
            id="django_omnisend.W009",
        )
    ]

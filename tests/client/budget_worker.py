"""One "process" of the shared-budget tests: N contact upserts through a shared budget.

``python -m tests.client.budget_worker API_URL API_KEY STORE KEY_PREFIX BRAND N BUDGET WINDOW
[LABEL]``
``STORE`` is a Redis URL (the budget lives in that Redis cache), ``sqlite:///PATH``,
``postgres://USER[:PASSWORD]@HOST[:PORT]/NAME`` or ``mysql://USER[:PASSWORD]@HOST[:PORT]/NAME``
(the budget lives in the ``RateBudgetSlot`` table of that database, already migrated, with a
LocMem cache that shares nothing). ``LABEL`` (default ``w``) goes into every contact's e-mail
(``BRAND-KEY_PREFIX-LABEL-I@example.com``), so a test can tell the workers' requests apart.
Configures Django minimally, then sends N upserts and prints how many succeeded. Not
collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import sys


def database_settings(url: str) -> dict:
    """Django ``DATABASES`` entry for a ``sqlite:///PATH``, ``postgres://`` or ``mysql://`` URL."""
    if url.startswith("sqlite:///"):
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": url.removeprefix("sqlite:///"),
            "OPTIONS": {"timeout": 30},
        }
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    engine = "mysql" if parts.scheme == "mysql" else "postgresql"
    return {
        "ENGINE": f"django.db.backends.{engine}",
        "NAME": parts.path.lstrip("/"),
        "USER": unquote(parts.username or ""),
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
    }


def main(argv: list[str]) -> int:
    api_url, api_key, store, key_prefix, brand, count, budget, window = argv[:8]
    label = argv[8] if len(argv) > 8 else "w"
    import django
    from django.conf import settings

    if store.startswith(("sqlite:///", "postgres://", "mysql://")):
        settings.configure(
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            DATABASES={"default": database_settings(store)},
            INSTALLED_APPS=[
                "django.contrib.contenttypes",
                "django.contrib.auth",
                "django_omnisend",
            ],
            USE_TZ=True,
            OMNISEND={"API_URL": api_url},
        )
        django.setup()
        expected = "database"
    else:
        settings.configure(
            CACHES={
                "default": {
                    "BACKEND": "django.core.cache.backends.redis.RedisCache",
                    "LOCATION": store,
                    "KEY_PREFIX": key_prefix,
                }
            },
            OMNISEND={"API_URL": api_url},
        )
        expected = "cache"
    from django_omnisend.api import ApiKeyAuth, OmnisendClient
    from django_omnisend.ratelimit import RateLimiter

    limiter = RateLimiter(brand, budget=int(budget), window=float(window), subwindows=15)
    assert limiter.store == expected, f"the budget must live in the {expected}, not {limiter!r}"
    ok = 0
    with OmnisendClient(ApiKeyAuth(api_key), rate_limiter=limiter, max_wait=120) as client:
        for i in range(int(count)):
            email = f"{brand}-{key_prefix}-{label}-{i}@example.com"
            body = {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}
            client.contacts.upsert(body)
            ok += 1
    if expected == "cache":
        from django.core.cache import caches

        # Close the pooled Redis sockets before exit (-W error makes a ResourceWarning fatal).
        for pool in caches["default"]._cache._pools.values():
            pool.disconnect()
    else:
        from django.db import connections

        connections.close_all()
    print(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One "process" of the shared-budget test: N contact upserts through a Redis-backed budget.

``python -m tests.client.budget_worker API_URL API_KEY REDIS_URL KEY_PREFIX BRAND N BUDGET WINDOW``
Configures Django minimally (only CACHES and OMNISEND), then sends N upserts and prints how many
succeeded. Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    api_url, api_key, redis_url, key_prefix, brand, count, budget, window = argv
    from django.conf import settings

    settings.configure(
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": redis_url,
                "KEY_PREFIX": key_prefix,
            }
        },
        OMNISEND={"API_URL": api_url},
    )
    from django_omnisend.client import ApiKeyAuth, OmnisendClient
    from django_omnisend.ratelimit import RateLimiter

    limiter = RateLimiter(brand, budget=int(budget), window=float(window), subwindows=15)
    assert limiter.shared, "the budget must live in Redis"
    ok = 0
    with OmnisendClient(ApiKeyAuth(api_key), rate_limiter=limiter, max_wait=120) as client:
        for i in range(int(count)):
            email = f"{brand}-{key_prefix}-{id(client)}-{i}@example.com"
            body = {"identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}]}
            client.contacts.upsert(body)
            ok += 1
    from django.core.cache import caches

    # Close the pooled Redis sockets before exit (-W error makes a ResourceWarning fatal).
    for pool in caches["default"]._cache._pools.values():
        pool.disconnect()
    print(ok)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

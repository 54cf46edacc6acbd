"""Django settings for the benchmark processes (``DJANGO_SETTINGS_MODULE=benchmarks.settings``).

Every benchmark process (the measuring script, backfill children, ``omnisend_drain``
workers) reads the same three environment variables, set by :mod:`benchmarks.common`:

``BENCH_DATABASE``  the ``DATABASES["default"]`` dict as JSON (a temp SQLite file by default)
``BENCH_CACHE``     the ``CACHES["default"]`` dict as JSON (local memory by default)
``BENCH_OMNISEND``  the ``OMNISEND`` dict as JSON (emulator URL, API key, limits, ...)
"""

import json
import os
import tempfile

SECRET_KEY = "benchmarks-only-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

DATABASES = {
    "default": json.loads(
        os.environ.get("BENCH_DATABASE")
        or json.dumps(
            {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": os.path.join(tempfile.gettempdir(), "omnisend-bench.sqlite3"),
            }
        )
    )
}
CACHES = {
    "default": json.loads(
        os.environ.get("BENCH_CACHE")
        or '{"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}'
    )
}
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_omnisend",
]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# No django.tasks nudges: the benchmarks drain explicitly (omnisend_drain, drain(), bulk).
OMNISEND = {"TASK_BACKEND": None, **json.loads(os.environ.get("BENCH_OMNISEND") or "{}")}

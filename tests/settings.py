"""Settings for django-omnisend's own test suite.

``DATABASE_URL`` and ``CACHE_URL`` come from the environment through django-environ, so one
suite runs on SQLite + local memory by default and on PostgreSQL + Redis in CI.
"""

import os
from pathlib import Path

import environ

env = environ.Env()
BASE_DIR = Path(__file__).resolve().parent

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'test.sqlite3'}")}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A file, not SQLite's in-memory default, so drain worker processes can share the test
    # database (tests hand its path to them); one file per tox env or run, so runs never meet.
    DATABASES["default"]["TEST"] = {
        "NAME": str(BASE_DIR / f"test-db-{os.environ.get('TOX_ENV_NAME') or os.getpid()}.sqlite3")
    }
    # SQLite's busy wait polls (up to every 100 ms) and is not fair: with four drain workers
    # and the test's own saves writing under a CPU hog, one connection can miss the lock for
    # its whole default 5 s and get "database is locked" (M13, 2 runs in 20). Django's advice
    # for concurrent SQLite is a longer timeout; a site with several workers needs the same.
    # The drain's handling of the error itself is tested with a short one
    # (tests/faults/test_database_locked.py: a DATABASE_URL "?timeout=" wins over this).
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("timeout", 30)
if DATABASES["default"]["ENGINE"].endswith("mysql"):
    # Four-byte UTF-8 for names and addresses, in the test database Django creates as well.
    DATABASES["default"].setdefault("OPTIONS", {}).setdefault("charset", "utf8mb4")
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4"}
    # MariaDB/MySQL have no partial indexes or constraints: Django builds the partial indexes
    # as plain ones (W037) and skips the conditional unique constraints (W036, ours and
    # allauth's), as the README says a site on MariaDB sees and silences.
    SILENCED_SYSTEM_CHECKS = ["models.W036", "models.W037"]
# A second database, created only for the tests that ask for it (``databases=[..., "second"]``):
# the sync tables and the user model routed there (tests/routers.py), as a site may do.
DATABASES["second"] = {
    "ENGINE": "django.db.backends.sqlite3",
    # Only its test database is ever a file; outside the tests that use it nothing is written.
    "NAME": ":memory:",
    "TEST": {
        "NAME": str(
            BASE_DIR / f"test-second-{os.environ.get('TOX_ENV_NAME') or os.getpid()}.sqlite3"
        )
    },
    "OPTIONS": {"timeout": 30},
}
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://")}

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_omnisend",
    # A small shop whose catalog the catalog sync tests send (tests/shop/omnisend.py).
    "tests.shop",
    # django-allauth: ContactAdapter.is_email_verified reads its EmailAddress by default.
    "allauth",
    "allauth.account",
]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
ROOT_URLCONF = "tests.urls"

# A real django.tasks backend (database queue, worked by `manage.py db_worker` in its own
# process): the sync tests deliver through it. Django 5.2 uses the django-tasks backport.
INSTALLED_APPS.append("django_tasks_db")
TASKS: dict[str, dict[str, object]] = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
# And one on a real broker: RQ on Redis (django-tasks-rq), worked by `manage.py rqworker` in
# its own process (tests/sync/test_broker.py). OMNISEND_TEST_BROKER_URL names the server and
# database; the default, db 4, is one no test uses as a cache (caches are flushed between
# tests: the postgres env's CACHE_URL is db 1, tests/client and test_checks use db 2). Each
# run has its own queue, so parallel runs on one Redis never take each other's jobs; the name
# reaches worker processes through the environment.
INSTALLED_APPS.append("django_rq")
BROKER_URL = env("OMNISEND_TEST_BROKER_URL", default="redis://127.0.0.1:6379/4")
RQ_QUEUE = os.environ.setdefault("OMNISEND_TEST_RQ_QUEUE", f"omnisend-tests-{os.getpid()}")
# django-tasks-rq reads results (``get_result``) through the "default" queue's connection; no
# test enqueues there.
RQ_QUEUES = {RQ_QUEUE: {"URL": BROKER_URL}, "default": {"URL": BROKER_URL}}
TASKS["rq"] = {"BACKEND": "django_tasks_rq.RQBackend", "QUEUES": [RQ_QUEUE]}
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
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# A fixed, public test key: every process of a test run (drain workers included) must be
# able to decrypt what the others stored. Never use it anywhere else.
TEST_ENCRYPTION_KEY = "r5p8vP0oY2Ehm1G7b7bmJmJ4bb7w7o6zXyHc5kP3m8E="

OMNISEND = {
    "API_KEY": "test-api-key-not-real",
    "ENCRYPTION_KEYS": [TEST_ENCRYPTION_KEY],
    "API_URL": "https://omnisend.invalid/api",
    "TASK_BACKEND": None,
}
# Worker processes started by tests receive the emulator's coordinates this way.
OMNISEND.update(env.json("OMNISEND_TEST_OVERRIDES", default={}))

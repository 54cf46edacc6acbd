"""tests/settings.py with a UUID-keyed ``AUTH_USER_MODEL`` (tox env ``users-uuid``)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_users.uuid_keys"]  # noqa: F405
AUTH_USER_MODEL = "uuid_keys.User"

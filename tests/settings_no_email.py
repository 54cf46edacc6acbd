"""tests/settings.py with an ``AUTH_USER_MODEL`` that has no e-mail column (``users-no-email``)."""

from tests.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_users.no_email"]  # noqa: F405
AUTH_USER_MODEL = "no_email.User"
# allauth reads the user's e-mail column in its migrations unless told there is none.
ACCOUNT_USER_MODEL_EMAIL_FIELD = None

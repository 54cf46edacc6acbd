"""Database routers for tests that put the user model and the sync tables apart from default."""

from __future__ import annotations

from typing import Any

from django.conf import settings

#: Apps whose tables live in the ``second`` database under :class:`UsersInSecond`: the user
#: model's (whatever AUTH_USER_MODEL is), auth's and ours.
SECOND_APPS = {"auth", "django_omnisend", settings.AUTH_USER_MODEL.split(".")[0]}


class UsersInSecond:
    """The user model and the sync tables in ``second``; everything else (the tasks queue,
    content types, sessions) in ``default``. Every table exists in both test databases."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "second" if model._meta.app_label in SECOND_APPS else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "second" if model._meta.app_label in SECOND_APPS else None

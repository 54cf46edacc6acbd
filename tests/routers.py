"""Database routers for tests that put the user model and the sync tables apart from default."""

from __future__ import annotations

from typing import Any

#: Apps whose tables live in the ``second`` database under :class:`UsersInSecond`.
SECOND_APPS = {"auth", "django_omnisend"}


class UsersInSecond:
    """The user model and the sync tables in ``second``; everything else (the tasks queue,
    content types, sessions) in ``default``. Every table exists in both test databases."""

    def db_for_read(self, model: Any, **hints: Any) -> str | None:
        return "second" if model._meta.app_label in SECOND_APPS else None

    def db_for_write(self, model: Any, **hints: Any) -> str | None:
        return "second" if model._meta.app_label in SECOND_APPS else None

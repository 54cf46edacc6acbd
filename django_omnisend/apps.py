"""App config: ``ready()`` registers checks, user-model receivers and log redaction."""

from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DjangoOmnisendConfig(AppConfig):
    name = "django_omnisend"
    label = "django_omnisend"
    verbose_name = _("Omnisend")
    # Explicit so the host project's DEFAULT_AUTO_FIELD never changes our migrations.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import (
            checks,  # noqa: F401  (registers the checks)
            receivers,
            redaction,
        )

        receivers.connect_receivers()
        # Every logger of the package redacts credentials, including ones made after import.
        redaction.install()

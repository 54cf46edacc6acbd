"""App config: ``ready()`` registers checks, user-model receivers, log redaction and the
OAuth client credentials resolver."""

from __future__ import annotations

from django.apps import AppConfig
from django.core.signals import setting_changed
from django.db.models.signals import post_migrate, pre_migrate
from django.utils.translation import gettext_lazy as _


class DjangoOmnisendConfig(AppConfig):
    name = "django_omnisend"
    label = "django_omnisend"
    verbose_name = _("Omnisend")
    # Explicit so the host project's DEFAULT_AUTO_FIELD never changes our migrations.
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import catalog, checks, redaction  # noqa: F401  (importing checks registers them)
        from .api import oauth
        from .connect import registration
        from .sync import receivers, triggers

        receivers.connect_receivers()
        # Catalog sync: receivers on the models OMNISEND["PRODUCT_ADAPTER"] names.
        catalog.connect_receivers()
        # After every migrate: install, replace or remove the user mark triggers.
        pre_migrate.connect(triggers.before_migrate, sender=self)
        post_migrate.connect(triggers.after_migrate, sender=self)
        setting_changed.connect(_settings_changed)
        # Every logger of the package redacts credentials, including ones made after import.
        redaction.install()
        # Client credentials: settings, else the site's own registration (issue 18).
        oauth.set_credentials_resolver(registration.resolve_credentials)


def _settings_changed(setting: str, **kwargs) -> None:
    # override_settings(OMNISEND=...) may switch MARK_WITH or NOISE_FIELDS.
    if setting in ("OMNISEND", "AUTH_USER_MODEL", "USE_TZ"):
        from .sync import triggers

        triggers.forget()
    if setting == "OMNISEND":
        from . import catalog

        catalog.connect_receivers()

from django.apps import AppConfig


class NoEmailConfig(AppConfig):
    name = "tests.custom_users.no_email"
    label = "no_email"
    default_auto_field = "django.db.models.BigAutoField"

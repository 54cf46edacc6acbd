from django.apps import AppConfig


class UuidKeysConfig(AppConfig):
    name = "tests.custom_users.uuid_keys"
    label = "uuid_keys"
    default_auto_field = "django.db.models.BigAutoField"

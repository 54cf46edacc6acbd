"""A claim index for databases without partial indexes (MariaDB/MySQL): (dirty, next_attempt_at, id).

Django builds a partial index there as a plain one, so ``django_omnisend_due_id_idx``
holds every sync row, clean ones included, in ``(next_attempt_at, id)`` order: a claim
walking it passes every clean row older than the first due one (at 10⁶ users, most of the
table). With ``dirty`` in front, ``dirty = TRUE AND next_attempt_at <= now ORDER BY
next_attempt_at, id`` reads the due rows only, in order. The outbox's
``(state, next_attempt_at, id)`` already leads with its claim's equality, so it fits as is.

Only where partial indexes are unsupported, and outside the model state: PostgreSQL and
SQLite keep their partial index and pay for no second one on every mark.
"""

from django.db import migrations, models

NAME = "django_omnisend_due_dirty_idx"


def _index() -> models.Index:
    return models.Index(fields=["dirty", "next_attempt_at", "id"], name=NAME)


def add_index(apps, schema_editor):
    if schema_editor.connection.features.supports_partial_indexes:
        return
    schema_editor.add_index(apps.get_model("django_omnisend", "SyncState"), _index())


def remove_index(apps, schema_editor):
    if schema_editor.connection.features.supports_partial_indexes:
        return
    schema_editor.remove_index(apps.get_model("django_omnisend", "SyncState"), _index())


class Migration(migrations.Migration):
    dependencies = [
        ("django_omnisend", "0010_rate_budget"),
    ]

    operations = [
        # Not in a transaction of its own: MySQL cannot roll DDL back, and Django refuses it.
        migrations.RunPython(add_index, remove_index, atomic=False, elidable=False),
    ]

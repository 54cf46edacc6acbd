"""The due indexes fit the claim: ``(next_attempt_at, id)``, partial (issue 17).

A claim reads ``ORDER BY next_attempt_at, id LIMIT 100``. Over an index on
``next_attempt_at`` alone PostgreSQL read and sorted every due row sharing the first
timestamp (10⁵ after an admin "retry now": a sequential scan and sort, ~1 s per claim);
over ``(next_attempt_at, id)`` it reads 100 index entries. The old indexes stay (migrations
are additive only), though each is a prefix of its replacement. The outbox's leads with its (constant) ``state``: without statistics SQLite otherwise prefers the
plain ``state`` index for ``state = 'pending'`` and sorts every pending item.

Databases without partial indexes (MySQL/MariaDB) get neither, as before.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_omnisend", "0004_batch_settlement"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="syncstate",
            index=models.Index(
                condition=models.Q(("dirty", True)),
                fields=["next_attempt_at", "id"],
                name="django_omnisend_due_id_idx",
            ),
        ),
        migrations.AddIndex(
            model_name="outboxitem",
            index=models.Index(
                condition=models.Q(("state", "pending")),
                fields=["state", "next_attempt_at", "id"],
                name="django_omnisend_outbox_due_id",
            ),
        ),
    ]

"""Catalog sync (issue 20): product/category outbox kinds and the coalescing ``subject``.

Additive: a new column (empty for existing rows), new choices, and a partial index that
holds only pending catalog items.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_omnisend', '0007_client_registration'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='outboxitem',
            name='subject',
            field=models.CharField(blank=True, max_length=120, verbose_name='subject'),
        ),
        migrations.AlterField(
            model_name='outboxitem',
            name='kind',
            field=models.CharField(choices=[('event', 'Event'), ('erasure', 'Erasure'), ('product_upsert', 'Product upsert'), ('product_delete', 'Product delete'), ('category_upsert', 'Category upsert'), ('category_delete', 'Category delete')], max_length=16, verbose_name='kind'),
        ),
        migrations.AddIndex(
            model_name='outboxitem',
            index=models.Index(condition=models.Q(('state', 'pending'), models.Q(('subject', ''), _negated=True)), fields=['subject', 'connection_key'], name='django_omnisend_outbox_subject'),
        ),
    ]

"""Additive: ``SyncState.batch_consent_at``, the consent a batch carries (issue 14)."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("django_omnisend", "0003_address_binding"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncstate",
            name="batch_consent_at",
            field=models.DateTimeField(blank=True, null=True, verbose_name="batch consent at"),
        ),
    ]

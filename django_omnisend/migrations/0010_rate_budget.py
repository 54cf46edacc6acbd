"""Additive: ``RateBudgetSlot``, the request budget kept in the database without a shared cache (issue 17)."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('django_omnisend', '0009_connection_client_id'),
    ]

    operations = [
        migrations.CreateModel(
            name='RateBudgetSlot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('key', models.CharField(max_length=200, verbose_name='key')),
                ('slot_index', models.BigIntegerField(verbose_name='sub-window')),
                ('count', models.BigIntegerField(default=0, verbose_name='count')),
            ],
            options={
                'verbose_name': 'rate budget slot',
                'verbose_name_plural': 'rate budget slots',
                'constraints': [models.UniqueConstraint(fields=('key', 'slot_index'), name='django_omnisend_budget_slot_unique')],
            },
        ),
    ]

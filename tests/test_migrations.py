"""The models and the committed migrations agree (a drift check), and migrations apply."""

from io import StringIO

import pytest
from django.core.management import call_command


@pytest.mark.django_db
def test_no_missing_migrations():
    out = StringIO()
    try:
        call_command(
            "makemigrations", "django_omnisend", "--check", "--dry-run", stdout=out, stderr=out
        )
    except SystemExit:  # makemigrations --check exits 1 on drift
        pytest.fail(f"Models and migrations differ; run makemigrations.\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_migrations_unapply_and_reapply():
    call_command("migrate", "django_omnisend", "zero", verbosity=0)
    call_command("migrate", "django_omnisend", verbosity=0)

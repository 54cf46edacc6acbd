"""``django_omnisend.testing``: the emulator fixtures a project's own test run gets.

The fixtures run where users run them: in a child ``python -m pytest`` over a small project in a
temporary folder (its own settings, SQLite database and ``conftest.py``), so this suite's
fixtures and settings never stand in for them. The README's own usage (``pytest_plugins``) runs
in ``tests/example/test_install_readme.py``; here the project imports the fixtures by name, the
README's other spelling, and its tests check what the README promises, in order:

1. ``omnisend`` points ``OMNISEND`` at the emulator, keeps the project's other keys, registers
   the project's ``REDIRECT_URI`` for the demo client, and a saved user reaches the emulator.
2. The next test sees the emulator reset (no contacts, faults, ledger or extra redirect URI)
   and the project's settings back: ``omnisend_emulator`` changes none.
3. The brand's rate budget spent by test 1 is cleared for the next ``omnisend`` test.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import django_omnisend

SETTINGS = """
from cryptography.fernet import Fernet

SECRET_KEY = "plugin-test-not-secret"
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_omnisend",
]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
OMNISEND = {
    "API_URL": "https://omnisend.invalid/api",
    "API_KEY": "the-project-key",
    "REDIRECT_URI": "http://testserver/omnisend/callback/",
    "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
    "SYNC_USERS": True,
    "ADAPTER": "django_omnisend.adapter.ContactAdapter",
}
"""

CONFTEST = """
from django_omnisend.testing import omnisend, omnisend_emulator, omnisend_emulator_server
"""

TESTS = """
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model

from django_omnisend.conf import omnisend_settings
from django_omnisend.ratelimit import RateLimiter
from django_omnisend.sync import drain

REDIRECT_URI = "http://testserver/omnisend/callback/"


@pytest.mark.django_db
def test_1_settings_point_at_the_emulator(omnisend):
    assert omnisend_settings.get("API_URL") == omnisend.api_url
    assert omnisend_settings.get("TOKEN_URL") == omnisend.token_url
    assert omnisend_settings.get("CLIENT_ID") == omnisend.demo_client_id
    assert omnisend_settings.get("TASK_BACKEND") is None
    key = omnisend_settings.get("API_KEY")
    assert key != "the-project-key" and omnisend.state.api_keys[key]["revoked"] is False
    assert omnisend_settings.get("ADAPTER") == "django_omnisend.adapter.ContactAdapter"
    assert REDIRECT_URI in omnisend.demo_redirect_uris
    get_user_model().objects.create_user("ann", "ann@example.com", "a-long-password")
    assert drain().synced == 1
    assert omnisend.get_contact("ann@example.com")["status"] == "nonSubscribed"
    assert RateLimiter().usage(omnisend.default_brand_id) >= 1
    omnisend.add_fault("GET /api/*", "503")


def test_2_next_test_gets_a_reset_emulator_and_the_project_settings(omnisend_emulator):
    assert omnisend_emulator.contacts() == []
    assert omnisend_emulator.faults_list() == []
    assert omnisend_emulator.ledger == []
    assert REDIRECT_URI not in omnisend_emulator.demo_redirect_uris
    assert settings.OMNISEND["API_URL"] == "https://omnisend.invalid/api"
    assert settings.OMNISEND["API_KEY"] == "the-project-key"


def test_3_rate_budget_is_cleared(omnisend):
    assert RateLimiter().usage(omnisend.default_brand_id) == 0
"""


def test_fixtures_in_a_project_test_run(tmp_path: Path):
    (tmp_path / "project_settings.py").write_text(SETTINGS)
    (tmp_path / "conftest.py").write_text(CONFTEST)
    (tmp_path / "test_with_omnisend.py").write_text(textwrap.dedent(TESTS))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nDJANGO_SETTINGS_MODULE = project_settings\nfilterwarnings = error\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "PYTEST_"))}
    package_root = str(Path(django_omnisend.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(tmp_path), package_root, os.environ.get("PYTHONPATH", "")] if p
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-v"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "3 passed" in output, output


def test_importing_the_package_does_not_import_pytest():
    code = (
        "import sys, django_omnisend, django_omnisend.emulator; "
        "assert 'pytest' not in sys.modules, 'pytest imported by the package'; "
        "import django_omnisend.testing; assert 'pytest' in sys.modules"
    )
    package_root = str(Path(django_omnisend.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": package_root}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=60)

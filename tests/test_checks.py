"""Every system check id: triggered directly and through ``manage.py check``."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_omnisend import checks
from django_omnisend.adapter import ContactAdapter, normalize_email

KEY = Fernet.generate_key().decode()
GOOD = {"API_KEY": "k", "ENCRYPTION_KEYS": [KEY]}

# manage.py check runs model checks, and JSONField's asks the database what it supports.
pytestmark = pytest.mark.django_db


def ids(messages):
    return sorted(m.id for m in messages)


def all_messages():
    return (
        checks.check_settings_shape()
        + checks.check_credentials()
        + checks.check_adapter()
        + checks.check_urls()
        + checks.check_encryption_keys()
        + checks.check_rate_limit()
    )


@override_settings(OMNISEND=GOOD)
def test_good_settings_pass_every_check():
    assert all_messages() == []


@override_settings(OMNISEND=GOOD)
def test_manage_py_check_is_clean_with_good_settings(capsys):
    call_command("check", "--fail-level", "WARNING")
    assert "no issues" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("omnisend", "debug", "expected"),
    [
        pytest.param("not a dict", False, ["django_omnisend.E001"], id="E001-not-a-dict"),
        pytest.param({**GOOD, "RATE_LIMIT": "300"}, False, ["django_omnisend.E002"], id="E002"),
        pytest.param({**GOOD, "SYNC_USERS": 1}, False, ["django_omnisend.E002"], id="E002-bool"),
        pytest.param({**GOOD, "RATE_LIMIT": True}, False, ["django_omnisend.E002"], id="E002-b"),
        pytest.param(
            {**GOOD, "ADAPTER": "no.such.Adapter"}, False, ["django_omnisend.E003"], id="E003"
        ),
        pytest.param(
            {**GOOD, "ADAPTER": "django_omnisend.conf.OmnisendSettings"},
            False,
            ["django_omnisend.E003"],
            id="E003-not-adapter",
        ),
        pytest.param(
            {**GOOD, "CLIENT_ID": "id", "REDIRECT_URI": "https://x.test/cb/"},
            False,
            ["django_omnisend.E004"],
            id="E004",
        ),
        pytest.param(
            {**GOOD, "API_URL": "http://api.example.test/api"},
            False,
            ["django_omnisend.E005"],
            id="E005",
        ),
        pytest.param({"API_KEY": "k"}, False, ["django_omnisend.E006"], id="E006"),
        pytest.param(
            {"API_KEY": "k", "ENCRYPTION_KEYS": ["short"]},
            False,
            ["django_omnisend.E007"],
            id="E007",
        ),
        pytest.param(
            {"ENCRYPTION_KEYS": [KEY], "SYNC_USERS": True},
            False,
            ["django_omnisend.E008"],
            id="E008",
        ),
        pytest.param(
            {"ENCRYPTION_KEYS": [KEY], "CLIENT_ID": "id", "CLIENT_SECRET": "s"},
            False,
            ["django_omnisend.E009"],
            id="E009",
        ),
        pytest.param({**GOOD, "RATE_LIMIT": 0}, False, ["django_omnisend.E010"], id="E010"),
        pytest.param({"ENCRYPTION_KEYS": [KEY]}, False, ["django_omnisend.W001"], id="W001"),
        pytest.param({**GOOD, "API_KEYS": "k"}, False, ["django_omnisend.W002"], id="W002"),
        pytest.param({"API_KEY": "k"}, True, ["django_omnisend.W003"], id="W003"),
        pytest.param({**GOOD, "RATE_LIMIT": 500}, False, ["django_omnisend.W004"], id="W004"),
    ],
)
def test_each_check_id(omnisend, debug, expected):
    with override_settings(OMNISEND=omnisend, DEBUG=debug):
        messages = all_messages()
        assert ids(messages) == expected
        for message in messages:
            assert "OMNISEND" in message.hint or "OMNISEND" in message.msg


def test_unknown_key_hint_suggests_the_close_match():
    with override_settings(OMNISEND={**GOOD, "API_KEYS": "k"}):
        (message,) = checks.check_settings_shape()
    assert 'OMNISEND["API_KEY"]' in message.hint


def test_http_urls_are_fine_in_debug():
    with override_settings(OMNISEND={**GOOD, "API_URL": "http://127.0.0.1:9/api"}, DEBUG=True):
        assert checks.check_urls() == []


def test_redirect_uri_may_be_derived_in_debug():
    omnisend = {"ENCRYPTION_KEYS": [KEY], "CLIENT_ID": "id", "CLIENT_SECRET": "s"}
    with override_settings(OMNISEND=omnisend, DEBUG=True):
        assert checks.check_credentials() == []


@pytest.mark.parametrize(
    ("omnisend", "expected_id"),
    [
        ({**GOOD, "API_URL": "http://api.example.test/api"}, "django_omnisend.E005"),
        ({"API_KEY": "k"}, "django_omnisend.E006"),
        ({**GOOD, "ADAPTER": "no.such.Adapter"}, "django_omnisend.E003"),
    ],
)
def test_errors_fail_manage_py_check(omnisend, expected_id):
    with override_settings(OMNISEND=omnisend), pytest.raises(SystemCheckError) as excinfo:
        call_command("check")
    assert expected_id in str(excinfo.value)


def test_check_deploy_errors_without_encryption_keys():
    with override_settings(OMNISEND={"API_KEY": "k"}), pytest.raises(SystemCheckError) as exc:
        call_command("check", "--deploy")
    assert "django_omnisend.E006" in str(exc.value)


def test_warnings_are_reported_by_manage_py_check(capsys):
    with override_settings(OMNISEND={**GOOD, "API_KEYS": "k"}):
        call_command("check")
    assert "django_omnisend.W002" in capsys.readouterr().err


REDIS_CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "shared": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": "redis://127.0.0.1:6379/2",
    },
}


@pytest.mark.parametrize(
    ("omnisend", "expected"),
    [
        pytest.param(GOOD, ["django_omnisend.W005"], id="W005-locmem"),
        pytest.param({**GOOD, "RATE_LIMIT_CACHE": "nope"}, ["django_omnisend.W005"], id="W005-"),
        pytest.param({**GOOD, "RATE_LIMIT_CACHE": "shared"}, [], id="W005-redis-ok"),
    ],
)
def test_w005_process_local_rate_budget(omnisend, expected):
    with override_settings(OMNISEND=omnisend, CACHES=REDIS_CACHES):
        messages = checks.check_rate_limit_cache()
    assert ids(messages) == expected
    for message in messages:
        assert 'OMNISEND["RATE_LIMIT_CACHE"]' in message.msg
        assert "Redis" in message.hint


def test_w005_is_a_deployment_check(capsys):
    with override_settings(OMNISEND=GOOD, CACHES=REDIS_CACHES):
        call_command("check")
        assert "W005" not in capsys.readouterr().err
        call_command("check", "--deploy")
        assert "django_omnisend.W005" in capsys.readouterr().err


def test_w006_task_backend_that_cannot_wake_the_drain():
    sync = {**GOOD, "SYNC_USERS": True}
    with override_settings(OMNISEND={**sync, "TASK_BACKEND": "no-such-alias"}):
        (message,) = checks.check_task_backend()
    assert message.id == "django_omnisend.W006" and "OMNISEND" in message.hint
    with override_settings(OMNISEND={**sync, "TASK_BACKEND": None}):
        assert checks.check_task_backend() == []
    with override_settings(OMNISEND={**sync, "TASK_BACKEND": "default"}):
        assert checks.check_task_backend() == []  # tests/settings.py: django-tasks-db


def test_e013_user_model_without_an_address_and_an_adapter_that_cannot_find_one():
    sync = {**GOOD, "SYNC_USERS": True}
    # auth.Group stands for a user model with no e-mail field or attribute at all.
    with override_settings(AUTH_USER_MODEL="auth.Group", OMNISEND=sync):
        assert ids(checks.check_adapter()) == ["django_omnisend.E013"]
        [error] = checks.check_adapter()
        assert "get_email" in error.hint
        adapted = {**sync, "ADAPTER": "tests.sync.adapters.TenantKeyAdapter"}
        with override_settings(OMNISEND=adapted):  # still the default get_email()
            assert ids(checks.check_adapter()) == ["django_omnisend.E013"]
        with override_settings(OMNISEND={**sync, "ADAPTER": "tests.test_checks.NameAdapter"}):
            assert checks.check_adapter() == []
    with override_settings(OMNISEND=sync):  # auth.User has its email column
        assert checks.check_adapter() == []


class NameAdapter(ContactAdapter):
    """Supplies the address itself, so the user model needs no e-mail column."""

    def get_email(self, user):
        return normalize_email(f"{user.name}@example.com")

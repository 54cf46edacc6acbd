"""Every system check id: triggered directly and through ``manage.py check``."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from django.contrib import admin
from django.core.checks import INFO
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from django.urls import NoReverseMatch, include, path

from django_omnisend import checks
from django_omnisend.adapter import ContactAdapter, normalize_email
from tests.client.conftest import REDIS_URL

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
        + checks.check_lease()
        + checks.check_url_include()
        + checks.check_redirect_uri()
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
            {**GOOD, "CLIENT_ID": "id", "REDIRECT_URI": "https://x.test/omnisend/callback/"},
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
            {"ENCRYPTION_KEYS": [KEY], "SYNC_USERS": True, "CLIENT_REGISTRATION": False},
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
        pytest.param({**GOOD, "LEASE_SECONDS": 60}, False, ["django_omnisend.E016"], id="E016"),
        pytest.param(
            {**GOOD, "LEASE_SECONDS": 30, "REQUEST_TIMEOUT": 2},
            False,
            ["django_omnisend.E016"],
            id="E016-short-timeout",
        ),
        pytest.param(
            {**GOOD, "REQUEST_TIMEOUT": 0}, False, ["django_omnisend.E016"], id="E016-no-timeout"
        ),
        pytest.param(
            {"ENCRYPTION_KEYS": [KEY], "CLIENT_REGISTRATION": False},
            False,
            ["django_omnisend.W001"],
            id="W001",
        ),
        pytest.param(
            {"ENCRYPTION_KEYS": [KEY], "REDIRECT_URI": "https://x.test/omnisend/callback/"},
            False,
            ["django_omnisend.I001"],
            id="I001",
        ),
        pytest.param(
            {"ENCRYPTION_KEYS": [KEY]},
            False,
            ["django_omnisend.E009", "django_omnisend.I001"],
            id="E009-registration",
        ),
        pytest.param({**GOOD, "API_KEYS": "k"}, False, ["django_omnisend.W002"], id="W002"),
        pytest.param({"API_KEY": "k"}, True, ["django_omnisend.W003"], id="W003"),
        pytest.param({**GOOD, "RATE_LIMIT": 500}, False, ["django_omnisend.W004"], id="W004"),
        pytest.param(
            {**GOOD, "TAGS_RATE_LIMIT": 61}, False, ["django_omnisend.W004"], id="W004-tags"
        ),
        pytest.param(
            {**GOOD, "TAGS_RATE_LIMIT": 0}, False, ["django_omnisend.E010"], id="E010-tags"
        ),
    ],
)
def test_each_check_id(omnisend, debug, expected):
    with override_settings(OMNISEND=omnisend, DEBUG=debug):
        messages = all_messages()
        assert ids(messages) == expected
        for message in messages:
            assert "OMNISEND" in message.hint or "OMNISEND" in message.msg


REGISTERING = {"ENCRYPTION_KEYS": [KEY], "REDIRECT_URI": "https://x.test/omnisend/callback/"}


def test_registration_is_a_valid_setup_even_with_sync_on():
    """No client credentials and no API key: the first Connect registers the site (issue 18).

    Not W001/E008 (those say "cannot connect"), an Info that names what will happen and how to
    use issued credentials instead.
    """
    with override_settings(OMNISEND={**REGISTERING, "SYNC_USERS": True}):
        messages = checks.check_credentials()
    assert ids(messages) == ["django_omnisend.I001"]
    (message,) = messages
    assert not message.is_serious() and message.level == INFO
    assert "register" in message.msg and 'OMNISEND["CLIENT_ID"]' in message.hint


def test_registration_needs_the_oauth_views_like_client_credentials_do():
    with override_settings(OMNISEND=REGISTERING, ROOT_URLCONF=UrlsWithoutOmnisend):
        assert ids(checks.check_url_include()) == ["django_omnisend.E013"]
    with override_settings(
        OMNISEND={**REGISTERING, "CLIENT_REGISTRATION": False},
        ROOT_URLCONF=UrlsWithoutOmnisend,
    ):
        assert checks.check_url_include() == []
    # A site with an API key and no client is not asked (registration would only happen if
    # someone chose to connect by OAuth).
    with override_settings(OMNISEND={**GOOD}, ROOT_URLCONF=UrlsWithoutOmnisend):
        assert checks.check_url_include() == []


def test_e016_names_the_settings_and_accepts_a_lease_that_outlasts_a_request():
    with override_settings(OMNISEND={**GOOD, "LEASE_SECONDS": 75}):
        (message,) = checks.check_lease()  # 75 s is exactly the bound: not longer
    assert 'OMNISEND["LEASE_SECONDS"]' in message.hint
    assert 'OMNISEND["REQUEST_TIMEOUT"]' in message.hint
    assert "75" in message.msg
    # A request starts with three quarters of a lease ahead of it: 90 s leaves 67.5 s.
    with override_settings(OMNISEND={**GOOD, "LEASE_SECONDS": 90}):
        (message,) = checks.check_lease()
    assert "above 100" in message.hint
    with override_settings(OMNISEND={**GOOD, "LEASE_SECONDS": 65, "REQUEST_TIMEOUT": 3}):
        assert checks.check_lease() == []  # 2 * (5 + 2 * 3) + 25 = 47 s < 0.75 * 65


def test_every_known_setting_has_an_expected_type():
    """A key the app knows is checked, not a KeyError that stops every manage.py command."""
    with override_settings(
        OMNISEND={
            **GOOD,
            "CONNECTION_ADAPTER": "django_omnisend.connection_adapter.ConnectionAdapter",
        }
    ):
        assert checks.check_settings_shape() == []
    with override_settings(OMNISEND={**GOOD, "CONNECTION_ADAPTER": 3}):
        (message,) = checks.check_settings_shape()
    assert message.id == "django_omnisend.E002" and "CONNECTION_ADAPTER" in message.msg


def test_every_setting_has_an_expected_type():
    """Setting any known key to its own default passes the shape check (it crashed with a
    KeyError for the keys the type map had forgotten, e.g. EVENTS)."""
    from django_omnisend.conf import DEFAULTS

    for key, default in DEFAULTS.items():
        with override_settings(OMNISEND={**GOOD, key: default}):
            assert checks.check_settings_shape() == [], key


def test_every_setting_of_the_wrong_type_is_e002():
    from django_omnisend.conf import DEFAULTS

    for key, default in DEFAULTS.items():
        # A falsy wrong value: a truthy one reaches the receivers that import adapters.
        wrong = "" if type(default) in (int, float) else 0
        with override_settings(OMNISEND={**GOOD, key: wrong}):
            assert ids(checks.check_settings_shape()) == ["django_omnisend.E002"], key


def test_unknown_key_hint_suggests_the_close_match():
    with override_settings(OMNISEND={**GOOD, "API_KEYS": "k"}):
        (message,) = checks.check_settings_shape()
    assert 'OMNISEND["API_KEY"]' in message.hint


def test_http_urls_are_fine_in_debug():
    with override_settings(OMNISEND={**GOOD, "API_URL": "http://127.0.0.1:9/api"}, DEBUG=True):
        assert checks.check_urls() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8765/api",
        "http://127.0.0.5",
        "http://127.255.255.254/api",
        "http://[::1]:8000",
        "http://[::1]/api",
        "http://localhost",
        "http://LOCALHOST:8000/api",
    ],
)
def test_e005_allows_http_to_loopback_hosts_with_debug_off(url):
    """Issue 15 item 12: loopback never crosses a network, so a staging site may talk to a
    local Omnisend double over http without silencing the check."""
    omnisend = {**GOOD, **dict.fromkeys(checks.URL_KEYS, url)}
    with override_settings(OMNISEND=omnisend, DEBUG=False):
        assert checks.check_urls() == []


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1",
        "http://192.168.1.10:8000/api",
        "http://localhost.example.com",
        "http://127.0.0.1.nip.io",
        "http://localhost@evil.example.com/api",
        "http://evil.example.com#@localhost",
        "http://[::2]",
        "http://0.0.0.0:8000",
        "http://2130706433",
        "ftp://localhost",
        "//localhost/api",
    ],
)
def test_e005_refuses_every_other_non_https_url(url):
    with override_settings(OMNISEND={**GOOD, "API_URL": url}, DEBUG=False):
        assert ids(checks.check_urls()) == ["django_omnisend.E005"]


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
        "LOCATION": REDIS_URL,
    },
}


class BudgetNowhereRouter:
    """Routes the database budget's table to an alias that does not exist."""

    def db_for_write(self, model, **hints):
        return "nowhere" if model._meta.model_name == "ratebudgetslot" else None


NOWHERE = ["tests.test_checks.BudgetNowhereRouter"]


@pytest.mark.parametrize(
    ("omnisend", "routers", "expected"),
    [
        # No shared cache, but the database holds the budget: nothing to warn about.
        pytest.param(GOOD, [], [], id="W005-locmem-database-ok"),
        pytest.param(GOOD, NOWHERE, ["django_omnisend.W005"], id="W005-locmem-no-database"),
        pytest.param(
            {**GOOD, "RATE_LIMIT_CACHE": "nope"}, NOWHERE, ["django_omnisend.W005"], id="W005-"
        ),
        pytest.param({**GOOD, "RATE_LIMIT_CACHE": "shared"}, NOWHERE, [], id="W005-redis-ok"),
    ],
)
def test_w005_process_local_rate_budget(omnisend, routers, expected):
    with override_settings(OMNISEND=omnisend, CACHES=REDIS_CACHES, DATABASE_ROUTERS=routers):
        messages = checks.check_rate_limit_cache()
    assert ids(messages) == expected
    for message in messages:
        assert 'OMNISEND["RATE_LIMIT_CACHE"]' in message.msg
        assert "Redis" in message.hint


def test_w005_is_a_deployment_check(capsys):
    with override_settings(OMNISEND=GOOD, CACHES=REDIS_CACHES, DATABASE_ROUTERS=NOWHERE):
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


def test_w006_names_a_queue_the_task_backend_does_not_serve():
    tasks = {
        "default": {"BACKEND": "django_tasks_db.DatabaseBackend"},
        "omnisend": {"BACKEND": "django_tasks_db.DatabaseBackend", "QUEUES": ["omnisend"]},
    }
    sync = {**GOOD, "SYNC_USERS": True, "TASK_BACKEND": "omnisend", "TASK_QUEUE": "drains"}
    with override_settings(TASKS=tasks, OMNISEND=sync):
        (message,) = checks.check_task_backend()
    assert message.id == "django_omnisend.W006"
    assert "'drains'" in message.msg and "TASK_QUEUE" in message.hint


# -- URLs: the include the admin's connection page needs, and REDIRECT_URI -----------------------
# A URLconf may be any object with ``urlpatterns``; these stand for a site's ROOT_URLCONF.


class UrlsWithoutOmnisend:
    """A site that forgot ``include("django_omnisend.urls")``."""

    urlpatterns = [path("admin/", admin.site.urls)]


class UrlsUnderAnotherPrefix:
    urlpatterns = [
        path("admin/", admin.site.urls),
        path("integrations/omnisend/", include("django_omnisend.urls")),
    ]


INCLUDE_LINE = 'path("omnisend/", include("django_omnisend.urls"))'
OAUTH = {**GOOD, "CLIENT_ID": "id", "CLIENT_SECRET": "s"}


def test_e013_missing_url_include(admin_client):
    site = {**OAUTH, "REDIRECT_URI": "https://example.com/omnisend/callback/"}
    with override_settings(OMNISEND=site, ROOT_URLCONF=UrlsWithoutOmnisend):
        (message,) = checks.check_url_include()
        assert message.id == "django_omnisend.E013" and message.is_serious()
        assert "django_omnisend:callback" in message.msg
        assert INCLUDE_LINE in message.hint and "ROOT_URLCONF" in message.hint
        with pytest.raises(SystemCheckError, match=r"django_omnisend\.E013"):
            call_command("check")
        # What the check prevents: the admin's "Connect Omnisend" button cannot be built.
        with pytest.raises(NoReverseMatch):
            admin_client.get("/admin/django_omnisend/connection/")


def test_e013_any_prefix_is_fine():
    with override_settings(OMNISEND=OAUTH, ROOT_URLCONF=UrlsUnderAnotherPrefix):
        assert checks.check_url_include() == []
    with override_settings(OMNISEND=OAUTH):  # tests/urls.py includes them
        assert checks.check_url_include() == []


def test_e013_an_api_key_site_needs_no_urls(admin_client):
    """Only the OAuth flow (and the admin's button that starts it) uses the app's URLs."""
    with override_settings(OMNISEND=GOOD, ROOT_URLCONF=UrlsWithoutOmnisend):
        assert checks.check_url_include() == []
        assert admin_client.get("/admin/django_omnisend/connection/").status_code == 200


@pytest.mark.parametrize(
    ("redirect_uri", "urlconf", "expected"),
    [
        pytest.param("https://example.com/omnisend/callback/", None, [], id="ok"),
        pytest.param(
            "https://example.com/integrations/omnisend/callback/",
            UrlsUnderAnotherPrefix,
            [],
            id="ok-prefix",
        ),
        pytest.param(
            "https://example.com/omnisend/callback",
            None,
            ["django_omnisend.E014"],
            id="no-trailing-slash",
        ),
        pytest.param(
            "https://example.com/oauth/callback/", None, ["django_omnisend.E014"], id="404"
        ),
        pytest.param(
            "https://example.com/omnisend/connect/", None, ["django_omnisend.E014"], id="connect"
        ),
        pytest.param(
            "https://example.com/omnisend/callback/",
            UrlsUnderAnotherPrefix,
            ["django_omnisend.E014"],
            id="stale-prefix",
        ),
    ],
)
def test_e014_redirect_uri_must_resolve_to_the_callback(redirect_uri, urlconf, expected):
    site = {**GOOD, "CLIENT_ID": "id", "CLIENT_SECRET": "s", "REDIRECT_URI": redirect_uri}
    with override_settings(OMNISEND=site, ROOT_URLCONF=urlconf or "tests.urls"):
        messages = checks.check_redirect_uri()
        assert ids(messages) == expected
        for message in messages:
            assert 'OMNISEND["REDIRECT_URI"]' in message.msg
            assert "/callback/" in message.hint


def test_e014_hint_names_the_callback_path_and_the_missing_slash():
    site = {**GOOD, "REDIRECT_URI": "https://example.com/integrations/omnisend/callback"}
    with override_settings(OMNISEND=site, ROOT_URLCONF=UrlsUnderAnotherPrefix):
        (message,) = checks.check_redirect_uri()
    assert "trailing slash" in message.hint
    assert "/integrations/omnisend/callback/" in message.hint
    site = {**GOOD, "REDIRECT_URI": "https://example.com/omnisend/connect/"}
    with override_settings(OMNISEND=site):
        (message,) = checks.check_redirect_uri()
    assert "django_omnisend:connect" in message.msg


def test_e014_accepts_a_deployment_prefix():
    """Under FORCE_SCRIPT_NAME (or a server's SCRIPT_NAME) the URL carries the prefix."""
    site = {**GOOD, "REDIRECT_URI": "https://example.com/shop/omnisend/callback/"}
    with override_settings(OMNISEND=site, FORCE_SCRIPT_NAME="/shop"):
        assert checks.check_redirect_uri() == []


def test_e014_is_left_to_e013_when_the_include_is_missing():
    site = {**OAUTH, "REDIRECT_URI": "https://example.com/omnisend/callback/"}
    with override_settings(OMNISEND=site, ROOT_URLCONF=UrlsWithoutOmnisend):
        assert checks.check_redirect_uri() == []
        assert ids(checks.check_url_include()) == ["django_omnisend.E013"]


def test_e015_user_model_without_an_address_and_an_adapter_that_cannot_find_one():
    sync = {**GOOD, "SYNC_USERS": True}
    # auth.Group stands for a user model with no e-mail field or attribute at all.
    with override_settings(AUTH_USER_MODEL="auth.Group", OMNISEND=sync):
        assert ids(checks.check_adapter()) == ["django_omnisend.E015"]
        [error] = checks.check_adapter()
        assert "get_email" in error.hint
        adapted = {**sync, "ADAPTER": "tests.sync.adapters.TenantKeyAdapter"}
        with override_settings(OMNISEND=adapted):  # still the default get_email()
            assert ids(checks.check_adapter()) == ["django_omnisend.E015"]
        with override_settings(OMNISEND={**sync, "ADAPTER": "tests.test_checks.NameAdapter"}):
            assert checks.check_adapter() == []
    with override_settings(OMNISEND=sync):  # auth.User has its email column
        assert checks.check_adapter() == []


class NameAdapter(ContactAdapter):
    """Supplies the address itself, so the user model needs no e-mail column."""

    def get_email(self, user):
        return normalize_email(f"{user.name}@example.com")


def test_the_app_registers_its_checks_without_anything_else_importing_them():
    """A host project imports nothing of ours but the app: ready() must register the checks
    (a fresh process, since this test module imports django_omnisend.checks itself)."""
    import os
    import subprocess
    import sys

    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE}
    code = (
        "import django; django.setup(); from django.core.checks import registry; "
        "print(sorted({f.__module__ for f in registry.registry.get_checks()"
        " if f.__module__.startswith('django_omnisend')}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "django_omnisend.checks" in out.stdout, out.stdout

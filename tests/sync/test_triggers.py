"""Trigger marking (``OMNISEND["MARK_WITH"] = "trigger"``) on the test database.

These run on SQLite in every Django env, on PostgreSQL in the ``postgres`` env and on
MariaDB in the ``mariadb`` env. The
sync contract in trigger mode (coalescing, rollback, deletion, consent...) is covered by
``test_sync.py``, whose tests run in both modes; here is what only triggers do.
"""

from __future__ import annotations

import json
import logging
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core import checks
from django.core.management import call_command
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext

from django_omnisend.checks import check_mark_triggers, check_mark_with
from django_omnisend.models import MarkSuppression, SyncState
from django_omnisend.sync import drain, triggers
from tests.marking import marking
from tests.users import fixture_fields, fixture_pk, user_label

pytestmark = [pytest.mark.django_db, pytest.mark.triggers]

User = get_user_model()


@pytest.fixture
def trigger_settings(sync_settings):
    """Sync on, marking by triggers."""
    with marking(sync_settings, "trigger") as values:
        yield values


def make_user(username="jane", email="jane@example.com", **fields):
    return User.objects.create_user(username=username, email=email, password="x", **fields)


def state(user):
    return SyncState.objects.get(user=user)


def test_install_names_the_triggers_after_their_definition(trigger_settings):
    tag = triggers.signature(connection)
    assert triggers.installed(connection) == [
        f"django_omnisend_mark_ins_{tag}",
        f"django_omnisend_mark_upd_{tag}",
    ]
    assert triggers.is_current(connection)
    with override_settings(
        OMNISEND={**trigger_settings, "NOISE_FIELDS": ["last_login", "first_name"]}
    ):
        assert triggers.signature(connection) != tag
        assert not triggers.is_current(connection)
    assert triggers.uninstall() == 2
    assert triggers.installed(connection) == []
    assert triggers.functions(connection) == []


def test_a_save_is_one_statement_and_marks_in_it(trigger_settings):
    user = make_user()
    generation = state(user).generation
    user.first_name = "Jane"
    with CaptureQueriesContext(connection) as queries:
        user.save()
    assert len(queries) == 1, [q["sql"] for q in queries]  # the UPDATE, nothing else
    row = state(user)
    assert row.dirty and row.generation == generation + 1 and row.connection_key == "default"


def test_the_receiver_statement_is_what_the_trigger_saves(sync_settings):
    # The baseline the benchmark's P1 compares: signal marking costs a second statement.
    user = make_user()
    user.first_name = "Jane"
    with CaptureQueriesContext(connection) as queries:
        user.save()
    assert len(queries) == 2


def test_a_new_user_is_marked_like_the_receiver_marks_it(trigger_settings, sync_settings):
    by_trigger = state(make_user())
    triggers.uninstall()
    with override_settings(OMNISEND=sync_settings):
        by_receiver = state(make_user("john", "john@example.com"))
    fields = ("state", "dirty", "generation", "attempts", "reason", "contact_id", "email")
    assert [getattr(by_trigger, f) for f in fields] == [getattr(by_receiver, f) for f in fields]
    # Timestamps are real instants the drain can compare (UTC, parsed back by Django).
    assert by_trigger.next_attempt_at is not None
    assert abs(by_trigger.next_attempt_at - by_receiver.next_attempt_at).total_seconds() < 60
    assert abs(by_trigger.dirtied_at - by_receiver.dirtied_at).total_seconds() < 60
    assert drain().synced == 2


def test_noise_only_changes_mark_nothing_by_value(trigger_settings):
    from django.utils import timezone

    user = make_user()
    drain()
    generation = state(user).generation
    user.last_login = timezone.now()
    user.save()  # no update_fields: the receiver would have marked this one
    User.objects.filter(pk=user.pk).update(last_login=timezone.now())
    assert state(user).generation == generation and not state(user).dirty
    user.refresh_from_db()
    user.save()  # changes nothing at all: marked, as a save is through the receiver
    assert state(user).generation == generation + 1


def test_queryset_update_is_marked_and_delivered(trigger_settings, emulator):
    user = make_user(first_name="Jane")
    drain()
    User.objects.filter(pk=user.pk).update(first_name="Changed in bulk")  # sends no signal
    assert state(user).dirty
    drain()
    assert emulator.get_contact("jane@example.com")["firstName"] == "Changed in bulk"


def _fixture(tmp_path, objects):
    path = tmp_path / "users.json"
    path.write_text(json.dumps(objects))
    return str(path)


def test_fixture_loads_mark_nothing_with_or_without_a_pk(trigger_settings, tmp_path):
    existing = make_user()
    drain()
    generation = state(existing).generation
    fixture = _fixture(
        tmp_path,
        [
            {
                "model": user_label(),
                "pk": str(existing.pk),
                "fields": fixture_fields(username="jane", email="new@example.com", password="x"),
            },
            {
                "model": user_label(),
                "pk": fixture_pk(500),
                "fields": fixture_fields(username="with-pk", password="x"),
            },
            # Natural key only: no primary key before the INSERT, so the mark is undone after.
            {
                "model": user_label(),
                "fields": fixture_fields(username="natural", email="n@example.com", password="x"),
            },
        ],
    )
    call_command("loaddata", fixture, verbosity=0)
    assert User.objects.get(pk=existing.pk).email == "new@example.com"
    assert User.objects.filter(username__in=["with-pk", "natural"]).count() == 2
    assert list(SyncState.objects.values_list("user_id", "generation", "dirty")) == [
        (existing.pk, generation, False)
    ]
    assert not MarkSuppression.objects.exists()
    # Saves after the load are marked again.
    User.objects.get(username="natural").save()
    assert SyncState.objects.filter(user__username="natural", dirty=True).count() == 1


def test_missing_triggers_fall_back_to_the_receiver(trigger_settings, caplog):
    triggers.uninstall()
    with caplog.at_level(logging.WARNING, logger="django_omnisend.triggers"):
        user = make_user()
    assert state(user).dirty  # marked by post_save: nothing is lost before migrate
    assert "no current mark triggers" in caplog.text
    assert "manage.py migrate" in caplog.text


def test_stale_triggers_fall_back_and_are_flagged(trigger_settings):
    stale = {**trigger_settings, "NOISE_FIELDS": ["last_login", "first_name"]}
    with override_settings(OMNISEND=stale):
        user = make_user()
        drain()
        generation = state(user).generation
        user.first_name = "Only noise now"
        user.save(update_fields=["first_name"])
        # The old trigger still treats first_name as data and marks; the receiver does not
        # mark a noise-only save, so the row moves once, not twice.
        assert state(user).generation == generation + 1
        [warning] = check_mark_triggers(databases=["default"])
        assert warning.id == "django_omnisend.W007" and "out of date" in warning.msg


def test_migrate_installs_and_removes_the_triggers(sync_settings, trigger_settings):
    out = StringIO()
    triggers.uninstall()
    call_command("migrate", verbosity=1, stdout=out)
    assert "installed the user mark triggers" in out.getvalue()
    assert triggers.is_current(connection)
    with override_settings(OMNISEND=sync_settings):  # back to "signal"
        out = StringIO()
        call_command("migrate", verbosity=1, stdout=out)
        assert "removed the user mark triggers" in out.getvalue()
        assert triggers.installed(connection) == []
        assert check_mark_triggers(databases=["default"]) == []


def test_leftover_triggers_are_flagged(trigger_settings, sync_settings):
    with override_settings(OMNISEND=sync_settings):
        [warning] = check_mark_triggers(databases=["default"])
    assert warning.id == "django_omnisend.W007" and "still has" in warning.msg


def test_missing_triggers_are_flagged(trigger_settings):
    triggers.uninstall()
    [warning] = check_mark_triggers(databases=["default"])
    assert warning.id == "django_omnisend.W007" and "missing" in warning.msg
    assert 'Run "manage.py migrate"' in warning.hint


def test_turning_sync_off_stops_asking_for_triggers(trigger_settings):
    with override_settings(OMNISEND={**trigger_settings, "SYNC_USERS": False}):
        assert not triggers.wanted()
        [warning] = check_mark_triggers(databases=["default"])
        assert "SYNC_USERS" in warning.msg and "keep marking" in warning.msg
        out = StringIO()
        call_command("migrate", verbosity=1, stdout=out)
        assert triggers.installed(connection) == []


def test_mark_with_must_be_a_known_value(sync_settings):
    with override_settings(OMNISEND={**sync_settings, "MARK_WITH": "triggers"}):
        [error] = check_mark_with()
        assert error.id == "django_omnisend.E011" and error.level == checks.ERROR
        assert "triggers" in error.msg and '"signal"' in error.hint


def test_per_user_connection_keys_cannot_use_triggers(sync_settings):
    adapter = "tests.sync.adapters.TenantKeyAdapter"
    with override_settings(OMNISEND={**sync_settings, "MARK_WITH": "trigger", "ADAPTER": adapter}):
        [error] = check_mark_with()
        assert error.id == "django_omnisend.E012"
        assert "get_connection_key" in error.msg and '"signal"' in error.hint
        with pytest.raises(RuntimeError, match="get_connection_key"):
            triggers.install()
        out = StringIO()
        call_command("check", stdout=out, stderr=out, fail_level="CRITICAL")
        assert "django_omnisend.E012" in out.getvalue()


def test_w007_surfaces_through_check_database(trigger_settings):
    triggers.uninstall()
    out = StringIO()
    call_command(
        "check", "--database", "default", "--fail-level", "CRITICAL", stdout=out, stderr=out
    )
    assert "django_omnisend.W007" in out.getvalue()
    triggers.install()
    out = StringIO()
    call_command(
        "check", "--database", "default", "--fail-level", "CRITICAL", stdout=out, stderr=out
    )
    assert "W007" not in out.getvalue()


def test_a_disabled_postgresql_trigger_is_not_trusted(trigger_settings, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("ALTER TABLE … DISABLE TRIGGER is PostgreSQL's (runs in tox -e postgres)")
    table = connection.ops.quote_name(User._meta.db_table)
    with connection.cursor() as cursor:
        for name in triggers.installed(connection):
            cursor.execute(f'ALTER TABLE {table} DISABLE TRIGGER "{name}"')
    triggers.forget()
    assert not triggers.is_current(connection)
    with caplog.at_level(logging.WARNING, logger="django_omnisend.triggers"):
        user = make_user()
    assert state(user).dirty  # the receiver marked it
    triggers.install()  # replaces the disabled ones
    assert triggers.is_current(connection)


def test_migrate_survives_a_database_that_refuses_the_triggers(trigger_settings, caplog):
    if connection.vendor != "sqlite":
        pytest.skip("a read-only SQLite connection refuses the DDL for real")
    triggers.uninstall()
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA query_only = ON")
    out = StringIO()
    try:
        triggers.after_migrate(using="default", verbosity=1, stdout=out)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA query_only = OFF")
    assert "could not install the user mark triggers" in out.getvalue()
    assert "readonly" in out.getvalue()
    assert triggers.installed(connection) == []
    user = make_user()  # the receiver still marks
    assert state(user).dirty


@pytest.mark.django_db(transaction=True)
def test_unmigrating_the_app_removes_the_triggers_first(trigger_settings):
    triggers.install()
    user = make_user()
    try:
        call_command("migrate", "django_omnisend", "zero", verbosity=0)
        assert triggers.installed(connection) == []
        # No signal, so only a trigger left behind (writing to a dropped table) could fail it.
        assert User.objects.filter(pk=user.pk).update(first_name="After") == 1
    finally:
        call_command("migrate", "django_omnisend", verbosity=0)
    # Migrating forward again with MARK_WITH = "trigger" puts them back.
    assert triggers.is_current(connection)
    triggers.uninstall()


class _Clock:
    """A monotonic clock the test moves by hand (the trigger state's TTL runs on it)."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def _drop_like_another_process() -> None:
    """What a ``migrate`` run elsewhere does: drop the triggers (and PostgreSQL's function);
    this process is not told (its cache is not forgotten)."""
    triggers._drop(connection)


def test_triggers_dropped_by_another_process_are_noticed_after_the_ttl(
    trigger_settings, monkeypatch
):
    clock = _Clock()
    monkeypatch.setattr(triggers, "clock", clock)
    triggers.forget()
    user = make_user()
    assert triggers.active(connection.alias)  # cached as active, at clock.now
    drain_all = SyncState.objects.filter(pk=state(user).pk)
    drain_all.update(dirty=False)

    _drop_like_another_process()
    clock.now += triggers.ACTIVE_TTL / 2
    user.first_name = "Within the TTL"
    user.save()
    # Inside the TTL the process still trusts the (gone) triggers: the window, bounded.
    assert not state(user).dirty

    clock.now += triggers.ACTIVE_TTL
    user.first_name = "After the TTL"
    user.save()
    assert state(user).dirty, "the receiver must mark once the TTL has run out"


def test_triggers_installed_by_another_process_stop_the_receiver_after_the_ttl(
    trigger_settings, monkeypatch
):
    clock = _Clock()
    monkeypatch.setattr(triggers, "clock", clock)
    _drop_like_another_process()
    triggers.forget()
    assert not triggers.active(connection.alias)
    with connection.cursor() as cursor:  # what a migrate run elsewhere installs
        for statement in triggers._definition(connection, triggers.signature(connection)):
            cursor.execute(statement)
    user = make_user()
    generation = state(user).generation
    clock.now += triggers.ACTIVE_TTL + 1
    user.first_name = "Marked once"
    with CaptureQueriesContext(connection) as queries:
        user.save()
    # The triggers mark; the receiver, having re-checked (one query), no longer does too.
    assert state(user).generation == generation + 1
    assert len(queries) <= 3, [q["sql"] for q in queries]
    user.first_name = "Marked once again"
    with CaptureQueriesContext(connection) as queries:
        user.save()
    assert len(queries) == 1, [q["sql"] for q in queries]

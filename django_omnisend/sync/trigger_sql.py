"""The SQL of the mark triggers per database (SQLite, PostgreSQL, MariaDB/MySQL), and the
hash of it that names them.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any, cast

from django.contrib.auth import get_user_model
from django.db.backends.base.base import BaseDatabaseWrapper

from ..conf import omnisend_settings
from ..models import MarkSuppression, SyncState
from . import marking as outbox

logger = logging.getLogger("django_omnisend.triggers")

PREFIX = "django_omnisend_mark_"
#: PostgreSQL setting that holds the triggers off while a fixture load saves users.
SKIP_SETTING = "django_omnisend.skip_mark"


def _literal(value: Any, vendor: str) -> str:
    """A constant of the sync row's defaults as SQL (only the simple types they use)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        if vendor == "postgresql":
            return "TRUE" if value else "FALSE"
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        if vendor == "mysql":  # a backslash escapes there (unless NO_BACKSLASH_ESCAPES)
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"
    raise TypeError(f"No SQL literal for a {type(value).__name__} default.")


def _pieces(conn: BaseDatabaseWrapper) -> dict[str, str]:
    """The parts both vendors' definitions are built from."""
    quote = conn.ops.quote_name
    user_model = get_user_model()
    user_pk = f"NEW.{quote(cast(str, user_model._meta.pk.column))}"
    if conn.vendor == "postgresql":
        now = "clock_timestamp()"
    elif conn.vendor == "mysql":  # Django stores aware datetimes as UTC, without a zone
        now = "UTC_TIMESTAMP(6)"
    else:  # the text form Django stores for an aware datetime (UTC, no offset)
        now = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
    columns, template, slots = outbox.new_row_template(conn)
    values = [_literal(v, conn.vendor) for v in template]
    key = _literal("default", conn.vendor)  # the adapter's only key (see problems())
    per_call = (user_pk, key, now, now, now, now)
    for slot, expression in zip(slots, per_call, strict=True):
        values[slot] = expression
    noise_names = set(omnisend_settings.noise_fields)
    kept: list[str] = []
    noise: list[str] = []
    for field in user_model._meta.concrete_fields:
        (noise if field.name in noise_names else kept).append(quote(cast(str, field.column)))
    if conn.vendor == "mysql":  # <=> is MySQL's NULL-safe equality

        def differs(c: str) -> str:
            return f"NOT (OLD.{c} <=> NEW.{c})"

    else:
        operator = "IS DISTINCT FROM" if conn.vendor == "postgresql" else "IS NOT"

        def differs(c: str) -> str:
            return f"OLD.{c} {operator} NEW.{c}"

    def changed(cols: list[str]) -> str:
        return " OR ".join(differs(c) for c in cols) or "FALSE"

    # Mark unless the update changed noise columns and nothing else (a save that changes
    # nothing still marks, as a save does through the receiver).
    when = f"({changed(kept)}) OR NOT ({changed(noise)})" if noise else ""
    if conn.vendor == "postgresql":
        # A transaction-local setting: a plain expression in the trigger's WHEN, far cheaper
        # per save than a query (and no function call at all while it holds).
        suppressed = f"current_setting('{SKIP_SETTING}', true) = 'on'"
    else:
        # SQLite has no session settings (and a MySQL user variable outlives the
        # transaction); the table is read by primary key.
        table = MarkSuppression._meta
        suppressed = (
            f"EXISTS (SELECT 1 FROM {quote(table.db_table)} "  # noqa: S608
            f"WHERE {quote(cast(str, table.pk.column))} = {user_pk})"
        )
    state = SyncState._meta
    c = {f.name: quote(cast(str, f.column)) for f in state.concrete_fields}
    return {
        "table": quote(user_model._meta.db_table),
        "upsert": outbox.upsert_sql(quote, columns, values, vendor=conn.vendor),
        # What the upsert does to an existing row, as a plain UPDATE.
        "update": (
            f"UPDATE {quote(state.db_table)} SET "  # noqa: S608
            + outbox.mark_assignments(quote, dirty="TRUE", dirtied_at=now, updated_at=now)
            + f" WHERE {c['user']} = {user_pk} AND {c['connection_key']} = {key}"
        ),
        "not_suppressed": f"NOT coalesce({suppressed}, FALSE)",
        "when": when,
    }


def _definition(conn: BaseDatabaseWrapper, tag: str) -> list[str]:
    """``CREATE`` statements for the triggers (and PostgreSQL's function) named with ``tag``."""
    p = _pieces(conn)
    quote = conn.ops.quote_name
    ins, upd = quote(f"{PREFIX}ins_{tag}"), quote(f"{PREFIX}upd_{tag}")
    on_insert = p["not_suppressed"]
    on_update = f"({p['when']}) AND {on_insert}" if p["when"] else on_insert
    if conn.vendor == "postgresql":
        function = quote(f"{PREFIX}{tag}")
        return [
            # UPDATE first: for the usual case (the row exists) it skips the upsert's row
            # lock, about a fifth of the trigger's cost; the upsert covers new rows and races.
            f"CREATE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $body$\n"
            f"BEGIN\n  {p['update']};\n  IF NOT FOUND THEN\n    {p['upsert']};\n  END IF;\n"
            "  RETURN NULL;\nEND\n$body$",
            f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
            f"WHEN ({on_insert}) EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
            f"WHEN ({on_update}) EXECUTE FUNCTION {function}()",
        ]
    if conn.vendor == "mysql":
        # No WHEN clause there: the condition is an IF in the body.
        return [
            f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
            f"BEGIN IF {on_insert} THEN {p['upsert']}; END IF; END",
            f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
            f"BEGIN IF {on_update} THEN {p['upsert']}; END IF; END",
        ]
    return [
        f"CREATE TRIGGER {ins} AFTER INSERT ON {p['table']} FOR EACH ROW "
        f"WHEN {on_insert} BEGIN {p['upsert']}; END",
        f"CREATE TRIGGER {upd} AFTER UPDATE ON {p['table']} FOR EACH ROW "
        f"WHEN {on_update} BEGIN {p['upsert']}; END",
    ]


def signature(conn: BaseDatabaseWrapper) -> str:
    """A short hash of the definition these settings ask for (it names the triggers)."""
    text = "\n".join(_definition(conn, "TAG"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]

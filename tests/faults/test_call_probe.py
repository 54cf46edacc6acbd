"""M9's probe fails a client that holds a transaction across an API call, and only that one.

``probing_calls`` runs ``open_transactions_end`` in the emulator as each request arrives,
before answering it, so the sender is still waiting: a transaction it holds cannot end. Here
the sender is this test: it opens a transaction (a read, the least a transaction holds) on
its own connection, calls the emulator over HTTP, and only then ends it. The same call made
outside a transaction passes. Not marked ``faults``: it takes about a second.
"""

from __future__ import annotations

import sqlite3

import pytest
from django.db import connection

from django_omnisend.api import ApiKeyAuth, OmnisendClient

from .scenarios import open_transactions_end, probing_calls

pytestmark = pytest.mark.django_db(transaction=True)


def call(emulator) -> None:
    """One real API request (the client, over HTTP), answered."""
    auth = ApiKeyAuth(emulator.issue_api_key())
    with OmnisendClient(auth, api_url=emulator.api_url) as client:
        client.contacts.list(limit=1)


@pytest.mark.skipif(connection.vendor != "sqlite", reason="the sender holds a SQLite lock")
@pytest.mark.parametrize("in_transaction", [True, False])
def test_the_probe_sees_a_transaction_held_over_a_call(emulator, in_transaction):
    sender = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    try:
        # ``concurrent=1``: no other sender to wait for.
        with probing_calls(emulator, open_transactions_end(patience=1), concurrent=1) as seen:
            if in_transaction:
                sender.execute("BEGIN")
                sender.execute("SELECT count(*) FROM django_omnisend_syncstate").fetchone()
            call(emulator)
            if in_transaction:
                sender.execute("COMMIT")
    finally:
        sender.close()
    assert seen.probed == 1
    assert seen.concurrent is True
    assert bool(seen.held) is in_transaction, seen.held


@pytest.mark.skipif(connection.vendor != "mysql", reason="runs in tox -e mariadb")
@pytest.mark.parametrize("in_transaction", [True, False])
def test_the_mariadb_probe_sees_a_transaction_held_over_a_call(emulator, in_transaction):
    """The same on MariaDB/MySQL, where the probe reads InnoDB's open transactions."""
    sender = connection.Database.connect(**connection.get_connection_params())
    cursor = sender.cursor()
    try:
        with probing_calls(emulator, open_transactions_end(patience=1), concurrent=1) as seen:
            if in_transaction:
                cursor.execute("START TRANSACTION")
                cursor.execute("SELECT count(*) FROM django_omnisend_syncstate")
                cursor.fetchall()
            call(emulator)
            if in_transaction:
                sender.commit()
    finally:
        sender.close()
    assert seen.probed == 1
    assert seen.concurrent is True
    assert bool(seen.held) is in_transaction, seen.held

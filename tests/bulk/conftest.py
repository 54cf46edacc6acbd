"""Fixtures for the bulk tests: the emulator with sync on (see tests/sync/conftest.py)."""

from tests.sync.conftest import contact_writes, sync_settings  # noqa: F401

"""The sync tests use ``sync_settings`` and ``contact_writes`` from tests/conftest.py."""

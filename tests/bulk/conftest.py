"""The bulk tests use ``sync_settings`` from tests/conftest.py."""

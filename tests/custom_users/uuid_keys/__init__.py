"""A user model keyed by UUID (see tests/custom_users/__init__.py)."""

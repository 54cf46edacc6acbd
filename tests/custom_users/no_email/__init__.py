"""A user model without an e-mail column (see tests/custom_users/__init__.py)."""

"""User models the sync must work with besides ``auth.User`` (one per settings module).

* ``uuid_keys.User`` (``tests/settings_uuid.py``): ``AbstractUser`` with a UUID primary key.
* ``no_email.User`` (``tests/settings_no_email.py``): no ``email`` column at all; the address
  lives in ``contact_address`` and ``user.email`` is a plain Python property over it, so the
  suite's helpers keep working while nothing may query the user table by e-mail.
"""

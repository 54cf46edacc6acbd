"""Syncing contacts and events to Omnisend: mark in the host's transaction, drain later.

The path of a save: ``receivers`` or ``triggers`` mark the user (``marking``), ``tasks`` nudges
a drain after the commit, and :func:`drain` (``loop``) leases due rows (``leases``), asks the
``gates``, builds the body (``payloads``), sends it and records the outcome.
"""

from .loop import DrainResult, drain, due_count

__all__ = ["DrainResult", "drain", "due_count"]

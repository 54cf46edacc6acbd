"""A local, faithful emulator of Omnisend's OAuth server and API 2026-03-15 (like moto for AWS).

Usable three ways: in-process (``with Emulator().serve() as emu: ...`` or the pytest fixtures in
the test suite), as a process (``python -m django_omnisend.emulator --port 8787`` or
``manage.py omnisend_emulator``), and as a bare WSGI app (``Emulator().wsgi_app``). Standard
library only (no Django imports), so it runs anywhere the package is installed.

Modules, one job each: ``core`` (the :class:`Emulator` and its Python control API), ``config``,
``state`` (data store + JSON persistence), ``contacts``/``events``/``batches``/``catalog``
(products, categories)/``event_metadata`` (API semantics),
``validation``/``problems`` (RFC 9457 bodies), ``api`` (gateway and handlers), ``oauth``,
``ratelimit``, ``faults``, ``ledger``, ``times`` (advanceable clock), ``http``, ``app`` (WSGI
routing), ``server`` (threaded wsgiref server), ``control`` (``/__emulator__``), ``hosts`` (loopback
names), ``__main__``.
"""

from __future__ import annotations

from .config import API_VERSION, EmulatorConfig
from .core import Emulator
from .faults import FAULT_KINDS
from .ledger import LedgerEntry
from .state import ALL_SCOPES

__all__ = ["ALL_SCOPES", "API_VERSION", "FAULT_KINDS", "Emulator", "EmulatorConfig", "LedgerEntry"]

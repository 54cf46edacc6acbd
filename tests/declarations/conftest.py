"""Each test starts with an empty event registry and gets its previous contents back after."""

from __future__ import annotations

import pytest

from django_omnisend import event_declarations


@pytest.fixture(autouse=True)
def _empty_registry():
    saved = dict(event_declarations._registry)
    event_declarations._registry.clear()
    yield
    event_declarations._registry.clear()
    event_declarations._registry.update(saved)

"""The public API imports from the package root and is the documented object."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import django_omnisend

#: Root name -> where the docs (docs/reference/api.rst) document it.
DOCUMENTED = {
    "get_client": "django_omnisend",
    "mark_for_sync": "django_omnisend",
    "send_event": "django_omnisend.sync.events",
    "send_order": "django_omnisend.sync.events",
    "register_event": "django_omnisend.event_declarations",
    "drain": "django_omnisend.sync.loop",
    "DrainResult": "django_omnisend.sync.results",
    "health": "django_omnisend.sync.health",
    "Health": "django_omnisend.sync.health",
    "OmnisendClient": "django_omnisend.api.client",
    "ContactAdapter": "django_omnisend.adapter",
    "Consent": "django_omnisend.adapter",
    "ConnectionAdapter": "django_omnisend.connect.permissions",
    "ProductAdapter": "django_omnisend.catalog.adapter",
    "TrackingAdapter": "django_omnisend.tracking",
    "Order": "django_omnisend.commerce.orders",
    "LineItem": "django_omnisend.commerce.shop",
    "OmnisendError": "django_omnisend.exceptions",
    "NotConnected": "django_omnisend.exceptions",
}


def test_all_lists_exactly_the_public_names():
    assert sorted(django_omnisend.__all__) == sorted(["__version__", *DOCUMENTED])


@pytest.mark.parametrize("name", sorted(DOCUMENTED))
def test_each_name_imports_from_the_root_and_is_the_documented_object(name):
    namespace: dict = {}
    exec(f"from django_omnisend import {name}", namespace)
    module = sys.modules[DOCUMENTED[name]]
    assert namespace[name] is getattr(module, name)
    assert namespace[name].__module__ == DOCUMENTED[name]
    assert namespace[name].__doc__


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no_such_thing"):
        django_omnisend.no_such_thing  # noqa: B018
    with pytest.raises(ImportError):
        exec("from django_omnisend import no_such_thing", {})


def test_dir_lists_the_lazy_names():
    assert set(DOCUMENTED) <= set(dir(django_omnisend))


def test_importing_the_root_loads_no_model_and_needs_no_settings():
    """``import django_omnisend`` before Django is configured (a settings module, a setup.py)
    imports none of the submodules; a lazy name is only resolved when used."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    code = (
        "import sys, django_omnisend\n"
        "print(sorted(m for m in sys.modules if m.startswith('django_omnisend.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

"""Sphinx configuration for the django-omnisend documentation (``tox -e docs``)."""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext"), str(HERE)]

# Autodoc imports models and management commands, so Django must be set up first.
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docs_settings")
import django  # noqa: E402

django.setup()

import django_omnisend  # noqa: E402

project = "django-omnisend"
author = "django-omnisend developers"
copyright = "django-omnisend developers"
release = django_omnisend.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
    "omnisend_docs",
]

root_doc = "index"
exclude_patterns = ["_build", "README-*", "docs_settings.py"]
# The package's docstrings use ``double backticks`` for code, as the README does.
default_role = "literal"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# A model's fields, reverse accessors and managers are documented in prose on the page.
autodoc_inherit_docstrings = False

html_theme = "alabaster"
html_theme_options = {
    "description": "Connect a Django site to Omnisend and keep its users in sync.",
    "fixed_sidebar": True,
}
html_static_path = []
html_show_sourcelink = False

"""Sphinx directives that render reference pages from the code, so they cannot drift.

* ``.. omnisend-setting:: KEY`` documents one ``OMNISEND`` key; the default is read from
  ``django_omnisend.conf.DEFAULTS``, the description is the directive's content.
* ``.. omnisend-settings-table::`` renders every key with its default and a link.
* ``.. omnisend-check:: E001`` documents one system check id found in the package source.
* ``.. omnisend-command:: omnisend_drain`` renders a management command's argparse help.

At the end of a build every setting and every check id must have been documented; a missing
or unknown one is a warning, which ``sphinx-build -W`` (the tox env ``docs``) turns into a
failure. Cross references: ``:setting:`RATE_LIMIT```, ``:check:`E016```,
``:command:`omnisend_drain```.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from docutils import nodes
from docutils.parsers.rst import directives
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.directives import ObjectDescription
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective

logger = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parents[2] / "django_omnisend"

#: ``_id("E", 4)`` (a helper) or a literal ``"django_omnisend.E004"``.
_HELPER_ID = re.compile(r'_id\(\s*"([EWI])",\s*(\d+)\s*\)')
_LITERAL_ID = re.compile(r'["\']django_omnisend\.([EWI]\d{3})["\']')


def check_ids() -> set[str]:
    """Every system check id the package can emit, read from its source."""
    found: set[str] = set()
    for path in PACKAGE.rglob("*.py"):
        if {"emulator", "migrations"} & set(path.relative_to(PACKAGE).parts):
            continue
        text = path.read_text()
        found.update(f"{kind}{int(n):03d}" for kind, n in _HELPER_ID.findall(text))
        found.update(_LITERAL_ID.findall(text))
    return found


def settings_defaults() -> dict[str, Any]:
    from django_omnisend.conf import DEFAULTS

    return dict(DEFAULTS)


def format_default(value: Any) -> str:
    """A default as it would be written in a settings file (double-quoted strings)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(format_default(v) for v in value) + "]"
    return repr(value)


class _Documented(ObjectDescription[str]):
    """One named object with a target in the ``std`` domain (``objtype`` is set by subclasses)."""

    objtype_name = ""

    def handle_signature(self, sig: str, signode: addnodes.desc_signature) -> str:
        name = sig.strip()
        signode += addnodes.desc_name(name, name)
        return name

    def add_target_and_index(self, name: str, sig: str, signode: addnodes.desc_signature) -> None:
        node_id = f"{self.objtype_name}-{name}".lower().replace("_", "-")
        signode["ids"].append(node_id)
        std = self.env.get_domain("std")
        std.note_object(self.objtype_name, name, node_id, location=signode)
        self.env.domaindata.setdefault("omnisend", {}).setdefault(self.objtype_name, {})[name] = (
            self.env.docname
        )


class SettingDirective(_Documented):
    """``.. omnisend-setting:: KEY``: the key, its default from the code, the description."""

    objtype_name = "setting"

    def handle_signature(self, sig: str, signode: addnodes.desc_signature) -> str:
        name = super().handle_signature(sig, signode)
        defaults = settings_defaults()
        if name not in defaults:
            logger.warning(
                "omnisend-setting %s is not a key of django_omnisend.conf.DEFAULTS; "
                "remove it or add the key.",
                name,
                location=signode,
            )
        return name

    def transform_content(self, content_node: addnodes.desc_content) -> None:
        defaults = settings_defaults()
        known = [name for name in self.names if name in defaults]
        para = nodes.paragraph()
        label = "Default: " if len(known) == 1 else "Defaults: "
        para += nodes.strong(label, label)
        for n, name in enumerate(known):
            if n:
                para += nodes.Text(", ")
            if len(known) > 1:
                para += nodes.Text(f"{name} ")
            para += nodes.literal(text=format_default(defaults[name]))
        if known:
            content_node.insert(0, para)


class CheckDirective(_Documented):
    """``.. omnisend-check:: E001``: a system check id that must exist in the package."""

    objtype_name = "check"

    def handle_signature(self, sig: str, signode: addnodes.desc_signature) -> str:
        name = sig.strip()
        full = f"django_omnisend.{name}"
        signode += addnodes.desc_name(full, full)
        if name not in check_ids():
            logger.warning(
                "omnisend-check %s is not emitted anywhere in django_omnisend/; "
                "remove it or fix the id.",
                name,
                location=signode,
            )
        return name


class CommandDirective(_Documented):
    """``.. omnisend-command:: NAME``: the command's usage and options from its argparse parser."""

    objtype_name = "command"

    def transform_content(self, content_node: addnodes.desc_content) -> None:
        name = self.names[0] if self.names else ""
        try:
            parser = command_parser(name)
        except Exception as exc:  # an unknown command: say which, and fail the -W build
            logger.warning("omnisend-command %s: %s", name, exc, location=content_node)
            return
        usage = parser.format_usage().strip().removeprefix("usage: ")
        content_node.insert(0, nodes.literal_block(usage, usage, language="text"))
        options = _option_list(parser)
        if options is not None:
            content_node.append(options)


def command_parser(name: str) -> Any:
    """The argparse parser of management command ``name`` (Django's own options left out)."""
    from django.core.management import load_command_class

    command = load_command_class("django_omnisend", name)
    parser = command.create_parser("manage.py", name)
    for action in parser._actions:  # Django's common options: left out of the usage line
        if _DJANGO_OPTIONS & set(action.option_strings):
            action.help = argparse.SUPPRESS
    return parser


#: Options every Django command has; the page links to Django's docs for them.
_DJANGO_OPTIONS = {
    "--version",
    "--verbosity",
    "--settings",
    "--pythonpath",
    "--traceback",
    "--no-color",
    "--force-color",
    "--skip-checks",
    "--help",
}


def _option_list(parser: Any) -> nodes.Element | None:
    """A definition list of the command's own options with their help text."""
    items = nodes.definition_list()
    for action in parser._actions:
        strings = list(action.option_strings)
        if action.help == argparse.SUPPRESS:
            continue
        if strings:
            term_text = ", ".join(strings)
            if action.nargs != 0:
                term_text += " " + (action.metavar or action.dest.upper())
        else:
            term_text = action.metavar or action.dest
        help_text = (action.help or "").replace("%(default)s", str(action.default))
        help_text = help_text.replace("%%", "%")
        item = nodes.definition_list_item()
        item += nodes.term(term_text, "", nodes.literal(text=term_text))
        definition = nodes.definition()
        definition += nodes.paragraph(help_text, help_text)
        item += definition
        items += item
    return items if len(items) else None


class SettingsTableDirective(SphinxDirective):
    """``.. omnisend-settings-table::``: every key, its default and a link to its entry."""

    has_content = False
    option_spec = {"widths": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        table = nodes.table()
        group = nodes.tgroup(cols=2)
        table += group
        group += nodes.colspec(colwidth=30)
        group += nodes.colspec(colwidth=70)
        head = nodes.thead()
        group += head
        head += _row("Key", "Default")
        body = nodes.tbody()
        group += body
        for key, value in settings_defaults().items():
            ref = addnodes.pending_xref(
                "", refdomain="std", reftype="setting", reftarget=key, refexplicit=False
            )
            ref += nodes.literal(text=key)
            row = nodes.row()
            cell = nodes.entry()
            cell += nodes.paragraph("", "", ref)
            row += cell
            cell = nodes.entry()
            cell += nodes.paragraph("", "", nodes.literal(text=format_default(value)))
            row += cell
            body += row
        return [table]


def _row(*texts: str) -> nodes.row:
    row = nodes.row()
    for text in texts:
        entry = nodes.entry()
        entry += nodes.paragraph(text, text)
        row += entry
    return row


def check_everything_documented(app: Sphinx, env: Any) -> None:
    """Warn (an error under -W) about settings or check ids that no page documents."""
    documented = env.domaindata.get("omnisend", {})
    missing_settings = sorted(set(settings_defaults()) - set(documented.get("setting", {})))
    for key in missing_settings:
        logger.warning(
            "OMNISEND[%r] is not documented: add '.. omnisend-setting:: %s' to "
            "docs/reference/settings.rst.",
            key,
            key,
        )
    missing_checks = sorted(check_ids() - set(documented.get("check", {})))
    for check_id in missing_checks:
        logger.warning(
            "check django_omnisend.%s is not documented: add '.. omnisend-check:: %s' to "
            "docs/reference/checks.rst.",
            check_id,
            check_id,
        )


def purge(app: Sphinx, env: Any, docname: str) -> None:
    for kind in env.domaindata.get("omnisend", {}).values():
        for name in [n for n, doc in kind.items() if doc == docname]:
            del kind[name]


def merge(app: Sphinx, env: Any, docnames: Any, other: Any) -> None:
    for objtype, names in other.domaindata.get("omnisend", {}).items():
        env.domaindata.setdefault("omnisend", {}).setdefault(objtype, {}).update(names)


def setup(app: Sphinx) -> dict[str, Any]:
    for objtype in ("setting", "check", "command"):
        app.add_crossref_type(objtype, objtype)
    app.add_directive("omnisend-setting", SettingDirective)
    app.add_directive("omnisend-check", CheckDirective)
    app.add_directive("omnisend-command", CommandDirective)
    app.add_directive("omnisend-settings-table", SettingsTableDirective)
    app.connect("env-check-consistency", check_everything_documented)
    app.connect("env-purge-doc", purge)
    app.connect("env-merge-info", merge)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}

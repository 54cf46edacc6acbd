"""Command line: ``python -m django_omnisend.emulator [--port N] [--state-file F] ...``.

Prints the URLs, the demo client's credentials and an API key, then serves until Ctrl-C.
``manage.py omnisend_emulator`` takes the same options (it calls :func:`add_arguments` and
:func:`run`).
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Sequence
from typing import Any

from .config import DEFAULT_REDIRECT_URIS, EmulatorConfig
from .core import Emulator

DEFAULT_PORT = 8787


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser`` (shared with the management command)."""
    parser.add_argument(
        "--host", default="127.0.0.1", help="Interface to bind (default 127.0.0.1)."
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"Port (default {DEFAULT_PORT}; 0 = any free port).",
    )
    parser.add_argument(
        "--state-file", default=None, help="Keep state in this JSON file between runs."
    )
    parser.add_argument("--seed", default="0", help="Seed for fault injection (default 0).")
    parser.add_argument(
        "--auto-approve",
        action="store_true",
        help="Approve authorize requests without a consent page.",
    )
    parser.add_argument(
        "--require-pkce", action="store_true", help="Refuse authorize requests without PKCE S256."
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        dest="redirect_uris",
        default=None,
        help="Redirect URI of the demo client (repeatable; default: "
        + ", ".join(DEFAULT_REDIRECT_URIS)
        + ").",
    )
    parser.add_argument("--client-id", default=None, help="Demo client id.")
    parser.add_argument("--client-secret", default=None, help="Demo client secret.")
    parser.add_argument(
        "--api-key", default=None, help="Register this API key for the default brand."
    )
    parser.add_argument(
        "--rate-limit", type=int, default=None, help="Requests per window per brand (default 400)."
    )
    parser.add_argument(
        "--tags-rate-limit", type=int, default=None, help="Tag requests per window (default 60)."
    )
    parser.add_argument(
        "--window", type=float, default=None, help="Rate-limit window in seconds (default 60)."
    )
    parser.add_argument(
        "--rate-limit-headers", action="store_true", help="Send v3-style X-Rate-Limit-* headers."
    )
    parser.add_argument("--batch-processing", choices=("immediate", "deferred"), default=None)
    parser.add_argument(
        "--batch-delay", type=float, default=None, help="Seconds a deferred batch stays pending."
    )
    parser.add_argument(
        "--tags-delay", type=float, default=None, help="Seconds before tag changes apply."
    )
    parser.add_argument(
        "--token-expires-in", type=int, default=None, help="Access-token lifetime in seconds."
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="Keep checks Omnisend does not make: 403s name the scope, events need origin and "
        "contact, no phone consent channel.",
    )
    parser.add_argument(
        "--log-requests", action="store_true", help="Print one line per request to stderr."
    )
    parser.add_argument(
        "--control-token",
        default=None,
        help="Require this token in the Emulator-Control-Token header of every /__emulator__ "
        "request (default: none; the control API always needs a loopback Host and JSON).",
    )


def build(options: dict[str, Any]) -> Emulator:
    """An :class:`Emulator` configured from parsed options."""
    fields: dict[str, Any] = {}
    mapping = {
        "client_id": "demo_client_id",
        "client_secret": "demo_client_secret",
        "rate_limit": "rate_limit",
        "tags_rate_limit": "tags_rate_limit",
        "window": "window_seconds",
        "batch_processing": "batch_processing",
        "batch_delay": "batch_delay",
        "tags_delay": "tags_delay",
        "token_expires_in": "token_expires_in",
    }
    for option, name in mapping.items():
        if options.get(option) is not None:
            fields[name] = options[option]
    if options.get("redirect_uris"):
        fields["demo_redirect_uris"] = list(options["redirect_uris"])
    for flag in ("auto_approve", "require_pkce", "rate_limit_headers", "strict"):
        if options.get(flag):
            fields[flag] = True
    seed: Any = options.get("seed", "0")
    seed = int(seed) if str(seed).lstrip("-").isdigit() else seed
    return Emulator(
        config=EmulatorConfig().replace(**fields),
        seed=seed,
        state_file=options.get("state_file"),
        control_token=options.get("control_token"),
    )


def run(options: dict[str, Any], out: Any = None) -> int:
    """Build, print the banner, serve until Ctrl-C or SIGTERM; returns an exit status."""
    out = out or sys.stdout
    emu = build(options)
    if options.get("api_key"):
        emu.add_api_key(options["api_key"])
    else:
        emu.issue_api_key()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        emu.start(
            options.get("host") or "127.0.0.1",
            int(options.get("port") or 0),
            options.get("log_requests", False),
        )
        # The banner ends with the newest API key of the default brand: the one just made.
        out.write(emu.describe_text())
        if options.get("state_file"):
            out.write(f"  State file:    {options['state_file']}\n")
        out.write("Serving; press Ctrl-C to stop.\n")
        out.flush()
        emu.serve_forever_started()
    except KeyboardInterrupt:
        pass
    finally:
        emu.stop()
        signal.signal(signal.SIGTERM, previous)
    out.write("Emulator stopped.\n")
    out.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m django_omnisend.emulator``."""
    parser = argparse.ArgumentParser(
        prog="python -m django_omnisend.emulator", description=__doc__.splitlines()[0]
    )
    add_arguments(parser)
    return run(vars(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())

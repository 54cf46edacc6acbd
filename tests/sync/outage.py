"""An Omnisend nothing answers: a loopback port that refuses every connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.test import override_settings


@contextmanager
def refused_port() -> Iterator[int]:
    """A port bound but never listening, so connecting is refused; held for the block, so
    nothing else can start listening on it meanwhile."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextmanager
def omnisend_down(omnisend: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``omnisend`` settings with ``API_URL`` on a refused port (``"host"`` says which)."""
    with refused_port() as port:
        values = {**omnisend, "API_URL": f"http://127.0.0.1:{port}/api"}
        with override_settings(OMNISEND=values):
            yield {**values, "host": f"127.0.0.1:{port}"}

"""Why Omnisend did not answer, in words without secrets or personal data, and what to check.

The client's :class:`~django_omnisend.exceptions.TransportError` names only the method and
the path, because the underlying error's text carries the full URL with its query (often an
e-mail address). The kind of failure is read from the names of the exceptions behind it
(``TransportError.causes``; the exceptions themselves are not kept because they hold the
request headers) or from its chain, and the host from ``OMNISEND["API_URL"]``, so a command
can say "connection refused by api.omnisend.com:443" rather than "connection failed".
"""

from __future__ import annotations

import http.client
import socket
import ssl
from collections.abc import Iterator
from urllib.parse import urlsplit

from ..conf import omnisend_settings
from ..exceptions import ServerError, TransportError

#: Hosts where an Omnisend URL most likely means the bundled emulator.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def api_host(api_url: str | None = None) -> str:
    """``host:port`` of the API (never a user or password that a URL might carry)."""
    parts = urlsplit(api_url or omnisend_settings.api_url)
    host = parts.hostname or "?"
    try:
        port = parts.port
    except ValueError:  # a malformed port: show the host alone
        port = None
    return f"{host}:{port}" if port else host


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception behind it (causes, contexts, urllib3's ``reason``)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked += list(current.args)
        todo.extend(e for e in linked if isinstance(e, BaseException))


def unreachable_reason(exc: BaseException, api_url: str | None = None) -> str:
    """Why a request got no usable answer from Omnisend ("" when ``exc`` is not that).

    Covers transport failures (refused, DNS, reset, timeout, TLS, an unreadable body) and
    5xx answers; 4xx answers mean Omnisend was reached.
    """
    if isinstance(exc, ServerError):
        said = f" ({exc.title})" if exc.title else ""
        return f"Omnisend answered {exc.status}{said}"
    if not isinstance(exc, TransportError):
        return ""
    host = api_host(api_url)
    names = set(exc.causes)
    for cause in _chain(exc):
        names.update(cls.__name__ for cls in type(cause).__mro__)

    def found(*kinds: type[BaseException] | str) -> bool:
        return any((k.__name__ if isinstance(k, type) else k) in names for k in kinds)

    if found(ConnectionRefusedError):
        return f"connection refused by {host}"
    if found(socket.gaierror, "NameResolutionError"):
        return f"the host name of {host} could not be resolved (DNS)"
    if exc.kind == "ssl" or found(ssl.SSLError):
        return f"TLS/certificate error with {host}"
    if exc.kind == "timeout":
        return f"{host} did not answer in time (timeout)"
    if found(ConnectionResetError, http.client.RemoteDisconnected, "ProtocolError"):
        return f"{host} closed the connection before answering"
    if exc.kind == "bad_body":
        return f"{host} answered with a body that is not JSON"
    return f"no answer from {host} ({exc.kind})"


def advice(api_url: str | None = None) -> str:
    """What to check when Omnisend cannot be reached."""
    host = urlsplit(api_url or omnisend_settings.api_url).hostname or ""
    if host in LOOPBACK:
        return (
            'Check that OMNISEND["API_URL"] points at a running emulator '
            '("manage.py omnisend_emulator").'
        )
    return (
        'Check OMNISEND["API_URL"], DNS, firewalls and proxies between this server and '
        "Omnisend, or wait until Omnisend is back."
    )

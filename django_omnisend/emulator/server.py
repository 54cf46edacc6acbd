"""Threaded HTTP serving on wsgiref + ``socketserver.ThreadingMixIn`` (stdlib only).

Besides serving many clients at once, the handler supports the ``reset_before`` /
``reset_after`` faults: the WSGI app raises :class:`AbortConnection`, and instead of writing a
500 the handler closes the socket with ``SO_LINGER`` 0, which sends a TCP RST. The client sees a
connection reset (or ``RemoteDisconnected``), never a response.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer


class AbortConnection(Exception):
    """Raised by the WSGI app to drop the connection without answering."""


class _Handler(ServerHandler):
    aborted = False

    def handle_error(self) -> None:
        if isinstance(sys.exc_info()[1], AbortConnection):
            self.aborted = True  # write nothing; the request handler resets the socket
            return
        super().handle_error()


class EmulatorRequestHandler(WSGIRequestHandler):
    """wsgiref's handler with connection aborts, a read timeout and quiet logging."""

    #: Seconds a connection may idle before the server gives up on it (keeps shutdown quick).
    timeout = 10
    verbose = False

    def handle(self) -> None:
        """Serve one request (wsgiref's ``handle`` plus abort support)."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = ""
            self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():
            return
        handler = _Handler(
            self.rfile, self.wfile, self.get_stderr(), self.get_environ(), multithread=True
        )
        handler.request_handler = self  # type: ignore[attr-defined]
        handler.run(self.server.get_app())  # type: ignore[attr-defined]
        if handler.aborted:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.server.aborted.add(self.connection)  # type: ignore[attr-defined]

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """One line per request when verbose (path only: queries may carry codes)."""
        if self.verbose:
            path = self.path.split("?", 1)[0]
            sys.stderr.write(f"{self.command} {path} {code}\n")

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet unless verbose."""
        if self.verbose:
            super().log_message(format, *args)


class ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    """A WSGI server with one thread per connection; joins its threads on close."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.aborted: set[socket.socket] = set()
        self._aborted_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def shutdown_request(self, request: Any) -> None:
        """Close aborted sockets without the FIN a ``shutdown()`` would send first."""
        with self._aborted_lock:
            aborted = request in self.aborted
            self.aborted.discard(request)
        if aborted:
            self.close_request(request)
        else:
            super().shutdown_request(request)


def make_server(host: str, port: int, app: Any, verbose: bool = False) -> ThreadingWSGIServer:
    """Bind a threaded WSGI server for ``app`` (``port=0`` picks a free port)."""
    handler = type("Handler", (EmulatorRequestHandler,), {"verbose": verbose})
    server = ThreadingWSGIServer((host, port), handler)
    server.set_app(app)
    return server

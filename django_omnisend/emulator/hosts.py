"""Loopback host names: what the emulator's control API and the example accept as "this machine".

A loopback name is ``localhost`` or an IP address in 127.0.0.0/8 or ``::1``. Nothing else
counts, not even names that usually resolve to loopback: a DNS-rebinding page controls what its
own name resolves to, but it cannot make a browser send ``Host: 127.0.0.1`` or ``localhost``.
Standard library only (the emulator never imports Django).
"""

from __future__ import annotations

import ipaddress

__all__ = ["host_header_is_loopback", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is loopback."""
    name = host.strip()
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def host_header_is_loopback(value: str | None) -> bool:
    """Whether an HTTP ``Host`` header (``name``, ``name:port``, ``[v6]:port``) names loopback.

    A missing or empty header is not loopback: every browser sends one.
    """
    if not value:
        return False
    value = value.strip()
    if value.startswith("["):
        name, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not _is_port(rest)):
            return False
        return is_loopback(name) and ":" in name  # only IPv6 literals go in brackets
    name, colon, port = value.partition(":")
    if colon and not port.isdigit():
        return False
    return is_loopback(name)


def _is_port(rest: str) -> bool:
    return rest.startswith(":") and rest[1:].isdigit()

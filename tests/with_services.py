"""Run a command only when the services in DATABASE_URL and CACHE_URL answer.

``python -m tests.with_services CMD ...``: if PostgreSQL, MariaDB/MySQL or Redis cannot be
reached, CI (``CI=true``) fails with a message naming the service; elsewhere the env is
skipped with the same message, so a laptop without PostgreSQL or MariaDB can still run
``tox``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from urllib.parse import urlsplit

DEFAULT_PORTS = {
    "postgres": 5432,
    "postgresql": 5432,
    "mysql": 3306,
    "mysql2": 3306,
    "redis": 6379,
    "rediss": 6379,
}


def unreachable_services() -> list[str]:
    problems = []
    for var in ("DATABASE_URL", "CACHE_URL"):
        url = os.environ.get(var, "")
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            continue
        host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[parts.scheme]
        try:
            socket.create_connection((host, port), timeout=3).close()
        except OSError as exc:
            problems.append(f"{var}: {parts.scheme} at {host}:{port} is not reachable ({exc})")
    return problems


def main(argv: list[str]) -> int:
    problems = unreachable_services()
    if problems:
        text = "\n".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            print(f"FAILED: services this env needs are down:\n{text}", file=sys.stderr)
            return 1
        print(f"SKIPPED: services this env needs are down (start them to run it):\n{text}")
        return 0
    return subprocess.call(argv)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""One worker process of the cross-process refresh race (tests/connect/test_refresh_processes.py).

``python -m tests.connect.refresh_worker MODE PK GATE_DIR NAME`` with the environment of
:func:`tests.workers.worker_env` (the test database and the emulator's coordinates). It loads
connection ``PK`` (stale: its token is about to expire, or already revoked at Omnisend),
writes ``GATE_DIR/NAME.ready``, waits for ``GATE_DIR/go`` so both workers start together, then
makes one API call through :func:`~django_omnisend.connect.get_client`:

* ``expiring``: ``get_client`` refreshes first, because the row expires soon;
* ``401``: the client was built before the gate with the old token; the call gets a 401 and
  the client's handler refreshes.

Prints one JSON line: the fingerprint of the token the call used (never the token) and the
brand it answered. Not collected by pytest (its name does not start with ``test_``).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

#: How long to wait for the gate before giving up (the test process opens it at once).
GATE_TIMEOUT = 60.0


def main(argv: list[str]) -> int:
    mode, pk, gate_dir, name = argv
    import django

    django.setup()
    from django_omnisend import crypto
    from django_omnisend.connect import get_client
    from django_omnisend.models import Connection

    row = Connection.objects.get(pk=int(pk))
    client = get_client(row) if mode == "401" else None
    gate = Path(gate_dir)
    (gate / f"{name}.ready").touch()
    deadline = time.monotonic() + GATE_TIMEOUT
    while not (gate / "go").exists():
        if time.monotonic() > deadline:
            print("the gate never opened", file=sys.stderr)
            return 2
        time.sleep(0.002)
    if client is None:
        client = get_client(row)
    with client:
        brand = client.brands.current()
        used = crypto.fingerprint(client.auth._secret)
    print(json.dumps({"fingerprint": used, "brand": brand.get("brandID")}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

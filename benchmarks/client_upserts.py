"""1,000 contact upserts: OmnisendClient (one pooled session) vs a new ``requests.post`` per call.

Both run against the bundled emulator (rate limit off) in the same run, so the ratio is
meaningful even though the absolute numbers depend on the machine. The emulator runs in a
child process by default (so it does not compete with the client for the GIL);
``--in-process`` serves it on a thread instead. Usage, from the repository root::

    python benchmarks/client_upserts.py [--count 1000] [--in-process]

Not a test: it prints a table and exits 0. On loopback without TLS a new connection costs a
fraction of a millisecond, so the ratio here is a floor: against ``https://api.omnisend.com``
every ``requests.post`` also pays a TCP and a TLS handshake (several network round trips) that
the pooled session pays once.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def configure_django() -> None:
    """Minimal settings: the client reads only OMNISEND and nothing here touches a database."""
    import django
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            INSTALLED_APPS=[],
            CACHES={"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}},
            OMNISEND={"MAX_RETRIES": 0},
        )
        django.setup()


def body(email: str) -> dict:
    return {
        "identifiers": [{"type": "email", "id": email, "sendWelcomeMessage": False}],
        "firstName": "Bench",
        "tags": ["source: django"],
    }


def run_client(api_url: str, api_key: str, count: int, tag: str) -> float:
    from django_omnisend.api import ApiKeyAuth, OmnisendClient

    with OmnisendClient(ApiKeyAuth(api_key), api_url=api_url, max_retries=0) as client:
        started = time.perf_counter()
        for i in range(count):
            client.contacts.upsert(body(f"{tag}-{i}@example.com"))
        return time.perf_counter() - started


def run_requests_post(api_url: str, api_key: str, count: int, tag: str) -> float:
    import requests

    headers = {
        "Authorization": f"Omnisend-API-Key {api_key}",
        "Omnisend-Version": "2026-03-15",
        "Content-Type": "application/json",
    }
    started = time.perf_counter()
    for i in range(count):
        # What naive integration code does: a fresh connection (and session) per call.
        response = requests.post(
            f"{api_url}/contacts",
            data=json.dumps(body(f"{tag}-{i}@example.com")),
            headers=headers,
            timeout=10,
        )
        response.raise_for_status()
        response.close()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def emulator_process(api_key: str):
    """The emulator in its own process (its own GIL), rate limit off; yields the API URL."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "django_omnisend.emulator",
            "--port",
            str(port),
            "--api-key",
            api_key,
        ],
        stdout=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        import requests

        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/__emulator__/", timeout=1).close()
                break
            except requests.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError("the emulator did not start") from None
                time.sleep(0.1)
        requests.post(
            f"{base}/__emulator__/config", json={"rate_limit_enabled": False}, timeout=5
        ).raise_for_status()
        yield f"{base}/api"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextlib.contextmanager
def emulator_thread(api_key: str):
    """The emulator on a thread of this process (shares the GIL with the client)."""
    from django_omnisend.emulator import Emulator

    emulator = Emulator(seed=1)
    with emulator.serve(host="127.0.0.1", port=0) as emu:
        emu.configure(rate_limit_enabled=False)
        emu.add_api_key(api_key)
        yield emu.api_url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve the emulator on a thread of this process instead of a child process",
    )
    options = parser.parse_args()
    count = options.count
    configure_django()
    api_key = "65f0a1b2c3d4e5f600000001-benchmark-key"
    serve = emulator_thread if options.in_process else emulator_process
    with serve(api_key) as api_url:
        run_client(api_url, api_key, 20, "warm-client")  # warm both paths up
        run_requests_post(api_url, api_key, 20, "warm-post")
        rows = []
        for name, run in (("OmnisendClient", run_client), ("requests.post", run_requests_post)):
            elapsed = run(api_url, api_key, count, name.lower().replace(".", "-"))
            rows.append((name, elapsed, count / elapsed))
    base = rows[1][2]
    where = "in-process thread" if options.in_process else "separate process"
    print(f"{count} contact upserts against the emulator ({where}, rate limit off)")
    print(f"{'method':<18} {'seconds':>9} {'requests/s':>11} {'ratio':>7}")
    for name, elapsed, rate in rows:
        print(f"{name:<18} {elapsed:>9.2f} {rate:>11.0f} {rate / base:>6.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

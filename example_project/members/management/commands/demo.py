"""``manage.py demo``: the whole example in one command.

Migrates, makes sure the demo superuser exists with a new random password (printed in the
banner; the example must never have a well-known admin password), makes the two demo shops
(tenants), each with a staff user (a new random password too) and two members, starts the
bundled Omnisend emulator (with a brand per shop) in a thread of this process (when the
settings point at it), then starts two child processes: an ``omnisend_drain --loop`` worker
and the development server (``runserver --noreload``: no autoreloader, so no second copy of
this process and its threads). It prints
the URLs to click once the site answers, and on Ctrl-C or SIGTERM stops the children and the
emulator. The site and the emulator listen on loopback only (``--host`` refuses anything else).
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone
from store.models import Category, Product, Variant

from django_omnisend.emulator import Emulator, EmulatorConfig
from django_omnisend.emulator.hosts import is_loopback

from ...models import EmailVerification, Shop, ShopMembership
from .runserver import NOT_LOOPBACK

MANAGE_PY = Path(__file__).resolve().parents[3] / "manage.py"

#: Run as ``python -c LAUNCHER cmd...``: ask Linux to SIGTERM the child when this process dies
#: (even by SIGKILL), then exec the real command. Elsewhere it just execs.
LAUNCHER = """
import os, signal, sys
parent = int(os.environ.pop("DEMO_PARENT_PID"))
try:
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
except Exception:
    pass
if os.getppid() != parent:
    sys.exit(0)
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
"""


#: The demo's tenants: (slug, name, staff user, members, emulator brand ID, brand name). Each
#: shop's staff connect the shop's own brand from its page; its members sync to that brand.
SHOPS = [
    (
        "shop-a",
        "Shop A",
        "shop-a-staff",
        ["ann@shop-a.example.com", "alex@shop-a.example.com"],
        "example-shop-a",
        "Shop A's brand",
    ),
    (
        "shop-b",
        "Shop B",
        "shop-b-staff",
        ["bea@shop-b.example.com", "ben@shop-b.example.com"],
        "example-shop-b",
        "Shop B's brand",
    ),
]


#: The store's demo catalog: category slug and title, then its products (slug, title,
#: description, variants as (SKU, title, price, stock)). Created once; edits in the admin stay.
CATALOG = [
    (
        "mugs",
        "Mugs",
        [
            (
                "enamel-mug",
                "Enamel mug",
                "A camping mug that survives the campfire.",
                [("MUG-WHITE", "White", "12.00", 50), ("MUG-BLUE", "Blue", "12.00", 50)],
            ),
            (
                "travel-mug",
                "Travel mug",
                "Keeps coffee hot for a whole commute.",
                [("TRAVEL-STEEL", "Steel", "19.50", 30)],
            ),
        ],
    ),
    (
        "t-shirts",
        "T-shirts",
        [
            (
                "logo-tee",
                "Logo T-shirt",
                "Organic cotton, with the example's logo.",
                [
                    ("TEE-S", "Small", "25.00", 100),
                    ("TEE-M", "Medium", "25.00", 100),
                    ("TEE-L", "Large", "25.00", 0),
                ],
            ),
        ],
    ),
]


class Stop(Exception):
    """Raised by the SIGTERM handler to leave the supervision loop."""


class Command(BaseCommand):
    help = (
        "Run the example end to end: migrate, create the demo superuser, start the Omnisend "
        "emulator (unless real credentials are configured), a drain worker and the dev server."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--host",
            default="127.0.0.1",
            help="Loopback interface of the dev server (127.0.0.1, ::1 or localhost).",
        )
        parser.add_argument("--port", type=int, default=8000, help="Port of the dev server.")
        parser.add_argument(
            "--emulator-port",
            type=int,
            default=None,
            help="Port of the emulator (default: the one in OMNISEND_EMULATOR_URL, 8787).",
        )
        parser.add_argument(
            "--username", default="admin", help="Demo superuser's name (default admin)."
        )
        parser.add_argument(
            "--password",
            default=None,
            help="Password set on the demo superuser at this start (default: a new random one).",
        )
        parser.add_argument(
            "--idle-sleep",
            type=float,
            default=1.0,
            help="Seconds the drain worker waits when nothing is due (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        host, port = options["host"], options["port"]
        if not is_loopback(host):
            raise CommandError(NOT_LOOPBACK.format(host=host))
        host = host.strip("[]")  # ::1 may come as [::1]
        _require_free_port(host, port, "--port")
        call_command("migrate", interactive=False, verbosity=0)
        self._superuser(options["username"], options["password"] or secrets.token_urlsafe(18))
        self._shops()
        self._catalog()

        child_env = {**os.environ, "PYTHONUNBUFFERED": "1", "DEMO_PARENT_PID": str(os.getpid())}
        netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # The store's product URLs (built by the drain worker) point at this server.
        child_env["SITE_URL"] = f"http://{netloc}"
        allowed_name = f"[{host}]" if ":" in host else host
        if allowed_name not in settings.ALLOWED_HOSTS:  # e.g. --host 127.0.0.2
            child_env["ALLOWED_HOSTS"] = ",".join([*settings.ALLOWED_HOSTS, allowed_name])
        emulator = None
        emulator_cfg = getattr(settings, "EXAMPLE_EMULATOR", None)
        if emulator_cfg:
            emulator, url = self._start_emulator(emulator_cfg, host, port, options)
            child_env["OMNISEND_EMULATOR_URL"] = url
            # The children must make the same choice even if .env says otherwise.
            child_env["OMNISEND_USE_EMULATOR"] = "true"

        children: list[subprocess.Popen] = []
        previous = signal.signal(signal.SIGTERM, _raise_stop)
        try:
            children.append(
                _spawn(
                    [
                        "omnisend_drain",
                        "--loop",
                        "--idle-sleep",
                        str(options["idle_sleep"]),
                        # A demo wants to see each sign-up delivered, not a minute's totals.
                        "--summary-every",
                        "5",
                        "--skip-checks",
                    ],
                    child_env,
                )
            )
            children.append(_spawn(["runserver", netloc, "--noreload", "--skip-checks"], child_env))
            base = f"http://{netloc}"
            _wait_until_up(base + "/", children)
            self._banner(base, emulator, options)
            while True:
                for child in children:
                    if child.poll() is not None:
                        name = child.args[4]  # [python, -c, LAUNCHER, manage.py, command…]
                        raise CommandError(f"{name} stopped (exit {child.returncode}).")
                time.sleep(0.5)
        except (KeyboardInterrupt, Stop):
            self.stdout.write("Stopping…")
        finally:
            signal.signal(signal.SIGTERM, previous)
            _stop(children)
            if emulator is not None:
                emulator.stop()
        self.stdout.write("Stopped.")

    def _superuser(self, username: str, password: str) -> None:
        """Create the demo superuser, or give the existing one ``password`` (new each start)."""
        users = get_user_model().objects
        user = users.filter(username=username).first()
        if user is None:
            users.create_superuser(username, f"{username}@example.com", password)
        else:
            # Each start prints the password that works now; an earlier run's is forgotten.
            user.set_password(password)
            user.save(update_fields=["password"])
        self._admin_note = f"user {username}, password {password}"

    def _shops(self) -> None:
        """The two demo shops, their staff (new random passwords) and their members."""
        users = get_user_model().objects
        self._shop_notes = []
        for slug, name, staff_name, members, _brand, brand_name in SHOPS:
            with transaction.atomic():
                shop, _ = Shop.objects.get_or_create(slug=slug, defaults={"name": name})
                password = secrets.token_urlsafe(18)
                staff = users.filter(username=staff_name).first()
                if staff is None:
                    # Staff so it can sign in (the admin's login page); no permission at all:
                    # ShopConnectionAdapter lets it manage its own shop's connection only.
                    staff = users.create_user(
                        staff_name, f"{staff_name}@example.com", password, is_staff=True
                    )
                else:
                    staff.set_password(password)
                    staff.save(update_fields=["password"])
                shop.staff.add(staff)
                for email in members:
                    if not users.filter(username=email).exists():
                        self._member(shop, email)
            self._shop_notes.append((slug, name, staff_name, password, brand_name))

    def _catalog(self) -> None:
        """The store's demo products, once: their saves queue them for Omnisend's catalog,
        which the drain worker fills as soon as it starts."""
        if Product.objects.exists():
            return
        with transaction.atomic():
            for category_slug, category_title, products in CATALOG:
                category = Category.objects.create(slug=category_slug, title=category_title)
                for slug, title, description, variants in products:
                    product = Product.objects.create(
                        slug=slug, title=title, description=description, category=category
                    )
                    for sku, variant_title, price, stock in variants:
                        Variant.objects.create(
                            product=product, sku=sku, title=variant_title, price=price, stock=stock
                        )

    def _member(self, shop: Shop, email: str) -> None:
        """A verified member of ``shop``, marked for its shop's brand (not the site's)."""
        user = get_user_model()(username=email, email=email, first_name=email.split("@")[0])
        user.set_unusable_password()
        user.shop_at_signup = shop  # read by ShopNewsletterAdapter when the save marks it
        user.save()
        ShopMembership.objects.create(user=user, shop=shop)
        EmailVerification.objects.create(user=user, address=email, verified_at=timezone.now())

    def _start_emulator(
        self, cfg: dict[str, str], host: str, port: int, options: dict[str, Any]
    ) -> tuple[Emulator, str]:
        parts = urlsplit(cfg["URL"])
        emu_host = parts.hostname or "127.0.0.1"
        if not is_loopback(emu_host):
            raise CommandError(f"OMNISEND_EMULATOR_URL: {NOT_LOOPBACK.format(host=emu_host)}")
        emu_port = options["emulator_port"] or parts.port or 8787
        _require_free_port(emu_host, emu_port, "--emulator-port")
        # The demo client accepts the callback on both names of this machine.
        redirect_uris = [
            f"http://{name}:{port}/omnisend/callback/" for name in ("127.0.0.1", "localhost")
        ]
        if host not in ("127.0.0.1", "localhost"):
            netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            redirect_uris.append(f"http://{netloc}/omnisend/callback/")
        config = EmulatorConfig().replace(demo_redirect_uris=redirect_uris)
        emulator = Emulator(config=config, state_file=cfg["STATE_FILE"])
        emulator.add_api_key(cfg["API_KEY"])
        # One brand per shop: the consent page lets the person pick it, as Omnisend's does
        # for someone with several brands.
        for slug, _name, _staff, _members, brand_id, brand_name in SHOPS:
            emulator.add_brand(brand_id, name=brand_name, website=f"https://{slug}.example.com")
        emulator.start(emu_host, emu_port)
        return emulator, emulator.base_url

    def _banner(self, base: str, emulator: Emulator | None, options: dict[str, Any]) -> None:
        lines = [
            "",
            "The django-omnisend example is running"
            + (" on the Omnisend emulator (no account needed)." if emulator else "."),
            f"  Home:              {base}/",
            f"  Sign up:           {base}/signup/",
            f"  Contacts:          {base}/contacts/",
            f"  Admin:             {base}/admin/   ({self._admin_note})",
            f"  Connect Omnisend:  {base}/admin/django_omnisend/connection/",
            f"  Shops:             {base}/shops/",
            f"  Store:             {base}/store/   (staff: {base}/store/activity/)",
        ]
        for slug, name, staff_name, password, brand_name in self._shop_notes:
            lines.append(
                f"  {name}:{' ' * (18 - len(name))}{base}/shops/{slug}/   "
                f"(user {staff_name}, password {password}; connect {brand_name!r})"
            )
        if emulator is not None:
            lines.append(
                f"  Emulator:          {emulator.base_url}/   (state: {emulator.state_file})"
            )
        lines += ["Press Ctrl-C to stop.", ""]
        self.stdout.write("\n".join(lines))
        self.stdout.flush()


def _raise_stop(signum: int, frame: Any) -> None:
    raise Stop


def _require_free_port(host: str, port: int, option: str) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise CommandError(
                f"Cannot use {host}:{port} ({exc}); choose another {option}."
            ) from None


def _spawn(command: list[str], env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: Ctrl-C reaches only this process, which then stops the children
    # in order (SIGTERM) instead of every process printing a KeyboardInterrupt traceback.
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(MANAGE_PY), *command],
        env=env,
        start_new_session=True,
    )


def _wait_until_up(url: str, children: list[subprocess.Popen], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            raise CommandError("A child process stopped while starting; see its output above.")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except urllib.error.HTTPError as exc:
            raise CommandError(f"{url} answered {exc.code} while starting.") from exc
        except OSError:
            time.sleep(0.2)
    raise CommandError(f"{url} did not answer within {timeout:.0f} s.")


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + 10
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()

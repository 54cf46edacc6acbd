"""``Emulator``: state, WSGI app, server and the thread-safe Python control API.

One lock (an ``RLock``) guards the whole store; handlers run under it, sleeps (latency, hangs)
never do. Delayed work (tags, deferred batches) is applied lazily by :meth:`tick_locked`, which
every API request and every inspection call runs first, so time is the only driver and tests
can move it with :meth:`advance_clock` instead of sleeping.
"""

from __future__ import annotations

import copy
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from . import catalog, oauth
from . import contacts as contact_rules
from . import events as event_rules
from .app import EmulatorApp
from .batches import advance as advance_batch
from .batches import to_batch
from .config import EmulatorConfig
from .control import TOKEN_HEADER
from .faults import FaultInjector
from .http import Request
from .ledger import Ledger, LedgerEntry
from .problems import ApiError
from .ratelimit import SlidingWindowLimiter
from .server import ThreadingWSGIServer, make_server
from .state import ALL_SCOPES, State, new_secret
from .times import Clock


class Emulator:
    """A local Omnisend: OAuth server + API 2026-03-15, served from a thread or a process.

    ``Emulator(config=EmulatorConfig(...), seed=1234, state_file=None)`` builds state and the WSGI
    app (:attr:`wsgi_app`); :meth:`serve` runs it on a loopback port. ``seed`` makes fault
    schedules reproducible; ``state_file`` keeps state in a JSON file across runs;
    ``control_token``, when given, must come with every ``/__emulator__`` request in the
    ``Emulator-Control-Token`` header (it is never stored, shown or reset).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        seed: int | str | None = 0,
        state_file: str | os.PathLike[str] | None = None,
        control_token: str | None = None,
    ) -> None:
        #: What ``/__emulator__`` requests must send in ``Emulator-Control-Token`` (None: nothing).
        self.control_token = control_token or None
        self._initial_config = copy.deepcopy(config or EmulatorConfig())
        self._initial_config.validate()
        self.config = copy.deepcopy(self._initial_config)
        self.seed = seed
        self.state_file = os.fspath(state_file) if state_file is not None else None
        self.clock = Clock()
        self.lock = threading.RLock()
        self.limiter = SlidingWindowLimiter()
        self.faults = FaultInjector(seed, clock=self.clock)
        self.stopping = threading.Event()
        self._ledger = Ledger()
        self._base_url: str | None = None
        self._server: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None
        if self.state_file and os.path.exists(self.state_file):
            self.state = State.load(self.state_file)
        else:
            self.state = State()
        self._ensure_defaults()
        self._persist()
        self.wsgi_app = EmulatorApp(self)

    # -- URLs ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://HOST:PORT`` while serving (RuntimeError otherwise)."""
        if self._base_url is None:
            raise RuntimeError("The emulator is not serving; use `with emu.serve(): ...`.")
        return self._base_url

    @property
    def api_url(self) -> str:
        """Base URL of the API (``…/api``)."""
        return self.base_url + "/api"

    @property
    def authorize_url(self) -> str:
        """OAuth authorization endpoint."""
        return self.base_url + "/oauth2/authorize"

    @property
    def token_url(self) -> str:
        """OAuth token endpoint."""
        return self.base_url + "/oauth2/token"

    @property
    def revoke_url(self) -> str:
        """OAuth revocation endpoint."""
        return self.base_url + "/oauth2/revoke"

    @property
    def control_url(self) -> str:
        """Base of the ``/__emulator__`` control endpoints."""
        return self.base_url + "/__emulator__"

    # -- serving ------------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> Emulator:
        """Serve in a background thread until :meth:`stop`; returns self."""
        if self._server is not None:
            raise RuntimeError("The emulator is already serving.")
        self.stopping.clear()
        server = make_server(host, port, self.wsgi_app, verbose=verbose)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="omnisend-emulator",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        self._base_url = f"http://{host}:{server.server_port}"
        return self

    def stop(self) -> None:
        """Stop serving: wake hanging requests, stop the loop, join handler threads, close."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.stopping.set()
        server.shutdown()
        if thread is not None:
            thread.join()
        server.server_close()
        self._server = self._thread = None
        self._base_url = None

    @contextmanager
    def serve(
        self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False
    ) -> Iterator[Emulator]:
        """Context manager: serve in a thread, yield self, stop on exit."""
        self.start(host, port, verbose)
        try:
            yield self
        finally:
            self.stop()

    def serve_forever(self, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        """Serve until KeyboardInterrupt, blocking the calling thread."""
        self.start(host, port, verbose)
        try:
            self.serve_forever_started()
        finally:
            self.stop()

    def serve_forever_started(self) -> None:
        """Block until the serving thread ends (KeyboardInterrupt reaches the caller)."""
        while self._thread is not None and self._thread.is_alive():
            self._thread.join(0.5)

    # -- defaults and persistence -------------------------------------------------------------

    def _ensure_defaults(self) -> None:
        with self.lock:
            cfg = self.config
            if cfg.default_brand_id not in self.state.brands:
                self.add_brand(
                    cfg.default_brand_id,
                    name="Demo brand",
                    website="https://shop.example.com",
                    _persist=False,
                )
            self.add_client(
                cfg.demo_client_id,
                cfg.demo_client_secret,
                list(cfg.demo_redirect_uris),
                brand_id=cfg.default_brand_id,
                name="django-omnisend demo app",
                _persist=False,
            )

    def _persist(self) -> None:
        if self.state_file:
            with self.lock:
                self.state.save(self.state_file)

    def after_request(self, request: Request) -> None:
        """Save the state file after a request that may have written something."""
        if self.state_file and request.method not in ("GET", "HEAD", "OPTIONS"):
            self._persist()

    def record(self, entry: LedgerEntry) -> None:
        """Append a ledger entry (the app calls this when a request arrives)."""
        self._ledger.append(entry)

    # -- configuration ------------------------------------------------------------------------

    def configure(self, **fields: Any) -> EmulatorConfig:
        """Change :class:`EmulatorConfig` fields at run time; returns the new config."""
        with self.lock:
            self.config = self.config.replace(**fields)
            if "demo_redirect_uris" in fields:
                self.state.clients[self.config.demo_client_id]["redirect_uris"] = list(
                    fields["demo_redirect_uris"]
                )
            return self.config

    def reset(self) -> None:
        """Back to the post-construction default: config, brand, demo client; nothing else."""
        with self.lock:
            self.config = copy.deepcopy(self._initial_config)
            self.state = State()
            self._ledger.clear()
            self.limiter.clear()
            self.faults.clear()
            self.clock.reset()
            self._ensure_defaults()
            self._persist()

    def advance_clock(self, seconds: float) -> None:
        """Move emulated time forward (token/code expiry, rate windows, delayed work)."""
        self.clock.advance(seconds)
        self.tick()

    # -- brands, clients, credentials ---------------------------------------------------------

    @property
    def default_brand_id(self) -> str:
        """The brand that exists after construction or reset."""
        return self.config.default_brand_id

    @property
    def demo_client_id(self) -> str:
        """Client id of the demo OAuth client."""
        return self.config.demo_client_id

    @property
    def demo_client_secret(self) -> str:
        """Client secret of the demo OAuth client."""
        return self.state.clients[self.config.demo_client_id]["client_secret"]

    @property
    def demo_redirect_uris(self) -> list[str]:
        """Redirect URIs registered for the demo client."""
        return list(self.state.clients[self.config.demo_client_id]["redirect_uris"])

    def add_brand(
        self,
        brand_id: str | None = None,
        name: str = "Demo brand",
        website: str = "https://shop.example.com",
        _persist: bool = True,
        **fields: Any,
    ) -> dict[str, Any]:
        """Create (or replace) a brand record; returns it. Extra fields: currency, timezone, …"""
        with self.lock:
            brand_id = brand_id or self.state.new_id(self.clock())
            brand = {
                "brandID": brand_id,
                "name": name,
                "website": website,
                "currency": "USD",
                "timezone": "UTC",
                "platform": "",
                "version": "",
                "connected": False,
            }
            brand.update(fields)
            self.state.brands[brand_id] = brand
            if _persist:
                self._persist()
            return dict(brand)

    def _brand(self, brand_id: str | None) -> str:
        brand_id = brand_id or self.default_brand_id
        if brand_id not in self.state.brands:
            raise KeyError(f"Unknown brand {brand_id!r}")
        return brand_id

    def add_client(
        self,
        client_id: str,
        client_secret: str,
        redirect_uris: list[str],
        scopes: list[str] | None = None,
        brand_id: str | None = None,
        name: str | None = None,
        _persist: bool = True,
    ) -> None:
        """Register (or replace) an OAuth client; ``scopes`` = what it may request (default all)."""
        with self.lock:
            self.state.clients[client_id] = {
                "client_id": client_id,
                "client_secret": client_secret,
                "redirect_uris": list(redirect_uris),
                "scopes": list(scopes or ALL_SCOPES),
                "brand_id": self._brand(brand_id),
                "name": name or client_id,
            }
            if _persist:
                self._persist()

    def issue_api_key(self, brand_id: str | None = None, scopes: list[str] | None = None) -> str:
        """A new API key ``<brandID>-<secret>`` with ``scopes`` (default: all)."""
        with self.lock:
            brand_id = self._brand(brand_id)
            key = f"{brand_id}-{new_secret(18)}"
            self.state.api_keys[key] = {
                "brand_id": brand_id,
                "scopes": list(scopes or ALL_SCOPES),
                "revoked": False,
            }
            self._persist()
            return key

    def add_api_key(
        self, key: str, brand_id: str | None = None, scopes: list[str] | None = None
    ) -> str:
        """Register a fixed API key (e.g. one kept in an example project's ``.env``)."""
        with self.lock:
            # Re-registering moves the key to the end: it is the newest, the one GET / shows.
            self.state.api_keys.pop(key, None)
            self.state.api_keys[key] = {
                "brand_id": self._brand(brand_id),
                "scopes": list(scopes or ALL_SCOPES),
                "revoked": False,
            }
            self._persist()
            return key

    def newest_api_key(self, brand_id: str | None = None) -> str | None:
        """The API key of ``brand_id`` (default brand) issued or registered last, unless revoked."""
        with self.lock:
            brand_id = self._brand(brand_id)
            for key, record in reversed(self.state.api_keys.items()):
                if record["brand_id"] == brand_id and not record["revoked"]:
                    return key
            return None

    def issue_token(
        self,
        brand_id: str | None = None,
        scopes: list[str] | None = None,
        client_id: str | None = None,
    ) -> dict[str, Any]:
        """A token response as if consent had been given (default: all scopes)."""
        with self.lock:
            body = oauth.issue_tokens(
                self,
                client_id or self.demo_client_id,
                self._brand(brand_id),
                list(scopes or ALL_SCOPES),
                self.clock(),
            )
            self._persist()
            return body

    def revoke_token(self, token: str) -> None:
        """Revoke an access or refresh token (a refresh token takes its access tokens along)."""
        with self.lock:
            oauth.revoke_token_value(self, token)
            self._persist()

    def revoke_api_key(self, key: str) -> None:
        """Revoke an API key (as deleting it in Omnisend's UI does): it gets 401 from now on."""
        with self.lock:
            if key not in self.state.api_keys:
                raise KeyError("Unknown API key")
            self.state.api_keys[key]["revoked"] = True
            self._persist()

    # -- contacts, events, batches ------------------------------------------------------------

    def tick(self) -> None:
        """Apply delayed work that is due now."""
        with self.lock:
            self.tick_locked(self.clock())

    def tick_locked(self, now: float) -> None:
        """Apply due tag operations and advance unfinished batches (lock held)."""
        due = [op for op in self.state.pending_tags if op["due"] <= now]
        if due:
            self.state.pending_tags = [op for op in self.state.pending_tags if op["due"] > now]
            for op in due:
                contact_rules.apply_tags(self.state.book(op["brand_id"]), op["op"], op["body"], now)
        for brand_batches in self.state.batches.values():
            for batch in brand_batches.values():
                if batch["status"] not in ("finished", "stopped"):
                    advance_batch(batch, now, self.process_batch_item)

    def process_batch_item(
        self, brand_id: str, endpoint: str, method: str, item: Any, now: float
    ) -> tuple[int, Any]:
        """Run one batch item through the single-item handler logic (lock held)."""
        try:
            if endpoint == "contacts":
                rec, created = contact_rules.upsert(self.state, brand_id, item, now, self.config)
                response = (
                    contact_rules.to_response(rec) if self.config.batch_item_responses else None
                )
                return (201 if created else 200), response
            if endpoint == "events":
                event_rules.record_event(self.state, brand_id, item, now, self.config)
                return 202, None
            return catalog.batch_item(self.state, brand_id, endpoint, method, item, now)
        except ApiError as exc:
            return exc.status, exc.body()

    def contacts(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """A brand's contacts (ContactResponse + ``_welcome_messages``), oldest first."""
        with self.lock:
            self.tick_locked(self.clock())
            return [contact_rules.snapshot(r) for r in self.state.book(self._brand(brand_id)).all()]

    def get_contact(self, email: str, brand_id: str | None = None) -> dict[str, Any] | None:
        """The contact with exactly this e-mail (case-sensitive), or None."""
        with self.lock:
            self.tick_locked(self.clock())
            rec = self.state.book(self._brand(brand_id)).find_email(email)
            return contact_rules.snapshot(rec) if rec else None

    def unsubscribe(
        self,
        email: str,
        brand_id: str | None = None,
        at: datetime | None = None,
        *,
        dated: bool = True,
        updated_at: datetime | None = None,
    ) -> dict[str, Any]:
        """Unsubscribe a contact "inside Omnisend" (like an unsubscribe link); returns it.

        ``dated=False`` makes the contact's responses carry its statuses without
        ``statusChangedAt`` (a client must not read that as "no unsubscribe date, go ahead").
        ``updated_at`` (default: now) dates the change in the past: a write that becomes
        visible to ``GET /contacts?updatedAtFrom=`` only after later ones were listed, as
        replication lag or a long transaction inside Omnisend would make it.
        """
        with self.lock:
            now = self.clock()
            rec = self.state.book(self._brand(brand_id)).find_email(email)
            if rec is None:
                raise KeyError(f"No contact with e-mail {email!r}")
            when = at.timestamp() if at is not None else now
            contact_rules.set_channel(rec, "email", "unsubscribed", when)
            rec["undatedStatuses"] = not dated
            rec["updatedAt"] = updated_at.timestamp() if updated_at is not None else now
            self._persist()
            return contact_rules.snapshot(rec)

    def seed_contact(self, brand_id: str | None = None, **body: Any) -> dict[str, Any]:
        """Create or update a contact from a ContactRequest body without HTTP (no welcome counted).

        Extra keyword ``segments`` (list of ids) puts the contact in segments.
        """
        segments = body.pop("segments", None)
        with self.lock:
            rec, _ = contact_rules.upsert(
                self.state, self._brand(brand_id), body, self.clock(), self.config
            )
            if segments is not None:
                rec["segments"] = list(segments)
            rec["welcomeMessages"] = 0
            self._persist()
            return contact_rules.snapshot(rec)

    def events(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """Events received for a brand, oldest first.

        Each is the request body plus ``_receivedAt``, ``_contactID`` and ``_duplicate``.
        """
        with self.lock:
            return copy.deepcopy(self.state.events.get(self._brand(brand_id), []))

    def products(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """A brand's products as ``Product`` objects, oldest first."""
        with self.lock:
            self.tick_locked(self.clock())
            rows = self.state.products.get(self._brand(brand_id), {}).values()
            return [catalog.to_product(r) for r in sorted(rows, key=lambda r: r["_seq"])]

    def categories(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """A brand's product categories (``GetCategoryResponse``), oldest first."""
        with self.lock:
            self.tick_locked(self.clock())
            rows = self.state.categories.get(self._brand(brand_id), {}).values()
            return [catalog.to_category(r) for r in sorted(rows, key=lambda r: r["_seq"])]

    def event_metadata(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """A brand's declared custom events (``name``, ``origin``, ``displayName``, tree)."""
        with self.lock:
            return copy.deepcopy(
                list(self.state.event_metadata.get(self._brand(brand_id), {}).values())
            )

    def batches(self, brand_id: str | None = None) -> list[dict[str, Any]]:
        """Batches of a brand as ``Batch`` objects with items, oldest first."""
        with self.lock:
            self.tick_locked(self.clock())
            rows = self.state.batches.get(self._brand(brand_id), {}).values()
            return [
                to_batch(b, with_items=True) for b in sorted(rows, key=lambda b: b["createdAt"])
            ]

    # -- ledger and faults --------------------------------------------------------------------

    @property
    def ledger(self) -> list[LedgerEntry]:
        """Every request answered since construction or reset, oldest first."""
        return self._ledger.entries()

    def ledger_for(
        self, path_prefix: str = "/api/contacts", method: str | None = None
    ) -> list[LedgerEntry]:
        """Ledger entries under ``path_prefix`` (and of ``method``)."""
        return self._ledger.filter(path_prefix, method)

    def clear_ledger(self) -> None:
        """Forget the ledger (state is kept)."""
        self._ledger.clear()

    def add_fault(
        self, route: str = "*", kind: str = "500", rate: float = 1.0, **params: Any
    ) -> dict[str, Any]:
        """Add a seeded fault rule (see :mod:`.faults`); returns it (with its ``id``).

        ``times=N`` caps how often it fires; ``duration=S`` makes it fire only for the next
        ``S`` seconds of emulator time (e.g. a 429 storm that ends by itself).
        """
        times = params.pop("times", None)
        duration = params.pop("duration", None)
        expires_at = None if duration is None else self.clock() + float(duration)
        return self.faults.add(route, kind, rate, times, expires_at, **params).as_dict()

    def remove_fault(self, rule_id: int) -> bool:
        """Remove one fault rule by its ``id``; the others keep their schedules."""
        return self.faults.remove(int(rule_id))

    def clear_faults(self) -> None:
        """Remove every fault rule (numbering restarts, so a schedule replays identically)."""
        self.faults.clear()

    def faults_list(self) -> list[dict[str, Any]]:
        """The active fault rules with their counters."""
        return [r.as_dict() for r in self.faults.rules()]

    # -- description --------------------------------------------------------------------------

    def describe(self, base_url: str | None = None) -> dict[str, Any]:
        """URLs, demo client credentials and config, as JSON."""
        base = base_url or self._base_url or ""
        return {
            "base_url": base,
            "api_url": f"{base}/api",
            "authorize_url": f"{base}/oauth2/authorize",
            "token_url": f"{base}/oauth2/token",
            "revoke_url": f"{base}/oauth2/revoke",
            "metadata_url": f"{base}/.well-known/oauth-authorization-server",
            "control_url": f"{base}/__emulator__",
            "control_token_required": self.control_token is not None,
            "default_brand_id": self.default_brand_id,
            "demo_client": {
                "client_id": self.demo_client_id,
                "client_secret": self.demo_client_secret,
                "redirect_uris": self.demo_redirect_uris,
            },
            "api_key": self.newest_api_key(),
            "config": self.config.as_dict(),
        }

    def describe_text(self, base_url: str | None = None) -> str:
        """The human-readable banner the CLI prints and ``GET /`` shows.

        Everything a site needs to point at the emulator: the API and OAuth URLs, the demo
        client's credentials and the default brand's newest API key.
        """
        d = self.describe(base_url)
        lines = [
            "Omnisend emulator (django-omnisend)",
            f"  API:           {d['api_url']}   (Omnisend-Version: 2026-03-15)",
            f"  Authorize:     {d['authorize_url']}",
            f"  Token:         {d['token_url']}",
            f"  Revoke:        {d['revoke_url']}",
            f"  Metadata:      {d['metadata_url']}",
            f"  Control:       {d['control_url']}/"
            + (f"   (needs the {TOKEN_HEADER} header)" if self.control_token else ""),
            f"  Brand ID:      {d['default_brand_id']}",
            f"  Client ID:     {d['demo_client']['client_id']}",
            f"  Client secret: {d['demo_client']['client_secret']}",
            "  Redirect URIs: " + ", ".join(d["demo_client"]["redirect_uris"]),
            "  API key:       "
            + (d["api_key"] or f"none issued (POST {d['control_url']}/api-keys issues one)"),
        ]
        return "\n".join(lines) + "\n"

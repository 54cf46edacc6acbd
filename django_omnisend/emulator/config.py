"""``EmulatorConfig``: every switch that changes how the emulator behaves.

All fields may be changed at run time through :meth:`Emulator.configure` or
``POST /__emulator__/config``; defaults mirror what Omnisend documents
(docs: reference/omnisend-api.rst, 'Rate limits' and 'API versions').
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

#: The API version the emulator implements; later dates resolve to it, earlier ones get 410.
API_VERSION = "2026-03-15"

#: Redirect URIs registered for the demo client unless the CLI or a test says otherwise.
DEFAULT_REDIRECT_URIS = (
    "http://127.0.0.1:8000/omnisend/callback/",
    "http://localhost:8000/omnisend/callback/",
)

BATCH_MODES = ("immediate", "deferred")
WELCOME_MODES = ("subscribed", "new", "off")


@dataclass
class EmulatorConfig:
    """Behaviour switches. Windows and delays are in seconds; limits per window per brand."""

    # Rate limiting (docs: reference/omnisend-api.rst, 'Rate limits'): a sliding window per brand,
    # stricter for /contacts/tags.
    rate_limit: int = 400
    tags_rate_limit: int = 60
    window_seconds: float = 60.0
    rate_limit_enabled: bool = True
    #: Emit v3-style ``X-Rate-Limit-*`` headers (2026-03-15 sends none).
    rate_limit_headers: bool = False

    # OAuth server.
    require_pkce: bool = False
    #: Skip the consent page and approve at once (scripts, CI).
    auto_approve: bool = False
    #: Skip the consent page and deny at once (``error=access_denied``).
    auto_deny: bool = False
    token_expires_in: int = 9223372036
    rotate_refresh_tokens: bool = False
    #: With rotation: a rotated-out refresh token used again revokes its whole grant (every
    #: access and refresh token issued from it), as RFC 9700 §4.14.2 advises servers to do.
    refresh_reuse_revokes_grant: bool = False
    code_ttl: float = 600

    # Asynchronous work.
    batch_processing: str = "immediate"
    #: Deferred batches stay ``pending`` this long, then ``inProgress`` as long again.
    batch_delay: float = 0.0
    #: Stop a batch (status ``stopped``) once this many items failed; None never stops.
    batch_stop_after_errors: int | None = None
    #: Keep a succeeded contact item's ``response`` (the contact); False leaves it out, as
    #: Omnisend may (its 2026 item response is undocumented,
    #: docs: reference/omnisend-api.rst, 'Batches').
    batch_item_responses: bool = True
    #: Seconds before a ``POST``/``DELETE /contacts/tags`` request takes effect.
    tags_delay: float = 0.0

    # Semantics.
    #: Checks Omnisend does not make (off by default, see README "Emulator fidelity"): 403s
    #: name the missing scope; events need ``origin`` and ``contact``; event consent, opt-in
    #: and opt-out channels are only ``email``/``sms`` (no ``phone``).
    strict: bool = False
    #: When a welcome message counts: ``subscribed`` = an identifier with
    #: ``sendWelcomeMessage`` true becomes subscribed; ``new`` = any identifier added with it
    #: true; ``off`` = never.
    welcome_messages: str = "subscribed"
    #: Events whose ``eventTime`` is older than this are historical and deduplicated.
    event_history_seconds: float = 3600.0

    # Identity of the default brand and demo client (re-created by reset()).
    default_brand_id: str = "65f0a1b2c3d4e5f600000001"
    demo_client_id: str = "omnisend-emulator-demo"
    demo_client_secret: str = "demo-secret-not-for-production"
    demo_redirect_uris: list[str] = field(default_factory=lambda: list(DEFAULT_REDIRECT_URIS))

    def replace(self, **fields: Any) -> EmulatorConfig:
        """Return a validated copy with ``fields`` changed; unknown names raise ValueError."""
        names = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(fields) - names)
        if unknown:
            raise ValueError(f"Unknown emulator setting(s): {', '.join(unknown)}")
        new = dataclasses.replace(self, **fields)
        new.validate()
        return new

    def validate(self) -> None:
        """Raise ValueError for values the emulator cannot honour."""
        if self.batch_processing not in BATCH_MODES:
            raise ValueError(f"batch_processing must be one of {BATCH_MODES}")
        if self.welcome_messages not in WELCOME_MODES:
            raise ValueError(f"welcome_messages must be one of {WELCOME_MODES}")
        if self.window_seconds <= 0 or self.rate_limit < 1 or self.tags_rate_limit < 1:
            raise ValueError("window_seconds, rate_limit and tags_rate_limit must be positive")
        if min(self.batch_delay, self.tags_delay, self.code_ttl) < 0:
            raise ValueError("delays must not be negative")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready copy of every field."""
        return dataclasses.asdict(self)

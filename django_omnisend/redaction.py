"""Keep credentials out of logs: :func:`redact` and the :class:`RedactingFilter` logging filter.

What is redacted (value replaced by ``[REDACTED]``, the name kept so a log still says *what*
was sent):

* header values of ``Authorization``, ``Omnisend-API-Key``, ``X-API-KEY`` (``Header: value``,
  ``'Header': 'value'`` and ``"Header": "value"`` forms), and any ``Bearer <token>`` or
  ``Omnisend-API-Key <key>`` credential wherever it appears;
* ``access_token``, ``refresh_token``, ``id_token``, ``client_secret``, ``code``,
  ``code_verifier``, ``api_key``, ``apikey``, ``password`` and ``token`` values in query strings
  and form bodies (``name=value``) and in JSON or Python-repr mappings (``"name": "value"``).

The filter rewrites ``record.msg`` (with its ``args`` merged in) and the formatted traceback,
only when something had to be redacted, so ordinary records keep their ``args``.

The package's own loggers (``django_omnisend`` and every ``django_omnisend.*`` logger) get the
filter when :mod:`django_omnisend.api` is imported (:func:`install`). Logger filters only see
records created *on that logger*, so for third-party loggers the robust place is the handler.
To cover ``requests``/``urllib3`` (which log URLs at DEBUG) and everything else, add it to your
handlers::

    LOGGING = {
        "version": 1,
        "filters": {"redact": {"()": "django_omnisend.redaction.RedactingFilter"}},
        "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
        ...
    }

or call ``install("urllib3", "requests")``, which attaches it to those loggers and their
existing children (e.g. ``urllib3.connectionpool``).
"""

from __future__ import annotations

import logging
import re

#: What a redacted value is replaced with.
MASK = "[REDACTED]"

#: Headers whose value is a credential.
SECRET_HEADERS = ("authorization", "omnisend-api-key", "x-api-key", "proxy-authorization")

#: Parameter / JSON key names whose value is a credential.
SECRET_PARAMS = (
    "access_token",
    "refresh_token",
    "id_token",
    "client_secret",
    "code_verifier",
    "code",
    "api_key",
    "apikey",
    "password",
    "token",
)

_names = "|".join(re.escape(name) for name in SECRET_PARAMS)
_headers = "|".join(re.escape(name) for name in SECRET_HEADERS)

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # 'Authorization': 'Bearer abc' / "X-API-KEY": "k" (dict reprs and JSON): whole value.
    (
        re.compile(rf"""(?i)(["'](?:{_headers})["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""),
        rf"\1\2{MASK}\2",
    ),
    # Authorization: Bearer abc / X-API-KEY=k (header lines, key=value): up to the line end,
    # a comma or a quote, because a header value may contain spaces ("Bearer abc").
    (re.compile(rf"""(?i)\b((?:{_headers})\s*[:=]\s*)[^\r\n,'"&]+"""), rf"\1{MASK}"),
    # Any stray credential with its scheme (e.g. inside an exception message).
    (re.compile(r"(?i)\b(Bearer|Omnisend-API-Key)(\s+)[A-Za-z0-9\-._~+/]+=*"), rf"\1\2{MASK}"),
    # "access_token": "abc" / 'code': 'abc' (JSON and Python reprs).
    (
        re.compile(rf"""(?i)(["'](?:{_names})["']\s*:\s*)(["'])(?:\\.|(?!\2).)*\2"""),
        rf"\1\2{MASK}\2",
    ),
    # access_token=abc&code=xyz (query strings and form bodies). ``\b`` keeps status_code=...
    # intact, because "_" is a word character.
    (re.compile(rf"""(?i)(?<![\w-])((?:{_names})=)[^&\s'"]+"""), rf"\1{MASK}"),
]


def redact(text: str) -> str:
    """Return ``text`` with every credential value it contains replaced by ``[REDACTED]``."""
    if not text:
        return text
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactingFilter(logging.Filter):
    """A logging filter that redacts credentials in the message and the traceback text.

    It never drops a record (``filter`` always returns True); it only rewrites it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format: let logging report it as usual
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        if record.exc_info and not record.exc_text:
            # Format the traceback now (the Formatter reuses exc_text) so that secrets in
            # exception messages or locals-free frames are redacted too.
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


#: Loggers of this package, created up front so the filter is in place before they log.
PACKAGE_LOGGERS = (
    "django_omnisend",
    "django_omnisend.client",
    "django_omnisend.ratelimit",
    "django_omnisend.oauth",
    "django_omnisend.connections",
    "django_omnisend.views",
    "django_omnisend.sync",
    "django_omnisend.signals",
    "django_omnisend.tasks",
    "django_omnisend.fields",
    "django_omnisend.crypto",
    "django_omnisend.emulator",
)

_FILTER = RedactingFilter()


def install(*names: str) -> None:
    """Attach the redacting filter to the named loggers and their existing children.

    With no names, the package's own loggers (:data:`PACKAGE_LOGGERS` plus any
    ``django_omnisend.*`` logger already created). Idempotent.
    """
    prefixes = names or ("django_omnisend",)
    targets = set(names or PACKAGE_LOGGERS)
    for existing in list(logging.root.manager.loggerDict):
        if any(existing == p or existing.startswith(p + ".") for p in prefixes):
            targets.add(existing)
    for name in sorted(targets):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) for f in logger.filters):
            logger.addFilter(_FILTER)


def uninstall(*names: str) -> None:
    """Remove the filter again (tests; third-party loggers you installed it on)."""
    prefixes = names or ("django_omnisend",)
    for existing in list(logging.root.manager.loggerDict):
        if any(existing == p or existing.startswith(p + ".") for p in prefixes):
            logger = logging.getLogger(existing)
            for f in [f for f in logger.filters if isinstance(f, RedactingFilter)]:
                logger.removeFilter(f)

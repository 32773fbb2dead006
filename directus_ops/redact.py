"""Keep secrets out of logs, errors, artifacts and manifests.

Every secret value the tool learns (DB password, S3 secret key, Directus KEY/SECRET, repository credentials)
is registered here; ``redact()`` replaces each with ``***`` and ``RedactingFilter`` applies it to log records.
"""

from __future__ import annotations

import logging
import re
import threading

_lock = threading.Lock()
_secrets: set[str] = set()

# Config keys whose values are secrets. Matched on the variable name (e.g. DB_PASSWORD, STORAGE_S3_SECRET).
SECRET_KEY_PATTERN = re.compile(
    r"(^KEY$|^SECRET$|PASSWORD|_SECRET$|_KEY$|TOKEN|_CREDENTIALS$|ACCOUNT_KEY|CONNECTION_STRING|_PASS$)",
    re.IGNORECASE,
)
# Keys matching the pattern above that are not secrets.
NOT_SECRET_KEYS = {"STORAGE_LOCAL_KEY", "CACHE_NAMESPACE_KEY"}

MIN_SECRET_LENGTH = 4  # shorter values would redact ordinary words


def is_secret_key(name: str) -> bool:
    name = name.upper()
    if name.endswith("_FILE") or name in NOT_SECRET_KEYS:
        return False
    return bool(SECRET_KEY_PATTERN.search(name))


def register_secret(value: object) -> None:
    if value is None:
        return
    text = str(value)
    if len(text) < MIN_SECRET_LENGTH:
        return
    with _lock:
        _secrets.add(text)


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        secrets = sorted(_secrets, key=len, reverse=True)
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFilter(logging.Filter):
    """Rewrites a record's message (with its args merged in) so no registered secret survives."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg = cleaned
            record.args = ()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            if redact(str(exc)) != str(exc):
                # The traceback would print the secret; keep only the cleaned message.
                record.msg = f"{cleaned} ({type(exc).__name__}: {redact(str(exc))})"
                record.exc_info = None
                record.exc_text = None
        return True


_installed: set[int] = set()


def install_log_filter() -> None:
    """Attach the filter to every handler that exists now (idempotent; call again after logging is reconfigured).

    A filter on a handler sees every record that reaches it, including records propagated from child loggers,
    which a filter on a logger does not.
    """
    redacting = RedactingFilter()
    loggers = [logging.getLogger()] + [
        logger for logger in logging.root.manager.loggerDict.values() if isinstance(logger, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if id(handler) in _installed:
                continue
            handler.addFilter(redacting)
            _installed.add(id(handler))

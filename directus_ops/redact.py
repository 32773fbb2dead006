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


_installed = False


def install() -> None:
    """Redact every log record when it is created, whoever logs it and whichever handler prints or ships it
    (console, Prefect's API log handler, a test's capture). Idempotent."""
    global _installed
    if _installed:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: object, **kwargs: object) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        with _lock:
            if not _secrets:
                return record
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is the logging module's problem, not ours
            return record
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[1] is not None:
            error = str(record.exc_info[1])
            if redact(error) != error:
                # The traceback would print the secret: keep the cleaned message and the error's type only.
                record.msg, record.args = f"{cleaned} ({type(record.exc_info[1]).__name__}: {redact(error)})", ()
                record.exc_info, record.exc_text = None, None
        return record

    logging.setLogRecordFactory(factory)
    _installed = True

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

# The rule for short secrets. A secret of at least SUBSTRING_SECRET_LENGTH characters is replaced wherever it
# appears. A shorter one (a weak password such as "root", a passphrase such as "wrong") is an ordinary word that
# our own messages and the tools' output contain in other senses ("wrong passphrase for ..."): it is replaced
# only where it stands as a value, i.e. right after "=", ":" (or either and a space) or a quote, and followed by
# the end, a space, "@",
# a quote or a separator (``password=root``, ``postgresql://u:root@h``, ``'root'``), which is how a secret
# leaks into a URL, an option or a config line.
SUBSTRING_SECRET_LENGTH = 8
_VALUE_BEFORE = r"""(?:(?<=[=:'"])|(?<=[=:] ))"""
_VALUE_AFTER = r"""(?=$|[\s@'"&;,/)\]}])"""


def is_secret_key(name: str) -> bool:
    name = name.upper()
    if name.endswith("_FILE") or name in NOT_SECRET_KEYS:
        return False
    return bool(SECRET_KEY_PATTERN.search(name))


_long: list[str] = []
_short: re.Pattern[str] | None = None


def register_secret(value: object) -> None:
    global _long, _short
    if value is None:
        return
    text = str(value)
    if not text:
        return
    with _lock:
        if text in _secrets:
            return
        _secrets.add(text)
        _long = sorted((s for s in _secrets if len(s) >= SUBSTRING_SECRET_LENGTH), key=len, reverse=True)
        short = sorted((s for s in _secrets if len(s) < SUBSTRING_SECRET_LENGTH), key=len, reverse=True)
        _short = re.compile(f"{_VALUE_BEFORE}(?:{'|'.join(map(re.escape, short))}){_VALUE_AFTER}") \
            if short else None


def redact(text: str) -> str:
    if not text:
        return text
    with _lock:
        long, short = _long, _short
    for secret in long:
        if secret in text:
            text = text.replace(secret, "***")
    if short is not None:
        text = short.sub("***", text)
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

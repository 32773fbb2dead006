"""Storage keys: the text that names an object in a manifest, and the rules a key read from a repository
must follow before anything is written under it.

A key is the object's path relative to its location's root, ``/``-separated. File names are bytes on
Linux; one that is not UTF-8 (JSON cannot carry it) is written as ``RAW_PREFIX`` + the URL-safe base64 of
the whole relative path's bytes. NUL is the one character no file name can hold, so a raw key never
collides with a real name. Python holds such a name as a str with surrogate escapes (``os.fsdecode``):
``key_from_name`` and ``name_from_key`` convert between the two forms at the filesystem's edge.
"""

from __future__ import annotations

import base64
import binascii
import os

RAW_PREFIX = "\0b64:"
NAME_MAX = 255  # bytes in one path component (Linux, and S3's practical limit per segment)
KEY_MAX = 1024  # bytes in a whole key: S3's limit, far below Linux's PATH_MAX


def key_from_name(name: str) -> str:
    """The key of a relative path as the OS gave it (a str, surrogate-escaped where not UTF-8)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return RAW_PREFIX + base64.urlsafe_b64encode(os.fsencode(name)).decode("ascii")


def name_from_key(key: str) -> str:
    """The relative path (a str the OS takes) that a key names."""
    if not key.startswith(RAW_PREFIX):
        return key
    return os.fsdecode(_raw_bytes(key))


def key_bytes(key: str) -> bytes:
    """The exact bytes of the relative path a key names."""
    return _raw_bytes(key) if key.startswith(RAW_PREFIX) else key.encode("utf-8", "surrogateescape")


def display_key(key: str) -> str:
    """A key as a person reads it (a raw key's bytes shown with escapes)."""
    if not key.startswith(RAW_PREFIX):
        return key
    try:
        return _raw_bytes(key).decode("utf-8", "backslashreplace")
    except ValueError:
        return repr(key)


def _raw_bytes(key: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(key[len(RAW_PREFIX):].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{key!r} is not a valid raw key") from None


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a file under a root without leaving it, or None if it is a safe key: a
    relative path of non-empty components, none ``.`` or ``..``, no NUL, no component over NAME_MAX bytes,
    the whole at most KEY_MAX bytes."""
    if not isinstance(key, str) or not key:
        return "is empty"
    try:
        raw = key_bytes(key)
    except ValueError:
        return "is not a valid raw (non-UTF-8) key"
    if key.startswith(RAW_PREFIX):
        try:
            raw.decode("utf-8")
            return "is a raw key of a UTF-8 name"  # only non-UTF-8 names take the raw form: one name, one key
        except UnicodeDecodeError:
            pass
    if b"\0" in raw:
        return "contains a NUL byte"
    if raw.startswith(b"/"):
        return "is an absolute path"
    if len(raw) > KEY_MAX:
        return f"is longer than {KEY_MAX} bytes"
    for part in raw.split(b"/"):
        if not part:
            return "has an empty path component"
        if part in (b".", b".."):
            return f"has a {part.decode()!r} path component"
        if len(part) > NAME_MAX:
            return f"has a path component longer than {NAME_MAX} bytes"
    return None

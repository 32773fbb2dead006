"""Pack files: many small objects in one repository file, for object stores where each request costs.

A backup of 10,000 small files into an S3 repository was 10,000 PUTs (and moto, or a real endpoint, spends
milliseconds on each); restic packs them and makes a few hundred requests. Here too, while a backup stores a
storage location into an S3 repository, each small object's stored form (exactly the bytes a loose object
would hold: header, compressed and/or encrypted content) is appended to a pack of about ``PACK_TARGET`` bytes:

    packs/<aa>/<pack id>     the stored forms, back to back; pack id = sha256 of the pack's bytes
    index/<pack id>.json     ``directus-ops index 4 <MAC>`` line, then {"pack": id, "objects": [[name,
                             offset, length, compressed], ...]}

The pack is written first, then its index: an index never names a pack that is not complete. The index's
MAC (the manifest key, bound to the pack id and the form ``index``) is checked before it is parsed, and an
entry counts only if its pack is listed and long enough, so a forged or damaged index cannot make a backup
skip storing content: at worst its objects count as missing, which ``verify`` reports and the next backup
stores again. An object read from a pack is still checked against its sha256 by whoever reads it.

Index files are immutable (named by their pack's hash), so they are kept on this machine
(``~/.cache/directus-ops/pack-index``) and fetched once; a cached copy is used only if its MAC holds.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import re
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass

from . import keys
from .errors import IndexRejected
from .workdir import cache_root

PACK_TARGET = 16 * 1024 * 1024  # bytes per pack: few requests, bounded memory per backup
INDEX_LINE = b"directus-ops index 4 "
INDEX_FORM = "index"
INDEX_MAX = 64 * 1024 * 1024  # bytes: an index of ours is far smaller; a larger file is not one
MAC_HEX = 64
PACK_ID = re.compile(r"[0-9a-f]{64}\Z")
OBJECT_NAME = re.compile(r"[0-9a-f]{64}(\.enc)?\Z")


@dataclass(frozen=True)
class PackedObject:
    pack: str
    offset: int
    length: int
    compressed: bool


def seal_index(mac_key: bytes, pack_id: str, body: bytes) -> bytes:
    return INDEX_LINE + keys.manifest_mac(mac_key, pack_id, INDEX_FORM, body).encode() + b"\n" + body


def index_body(pack_id: str, objects: list[tuple[str, int, int, bool]]) -> bytes:
    return json.dumps({"pack": pack_id, "objects": [list(o) for o in objects]}, separators=(",", ":")).encode()


def read_index(mac_key: bytes, pack_id: str, data: bytes) -> list[tuple[str, PackedObject]]:
    """The entries of an index file once its MAC is checked; IndexRejected otherwise."""
    line_end = len(INDEX_LINE) + MAC_HEX
    if len(data) > INDEX_MAX:
        raise IndexRejected("it is larger than any index directus-ops writes")
    if not data.startswith(INDEX_LINE) or data[line_end : line_end + 1] != b"\n":
        raise IndexRejected("its MAC line is missing or malformed")
    body = data[line_end + 1 :]
    try:
        given = data[len(INDEX_LINE) : line_end].decode("ascii")
    except UnicodeDecodeError:
        raise IndexRejected("its MAC line is malformed") from None
    if not hmac.compare_digest(keys.manifest_mac(mac_key, pack_id, INDEX_FORM, body), given):
        raise IndexRejected("its MAC does not match: it was altered or damaged, or not written with this repository's key")
    try:
        document = json.loads(body)
        if document.get("pack") != pack_id:
            raise ValueError("it names another pack")
        entries = []
        for name, offset, length, compressed in document["objects"]:
            if not (isinstance(name, str) and OBJECT_NAME.match(name) and type(offset) is int and offset >= 0
                    and type(length) is int and length > 0 and isinstance(compressed, bool)):
                raise ValueError("an entry is malformed")
            entries.append((name, PackedObject(pack_id, offset, length, compressed)))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IndexRejected(f"it cannot be read ({exc})") from None
    return entries


class IndexCache:
    """Index files already fetched, one folder per repository (named by a MAC of its URL: the folder's name
    says which repository it serves only to someone holding the key)."""

    def __init__(self, mac_key: bytes, url: str) -> None:
        folder = hmac.new(mac_key, b"pack-index " + url.encode(), hashlib.sha256).hexdigest()[:32]
        self.path = cache_root() / "pack-index" / folder

    def get(self, pack_id: str) -> bytes | None:
        with contextlib.suppress(OSError):
            return (self.path / pack_id).read_bytes()
        return None

    def put(self, pack_id: str, data: bytes) -> None:
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs a request next time
            self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.path, prefix=".tmp-")
            try:
                with os.fdopen(handle, "wb") as out:
                    out.write(data)
                os.replace(temporary, self.path / pack_id)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def keep_only(self, pack_ids: set[str]) -> None:
        with contextlib.suppress(OSError):
            for cached in self.path.iterdir():
                if cached.name not in pack_ids:
                    cached.unlink(missing_ok=True)


# Writes one pack: its bytes and the (name, offset, length, compressed) of each object in it.
PackUpload = Callable[[bytes, list[tuple[str, int, int, bool]]], None]


class PackWriter:
    """Collects small objects' stored forms from many threads; a pack is written (outside the lock, so
    several can be in flight) once it reaches PACK_TARGET, and the rest by ``close``."""

    def __init__(self, upload: PackUpload, target: int = PACK_TARGET) -> None:
        self._upload = upload
        self._target = target
        self._lock = threading.Lock()
        self._parts: list[bytes] = []
        self._entries: list[tuple[str, int, int, bool]] = []
        self._size = 0
        # name -> (length, compressed) of objects added and not yet indexed: the same content met twice in
        # one backup is stored once
        self.pending: dict[str, tuple[int, bool]] = {}

    def add(self, name: str, parts: list[bytes], compressed: bool) -> tuple[int, bool] | None:
        """Add an object; if one of that name is pending already, nothing is added and its (length,
        compressed) is returned."""
        length = sum(len(p) for p in parts)
        with self._lock:
            if name in self.pending:
                return self.pending[name]
            self.pending[name] = (length, compressed)
            self._entries.append((name, self._size, length, compressed))
            self._parts.extend(parts)
            self._size += length
            full = self._take() if self._size >= self._target else None
        if full is not None:
            self._write(*full)
        return None

    def _take(self) -> tuple[list[bytes], list[tuple[str, int, int, bool]]] | None:
        if not self._entries:
            return None
        taken = (self._parts, self._entries)
        self._parts, self._entries, self._size = [], [], 0
        return taken

    def _write(self, parts: list[bytes], entries: list[tuple[str, int, int, bool]]) -> None:
        try:
            self._upload(b"".join(parts), entries)
        finally:  # written and indexed (the repository knows them now), or failed: not pending either way
            with self._lock:
                for name, *_ in entries:
                    self.pending.pop(name, None)

    def close(self) -> None:
        """Write what is left (call after the last ``add``, on success only)."""
        with self._lock:
            rest = self._take()
        if rest is not None:
            self._write(*rest)


def pack_path_parts(pack_id: str) -> tuple[str, str, str]:
    return ("packs", pack_id[:2], pack_id)


def list_index_ids(names: list[str]) -> list[str]:
    """Pack ids of the index files among ``names`` (base names); anything else in index/ is not ours."""
    return sorted(n[: -len(".json")] for n in names if n.endswith(".json") and PACK_ID.match(n[: -len(".json")]))


def pack_ids_of(names: list[str]) -> list[str]:
    return sorted(n for n in names if PACK_ID.match(n))


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def describe(pack_id: str) -> str:
    return f"packs/{pack_id[:2]}/{pack_id[:12]}…"


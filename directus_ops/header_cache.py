"""Manifest headers kept on this machine, so that listing a repository reads each manifest once.

Listing a snapshot means reading its whole manifest: 2.5 MB for 10,000 files, its MAC checked, then parsed
(about 15 ms). ``snapshots`` on a 100-snapshot repository would spend 1.5 s on that, and so would every
``restore latest`` and ``forget``. Once a manifest has been read and authenticated, its header is kept in
``~/.cache/directus-ops/manifest-headers/`` (``DIRECTUS_OPS_CACHE``) (one file per repository), under the manifest's file name
and its version in the listing (size and modification time; S3: size and ETag).

Each entry is sealed with AES-GCM under a key derived from the repository's master key and bound to the
repository URL, file name and version: the cache says nothing of an encrypted repository to whoever reads it,
and an entry that does not open (another passphrase, a damaged or edited file) is ignored and the manifest is
read again. A manifest replaced in the repository with the same size and time would still be listed as it
was; restore, verify and forget's deletions read and check the manifest itself.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import tempfile
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .workdir import cache_root

_INFO = b"directus-ops header cache v1"


def cache_dir() -> Path:
    return cache_root() / "manifest-headers"


class HeaderCache:
    def __init__(self, master_key: bytes, url: str) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(master_key)
        self._url = url
        # The file's name says which repository it serves only to someone holding its key.
        self.path = cache_dir() / (hmac.new(self._key, url.encode(), hashlib.sha256).hexdigest()[:32] + ".json")
        self._entries: dict[str, list[str]] = {}
        self._dirty = False
        with contextlib.suppress(OSError, ValueError):
            loaded = json.loads(self.path.read_bytes())
            if isinstance(loaded, dict):
                self._entries = {k: v for k, v in loaded.items()
                                 if isinstance(k, str) and isinstance(v, list) and len(v) == 2
                                 and all(isinstance(x, str) for x in v)}

    def _bound(self, name: str, version: str) -> bytes:
        return json.dumps([self._url, name, version]).encode()

    def get(self, name: str, version: str) -> bytes | None:
        entry = self._entries.get(name)
        if entry is None or entry[0] != version:
            return None
        try:
            sealed = base64.b64decode(entry[1], validate=True)
            return AESGCM(self._key).decrypt(sealed[:12], sealed[12:], self._bound(name, version))
        except (ValueError, InvalidTag):
            return None

    def put(self, name: str, version: str, header: bytes) -> None:
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(self._key).encrypt(nonce, header, self._bound(name, version))
        self._entries[name] = [version, base64.b64encode(sealed).decode()]
        self._dirty = True

    def save(self, listed: set[str] | None = None) -> None:
        """Write the cache if it changed; ``listed``: every manifest name now in the repository (others go)."""
        if listed is not None:
            gone = set(self._entries) - listed
            for name in gone:
                del self._entries[name]
            self._dirty = self._dirty or bool(gone)
        if not self._dirty:
            return
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs the next listing time
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-")
            try:
                with os.fdopen(handle, "w") as out:
                    json.dump(self._entries, out)
                os.replace(temporary, self.path)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
            self._dirty = False

"""Repository keys: a random master key, stored only encrypted under a key derived from a passphrase
(scrypt), one file per passphrase in ``keys/``. The passphrase comes from ``DIRECTUS_OPS_PASSPHRASE``,
``DIRECTUS_OPS_PASSPHRASE_FILE`` or a Prefect Secret block (resolved by the caller).

Manifests are authenticated with HMAC-SHA256 under a key derived from the master key (HKDF-SHA256 with its own
info string, so the MAC key is never the key that encrypts objects)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import ConfigError
from .redact import register_secret

PASSPHRASE_ENV = "DIRECTUS_OPS_PASSPHRASE"
PASSPHRASE_FILE_ENV = "DIRECTUS_OPS_PASSPHRASE_FILE"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_KEY_AAD = b"directus-ops master key"
_MANIFEST_MAC_INFO = b"directus-ops manifest mac v1"
_MANIFEST_MAC_DOMAIN = b"directus-ops manifest v3"


def passphrase_from_environment() -> str | None:
    value = os.environ.get(PASSPHRASE_ENV)
    if not value and os.environ.get(PASSPHRASE_FILE_ENV):
        path = Path(os.environ[PASSPHRASE_FILE_ENV]).expanduser()
        try:
            value = path.read_text().rstrip("\n")
        except OSError as exc:
            raise ConfigError(f"{PASSPHRASE_FILE_ENV}={path}: cannot read it ({exc.strerror})") from None
    if value:
        register_secret(value)
    return value or None


def _kek(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode())


def new_key_file(passphrase: str, master: bytes) -> tuple[str, bytes]:
    """(key id, JSON bytes) of a key file that opens ``master`` with ``passphrase``."""
    salt, nonce = os.urandom(16), os.urandom(12)
    sealed = AESGCM(_kek(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)).encrypt(nonce, master, _KEY_AAD)
    document = {"kdf": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                "salt": base64.b64encode(salt).decode(), "nonce": base64.b64encode(nonce).decode(),
                "master_key": base64.b64encode(sealed).decode()}
    return secrets.token_hex(8), json.dumps(document, indent=1).encode()


def open_key_file(passphrase: str, data: bytes) -> bytes | None:
    """The master key if ``passphrase`` opens this key file, else None."""
    document = json.loads(data)
    kek = _kek(passphrase, base64.b64decode(document["salt"]), document["n"], document["r"], document["p"])
    try:
        return AESGCM(kek).decrypt(base64.b64decode(document["nonce"]), base64.b64decode(document["master_key"]), _KEY_AAD)
    except InvalidTag:
        return None


def new_master_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def manifest_mac_key(master: bytes) -> bytes:
    """The key that authenticates manifests, derived from the master key (distinct from it)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_MANIFEST_MAC_INFO).derive(master)


def _field(value: bytes) -> bytes:
    return len(value).to_bytes(4, "big") + value


def manifest_mac(mac_key: bytes, snapshot_id: str, form: str, body: bytes) -> str:
    """HMAC-SHA256 (hex) of a manifest's stored body, bound to its snapshot id and form (``plain`` or
    ``encrypted``): a genuine manifest copied under another id or renamed to the other form does not match.
    Each bound value is length-prefixed, so no two different (id, form) pairs give the same input."""
    mac = hmac.new(mac_key, digestmod=hashlib.sha256)
    mac.update(_field(_MANIFEST_MAC_DOMAIN))
    mac.update(_field(snapshot_id.encode("utf-8", "surrogateescape")))
    mac.update(_field(form.encode()))
    mac.update(body)
    return mac.hexdigest()


def manifest_mac_matches(mac_key: bytes, snapshot_id: str, form: str, body: bytes, mac_hex: str) -> bool:
    return hmac.compare_digest(manifest_mac(mac_key, snapshot_id, form, body), mac_hex)

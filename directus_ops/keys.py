"""Repository keys: a random master key, stored only encrypted under a key derived from a passphrase
(scrypt), one file per passphrase in ``keys/``. The passphrase comes from ``DIRECTUS_OPS_PASSPHRASE``,
``DIRECTUS_OPS_PASSPHRASE_FILE`` or a Prefect Secret block (resolved by the caller)."""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .errors import ConfigError, RepositoryError
from .redact import register_secret

PASSPHRASE_ENV = "DIRECTUS_OPS_PASSPHRASE"
PASSPHRASE_FILE_ENV = "DIRECTUS_OPS_PASSPHRASE_FILE"
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_KEY_AAD = b"directus-ops master key"


class WrongPassphrase(RepositoryError):
    exit_code = 12


class PassphraseMissing(ConfigError):
    exit_code = 12


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

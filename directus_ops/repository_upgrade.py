"""Upgrading a repository to this directus-ops's format (``directus-ops repository upgrade``).

2 → 3: every manifest gains a MAC made with a key derived from the repository's master key. A format-2
manifest carries nothing that tells the operator's manifests from ones someone else put there, so the
upgrade signs the manifests that are there when it starts: whoever runs it asserts that they are theirs.
Each is read and parsed first; one that cannot be read, or that names another snapshot than its file, is
reported and left unsigned (every command refuses it afterwards). Only then is format 3 written to
config.json. The whole upgrade holds the repository's exclusive lock, so no backup or prune runs meanwhile.

config.json is not authenticated, so someone could set a format-3 repository back to 2 to have their own
manifests signed by the next upgrade. Two things stop that: the upgrade records the ids it is about to sign
in ``upgrade-3.json``, under a MAC, before signing any (an interrupted upgrade resumes with exactly that
list, and never signs a manifest that came later); and without such a record, a "format 2" repository that
already holds manifests signed with its key is refused, naming the fix (put format 3 back).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone

from . import codec, keys, locks
from .errors import ManifestRejected, RepositoryError
from .manifest import Manifest, ManifestHeader
from .repository import (ENCRYPTED_MANIFEST, MANIFEST_MAGIC, READABLE_FORMATS, REPOSITORY_FORMAT, Repository,
                         RepositoryLocation, manifest_form, seal_manifest)

log = logging.getLogger("directus_ops.repository_upgrade")

RECORD = "upgrade-3.json"  # the ids an upgrade to format 3 signs, under a MAC
_RECORD_FORM = "upgrade-3"  # MAC domain of the record (never "plain"/"encrypted": no manifest MAC matches it)


@dataclass
class UpgradeResult:
    format: int
    already: bool = False  # the repository had this format already; nothing was changed
    signed: dict[str, str] = field(default_factory=dict)  # snapshot id -> project name
    unreadable: dict[str, str] = field(default_factory=dict)  # snapshot id -> why it was left unsigned


def upgrade_repository(location: RepositoryLocation, wait: float = 0.0) -> UpgradeResult:
    """Bring the repository at ``location`` to REPOSITORY_FORMAT (see the module's docstring). Needs the
    passphrase when there are manifests to sign."""
    repo = Repository.open(location, upgrading=True)
    if repo.format in READABLE_FORMATS:  # format 4 differs from 3 only by pack files, which it may hold
        return UpgradeResult(repo.format, already=True)
    result = UpgradeResult(REPOSITORY_FORMAT)
    with locks.hold(repo, "upgrade", exclusive=True, wait=wait):
        files = repo.manifest_files()
        if files:
            mac_key = repo.manifest_key()
            planned = _planned_ids(repo, mac_key, files)
            for snapshot_id in sorted(files):
                if snapshot_id not in planned:
                    result.unreadable[snapshot_id] = ("it appeared after this upgrade began (not in its record "
                                                      f"{RECORD}); not signed")
                    continue
                _sign(repo, mac_key, snapshot_id, files[snapshot_id], result)
        _write_config(repo)
    return result


def _planned_ids(repo: Repository, mac_key: bytes, files: dict[str, str]) -> set[str]:
    """The ids this upgrade signs: those of its record (an interrupted upgrade resumes), else every manifest
    there now, recorded before any is signed."""
    path = repo._path(RECORD)
    if repo.fs.exists(path):
        try:
            document = json.loads(repo.fs.cat_file(path))
            ids, mac = document["snapshots"], document["mac"]
            if not (isinstance(ids, list) and all(isinstance(i, str) for i in ids) and isinstance(mac, str)):
                raise ValueError
        except (ValueError, KeyError, TypeError):
            ids, mac = [], ""
        if not keys.manifest_mac_matches(mac_key, "", _RECORD_FORM, _record_body(ids), mac):
            raise RepositoryError(f"{repo.location.url}/{RECORD} (the record of an earlier upgrade) does not carry a valid "
                                  "MAC: it was not written with this repository's key; remove it if you did not expect "
                                  "it, and run the upgrade again")
        return set(ids)
    signed = [i for i in files if _validly_signed(repo, mac_key, i, files[i])]
    if signed:
        raise RepositoryError(
            f"config.json of {repo.location.url} says format {repo.format}, but {len(signed)} of its manifests are "
            f"already signed with the repository's key and there is no record of an upgrade: config.json was changed; "
            f"put \"format\": {REPOSITORY_FORMAT} back into it instead of signing what is there now")
    ids = sorted(files)
    document = {"snapshots": ids, "mac": keys.manifest_mac(mac_key, "", _RECORD_FORM, _record_body(ids)),
                "time": datetime.now(timezone.utc).isoformat()}
    repo.write_file(path, json.dumps(document).encode())
    return set(ids)


def _record_body(ids: list[str]) -> bytes:
    return json.dumps(sorted(ids)).encode()


def _read(repo: Repository, name: str) -> bytes | None:
    try:
        return repo.fs.cat_file(repo._path("snapshots", name))
    except FileNotFoundError:  # removed by hand meanwhile
        return None


def _validly_signed(repo: Repository, mac_key: bytes, snapshot_id: str, name: str) -> bool:
    data = _read(repo, name)  # one at a time, not all held: a repository may hold many large manifests
    if data is None or not data.startswith(MANIFEST_MAGIC):
        return False
    try:
        repo.parse_manifest(snapshot_id, name, data, ManifestHeader, mac_key)
    except ManifestRejected:
        return False
    return True


def _sign(repo: Repository, mac_key: bytes, snapshot_id: str, name: str, result: UpgradeResult) -> None:
    data = _read(repo, name)
    if data is None:
        return
    if data.startswith(MANIFEST_MAGIC):  # signed by an interrupted run of this upgrade: only check it
        try:
            header = repo.parse_manifest(snapshot_id, name, data, ManifestHeader, mac_key)
        except ManifestRejected as exc:
            result.unreadable[snapshot_id] = exc.reason
            return
        result.signed[snapshot_id] = header.project.name
        return
    try:
        plain = codec.decode_bytes(data, repo.master_key, "manifest") if name.endswith(ENCRYPTED_MANIFEST) else data
        manifest = Manifest.model_validate_json(plain)
    except Exception as exc:  # noqa: BLE001 - whatever does not parse is left unsigned, and said so
        result.unreadable[snapshot_id] = f"cannot be read ({(str(exc).splitlines() or [type(exc).__name__])[0]})"
        return
    if manifest.id != snapshot_id:
        result.unreadable[snapshot_id] = f"it names snapshot {manifest.id!r}, not the one its file name says"
        return
    # The stored bytes are signed as they are (an encrypted one stays encrypted): nothing else changes.
    repo.write_file(repo._path("snapshots", name), seal_manifest(mac_key, snapshot_id, manifest_form(name), data))
    result.signed[snapshot_id] = manifest.project.name
    log.info("signed the manifest of snapshot %s", snapshot_id)


def _write_config(repo: Repository) -> None:
    path = repo._path("config.json")
    try:
        config = json.loads(repo.fs.cat_file(path))
    except (ValueError, FileNotFoundError):
        config = {}
    config = config if isinstance(config, dict) else {}
    config.update(format=REPOSITORY_FORMAT, upgraded=datetime.now(timezone.utc).isoformat())
    repo.write_file(path, json.dumps(config).encode())

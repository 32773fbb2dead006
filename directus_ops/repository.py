"""The snapshot repository: a local directory or ``s3://bucket/prefix``, reached through fsspec.

Layout (``docs/repository-format.md``)::

    config.json              {"format": 3 or 4, "created": ...}
    keys/<id>.json           the master key, sealed under a passphrase
    objects/<aa>/<sha256>    every file's bytes, stored once under the sha256 of its content
    packs/<aa>/<pack id>     (format 4) many small objects in one file, on S3 (``packs.py``)
    index/<pack id>.json     (format 4) what each pack holds, authenticated
    snapshots/<id>.json      one manifest per snapshot, written last, authenticated (MAC line + JSON)
    tmp/<random>             uploads in flight (renamed into objects/ when complete)
    repairs/<random>.json    objects verify found missing or damaged, for the next backup to store again

A snapshot exists only if its manifest does; an interrupted backup leaves at most files under ``tmp/`` and
unreferenced objects, never a listed snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import posixpath
import re
import secrets
import stat
import threading
import time
import uuid
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any, TypeVar

import fsspec

from . import codec, faults, keys, packs, storage, verified_copy
from .errors import (
    IndexRejected,
    IntegrityError,
    ManifestRejected,
    PassphraseMissing,
    RepositoryError,
    SnapshotNotFound,
    WrongPassphrase,
)
from .header_cache import HeaderCache
from .manifest import MANIFEST_FORMAT, Manifest, ManifestHeader
from .redact import redact, register_secret
from .storage import buffering, s3_filesystem

M = TypeVar("M", bound=ManifestHeader)
log = logging.getLogger("directus_ops.repository")

REPOSITORY_FORMAT = 3  # what a new repository is made as
PACKED_FORMAT = 4  # a repository that may hold pack files: set when the first backup packs into it
READABLE_FORMATS = (REPOSITORY_FORMAT, PACKED_FORMAT)
UPGRADABLE_FORMATS = (2,)  # formats ``repository_upgrade`` brings to REPOSITORY_FORMAT
CHUNK_SIZE = verified_copy.CHUNK_SIZE
SMALL_OBJECT = 8 * 1024 * 1024  # encoded in memory and written in one request
FEW_OBJECTS = 64  # checked one by one rather than by listing the repository
PLAIN_MANIFEST = ".json"
_opened_keys: dict[tuple[str, str], bytes] = {}  # (repository, passphrase digest) -> master key, this process
ENCRYPTED_MANIFEST = ".json.enc"
# A manifest file is one line ``directus-ops manifest 3 <hmac-sha256 hex>`` and then its body: the compact
# JSON (``.json``) or its encrypted form (``.json.enc``). The MAC covers the body's exact bytes, bound to the
# snapshot id and form (keys.manifest_mac); it is checked before the body is decrypted or parsed.
MANIFEST_MAGIC = b"directus-ops manifest "
MANIFEST_LINE = MANIFEST_MAGIC + b"3 "
MAC_HEX = 64
REPAIRS = "repairs"
OBJECT_NAME = re.compile(r"[0-9a-f]{64}(\.enc)?\Z")  # the only names a repair note may ask for
REPAIR_NOTE_MAX = 4 * 1024 * 1024  # bytes: a note is a short list; a larger file is not one of ours

ByteCallback = Callable[[int], None]


def manifest_form(name: str) -> str:
    return "encrypted" if name.endswith(ENCRYPTED_MANIFEST) else "plain"


def seal_manifest(mac_key: bytes, snapshot_id: str, form: str, body: bytes) -> bytes:
    """The stored manifest file: the MAC line, then the body unchanged."""
    return MANIFEST_LINE + keys.manifest_mac(mac_key, snapshot_id, form, body).encode() + b"\n" + body


def unseal_manifest(mac_key: bytes, snapshot_id: str, form: str, data: bytes) -> bytes:
    """The body of a stored manifest file once its MAC is checked; ManifestRejected (with the reason only:
    the caller names the file) otherwise."""
    line_end = len(MANIFEST_LINE) + MAC_HEX
    if not data.startswith(MANIFEST_MAGIC):
        raise ManifestRejected("it carries no MAC (written before repository format 3, or not by directus-ops)")
    if not data.startswith(MANIFEST_LINE) or data[line_end : line_end + 1] != b"\n":
        raise ManifestRejected("its MAC line is malformed or of another format")
    mac_hex = data[len(MANIFEST_LINE) : line_end]
    body = data[line_end + 1 :]
    try:
        given = mac_hex.decode("ascii")
    except UnicodeDecodeError:
        raise ManifestRejected("its MAC line is malformed or of another format") from None
    if not keys.manifest_mac_matches(mac_key, snapshot_id, form, body, given):
        raise ManifestRejected("its MAC does not match: it was altered or damaged, or not written with this repository's key")
    return body


@dataclass(frozen=True)
class RepositoryLocation:
    """Where a repository is and how to reach it. Credentials come from the environment or a Secret block,
    never from flow parameters."""

    url: str
    endpoint: str | None = None
    region: str | None = None
    profile: str | None = None
    key_id: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    passphrase: str | None = field(default=None, repr=False)  # else from the environment

    def __post_init__(self) -> None:
        if self.is_s3 and not self.url[5:].split("/", 1)[0]:
            raise RepositoryError(f"repository URL {self.url!r} names no bucket; use s3://BUCKET or s3://BUCKET/PREFIX")

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def with_credentials(self, credentials: dict[str, Any] | None) -> RepositoryLocation:
        if not credentials:
            return self
        secret = credentials.get("aws_secret_access_key") or credentials.get("secret")
        register_secret(secret)
        return RepositoryLocation(
            url=self.url,
            endpoint=self.endpoint or credentials.get("endpoint_url") or credentials.get("endpoint"),
            region=self.region or credentials.get("region_name") or credentials.get("region"),
            profile=self.profile,
            key_id=credentials.get("aws_access_key_id") or credentials.get("key"),
            secret=secret,
            passphrase=self.passphrase,
        )

    def with_passphrase(self, passphrase: str | None) -> RepositoryLocation:
        from dataclasses import replace

        register_secret(passphrase)
        return replace(self, passphrase=passphrase) if passphrase else self

    def filesystem(self) -> tuple[fsspec.AbstractFileSystem, str]:
        if self.is_s3:
            endpoint = self.endpoint or os.environ.get("DIRECTUS_OPS_REPO_ENDPOINT")
            region = self.region or os.environ.get("DIRECTUS_OPS_REPO_REGION")
            key_id = self.key_id or os.environ.get("DIRECTUS_OPS_REPO_ACCESS_KEY_ID")
            secret = self.secret or os.environ.get("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY")
            register_secret(secret)
            fs = s3_filesystem(endpoint=endpoint, region=region, key_id=key_id, secret=secret,
                               path_style=bool(endpoint), profile=self.profile)
            return fs, self.url[5:].rstrip("/")
        path = self.url[7:] if self.url.startswith("file://") else self.url
        if "://" in path:
            raise RepositoryError(f"repository URL {self.url!r} is not supported; use a local directory or s3://bucket/prefix")
        return fsspec.filesystem("file", auto_mkdir=True), str(Path(path).expanduser().resolve())


@dataclass
class PackPrune:
    objects_deleted: int = 0
    objects_kept: int = 0
    bytes_freed: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0


REPACK_BELOW = 0.5  # share of a pack's bytes still referenced below which prune rewrites it


@dataclass
class PutResult:
    sha256: str
    size: int
    written: int  # bytes written to the repository; 0 when the object was already there
    stored_size: int
    compressed: bool
    encrypted: bool


def object_name(sha256: str, encrypted: bool) -> str:
    """Encrypted and plain copies of the same content are separate objects: an encrypted snapshot never
    points at plaintext."""
    return f"{sha256}.enc" if encrypted else sha256


class _HashingReader(io.RawIOBase):
    """Hashes (and counts) the plaintext as the encoder pulls it."""

    def __init__(self, source: IO[bytes], on_bytes: ByteCallback | None) -> None:
        self.source, self.on_bytes = source, on_bytes
        self.hasher = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        chunk = self.source.read(min(size, CHUNK_SIZE) if size and size > 0 else CHUNK_SIZE)  # bounded reads
        if chunk:
            self.hasher.update(chunk)
            self.size += len(chunk)
            if self.on_bytes:
                self.on_bytes(len(chunk))
        return chunk

    def readinto(self, target: Any) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def feed(self, data: bytes) -> None:
        """Count and hash bytes the caller read itself."""
        self.hasher.update(data)
        self.size += len(data)
        if self.on_bytes and data:
            self.on_bytes(len(data))

    def hexdigest(self) -> str:
        return self.hasher.hexdigest()


def _small_file(stream: IO[bytes]) -> bool:
    """A regular file smaller than SMALL_OBJECT: one read takes it whole (other streams are read in chunks)."""
    try:
        status = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        return False
    return stat.S_ISREG(status.st_mode) and status.st_size < SMALL_OBJECT


def _write_all(fd: int, parts: list[bytes]) -> None:
    views = [memoryview(p) for p in parts if p]
    while views:
        done = os.writev(fd, views)
        while views and done >= len(views[0]):
            done -= len(views[0])
            views.pop(0)
        if views and done:
            views[0] = views[0][done:]


def _listing_version(info: dict[str, Any]) -> str:
    """What changes when a file is replaced, from its listing entry: size and mtime (local) or ETag (S3)."""
    changed = info.get("ETag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{info.get('size')}:{changed}"


# Repositories this process holds a lock on (locks.hold), location -> (config.json's bytes, holders): an
# upgrade, the only writer of config.json but a backup's first packing, takes the exclusive lock, so while a
# lock is held the tasks of a run open the repository without reading config.json again (on S3: a request
# each, and a backup opens it in every task).
_locked_configs: dict[tuple[str, str | None, str | None], tuple[bytes, int]] = {}
_locked_lock = threading.Lock()


def _location_key(location: RepositoryLocation) -> tuple[str, str | None, str | None]:
    return (location.url, location.endpoint, location.region)


@contextlib.contextmanager
def config_reused(repo: Repository) -> Iterator[None]:
    """While a lock is held on ``repo``: Repository.open in this process reuses its config.json."""
    key = _location_key(repo.location)
    if repo._config_bytes is None:
        yield
        return
    with _locked_lock:
        data, holders = _locked_configs.get(key, (repo._config_bytes, 0))
        _locked_configs[key] = (data, holders + 1)
    try:
        yield
    finally:
        with _locked_lock:
            data, holders = _locked_configs[key]
            if holders <= 1:
                del _locked_configs[key]
            else:
                _locked_configs[key] = (data, holders - 1)


CHECK_REUSE = 60.0  # seconds a process trusts its last write probe of an S3 repository (Repository.open)
_recently_writable: dict[tuple[str, str | None, str | None], float] = {}


class Repository:
    def __init__(self, location: RepositoryLocation, fs: fsspec.AbstractFileSystem, base: str,
                 passphrase: str | None = None) -> None:
        self.location = location
        self.fs = fs
        self.base = base
        self.is_local = not location.is_s3
        self.passphrase = passphrase
        self._known: dict[str, int] | None = None
        self._repairs: set[str] | None = None
        self._master: bytes | None = None
        self._mac_key: bytes | None = None
        self._headers: HeaderCache | None = None
        self._made_dirs: set[str] = set()
        self.format = REPOSITORY_FORMAT
        self._config: dict[str, Any] = {}
        self._config_bytes: bytes | None = None
        # Small objects go into pack files on S3, where each request costs; on a local disk a file per
        # object is as fast (measured against restic) and simpler to inspect and repair.
        self.packs_small_objects = location.is_s3
        self._packed: dict[str, packs.PackedObject] | None = None  # name -> its place in a pack
        self._pack_contents: dict[str, list[tuple[str, packs.PackedObject]]] = {}  # pack id -> index entries
        self._pack_sizes: dict[str, int] = {}  # pack id -> bytes, as listed
        self._index_ids: list[str] = []  # every index file listed, used or not
        self._loose: set[str] | None = None  # names of loose objects, with the listing
        self._writer: packs.PackWriter | None = None
        self._index_lock = threading.Lock()
        self._listing_lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: RepositoryLocation, create: bool = False, *, upgrading: bool = False) -> Repository:
        """Open an existing repository; with ``create``, make one if absent and prove it is writable. An
        existing one must have this directus-ops's format (``upgrading``: or one it can upgrade from)."""
        fs, base = location.filesystem()
        repo = cls(location, fs, base, location.passphrase or keys.passphrase_from_environment())
        config_path = repo._path("config.json")
        held = _locked_configs.get(_location_key(location))
        config_bytes: bytes | None
        if held is not None:  # this process holds a lock on it: config.json cannot change meanwhile
            config_bytes = held[0]
        else:
            try:  # one request: the config's bytes, or its absence
                config_bytes = fs.cat_file(config_path)
            except (FileNotFoundError, NotADirectoryError):
                config_bytes = None
            except Exception as exc:
                raise RepositoryError(f"cannot reach the repository {location.url}: {repo._reason(exc)}; check the URL, endpoint and credentials") from None
        exists = config_bytes is not None
        if not exists and not create:
            raise RepositoryError(f"no snapshot repository at {location.url}; check --repo, or run a backup into it first")
        if create and held is None:  # a held lock was written there: it is writable
            writable_key = _location_key(location)
            # The write probe (two or three requests on S3) once per CHECK_REUSE seconds per process: a backup
            # opens its repository in each of its tasks. A repository that stops being writable fails its
            # next write anyway.
            if not location.is_s3 or _recently_writable.get(writable_key, 0.0) <= time.monotonic() - CHECK_REUSE:
                repo._check_writable()
                _recently_writable[writable_key] = time.monotonic()
            if not exists:
                config_bytes = json.dumps({"format": REPOSITORY_FORMAT,
                                           "created": datetime.now(timezone.utc).isoformat()}).encode()
                repo.write_file(config_path, config_bytes)
                exists = True
        repo._config_bytes = config_bytes
        if exists:  # checked for backups too: a format-3 manifest must not land in an older repository
            try:
                config = json.loads(config_bytes)  # type: ignore[arg-type]
            except Exception as exc:
                raise RepositoryError(f"cannot read {location.url}/config.json: {repo._reason(exc)}") from None
            found = config.get("format") if isinstance(config, dict) else None
            if found not in READABLE_FORMATS and not (upgrading and found in UPGRADABLE_FORMATS):
                raise RepositoryError(format_problem(location.url, found))
            repo.format = found
            repo._config = config
        return repo

    def _check_writable(self) -> None:
        probe = self._path("tmp", f".probe-{uuid.uuid4().hex}")
        try:
            if self.is_local:
                Path(self.base).mkdir(parents=True, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"probe")
            with contextlib.suppress(FileNotFoundError):  # a concurrent prune may have taken it already
                self.fs.rm(probe)
        except Exception as exc:
            raise RepositoryError(
                f"cannot write to the repository {self.location.url}: {self._reason(exc)}; choose a location you can write to or fix its permissions"
            ) from None

    def describe(self) -> str:
        return self.location.url

    def _reason(self, exc: BaseException) -> str:
        if isinstance(exc, OSError) and exc.strerror:
            return exc.strerror
        return redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)

    def _path(self, *parts: str) -> str:
        return posixpath.join(self.base, *parts)

    def object_path(self, name: str) -> str:
        return self._path("objects", name[:2], name)

    # -- keys --------------------------------------------------------------------------------------------------
    def manifest_key(self, create: bool = False) -> bytes:
        """The key that authenticates manifests (derived from the master key): reading any manifest needs the
        passphrase."""
        if self._mac_key is None:
            self._mac_key = keys.manifest_mac_key(self.master_key(create=create, purpose="manifests"))
        return self._mac_key

    def master_key(self, create: bool = False, purpose: str = "") -> bytes:
        """The repository's key, opened with the passphrase; made (with a key file) on first need if ``create``."""
        if self._master is not None:
            return self._master
        cache_key = (self.location.url, hashlib.sha256((self.passphrase or "").encode()).hexdigest())
        if cache_key in _opened_keys:  # scrypt is slow on purpose: once per repository and passphrase
            self._master = _opened_keys[cache_key]
            return self._master
        if not self.passphrase:
            raise PassphraseMissing(
                f"the repository {self.location.url} needs a passphrase (the config artifact is always encrypted): set "
                f"{keys.PASSPHRASE_ENV} or {keys.PASSPHRASE_FILE_ENV}, or name a Prefect Secret block with --passphrase-secret-block")
        files = sorted(self._find(self._path("keys")))
        for path in files:
            master = keys.open_key_file(self.passphrase, self.fs.cat_file(path))
            if master is not None:
                self._master = _opened_keys[cache_key] = master
                return master
        if files:
            raise WrongPassphrase(f"wrong passphrase for the repository {self.location.url}: none of its {len(files)} "
                                       f"keys opens with it; check {keys.PASSPHRASE_ENV}")
        if not create and purpose == "manifests":
            raise RepositoryError(f"the repository {self.location.url} has no key (keys/ is empty), so none of its "
                                  "manifests can be authenticated; restore keys/ from a copy of the repository")
        if not create:
            raise RepositoryError(f"the repository {self.location.url} has no key yet, so nothing in it is encrypted")
        master = keys.new_master_key()
        key_id, document = keys.new_key_file(self.passphrase, master)
        self.write_file(self._path("keys", f"{key_id}.json"), document)
        self._master = _opened_keys[cache_key] = master
        return master

    # -- objects ---------------------------------------------------------------------------------------------
    def known_objects(self) -> dict[str, int]:
        """Every object present, loose or packed, name -> stored size (listed once, then kept up to date by
        ``put``). A loose object wins over a packed one of the same name (a repair writes loose)."""
        with self._listing_lock:  # the storage step's threads ask at once: listed once
            if self._known is None:
                loose: dict[str, int] = {}
                for path, info in self._find(self._path("objects")).items():
                    name = path.rpartition("/")[2]
                    if len(name.partition(".")[0]) == 64:
                        loose[name] = int(info.get("size") or 0)
                known = {name: place.length for name, place in self.pack_index().items()}
                known.update(loose)
                self._loose = set(loose)
                self._known = known
            return self._known

    def _find(self, root: str) -> dict[str, dict[str, Any]]:
        """Every file under ``root`` (none if it is absent): one listing, no existence check first."""
        try:
            return storage.find_files(self.fs, root)
        except FileNotFoundError:
            return {}

    def stored_size(self, name: str) -> int | None:
        """The stored size of an object, or None if absent: from the listing when one was made (many objects
        to check), else one stat or HEAD (a few objects: a dump, a config file), then the pack index."""
        if self._known is not None:
            return self._known.get(name)
        try:
            return int(self.fs.size(self.object_path(name)))
        except FileNotFoundError:
            packed = self.pack_index().get(name)
            return packed.length if packed else None

    def _note(self, name: str, size: int, loose: bool = True) -> None:
        if self._known is not None:
            self._known[name] = size
            if loose and self._loose is not None:
                self._loose.add(name)

    def listing(self) -> dict[str, int] | None:
        """The object listing if one was made (``known_objects``), else None: nothing is listed for it."""
        return self._known

    def forget_listing(self) -> None:
        """Drop the cached object listing and pack index: the next ``known_objects()`` lists afresh."""
        self._known = None
        self._loose = None
        self._packed = None

    def loose_objects(self) -> dict[str, int]:
        """The loose objects (``objects/``), name -> size."""
        known = self.known_objects()
        return {name: known[name] for name in self._loose or ()}

    # -- pack files (``packs.py``) ---------------------------------------------------------------------------------
    def pack_index(self) -> dict[str, packs.PackedObject]:
        """Every packed object, name -> its place (one listing of ``index/`` and ``packs/``; index files come
        from this machine's cache when they were fetched before). An index that is not authentic, or whose
        pack is missing or too short, is left out with a warning: its objects count as missing."""
        with self._index_lock:
            if self._packed is None:
                self._packed = self._load_pack_index()
            return self._packed

    def _load_pack_index(self) -> dict[str, packs.PackedObject]:
        self._pack_contents, self._pack_sizes, self._index_ids = {}, {}, []
        try:
            listed = self.fs.ls(self._path("index"), detail=False)
        except FileNotFoundError:
            listed = []
        index_ids = self._index_ids = packs.list_index_ids([posixpath.basename(p.rstrip("/")) for p in listed])
        if not index_ids and not self.packs_small_objects:
            return {}  # no index, and packs are neither read nor written here (a local repository)
        self._pack_sizes = {posixpath.basename(p): int(info.get("size") or 0)
                            for p, info in self._find(self._path("packs")).items()
                            if packs.PACK_ID.match(posixpath.basename(p))}
        if not index_ids:
            return {}  # packs without an index, if any, are a killed backup's (prune's to delete)
        mac_key = self.manifest_key()
        cache = packs.IndexCache(mac_key, self.location.url)
        placed: dict[str, packs.PackedObject] = {}
        for pack_id in index_ids:
            index_name = f"index/{pack_id}.json"
            data = cache.get(pack_id)
            try:
                try:
                    entries = packs.read_index(mac_key, pack_id, data) if data is not None else None
                except IndexRejected:
                    entries = None  # a damaged cached copy: fetch it again
                if entries is None:
                    data = self.fs.cat_file(self._path("index", f"{pack_id}.json"))
                    entries = packs.read_index(mac_key, pack_id, data)
                    cache.put(pack_id, data)
            except FileNotFoundError:
                continue  # removed by a prune since it was listed
            except IndexRejected as exc:
                log.warning("%s in %s is not used: %s; its objects count as missing (verify reports them, the "
                            "next backup stores them again)", index_name, self.location.url, exc)
                continue
            size = self._pack_sizes.get(pack_id)
            if size is None or any(place.offset + place.length > size for _, place in entries):
                log.warning("%s in %s names %s, which is %s; its objects count as missing", index_name,
                            self.location.url, packs.describe(pack_id), "missing" if size is None else "too short")
                self._pack_contents[pack_id] = []
                continue
            self._pack_contents[pack_id] = entries
            for name, place in entries:
                placed.setdefault(name, place)  # a name packed twice (two backups at once): the first pack's
        cache.keep_only(set(index_ids))
        return placed

    @contextlib.contextmanager
    def packing(self) -> Iterator[None]:
        """Within this block (one backup task's storage step), small objects go into pack files when the
        repository packs them; leaving it writes the last pack and its index. On an error the pack in
        memory is dropped: packs written so far stay (their objects are reused by the next backup)."""
        if not self.packs_small_objects or self._writer is not None:
            yield
            return
        if self.format < PACKED_FORMAT:
            self._set_format(PACKED_FORMAT)  # an older directus-ops then refuses it instead of missing objects
        self.known_objects()  # one listing (loose objects and the pack index) before the threads ask
        self._writer = packs.PackWriter(self._store_pack)
        try:
            yield
            self._writer.close()
        finally:
            self._writer = None

    def _set_format(self, number: int) -> None:
        config = dict(self._config) or {"created": datetime.now(timezone.utc).isoformat()}
        config["format"] = number
        data = json.dumps(config).encode()
        self.write_file(self._path("config.json"), data)
        self._config, self._config_bytes, self.format = config, data, number
        with _locked_lock:
            key = _location_key(self.location)
            if key in _locked_configs:
                _locked_configs[key] = (data, _locked_configs[key][1])

    def _store_pack(self, data: bytes, entries: list[tuple[str, int, int, bool]]) -> None:
        """Write one pack, then its index (an index never names an incomplete pack); then its objects are known."""
        pack_id = packs.sha256_hex(data)
        self.write_file(self._path(*packs.pack_path_parts(pack_id)), data, sync=False)  # synced by flush()
        faults.checkpoint("repo-bytes", len(data))
        faults.checkpoint("pack-stored")
        sealed = packs.seal_index(self.manifest_key(create=True), pack_id, packs.index_body(pack_id, entries))
        self.write_file(self._path("index", f"{pack_id}.json"), sealed, sync=False)
        faults.checkpoint("pack-indexed")
        with contextlib.suppress(Exception):
            packs.IndexCache(self.manifest_key(), self.location.url).put(pack_id, sealed)
        placed = [(name, packs.PackedObject(pack_id, offset, length, compressed))
                  for name, offset, length, compressed in entries]
        with self._index_lock:
            self._pack_sizes[pack_id] = len(data)
            self._pack_contents[pack_id] = placed
            if self._packed is not None:
                for name, place in placed:
                    self._packed.setdefault(name, place)
        for name, place in placed:
            self._note(name, place.length, loose=False)

    def prune_packs(self, referenced: Container[str], dry_run: bool = False) -> PackPrune:
        """Delete the packs none of whose objects a snapshot references, and rewrite those mostly unreferenced
        (less than REPACK_BELOW of their bytes in use) into new packs; a pack with no index (a backup killed
        between the two) goes too. Called under the exclusive lock, so no backup writes meanwhile. Order: new
        packs and their indexes first, then an old index, then its pack, so whatever a crash interrupts, every
        referenced object is in some indexed pack. A pack whose index is not authentic is left alone (warned):
        prune cannot know what it holds."""
        self.forget_listing()
        loose = set(self.loose_objects())
        placed = self.pack_index()
        result = PackPrune()
        indexed = set(self._index_ids)
        doomed: list[str] = [p for p in self._pack_sizes if p not in indexed]  # no index: a killed backup's
        result.bytes_freed += sum(self._pack_sizes[p] for p in doomed)
        dangling: list[str] = []  # indexes whose pack is gone
        repack: list[tuple[str, list[tuple[str, packs.PackedObject]]]] = []
        for pack_id, entries in sorted(self._pack_contents.items()):
            size = self._pack_sizes.get(pack_id)
            if size is None:
                dangling.append(pack_id)
                continue
            if not entries:
                continue  # too short: damaged; verify reports its objects, prune keeps what is left
            live = [(n, p) for n, p in entries if n in referenced and n not in loose and placed.get(n) == p]
            if not live:
                doomed.append(pack_id)
                result.objects_deleted += len(entries)
                result.bytes_freed += size
            elif sum(p.length for _, p in live) < REPACK_BELOW * size:
                repack.append((pack_id, live))
                result.objects_deleted += len(entries) - len(live)
                result.objects_kept += len(live)
            else:
                result.objects_kept += len(live)
        result.packs_deleted = len(doomed) + len(repack)
        result.packs_repacked = len(repack)
        if dry_run:
            result.bytes_freed += sum(self._pack_sizes[p] - sum(o.length for _, o in live) for p, live in repack)
            return result
        written = 0
        if repack:
            def store(data: bytes, entries: list[tuple[str, int, int, bool]]) -> None:
                nonlocal written
                self._store_pack(data, entries)
                written += len(data)

            writer = packs.PackWriter(store)
            for pack_id, live in repack:
                data = self.fs.cat_file(self._path(*packs.pack_path_parts(pack_id)))
                for name, place in live:
                    writer.add(name, [data[place.offset : place.offset + place.length]], place.compressed)
            writer.close()
            self.flush()
            result.bytes_freed += sum(self._pack_sizes[p] for p, _ in repack) - written
        for pack_id in dangling + doomed + [p for p, _ in repack]:
            with contextlib.suppress(FileNotFoundError):
                self.fs.rm(self._path("index", f"{pack_id}.json"))
            if pack_id not in dangling:
                with contextlib.suppress(FileNotFoundError):
                    self.fs.rm(self._path(*packs.pack_path_parts(pack_id)))
        self.forget_listing()
        return result

    def _is_loose(self, name: str) -> bool:
        self.known_objects()
        return name in (self._loose or ())

    def _read_packed(self, place: packs.PackedObject, name: str) -> bytes:
        path = self._path(*packs.pack_path_parts(place.pack))
        try:
            data = self.fs.cat_file(path, start=place.offset, end=place.offset + place.length)
        except FileNotFoundError:
            raise IntegrityError(f"object {name[:12]}… is missing: its pack {packs.describe(place.pack)} is gone "
                                 f"from the repository {self.location.url}") from None
        if len(data) != place.length:
            raise IntegrityError(f"object {name[:12]}…: its pack {packs.describe(place.pack)} is cut short")
        return data

    def has_object(self, name: str) -> bool:
        return name in self.known_objects()

    def put(self, stream: IO[bytes], on_bytes: ByteCallback | None = None, *, encrypt: bool = False,
            compress: bool | None = None) -> PutResult:
        """Store a stream's content once, named by its sha256, reading it once in chunks (bounded memory).

        ``compress=None`` decides by trying the first MiB. A small object is encoded in memory and written
        straight to its name; a large one streams to ``tmp/`` while hashed, then moves to ``objects/`` unless
        an object of that content is already there.
        """
        key = self.master_key(create=True) if encrypt else None
        hashing = _HashingReader(stream, on_bytes)
        if _small_file(stream):
            # A regular file that fits in memory: read in one call and hashed once, no chunk copies.
            first = codec.read_full(stream, SMALL_OBJECT)
            hashing.feed(first)
        else:
            first = codec.read_full(hashing, SMALL_OBJECT)
        if len(first) < SMALL_OBJECT:
            digest = hashing.hexdigest()
            name = object_name(digest, encrypt)
            parts, compressed = codec.encode_small(first, compress, key)
            stored_size = sum(len(p) for p in parts)
            repair = name in self.repairs()
            writer = self._writer
            if writer is not None and not repair:  # a repair is written loose: a loose object wins
                # Checked against one listing (few loose objects where packs are used), not a HEAD each.
                if name in self.known_objects():
                    return self._existing(name, digest, hashing.size, encrypt)
                pending = writer.add(name, parts, compressed)
                if pending is not None:
                    return PutResult(digest, hashing.size, 0, pending[0], pending[1], encrypt)
                return PutResult(digest, hashing.size, stored_size, stored_size, compressed, encrypt)
            if not repair and self.stored_size(name) == stored_size:
                # The same content encoded to the same size: stored as this run would store it (no header read)
                return PutResult(digest, hashing.size, 0, stored_size, compressed, encrypt)
            # Written straight to its name (a rename per file costs more than the file); an object cut short
            # by a crash has the wrong size and is written again here, and no manifest names it before flush().
            # A damaged object (same size, wrong bytes) is replaced through a temporary file instead: whatever
            # is at its name is replaced, never written through.
            self._write_object(name, parts, replace=repair)
            self._repaired(name)
            faults.checkpoint("repo-bytes", stored_size)
            faults.checkpoint("object-stored")
            self._note(name, stored_size)
            return PutResult(digest, hashing.size, stored_size, stored_size, compressed, encrypt)
        if compress is None:
            compress = codec.worth_compressing(memoryview(first)[: codec.COMPRESSION_SAMPLE])
        tmp = self._path("tmp", uuid.uuid4().hex)
        try:
            stored = 0
            encoded = codec.encode(codec.Prefixed(first, hashing), compress, key)
            with self.fs.open(tmp, "wb", **buffering(self.is_local)) as out:
                while chunk := encoded.read(CHUNK_SIZE):
                    out.write(chunk)
                    stored += len(chunk)
                    faults.checkpoint("repo-bytes", len(chunk))
            faults.checkpoint("upload-tmp")
            digest = hashing.hexdigest()
            name = object_name(digest, encrypt)
            final = self.object_path(name)
            if name not in self.repairs() and self.stored_size(name) is not None:
                self.fs.rm(tmp)
                return self._existing(name, digest, hashing.size, encrypt)
            if self.is_local:
                Path(final).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)  # made durable by flush(), before any manifest names it
            else:
                self.fs.mv(tmp, final)  # replaces a damaged object of that name
            self._repaired(name)
            faults.checkpoint("object-stored")
            self._note(name, stored)
            return PutResult(digest, hashing.size, stored, stored, compress, encrypt)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def _write_object(self, name: str, parts: list[bytes], replace: bool = False) -> None:
        path = self.object_path(name)
        if not self.is_local:
            self.fs.pipe_file(path, b"".join(parts))  # one PUT: whole or absent
            return
        directory = posixpath.dirname(path)
        if directory not in self._made_dirs:
            os.makedirs(directory, exist_ok=True)
            self._made_dirs.add(directory)
        target = self._path("tmp", uuid.uuid4().hex) if replace else path  # tmp/: prune clears a leftover
        if replace:
            os.makedirs(posixpath.dirname(target), exist_ok=True)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        try:
            _write_all(fd, parts)  # header and content in one call, not joined into a copy first
        finally:
            os.close(fd)
        if replace:
            os.replace(target, path)

    # -- self-healing: repair notes ---------------------------------------------------------------------------
    def repairs(self) -> set[str]:
        """Objects that ``verify`` noted as missing or damaged and that still are (the object absent, or the
        very object verify saw: same fingerprint): ``put`` writes these again even when an object of the name
        is there, and a backup re-reads the files that reuse them. One listing of ``repairs/`` (usually
        empty), then a stat or HEAD per noted object."""
        if self._repairs is None:
            pending: set[str] = set()
            for note in self.repair_notes().values():
                for name, seen in note.items():
                    if name in pending:
                        continue
                    current = self.object_fingerprint(name)
                    if current is None or current == seen:
                        pending.add(name)
            self._repairs = pending
        return self._repairs

    def _repaired(self, name: str) -> None:
        if self._repairs:
            self._repairs.discard(name)

    def mark_damaged(self, name: str) -> None:
        """``put`` replaces this object when it meets its content (a backup found it damaged)."""
        self.repairs().add(name)

    def repair_notes(self) -> dict[str, dict[str, str | None]]:
        """Every repair note: path -> {object name: fingerprint of the damaged object as verify saw it, or
        None if it was missing}. The repository is untrusted: a note that is not a small JSON object is
        skipped, and only names of the object-name form are taken."""
        root = self._path(REPAIRS)
        notes: dict[str, dict[str, str | None]] = {}
        for path, info in self._find(root).items():  # one request, also when there is no repairs/ (usual)
            base = posixpath.basename(path)
            if posixpath.dirname(path) != root or base.startswith(".") or not base.endswith(".json"):
                continue
            try:
                if int(info.get("size") or 0) > REPAIR_NOTE_MAX:
                    raise ValueError("too large")
                objects = json.loads(self.fs.cat_file(path)).get("objects")
                if not isinstance(objects, dict):
                    raise ValueError("no objects")
            except (ValueError, AttributeError, FileNotFoundError) as exc:
                log.warning("repair note %s skipped: it is not a repair note (%s)", base, exc)
                continue
            notes[path] = {name: seen if isinstance(seen, str) else None for name, seen in objects.items()
                           if isinstance(name, str) and OBJECT_NAME.match(name)}
        return notes

    def note_repairs(self, objects: dict[str, str | None]) -> str | None:
        """Record objects found missing (None) or damaged (their fingerprint) for the next backup; names
        already noted in the same state are left out. Returns the note's path, or None if nothing was new."""
        noted = {(name, seen) for note in self.repair_notes().values() for name, seen in note.items()}
        new = {name: seen for name, seen in objects.items() if (name, seen) not in noted}
        if not new:
            return None
        path = self._path(REPAIRS, f"{secrets.token_hex(16)}.json")
        self.write_file(path, json.dumps({"time": datetime.now(timezone.utc).isoformat(), "objects": new},
                                         sort_keys=True).encode())
        return path

    def object_fingerprint(self, name: str) -> str | None:
        """What changes when an object is written again (size and mtime/inode, or ETag); None if absent."""
        path = self.object_path(name)
        if self.is_local:
            try:
                status = os.lstat(path)
            except FileNotFoundError:
                return self._packed_fingerprint(name)
            return f"{status.st_size}:{status.st_mtime_ns}:{status.st_ino}"
        try:
            info = self.fs.info(path)
        except FileNotFoundError:
            return self._packed_fingerprint(name)
        return f"{info.get('size')}:{str(info.get('ETag') or info.get('etag') or '').strip(chr(34))}"

    def _packed_fingerprint(self, name: str) -> str | None:
        """A packed object's place: it changes when the object is stored again (loose, or in another pack)."""
        place = self.pack_index().get(name)
        return f"{place.length}:pack:{place.pack}:{place.offset}" if place else None

    def _existing(self, name: str, digest: str, size: int, encrypted: bool) -> PutResult:
        """An object of this content is already stored: nothing written; its header says how it is stored."""
        if self._loose is None or name in self._loose:  # loose first: no pack index needed for it
            stored = self.stored_size(name) or 0
            try:
                with self.fs.open(self.object_path(name), "rb", block_size=64 * 1024) as handle:
                    _, compressed, _ = codec.read_header(handle, name)
                return PutResult(digest, size, 0, stored, compressed, encrypted)
            except FileNotFoundError:
                pass
        packed = self.pack_index().get(name)
        if packed is None:
            raise IntegrityError(f"object {name[:12]}… vanished from the repository {self.location.url} while it was "
                                 "in use; is a prune running without the lock?")
        return PutResult(digest, size, 0, packed.length, packed.compressed, encrypted)

    def put_file(self, path: Path, on_bytes: ByteCallback | None = None, *, encrypt: bool = False) -> PutResult:
        with open(path, "rb") as handle:
            return self.put(handle, on_bytes, encrypt=encrypt)

    def open_object(self, name: str) -> IO[bytes]:
        """The stored bytes of an object (header and all)."""
        packed = self.pack_index().get(name)
        if packed is not None and not self._is_loose(name):
            return io.BytesIO(self._read_packed(packed, name))
        try:
            return self.fs.open(self.object_path(name), "rb", **buffering(self.is_local))
        except FileNotFoundError:
            raise IntegrityError(f"object {name[:12]}… is missing from the repository {self.location.url}") from None

    def copy_object_to(self, entry: Any, out: IO[bytes], on_bytes: ByteCallback | None = None, what: str = "") -> None:
        """Stream an entry's content into ``out``, checking its size and sha256; IntegrityError if they differ."""
        what = what or f"{entry.location}/{entry.key}"
        with self.open_object(entry.object_name) as stored:
            digest, copied = verified_copy.stream(codec.decode(stored, self.master_key, what), out, on_bytes)
        if copied != entry.size or digest != entry.sha256:
            raise IntegrityError(
                f"{what}: stored bytes do not match the snapshot (object {entry.sha256[:12]}…, expected {entry.size} bytes, "
                f"read {copied}); the repository is damaged, restore from another snapshot"
            )

    # -- snapshots -------------------------------------------------------------------------------------------
    def flush(self) -> None:
        """Make every object written so far durable. Objects are not synced one by one (that would cost a
        disk flush per file); one sync before the manifest is written gives the same promise: a manifest
        never names an object that a crash could lose. S3 acknowledges a PUT only once it is stored."""
        if self.is_local:
            _syncfs(self.base)

    def save_manifest(self, manifest: Manifest, encrypt: bool = False) -> None:
        """Write the manifest: the last step of a backup, after every object it names is stored.
        An encrypted snapshot's manifest is encrypted too (it names files and counts rows); every manifest
        carries a MAC made with the repository's key."""
        data = manifest.model_dump_json().encode()  # compact: 10,000 entries dump and parse faster
        if encrypt:
            data = codec.encode_bytes(data, True, self.master_key(create=True))
        name = manifest.id + (ENCRYPTED_MANIFEST if encrypt else PLAIN_MANIFEST)
        path = self._path("snapshots", name)
        self.write_file(path, seal_manifest(self.manifest_key(create=True), manifest.id, manifest_form(name), data))
        # The next backup looks for its parent among the headers: this one is known without reading it back.
        # Only the header's fields: validating a Manifest as a ManifestHeader returns the Manifest itself, and
        # its dump would put every entry into the cache (megabytes read and written by every later run).
        with contextlib.suppress(Exception):
            header = manifest.model_dump_json(include=set(ManifestHeader.model_fields)).encode()
            cache = self._header_cache()
            cache.put(name, _listing_version(self.fs.info(path)), header)
            cache.save()

    def manifest_listing(self) -> dict[str, tuple[str, str]]:
        """Snapshot id -> (manifest file name, its version: size and modification time, or S3 ETag)."""
        try:
            listed = self.fs.ls(self._path("snapshots"), detail=True)
        except FileNotFoundError:
            return {}
        found = {}
        for info in listed:
            name = posixpath.basename(info["name"].rstrip("/"))
            for suffix in (ENCRYPTED_MANIFEST, PLAIN_MANIFEST):
                if name.endswith(suffix) and not name.startswith("."):
                    found[name[: -len(suffix)]] = (name, _listing_version(info))
                    break
        return found

    def manifest_files(self) -> dict[str, str]:
        return {snapshot_id: name for snapshot_id, (name, _) in self.manifest_listing().items()}

    def snapshot_ids(self) -> list[str]:
        return sorted(self.manifest_files())

    def load_manifest(self, snapshot_id: str) -> Manifest:
        return self._read_manifest(snapshot_id, Manifest)

    def load_header(self, snapshot_id: str, listing: dict[str, tuple[str, str]] | None = None) -> ManifestHeader:
        """A snapshot's manifest without its entry lists (listings, reports, choosing a snapshot): from this
        machine's header cache when the manifest is unchanged since it was last read (``header_cache``)."""
        listing = self.manifest_listing() if listing is None else listing
        name, version = listing.get(snapshot_id, (None, ""))
        cache = self._header_cache()
        cached = cache.get(name, version) if name else None
        if cached is not None:
            with contextlib.suppress(ValueError):
                return ManifestHeader.model_validate_json(cached)
        header = self._read_manifest(snapshot_id, ManifestHeader, name)
        if name:
            cache.put(name, version, header.model_dump_json().encode())
        return header

    def _header_cache(self) -> HeaderCache:
        if self._headers is None:
            self._headers = HeaderCache(self.master_key(purpose="manifests"), self.location.url)
        return self._headers

    def _read_manifest(self, snapshot_id: str, model: type[M], name: str | None = None) -> M:
        mac_key = self.manifest_key()  # before reading: a missing or wrong passphrase is the repository's error
        # The file is one of two names: tried in turn (a request each) rather than listing every manifest.
        # An id is a file name in snapshots/, never a path.
        plausible = bool(snapshot_id) and "/" not in snapshot_id and "\\" not in snapshot_id and not snapshot_id.startswith(".")
        candidates = [name] if name else [snapshot_id + PLAIN_MANIFEST, snapshot_id + ENCRYPTED_MANIFEST] if plausible else []
        for candidate in candidates:
            try:
                data = self.fs.cat_file(self._path("snapshots", candidate))
            except FileNotFoundError:
                continue
            return self.parse_manifest(snapshot_id, candidate, data, model, mac_key)
        raise SnapshotNotFound(f"no snapshot {snapshot_id} in {self.location.url}; list them with `directus-ops snapshots --repo {self.location.url}`")

    def parse_manifest(self, snapshot_id: str, name: str, data: bytes, model: type[M],
                       mac_key: bytes | None = None) -> M:
        """The manifest in ``data`` (the bytes of ``snapshots/<name>``) if it is authentic and of this
        snapshot; ManifestRejected, one line naming the file, otherwise. Nothing in the body is looked at
        before its MAC is checked."""
        try:
            body = unseal_manifest(mac_key or self.manifest_key(), snapshot_id, manifest_form(name), data)
            try:
                if name.endswith(ENCRYPTED_MANIFEST):
                    body = codec.decode_bytes(body, self.master_key, "manifest")
                manifest = model.model_validate_json(body)
            except Exception as exc:  # authentic bytes that do not decode: whatever the parser says, it is damaged
                raise ManifestRejected(f"it is damaged ({(str(exc).splitlines() or [type(exc).__name__])[0]})") from None
            if manifest.id != snapshot_id:
                raise ManifestRejected(f"it names snapshot {manifest.id!r}, not the one its file name says")
            if manifest.format > MANIFEST_FORMAT:
                raise ManifestRejected(f"it has manifest format {manifest.format}, newer than this directus-ops reads "
                                       f"({MANIFEST_FORMAT}); upgrade directus-ops")
            return manifest
        except ManifestRejected as exc:
            raise ManifestRejected(f"snapshot {snapshot_id} refused: its manifest snapshots/{name} is not trusted: {exc}; "
                                   f"if you did not expect it, remove that file (other snapshots are not affected)",
                                   reason=str(exc), file=f"snapshots/{name}") from None

    def manifests(self, on_rejected: Callable[[str, RepositoryError], None] | None = None) -> list[Manifest]:
        """Every readable snapshot, oldest first (a damaged or unauthentic manifest is left out and reported
        to ``on_rejected``, by default logged as a warning)."""
        return self._readable(self.load_manifest, on_rejected)

    def headers(self, on_rejected: Callable[[str, RepositoryError], None] | None = None,
                newest: int | None = None) -> list[ManifestHeader]:
        """``manifests()`` without the entry lists (``newest``: only the last ones by id)."""
        listing = self.manifest_listing()
        ids = sorted(listing)[-newest:] if newest else None
        found = self._readable(lambda snapshot_id: self.load_header(snapshot_id, listing), on_rejected, ids)
        if listing:
            self._header_cache().save({name for name, _ in listing.values()} if ids is None else None)
        return found

    def _readable(self, load: Callable[[str], M], on_rejected: Callable[[str, RepositoryError], None] | None,
                  ids: list[str] | None = None) -> list[M]:
        found = []
        ids = self.snapshot_ids() if ids is None else ids
        if ids:
            self.manifest_key()  # a missing or wrong passphrase fails the listing once, not each snapshot
        for snapshot_id in ids:
            try:
                found.append(load(snapshot_id))
            except SnapshotNotFound:
                continue  # forgotten meanwhile
            except RepositoryError as exc:
                if on_rejected is None:
                    log.warning("snapshot %s left out: %s", snapshot_id, exc)
                else:
                    on_rejected(snapshot_id, exc)
        return sorted(found, key=lambda m: (m.time, m.id))

    def resolve(self, snapshot: str, project: str | None = None) -> Manifest:
        """A snapshot by id, unique id prefix, or ``latest`` (optionally of one project)."""
        if snapshot == "latest":
            headers = [m for m in self.headers() if project is None or m.project.name == project]
            if not headers:
                scope = f" of project {project}" if project else ""
                raise SnapshotNotFound(f"no snapshot{scope} in {self.location.url} yet; run `directus-ops backup` first")
            return self.load_manifest(headers[-1].id)
        return self.load_manifest(self.resolve_id(snapshot))

    def resolve_id(self, snapshot: str) -> str:
        """The id an exact id or unique part of one names, from the listing alone (its manifest unread)."""
        ids = self.snapshot_ids()
        if snapshot in ids:
            return snapshot
        matches = [i for i in ids if i.startswith(snapshot) or i.endswith(snapshot)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise SnapshotNotFound(f"snapshot id {snapshot!r} is ambiguous ({len(matches)} match); give more of it")
        raise SnapshotNotFound(f"no snapshot {snapshot} in {self.location.url}; list them with `directus-ops snapshots --repo {self.location.url}`")

    def missing_objects(self, entries: Iterable[Any]) -> list[Any]:
        """Entries whose object is absent: a few are checked one by one (a stat or HEAD each), many against
        one listing of the repository."""
        entries = list(entries)
        if self._known is None and len(entries) <= FEW_OBJECTS:
            return [e for e in entries if self.stored_size(e.object_name) is None]
        known = self.known_objects()
        return [e for e in entries if e.object_name not in known]

    # -- helpers ---------------------------------------------------------------------------------------------
    def write_file(self, path: str, data: bytes, sync: bool = True) -> None:
        """Write a whole file so that it appears complete or not at all."""
        if self.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                if sync:
                    handle.flush()
                    os.fsync(handle.fileno())
            faults.checkpoint("file-tmp")
            os.replace(tmp, target)
            if sync:
                _fsync(str(target.parent))
        else:
            self.fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all


def format_problem(url: str, found: object) -> str:
    """The one-line error for a repository of another format, naming the fix."""
    if found in UPGRADABLE_FORMATS:
        return (f"repository {url} has format {found}, whose manifests are not authenticated; this directus-ops reads "
                f"format {REPOSITORY_FORMAT}: run `directus-ops repository upgrade --repo {url}` once (it signs the "
                "manifests there with the repository's key)")
    if isinstance(found, int) and found > PACKED_FORMAT:
        return (f"repository {url} has format {found}, newer than this directus-ops reads ({PACKED_FORMAT}); "
                "use a newer directus-ops")
    return (f"repository {url} has format {found!r} in its config.json, which this directus-ops cannot read (it reads "
            f"format {REPOSITORY_FORMAT}); check --repo, or restore config.json from a copy")


_libc: Any = None


def _syncfs(path: str) -> None:
    """Flush the filesystem holding ``path`` (Linux ``syncfs``; ``sync`` elsewhere)."""
    import ctypes

    global _libc
    try:
        if _libc is None:
            # The process's own symbols, libc's among them: ctypes.util.find_library("c") would run
            # ``ldconfig -p`` (15 ms) on every flush.
            _libc = ctypes.CDLL(None, use_errno=True)
        libc = _libc
        fd = os.open(path, os.O_RDONLY)
        try:
            if libc.syncfs(fd) == 0:
                return
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass
    os.sync()


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""The snapshot repository: a local directory or ``s3://bucket/prefix``, reached through fsspec.

Layout (``docs/repository-format.md``)::

    config.json              {"format": 1, "created": ...}
    objects/<aa>/<sha256>    every file's bytes, stored once under the sha256 of its content
    snapshots/<id>.json      one manifest per snapshot, written last
    tmp/<random>             uploads in flight (renamed into objects/ when complete)

A snapshot exists only if its manifest does; an interrupted backup leaves at most files under ``tmp/`` and
unreferenced objects, never a listed snapshot.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import posixpath
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import fsspec

from .errors import IntegrityError, RepositoryError, SnapshotNotFound
from .manifest import Manifest
from .redact import redact, register_secret
from .storage import IO_BLOCK_SIZE, s3_filesystem

log = logging.getLogger("directus_ops.repository")

REPOSITORY_FORMAT = 1
CHUNK_SIZE = 1024 * 1024

ByteCallback = Callable[[int], None]


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
        )

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
class PutResult:
    sha256: str
    size: int
    written: int  # 0 when the object was already in the repository


class Repository:
    def __init__(self, location: RepositoryLocation, fs: fsspec.AbstractFileSystem, base: str) -> None:
        self.location = location
        self.fs = fs
        self.base = base
        self.is_local = not location.is_s3
        self._known: set[str] | None = None

    # -- opening ---------------------------------------------------------------------------------------------
    @classmethod
    def open(cls, location: RepositoryLocation, create: bool = False) -> Repository:
        """Open an existing repository; with ``create``, make one if absent and prove it is writable."""
        fs, base = location.filesystem()
        repo = cls(location, fs, base)
        config_path = repo._path("config.json")
        try:
            exists = fs.exists(config_path)
        except Exception as exc:
            raise RepositoryError(f"cannot reach the repository {location.url}: {repo._reason(exc)}; check the URL, endpoint and credentials") from None
        if not exists and not create:
            raise RepositoryError(f"no snapshot repository at {location.url}; check --repo, or run a backup into it first")
        if create:
            repo._check_writable()
            if not exists:
                repo._write_bytes(config_path, json.dumps({"format": REPOSITORY_FORMAT,
                                                           "created": datetime.now(timezone.utc).isoformat()}).encode())
        else:
            try:
                config = json.loads(fs.cat_file(config_path))
            except Exception as exc:
                raise RepositoryError(f"cannot read {location.url}/config.json: {repo._reason(exc)}") from None
            if config.get("format") != REPOSITORY_FORMAT:
                raise RepositoryError(f"repository {location.url} has format {config.get('format')}; this directus-ops reads format {REPOSITORY_FORMAT}")
        return repo

    def _check_writable(self) -> None:
        probe = self._path("tmp", f".probe-{uuid.uuid4().hex}")
        try:
            if self.is_local:
                Path(self.base).mkdir(parents=True, exist_ok=True)
            with self.fs.open(probe, "wb") as handle:
                handle.write(b"probe")
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

    def object_path(self, sha256: str) -> str:
        return self._path("objects", sha256[:2], sha256)

    # -- objects ---------------------------------------------------------------------------------------------
    def known_objects(self) -> set[str]:
        """The sha256 of every object present (listed once, then kept up to date by ``put``)."""
        if self._known is None:
            root = self._path("objects")
            known: set[str] = set()
            if self.fs.exists(root):
                for path in self.fs.find(root):
                    name = posixpath.basename(path)
                    if len(name) == 64:
                        known.add(name)
            self._known = known
        return self._known

    def has_object(self, sha256: str) -> bool:
        return sha256 in self.known_objects()

    def put(self, stream: IO[bytes], on_bytes: ByteCallback | None = None) -> PutResult:
        """Store a stream's bytes under their sha256, reading it once in chunks (bounded memory).

        The bytes go to ``tmp/`` while hashed, then move to ``objects/`` only if no object has that content yet.
        """
        known = self.known_objects()
        tmp = self._path("tmp", uuid.uuid4().hex)
        hasher = hashlib.sha256()
        size = 0
        try:
            with self.fs.open(tmp, "wb", block_size=IO_BLOCK_SIZE) as out:
                while chunk := stream.read(CHUNK_SIZE):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    if on_bytes:
                        on_bytes(len(chunk))
            digest = hasher.hexdigest()
            final = self.object_path(digest)
            if digest in known or self.fs.exists(final):
                self.fs.rm(tmp)
                known.add(digest)
                return PutResult(digest, size, 0)
            if self.is_local:
                _fsync(tmp)
                Path(final).parent.mkdir(parents=True, exist_ok=True)
                os.replace(tmp, final)
                _fsync(str(Path(final).parent))
            else:
                self.fs.mv(tmp, final)
            known.add(digest)
            return PutResult(digest, size, size)
        except BaseException:
            with contextlib.suppress(Exception):
                self.fs.rm(tmp)
            raise

    def put_file(self, path: Path, on_bytes: ByteCallback | None = None) -> PutResult:
        with open(path, "rb") as handle:
            return self.put(handle, on_bytes)

    def open_object(self, sha256: str) -> IO[bytes]:
        try:
            return self.fs.open(self.object_path(sha256), "rb", block_size=IO_BLOCK_SIZE)
        except FileNotFoundError:
            raise IntegrityError(f"object {sha256[:12]}… is missing from the repository {self.location.url}") from None

    def copy_object_to(self, sha256: str, size: int, out: IO[bytes], on_bytes: ByteCallback | None = None,
                       what: str = "") -> None:
        """Stream an object into ``out``, checking its size and sha256; IntegrityError if they differ."""
        hasher = hashlib.sha256()
        copied = 0
        with self.open_object(sha256) as source:
            while chunk := source.read(CHUNK_SIZE):
                hasher.update(chunk)
                out.write(chunk)
                copied += len(chunk)
                if on_bytes:
                    on_bytes(len(chunk))
        if copied != size or hasher.hexdigest() != sha256:
            raise IntegrityError(
                f"{what or 'object'}: stored bytes do not match the snapshot (object {sha256[:12]}…, expected {size} bytes, "
                f"read {copied}); the repository is damaged, restore from another snapshot"
            )

    def object_size(self, sha256: str) -> int | None:
        try:
            return int(self.fs.size(self.object_path(sha256)))
        except FileNotFoundError:
            return None

    # -- snapshots -------------------------------------------------------------------------------------------
    def save_manifest(self, manifest: Manifest) -> None:
        """Write the manifest: the last step of a backup, after every object it names is stored."""
        data = manifest.model_dump_json(indent=1).encode()
        self._write_bytes(self._path("snapshots", f"{manifest.id}.json"), data)

    def snapshot_ids(self) -> list[str]:
        root = self._path("snapshots")
        if not self.fs.exists(root):
            return []
        names = [posixpath.basename(p) for p in self.fs.ls(root, detail=False)]
        return sorted(n[:-5] for n in names if n.endswith(".json"))

    def load_manifest(self, snapshot_id: str) -> Manifest:
        try:
            data = self.fs.cat_file(self._path("snapshots", f"{snapshot_id}.json"))
        except FileNotFoundError:
            raise SnapshotNotFound(f"no snapshot {snapshot_id} in {self.location.url}; list them with `directus-ops snapshots --repo {self.location.url}`") from None
        try:
            return Manifest.model_validate_json(data)
        except ValueError as exc:
            raise RepositoryError(f"the manifest of snapshot {snapshot_id} is damaged ({str(exc).splitlines()[0]})") from None

    def manifests(self) -> list[Manifest]:
        """Every readable snapshot, oldest first (a damaged manifest is logged and left out)."""
        found = []
        for snapshot_id in self.snapshot_ids():
            try:
                found.append(self.load_manifest(snapshot_id))
            except RepositoryError as exc:
                log.warning("%s", exc)
        return sorted(found, key=lambda m: (m.time, m.id))

    def resolve(self, snapshot: str, project: str | None = None) -> Manifest:
        """A snapshot by id, unique id prefix, or ``latest`` (optionally of one project)."""
        if snapshot == "latest":
            manifests = [m for m in self.manifests() if project is None or m.project.name == project]
            if not manifests:
                scope = f" of project {project}" if project else ""
                raise SnapshotNotFound(f"no snapshot{scope} in {self.location.url} yet; run `directus-ops backup` first")
            return manifests[-1]
        ids = self.snapshot_ids()
        if snapshot in ids:
            return self.load_manifest(snapshot)
        matches = [i for i in ids if i.startswith(snapshot) or i.endswith(snapshot)]
        if len(matches) == 1:
            return self.load_manifest(matches[0])
        if len(matches) > 1:
            raise SnapshotNotFound(f"snapshot id {snapshot!r} is ambiguous ({len(matches)} match); give more of it")
        raise SnapshotNotFound(f"no snapshot {snapshot} in {self.location.url}; list them with `directus-ops snapshots --repo {self.location.url}`")

    def latest_of(self, project: str) -> Manifest | None:
        manifests = [m for m in self.manifests() if m.project.name == project]
        return manifests[-1] if manifests else None

    def missing_objects(self, entries: Iterable[Any]) -> list[Any]:
        """Entries whose object is absent (the repository is listed once, not probed per object)."""
        known = self.known_objects()
        return [e for e in entries if e.sha256 not in known]

    # -- helpers ---------------------------------------------------------------------------------------------
    def _write_bytes(self, path: str, data: bytes) -> None:
        if self.is_local:
            target = Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
            with open(tmp, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
            _fsync(str(target.parent))
        else:
            self.fs.pipe_file(path, data)  # one PUT: the object appears whole or not at all


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""A project's storage locations (``STORAGE_LOCATIONS``), reached through fsspec: ``local`` and ``s3``.

An object's *key* is its path relative to the location's root (for Directus files, ``filename_disk``), so a
location restored under another root or bucket keeps the same keys.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, NamedTuple

import fsspec

from .config import DirectusConfig
from .errors import ConfigError, StorageError, StorageRootMissing, StorageUnlistable
from .paths import LocalUncommitted, is_temporary_name, key_from_name, name_from_key, temporary_name
from .redact import redact, register_secret

log = logging.getLogger("directus_ops.storage")

SUPPORTED_DRIVERS = ("local", "s3")
# Buffer of one open S3 file (s3fs defaults to 50 MiB); with parallel copies this bounds memory. >= 5 MiB,
# S3's smallest multipart part.
IO_BLOCK_SIZE = 8 * 1024 * 1024
PROBE_NAME = ".directus-ops-probe"
S3_TIMEOUT_ENV = "DIRECTUS_OPS_S3_TIMEOUT"  # seconds to wait for an S3 answer before botocore retries


class StoredObject(NamedTuple):  # a tuple: made 10,000 times per listing, and cheap to make
    key: str  # paths.key_from_name of the path under the root (a non-UTF-8 name in its raw form)
    size: int
    mtime: float | None = None  # local files
    etag: str | None = None  # S3 objects
    symlink: bool = False  # a symbolic link (local): size and mtime are the link's own (lstat)

    @property
    def fingerprint(self) -> str:
        """What says "unchanged since last time" without reading the bytes."""
        return self.etag if self.etag else f"{self.mtime!r}"


@dataclass(frozen=True)
class StorageLocation:
    """One entry of ``STORAGE_LOCATIONS``."""

    name: str
    driver: str
    root: str  # local: absolute directory; s3: prefix inside the bucket ("" for the bucket's top)
    bucket: str | None = None
    region: str | None = None
    endpoint: str | None = None
    key_id: str | None = field(default=None, repr=False)
    secret: str | None = field(default=None, repr=False)
    force_path_style: bool = False

    @classmethod
    def from_config(cls, name: str, config: DirectusConfig, project_root: Path) -> StorageLocation:
        prefix = f"STORAGE_{name.upper()}_"
        where = config.path or "the config"
        driver = config.text(prefix + "DRIVER")
        if not driver:
            raise ConfigError(f"{prefix}DRIVER is not set in {where} for storage location '{name}'; set it to local or s3")
        driver = driver.lower()
        if driver not in SUPPORTED_DRIVERS:
            raise ConfigError(
                f"{prefix}DRIVER={driver} in {where} is not supported by directus-ops; supported drivers: {', '.join(SUPPORTED_DRIVERS)}"
            )
        root = config.text(prefix + "ROOT") or ""
        if driver == "local":
            path = Path(root or ".").expanduser()
            return cls(name=name, driver="local", root=str(path if path.is_absolute() else (project_root / path).resolve()))
        bucket = config.text(prefix + "BUCKET")
        if not bucket:
            raise ConfigError(f"{prefix}BUCKET is not set in {where}; the s3 location '{name}' needs a bucket")
        secret = config.text(prefix + "SECRET")
        register_secret(secret)
        return cls(
            name=name,
            driver="s3",
            root=root.strip("/"),
            bucket=bucket,
            region=config.text(prefix + "REGION"),
            endpoint=config.text(prefix + "ENDPOINT"),
            key_id=config.text(prefix + "KEY"),
            secret=secret,
            force_path_style=config.flag(prefix + "FORCE_PATH_STYLE"),
        )

    @classmethod
    def from_url(cls, name: str, url: str, like: StorageLocation | None = None) -> StorageLocation:
        """``/path`` or ``file:///path`` (local) or ``s3://bucket/root`` (credentials and endpoint as ``like``)."""
        if url.startswith("s3://"):
            bucket, _, root = url[5:].partition("/")
            base = like if like and like.driver == "s3" else None
            return cls(name=name, driver="s3", root=root.strip("/"), bucket=bucket,
                       region=base.region if base else None, endpoint=base.endpoint if base else None,
                       key_id=base.key_id if base else None, secret=base.secret if base else None,
                       force_path_style=base.force_path_style if base else True)
        path = url[7:] if url.startswith("file://") else url
        if "://" in path:
            raise ConfigError(f"storage URL {url!r} is not supported; use a local path or s3://bucket/prefix")
        return cls(name=name, driver="local", root=str(Path(path).expanduser().resolve()))

    def describe(self) -> str:
        if self.driver == "local":
            return f"storage location '{self.name}' (local {self.root})"
        return f"storage location '{self.name}' (s3://{self.bucket}/{self.root})".replace("//)", "/)").rstrip("/")

    def config_values(self) -> dict[str, Any]:
        prefix = f"STORAGE_{self.name.upper()}_"
        values: dict[str, Any] = {prefix + "DRIVER": self.driver, prefix + "ROOT": self.root}
        if self.driver == "s3":
            values.update({prefix + "BUCKET": self.bucket})
            for suffix, value in (("REGION", self.region), ("ENDPOINT", self.endpoint), ("KEY", self.key_id),
                                  ("SECRET", self.secret)):
                if value:
                    values[prefix + suffix] = value
            if self.force_path_style:
                values[prefix + "FORCE_PATH_STYLE"] = True
        return values

    # -- access (fsspec) ------------------------------------------------------------------------------------------
    def filesystem(self) -> fsspec.AbstractFileSystem:
        if self.driver == "local":
            return fsspec.filesystem("file", auto_mkdir=True)
        return s3_filesystem(endpoint=self.endpoint, region=self.region, key_id=self.key_id, secret=self.secret,
                             path_style=self.force_path_style)

    @property
    def base(self) -> str:
        if self.driver == "local":
            return self.root
        return posixpath.join(self.bucket or "", self.root) if self.root else (self.bucket or "")

    def path_of(self, key: str) -> str:
        """The path (or S3 key) of an object: a raw key (a non-UTF-8 name) becomes the name's own bytes."""
        return posixpath.join(self.base, name_from_key(key))

    def list_objects(self, fs: fsspec.AbstractFileSystem | None = None,
                     missing_root_ok: bool = True) -> Iterator[StoredObject]:
        """Every object under the root, with what tells a change (mtime or ETag). A local root that does not
        exist is empty (``missing_root_ok``) or StorageRootMissing; any other listing error is a StorageError:
        a location that cannot be read never looks empty. Symbolic links below a local root are listed as
        links, never followed."""
        fs = fs or self.filesystem()
        base = self.base.rstrip("/")
        strip = len(base) + 1
        prefix = base + "/"
        if _is_local(fs):  # straight from the directory walk: no fsspec info dicts for 10,000 files
            try:
                files = sorted(walk_local(base))
            except FileNotFoundError:
                if os.path.lexists(base):
                    raise StorageUnlistable(f"cannot list {self.describe()}: its root is a symbolic link to a missing "
                                            f"directory; check STORAGE_{self.name.upper()}_ROOT") from None
                if missing_root_ok:
                    return
                raise StorageRootMissing(f"{self.describe()} does not exist; check STORAGE_{self.name.upper()}_ROOT") from None
            except NotADirectoryError:
                raise StorageUnlistable(f"cannot list {self.describe()}: its root is not a directory; check "
                                        f"STORAGE_{self.name.upper()}_ROOT") from None
            except OSError as exc:
                raise StorageUnlistable(f"cannot list {self.describe()}: {exc.strerror or exc}"
                                        f"{' (' + exc.filename + ')' if isinstance(exc.filename, str) else ''}; "
                                        "check its settings and permissions") from None
            for path, size, mtime, link in files:
                key = path[strip:] if path.startswith(prefix) else path
                if not _own_file(key):
                    yield StoredObject(key_from_name(key), size, mtime, None, link)
            return
        found = self._list_s3(fs, base)
        for path, info in sorted(found.items()):
            if info.get("type") == "directory":
                continue
            key = path[strip:] if path.startswith(prefix) else path
            if _own_file(key):
                continue
            etag = info.get("ETag") or info.get("etag")
            if etag:
                yield StoredObject(key, int(info.get("size") or 0), None, etag.strip('"'))
            else:
                yield StoredObject(key, int(info.get("size") or 0), info.get("mtime"))

    def _list_s3(self, fs: fsspec.AbstractFileSystem, base: str) -> dict[str, dict[str, Any]]:
        """Every object under an S3 prefix, listed directly: an error (endpoint unreachable, no such bucket,
        access denied) is raised as such, never taken for an empty location (``exists`` would say False)."""
        setting = f"STORAGE_{self.name.upper()}_"
        try:
            return fs.find(base, detail=True)  # a ListObjectsV2 call, whose errors s3fs raises as such
        except FileNotFoundError:
            raise StorageUnlistable(f"cannot list {self.describe()}: bucket {self.bucket!r} does not exist; check "
                                    f"{setting}BUCKET") from None
        except PermissionError:
            raise StorageUnlistable(f"cannot list {self.describe()}: access denied (the credentials may not list "
                                    f"the bucket: s3:ListBucket); check {setting}KEY/{setting}SECRET and the bucket's "
                                    "policy") from None
        except Exception as exc:
            reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise StorageError(f"cannot list {self.describe()}: {reason}; check {setting}ENDPOINT, "
                               f"{setting}REGION and the network") from None

    def open(self, key: str, mode: str = "rb", fs: fsspec.AbstractFileSystem | None = None, **kwargs: Any) -> IO[bytes]:
        if self.driver == "local" and mode == "rb" and not kwargs:
            # The plain file (fsspec's wrapper only adds cost per file), never through a link that replaced it
            # after listing: a link is read as a link (os.readlink), never followed out of the root.
            return open(self.path_of(key), "rb", opener=_open_no_follow)
        fs = fs or self.filesystem()
        return fs.open(self.path_of(key), mode, **buffering(self.driver == "local"), **kwargs)

    def open_to_copy(self, key: str, size: int, fs: fsspec.AbstractFileSystem | None = None) -> IO[bytes]:
        """An object to be read whole, once: an S3 object under IO_BLOCK_SIZE (its listed ``size``) is fetched
        in one GET (opening it costs a HEAD first), anything else is opened as a stream."""
        if self.driver == "s3" and size < IO_BLOCK_SIZE:
            fs = fs or self.filesystem()
            return io.BytesIO(fs.cat_file(self.path_of(key)))
        return self.open(key, "rb", fs)

    def open_uncommitted(self, key: str, fs: fsspec.AbstractFileSystem | None = None) -> UncommittedFile | LocalUncommitted:
        """A file that replaces ``key`` only on ``commit()``; ``discard()`` leaves what was there untouched."""
        if self.driver == "local":
            # A short temporary name in the final folder, reached without following a symlink, renamed over
            # the final name (paths.LocalUncommitted).
            return LocalUncommitted(self.root, key)
        fs = fs or self.filesystem()
        final = self.path_of(key)
        return UncommittedFile(fs, fs.open(final, "wb", autocommit=False, **buffering(False)), None, final)

    def check_writable(self) -> None:
        """Write, read back and remove a probe object; raise StorageError naming the location if that fails."""
        fs = self.filesystem()
        probe = self.path_of(PROBE_NAME)
        try:
            if self.driver == "local":
                if not os.path.isdir(self.root):
                    # Checked without creating it: a check changes nothing (the restore creates the root).
                    parent = Path(self.root)
                    while not parent.exists() and parent != parent.parent:
                        parent = parent.parent
                    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                        raise PermissionError(f"{parent} is not a writable folder, {self.root} cannot be created")
                    return
                # A fresh name, created exclusively: never a file (or a link) that is there.
                probe = os.path.join(self.root, temporary_name())
                fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
                os.close(fd)
                os.unlink(probe)
                return
            with fs.open(probe, "wb") as handle:
                handle.write(b"probe")
            fs.rm(probe)
        except Exception as exc:
            raise StorageError(f"cannot write to {self.describe()}: {redact(str(exc)) or type(exc).__name__}; check the path, bucket and credentials") from None


def _open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW)


def _own_file(key: str) -> bool:
    """This tool's own files in flight, not the project's."""
    name = key.rpartition("/")[2]
    if name[:1] != "." or not name.endswith(".restoring"):
        return name == PROBE_NAME
    # today's temporary names, and those of older versions: ".<name>.<32 hex>.restoring"
    return is_temporary_name(name) or (len(name) > 44 and name[-43] == "." and _is_hex(name[-42:-10]))


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def find_files(fs: fsspec.AbstractFileSystem, root: str) -> dict[str, dict[str, Any]]:
    """Every file under ``root``, path -> fsspec-style info (``size``, ``mtime`` or ``ETag``): ``fs.find``,
    except that a local tree is walked with ``os.scandir`` (fsspec normalises every path it returns, which
    costs ~60 µs a file: most of an incremental backup of 10,000 unchanged files). Symbolic links are not
    files here."""
    if not _is_local(fs):
        return fs.find(root, detail=True)
    return {path: {"name": path, "type": "file", "size": size, "mtime": mtime}
            for path, size, mtime, link in walk_local(root) if not link}


def _is_local(fs: fsspec.AbstractFileSystem) -> bool:
    from fsspec.implementations.local import LocalFileSystem

    return isinstance(fs, LocalFileSystem)


def walk_local(root: str) -> Iterator[tuple[str, int, float, bool]]:
    """(path, size, mtime, is_link) of every file and symbolic link under a local ``root``. The root itself
    may be a link (followed); a link below it is yielded as a link (its own lstat size and mtime), never
    followed, so nothing outside the root is read. Errors on the root, and any but "removed meanwhile" below
    it, are raised: a folder that cannot be read must not look empty."""
    top = root.rstrip("/") or "/"
    pending = [top]
    special: list[str] = []
    while pending:
        directory = pending.pop()
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            if directory == top:
                raise
            continue  # removed (or replaced by a file) while listed
        for entry in entries:
            try:
                # DirEntry answers these from the directory listing (d_type): no syscall per entry.
                if entry.is_symlink():
                    stat = entry.stat(follow_symlinks=False)
                    yield entry.path, stat.st_size, stat.st_mtime, True
                elif entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    yield entry.path, stat.st_size, stat.st_mtime, False
                else:  # sockets, FIFOs and devices are not files a project stores: skipped, but said
                    special.append(entry.path)
            except FileNotFoundError:
                continue  # removed while listed
    if special:
        log.warning("%d special files (FIFOs, sockets, devices) under %s were skipped, not stored: %s", len(special),
                    top, ", ".join(repr(os.fsdecode(p)) for p in special[:5]) + (" …" if len(special) > 5 else ""))


def buffering(local: bool) -> dict[str, int]:
    """S3 files get an 8 MiB buffer (bounded, >= a multipart part); local files the default (an 8 MiB buffer per
    open would cost more than the small files it reads)."""
    return {} if local else {"block_size": IO_BLOCK_SIZE}


class UncommittedFile:
    """Writes that become the object only when committed (local: temp file + rename; S3: upload completed)."""

    def __init__(self, fs: fsspec.AbstractFileSystem, handle: Any, temporary: str | None, final: str) -> None:
        self.fs, self.handle, self.temporary, self.final = fs, handle, temporary, final

    def write(self, data: bytes) -> int:
        return self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        if self.temporary is None:
            self.handle.commit()
        else:
            self.fs.mv(self.temporary, self.final)

    def discard(self) -> None:
        if self.temporary is None:
            self.handle.discard()
            return
        self.handle.close()
        self.fs.rm(self.temporary)


def s3_filesystem(*, endpoint: str | None, region: str | None, key_id: str | None, secret: str | None,
                  path_style: bool = True, profile: str | None = None) -> fsspec.AbstractFileSystem:
    """The one way to build an S3 filesystem (s3fs); unset credentials fall back to the AWS environment."""
    import s3fs

    client_kwargs: dict[str, Any] = {}
    if region:
        client_kwargs["region_name"] = region
    timeout = float(os.environ.get(S3_TIMEOUT_ENV, "60"))
    config_kwargs: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"},
                                     "connect_timeout": timeout, "read_timeout": timeout}
    if path_style:
        config_kwargs["s3"] = {"addressing_style": "path"}
    # One filesystem per settings and process: a run's tasks each open the repository, and a new s3fs
    # instance is a new client and new connections (0.05-0.1 s each). Not shared across a fork.
    cache_key = (endpoint, region, key_id, secret, path_style, profile, timeout, os.getpid())
    with _s3_lock:
        fs = _s3_filesystems.get(cache_key)
        if fs is None:
            # max_concurrency=1: s3fs otherwise sends a HEAD before every whole-file read, to split it into
            # concurrent ranges; what is read whole here is small (manifests, indexes, keys, locks).
            fs = _s3_filesystems[cache_key] = s3fs.S3FileSystem(
                key=key_id or None, secret=secret or None, endpoint_url=endpoint or None, profile=profile,
                client_kwargs=client_kwargs, config_kwargs=config_kwargs, use_listings_cache=False,
                skip_instance_cache=True, max_concurrency=1)
    return fs


_s3_filesystems: dict[tuple[Any, ...], fsspec.AbstractFileSystem] = {}
_s3_lock = threading.Lock()

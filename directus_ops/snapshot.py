"""Taking a snapshot of a project into a repository, and restoring one: the plain functions that the
backup and restore tasks wrap. Each step streams bytes between its source and the repository and writes
its part of the manifest to a small JSON file in a staging directory, so flows pass paths, not data.
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter

from . import codec, faults, licensing, paths, restore_cleanup
from . import database as db
from . import progress, workdir
from .config import read_config_file, update_dotenv, update_dotenv_text, write_private_text
from .database import DatabaseSettings
from .errors import ConfigError, IntegrityError, SnapshotNotFound, StorageError, StorageUnreadable
from .manifest import (CONFIG, DATABASE, EXTENSIONS, MIGRATIONS, PROJECT_FILES, DatabaseInfo, Entry, LocationInfo,
                       Manifest, ManifestHeader, ProjectInfo, Stats, new_snapshot_id)
from .paths import display_key, key_from_name
from .project import Project, load_project
from .redact import redact
from .repository import PutResult, Repository
from .storage import StorageLocation, StorageRootMissing, StorageUnlistable, StoredObject

log = logging.getLogger("directus_ops.snapshot")

DEFAULT_WORKERS = 8
LOCAL_WORKERS = 2 * (os.cpu_count() or 1)  # measured: 4 threads on 2 cores copy fastest, 8 are 20% slower
LISTING_THRESHOLD = 256  # objects to store above which one repository listing beats checking each
MISSING_NAMES_SHOWN = 5  # directus_files rows without their file: how many names a warning shows


# -- backup ------------------------------------------------------------------------------------------------------
@dataclass
class PartResult:
    """What one backup step stored: its manifest entries (in a staging file) and byte counts."""

    entries_path: str
    files: int = 0
    bytes: int = 0
    new_objects: int = 0
    bytes_written: int = 0
    objects_read: int = 0
    info_path: str | None = None  # step-specific manifest data (database info, location info)
    warnings: list[str] = field(default_factory=list)
    # Every entry's object is known present: stored or found by this run, or vouched for by the parent
    # snapshot under the backup lock. save_snapshot checks the objects of the other parts.
    confirmed: bool = False


_ENTRIES = TypeAdapter(list[Entry])


# Entries this process staged, by path, with the file's (size, mtime): the step that gathers them into the
# manifest usually runs in the same process and takes them from here instead of parsing the file again. Each
# is taken once (a serving process must not hold every backup's entries).
_staged: dict[str, tuple[tuple[int, int], list[Entry]]] = {}
_staged_lock = threading.Lock()


def _write_part(staging_dir: Path, name: str, entries: list[Entry], info: Any = None) -> tuple[str, str | None]:
    entries_path = staging_dir / f"{name}.entries.json"
    entries_path.write_bytes(_ENTRIES.dump_json(entries))
    written = entries_path.stat()
    with _staged_lock:
        _staged[str(entries_path)] = ((written.st_size, written.st_mtime_ns), entries)
    info_path = None
    if info is not None:
        info_path = str(staging_dir / f"{name}.info.json")
        Path(info_path).write_text(info.model_dump_json())
    return str(entries_path), info_path


def read_entries(path: str) -> list[Entry]:
    with _staged_lock:
        staged = _staged.pop(path, None)
    if staged is not None:
        status = os.stat(path)
        if staged[0] == (status.st_size, status.st_mtime_ns):  # the file is still the one staged here
            return staged[1]
    return _ENTRIES.validate_json(Path(path).read_bytes())


def _entry(location: str, key: str, put: PutResult, obj: StoredObject | None = None) -> Entry:
    return Entry(location=location, key=key, size=put.size, sha256=put.sha256, stored_size=put.stored_size,
                 compressed=put.compressed, encrypted=put.encrypted,
                 mtime=obj.mtime if obj else None, etag=obj.etag if obj else None,
                 symlink=obj.symlink if obj else False)


def backup_database(project: Project, repo: Repository, staging_dir: Path, encrypt: bool = False,
                    scope: str = "entire") -> PartResult:
    """Dump the database with the engine's native tool straight into the repository: all of it, or only the
    exact ``directus_*`` tables (``scope="system"``), or only the others (``"project"``)."""
    tables, skipped = scoped_tables(project, scope)
    stored: dict[str, Any] = {}
    with progress.track(f"dump {project.database.describe()}") as tracker:
        def advance(amount: int) -> None:
            faults.checkpoint("dump-bytes", amount)
            tracker.advance(amount)

        def consume(stream: IO[bytes]) -> None:
            stored["result"] = repo.put(stream, advance, encrypt=encrypt)

        result = db.dump(project.database, consume, staging_dir, tables)
    put = stored["result"]
    entry = _entry(DATABASE, f"database.{_dump_extension(result.format)}", put)
    info = DatabaseInfo(engine=project.database.engine, client=project.config.text("DB_CLIENT") or "",
                        name=project.database.database, server_version=result.server_version,
                        dump_tool=result.tool, dump_format=result.format, row_counts=result.row_counts,
                        charset=result.extra.get("charset"), collation=result.extra.get("collation"),
                        scope=scope, skipped_foreign_keys=skipped)
    entries_path, info_path = _write_part(staging_dir, "database", [entry], info)
    log.info("dumped %s with %s: %s, %d tables", project.database.describe(), result.tool,
             progress.human_bytes(put.size), len(result.row_counts))
    return PartResult(entries_path, files=1, bytes=put.size, new_objects=int(put.written > 0),
                      bytes_written=put.written, info_path=info_path, confirmed=True)  # put stored or found it


def scoped_tables(project: Project, scope: str) -> tuple[list[str] | None, list[tuple[str, str]]]:
    """The exact tables a ``scope`` dump holds (None: the whole database) and the foreign keys from them to
    tables outside it, which a restore must leave out (SQLite's scoped copy drops them itself)."""
    if scope == "entire":
        return None, []
    with db.connect(project.database) as conn:
        all_tables = db.list_tables(conn)
        tables = db.scope_tables(all_tables, scope, db.project_schema(project.database))
        keys = db.foreign_keys(conn) if project.database.engine != "sqlite" else []
    if not tables:
        raise ConfigError(f"{project.database.describe()} has no {scope} tables: a {scope}-only backup would hold "
                          "nothing; choose another --backup-database")
    inside = set(tables)
    skipped = sorted({(k.table, k.name) for k in keys if k.table in inside and k.referred_table not in inside and k.name})
    return tables, skipped


def _dump_extension(dump_format: str) -> str:
    return {"pg_dump-custom": "pgdump", "mysql-sql": "sql", "sqlite-file": "sqlite"}.get(dump_format, "dump")


def backup_location(location: StorageLocation, repo: Repository, staging_dir: Path,
                    parent: Manifest | None = None, workers: int = DEFAULT_WORKERS, encrypt: bool = False,
                    database: DatabaseSettings | None = None) -> PartResult:
    """Store every object of one storage location. An object whose size and mtime/ETag equal the parent
    snapshot's is not read again: its bytes are already in the repository under the recorded sha256.

    The parent's manifest vouches for its objects: it was written only once they were stored and flushed,
    and prune, the only step that deletes objects, cannot run while this backup holds its shared lock. So
    unchanged files cost no repository check at all; the few new ones are checked one by one (a stat or a
    HEAD), and many are checked against one listing of the repository. Two exceptions heal a damaged
    repository: an object ``verify`` noted as missing or damaged (``Repository.repairs``) is read from the
    source and stored again, and so is one that a listing made anyway shows absent or of another size.

    A symbolic link is stored as a link (its content is the link's target); nothing outside the root is
    read. A location that cannot be listed fails the backup. With ``database``, the files its
    ``directus_files`` table records for this location are checked against what was listed."""
    fs = location.filesystem()
    previous: dict[str, Entry] = {}
    if parent:
        previous = {e.key: e for e in parent.objects if e.location == location.name}
    warnings: list[str] = []
    try:
        objects = list(location.list_objects(fs, missing_root_ok=False))
        root_missing = False
    except StorageRootMissing:
        objects, root_missing = [], True
    missing_files = _check_against_database(location, objects, database, root_missing, warnings)
    noted = repo.repairs()  # usually empty: one listing of repairs/
    entries: list[Entry | None] = [None] * len(objects)
    to_read: list[int] = []
    for index, obj in enumerate(objects):
        old = previous.get(obj.key)
        if old is not None and old.size == obj.size and old.encrypted == encrypt and old.symlink == obj.symlink and \
                (old.etag == obj.etag if obj.etag else (not old.etag and old.mtime == obj.mtime)) and \
                old.object_name not in noted:  # fingerprints equal, object not noted as lost
            same = old.mtime == obj.mtime and old.etag == obj.etag
            entries[index] = old if same else old.model_copy(update={"mtime": obj.mtime, "etag": obj.etag})
        else:
            to_read.append(index)
    if len(to_read) > max(LISTING_THRESHOLD, len(previous) // 8):
        repo.known_objects()  # many objects to check: one listing instead of a stat or HEAD each
    known = repo.listing()
    if known is not None:  # listed anyway: every reused entry is checked against it for free
        for index, entry in enumerate(entries):
            if entry is None:
                continue
            stored = known.get(entry.object_name)
            if stored is None or (entry.stored_size is not None and stored != entry.stored_size):
                if stored is not None:
                    repo.mark_damaged(entry.object_name)
                entries[index] = None
                to_read.append(index)
    if location.driver == "local" and repo.is_local:
        workers = min(workers, LOCAL_WORKERS)  # disk to disk is CPU-bound (hashing): more threads only contend
    total = sum(objects[i].size for i in to_read)
    written = 0
    lock = threading.Lock()
    with progress.track(f"storage '{location.name}': {len(to_read)} of {len(objects)} files new or changed", total) as tracker:
        def store(index: int) -> None:
            nonlocal written
            obj = objects[index]
            try:
                if obj.symlink:  # the link itself: its target's path, as bytes, never what it points at
                    target = os.readlink(os.fsencode(location.path_of(obj.key)))
                    put = repo.put(io.BytesIO(target), tracker.advance, encrypt=encrypt, compress=False)
                else:
                    with location.open_to_copy(obj.key, obj.size, fs) as source:
                        put = repo.put(source, tracker.advance, encrypt=encrypt,
                                       compress=codec.compressible_name(obj.key))
            except FileNotFoundError:
                return  # deleted between listing and reading: it is not part of this snapshot
            except PermissionError:
                raise StorageUnreadable(f"cannot read {display_key(obj.key)} from {location.describe()}: permission "
                                        "denied; let the user that runs directus-ops read it") from None
            except (OSError, IntegrityError) as exc:
                raise StorageError(f"cannot read {display_key(obj.key)} from {location.describe()}: "
                                   f"{redact(str(exc))}") from None
            entries[index] = _entry(location.name, obj.key, put, obj)
            with lock:
                written += put.written

        with repo.packing():  # small objects into pack files where the repository packs them
            run_parallel(store, to_read, workers)
    final = [e for e in entries if e is not None]
    info = LocationInfo(name=location.name, driver=location.driver, root=location.root, bucket=location.bucket,
                        objects=len(final), bytes=sum(e.size for e in final), missing_files=missing_files)
    entries_path, info_path = _write_part(staging_dir, f"storage-{location.name}", final, info)
    log.info("%s: %d objects (%s), %d read, %s new in the repository", location.describe(), len(final),
             progress.human_bytes(info.bytes), len(to_read), progress.human_bytes(written))
    return PartResult(entries_path, files=len(final), bytes=info.bytes, bytes_written=written,
                      objects_read=len(to_read), info_path=info_path, warnings=warnings, confirmed=True)


def _check_against_database(location: StorageLocation, objects: list[StoredObject],
                            database: DatabaseSettings | None, root_missing: bool, warnings: list[str]) -> int | None:
    """How many ``directus_files`` rows of this location name a file that was not listed (None: not checked,
    no database or no ``directus_files`` table). Raises when the location has such rows but not one object:
    a wrong root, bucket or credentials, not a location whose files were all deleted."""
    names = None
    if database is not None:
        with db.connect(database) as conn:
            names = db.directus_file_names(conn, location.name)
    setting = f"STORAGE_{location.name.upper()}_"
    fix = f"check {setting}ROOT" if location.driver == "local" else \
        f"check {setting}BUCKET, {setting}ROOT and its credentials"
    if root_missing:
        if names:
            raise StorageUnlistable(f"{location.describe()} does not exist, but directus_files records {len(names)} "
                                    f"files in it; {fix}")
        warnings.append(f"{location.describe()} does not exist: nothing stored from it; {fix} if it should hold files")
        log.warning("%s", warnings[-1])
    if names is None:
        return None
    listed = {o.key for o in objects}
    missing = sorted(name for name in names if name not in listed)
    if missing and not objects:
        raise StorageUnlistable(f"{location.describe()} holds no file, but directus_files records {len(missing)} "
                                f"files in it; {fix}")
    if missing:
        shown = ", ".join(missing[:MISSING_NAMES_SHOWN]) + (", …" if len(missing) > MISSING_NAMES_SHOWN else "")
        warnings.append(f"{location.describe()}: {len(missing)} files that directus_files records are not in "
                        f"storage (first: {shown})")
        log.warning("%s", warnings[-1])
    return len(missing)


def run_parallel(function: Any, items: list[Any], workers: int) -> None:
    """Apply ``function`` to items on a bounded pool; the first failure stops the rest and is raised.

    Each worker takes the next item from a shared iterator (one future per worker, not per item: 10,000
    futures and contexts cost more than the small files they copy)."""
    if not items:
        return
    if workers <= 1 or len(items) == 1:
        for item in items:
            function(item)
        return
    pending = iter(items)
    stop = threading.Event()

    def work() -> None:
        for item in pending:  # next() on a shared list iterator is atomic
            if stop.is_set():
                return
            try:
                function(item)
            except BaseException:
                stop.set()
                raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
        # Each worker runs in a copy of the caller's context, so its logs belong to the caller's run.
        futures = [pool.submit(contextvars.copy_context().run, work) for _ in range(min(workers, len(items)))]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()
            raise


def _walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root`` (links are neither followed nor stored; os.walk does not enter
    linked folders). Any name the filesystem allows: a non-UTF-8 one comes as a surrogate-escaped str."""
    for directory, subdirs, files in os.walk(root):
        subdirs.sort()
        for name in sorted(files):
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def backup_project_files(project: Project, repo: Repository, staging_dir: Path, encrypt: bool = False,
                         extensions: bool = True) -> PartResult:
    """The config file (always encrypted: it holds the project's secrets; a restore needs it), and unless
    ``extensions`` is False the custom code: package.json/package-lock.json, the extensions and migrations folders."""
    entries: list[Entry] = []
    written = 0
    warnings: list[str] = []

    def add(location: str, key: str, path: Path, secret: bool = False) -> None:
        nonlocal written
        put = repo.put_file(path, encrypt=encrypt or secret)
        written += put.written
        entries.append(_entry(location, key, put))

    add(CONFIG, project.config_path.name, project.config_path, secret=True)
    for path in project.package_files() if extensions else ():
        add(PROJECT_FILES, path.name, path)
    for location, folder in ((EXTENSIONS, project.extensions_path), (MIGRATIONS, project.migrations_path)):
        if not extensions:
            break
        if location == MIGRATIONS and folder.is_relative_to(project.extensions_path):
            continue  # Directus 9: migrations live inside the extensions folder, already stored
        if folder.is_dir():
            for path in _walk_files(folder):
                add(location, key_from_name(path.relative_to(folder).as_posix()), path)
    for key in project.config.values:
        if key.endswith("_FILE") and key in project.config.file_keys:
            warnings.append(f"{key} points at a file outside the snapshot; keep a copy of it yourself")
    entries_path, _ = _write_part(staging_dir, "project-files", entries)
    return PartResult(entries_path, files=len(entries), bytes=sum(e.size for e in entries),
                      bytes_written=written, warnings=warnings, confirmed=True)


def assemble_manifest(project: Project, snapshot_id: str, started: datetime, database_part: PartResult | None,
                      location_parts: list[PartResult], files_part: PartResult, encrypt: bool = False) -> Manifest:
    """Gather every step's entries into the manifest (not yet saved); no ``database_part``: a snapshot
    without the database."""
    database_info = None
    if database_part is not None:
        assert database_part.info_path
        database_info = DatabaseInfo.model_validate_json(Path(database_part.info_path).read_text())
    with db.connect(project.database) as conn:
        migrations = db.applied_migrations(conn)
    parts = [*([database_part] if database_part else []), *location_parts, files_part]
    stats = Stats(
        files=sum(p.files for p in parts),
        bytes=sum(p.bytes for p in parts),
        bytes_written=sum(p.bytes_written for p in parts),
        storage_bytes_written=sum(p.bytes_written for p in location_parts),
        storage_objects_read=sum(p.objects_read for p in location_parts),
        seconds=round((datetime.now(timezone.utc) - started).total_seconds(), 3),
    )
    return Manifest(
        id=snapshot_id,
        time=started,
        encrypted=encrypt,
        project=ProjectInfo(name=project.name, dir=str(project.root), host=socket.gethostname(),
                            config_file=project.config_path.name, directus_version=project.directus_version,
                            migrations=migrations),
        database=database_info,
        storage=[LocationInfo.model_validate_json(Path(p.info_path).read_text()) for p in location_parts if p.info_path],
        artifacts=[*(read_entries(database_part.entries_path) if database_part else []),
                   *read_entries(files_part.entries_path)],
        objects=[e for p in location_parts for e in read_entries(p.entries_path)],
        stats=stats,
    )


@dataclass
class SnapshotSummary:
    """The few figures of a saved snapshot that flows report (not the manifest itself)."""

    id: str
    time: str
    project: str
    directus_version: str | None
    database: str
    tables: int
    rows: int
    files: int
    bytes: int
    bytes_written: int
    storage_bytes_written: int
    storage_objects_read: int
    locations: dict[str, int]
    missing_files: dict[str, int | None] = field(default_factory=dict)  # per location (None: not checked)

    @classmethod
    def of(cls, manifest: ManifestHeader) -> SnapshotSummary:
        return cls(id=manifest.id, time=manifest.time.isoformat(), project=manifest.project.name,
                   directus_version=manifest.project.directus_version,
                   database=_database_text(manifest.database),
                   tables=len(manifest.database.row_counts) if manifest.database else 0,
                   rows=sum(manifest.database.row_counts.values()) if manifest.database else 0,
                   files=manifest.stats.files, bytes=manifest.stats.bytes, bytes_written=manifest.stats.bytes_written,
                   storage_bytes_written=manifest.stats.storage_bytes_written,
                   storage_objects_read=manifest.stats.storage_objects_read,
                   locations={l.name: l.objects for l in manifest.storage},
                   missing_files={l.name: l.missing_files for l in manifest.storage})


def _database_text(info: DatabaseInfo | None) -> str:
    if info is None:
        return "none"
    text = f"{info.engine} {info.server_version}"
    return text if info.scope == "entire" else f"{text} ({info.scope} tables)"


def find_parent(repo: Repository, project: Project) -> str | None:
    """The project's latest snapshot, whose fingerprints spare re-reading unchanged files."""
    for snapshot_id in reversed(repo.snapshot_ids()):  # ids sort by time: newest first, stop at the first match
        try:
            header = repo.load_header(snapshot_id)
        except Exception:  # an unreadable manifest only costs the change detection, not the backup
            continue
        if header.project.name == project.name and header.project.dir == str(project.root):
            return snapshot_id
    return None


def save_snapshot(project: Project, repo: Repository, snapshot_id: str, started: datetime, database_part: PartResult | None,
                  location_parts: list[PartResult], files_part: PartResult, encrypt: bool = False) -> SnapshotSummary:
    """The last step of a backup: the manifest, written once every object it names is stored and flushed."""
    manifest = assemble_manifest(project, snapshot_id, started, database_part, location_parts, files_part, encrypt)
    unconfirmed = [e for p in (database_part, *location_parts, files_part) if p is not None and not p.confirmed
                   for e in read_entries(p.entries_path)]
    check_complete(repo, manifest, unconfirmed)
    repo.flush()
    faults.checkpoint("before-manifest")
    repo.save_manifest(manifest, encrypt=encrypt)  # from here on the snapshot exists
    return SnapshotSummary.of(manifest)


def check_complete(repo: Repository, manifest: Manifest, entries: list[Entry] | None = None) -> None:
    """Every object the manifest names (or ``entries`` of it) is in the repository (checked before the
    manifest is written)."""
    missing = repo.missing_objects(manifest.all_entries() if entries is None else entries)
    if missing:
        first = missing[0]
        raise IntegrityError(f"{len(missing)} objects of snapshot {manifest.id} are not in the repository "
                             f"(first: {first.location}/{first.key}); the snapshot was not saved")


def start_snapshot_id() -> tuple[str, datetime]:
    now = datetime.now(timezone.utc)
    return new_snapshot_id(now), now


def make_staging_dir() -> Path:
    """A fresh directory for one flow's working files, inside the run's private (0700) work directory, which
    the next run removes if this one is killed (workdir)."""
    return workdir.make_dir("staging-")


# -- restore -----------------------------------------------------------------------------------------------------
@dataclass
class RestoreTarget:
    """Where a snapshot goes: the project directory, the config Directus will read there, the database and
    the storage locations (matched to the snapshot's by name)."""

    project_dir: Path
    config_path: Path  # the target's config (written from the snapshot if ``write_config``)
    write_config: bool
    database: DatabaseSettings
    locations: dict[str, StorageLocation]
    database_url_override: bool
    storage_overridden: tuple[str, ...] = ()
    new_parts: restore_cleanup.NewParts | None = None  # what the target did not hold yet (removed if the restore fails)
    # The snapshot's config (decrypted) when it is to be written: held in memory, never staged on disk.
    snapshot_config: bytes | None = field(default=None, repr=False)


def plan_restore(repo: Repository, manifest: Manifest, project_dir: str | Path, config: str | Path | None = None,
                 database_url: str | None = None, replace: bool = False,
                 storage_overrides: dict[str, str] | None = None, staging_dir: Path | None = None) -> RestoreTarget:
    """Check everything a restore needs before anything is changed; return where each part goes."""
    paths.check_manifest_keys(manifest)  # first: a key that would leave its target refuses the whole snapshot
    target_dir = Path(project_dir).expanduser().resolve()
    if target_dir.exists() and not target_dir.is_dir():
        raise ConfigError(f"{target_dir} is a file; --project-dir must be a directory")
    missing = repo.missing_objects(manifest.all_entries())
    if missing:
        raise IntegrityError(f"snapshot {manifest.id} is damaged: {len(missing)} of its objects are missing "
                             f"(first: {missing[0].location}/{missing[0].key}); restore another snapshot")
    staged = None
    if config:
        config_path = Path(config).expanduser()
        config_path = config_path if config_path.is_absolute() else (target_dir / config_path)  # as CONFIG_PATH
        write_config = False
        if not config_path.is_file():
            raise ConfigError(f"--config {config_path} does not exist; pass an existing Directus config file")
    elif (target_dir / manifest.project.config_file).is_file():
        config_path, write_config = target_dir / manifest.project.config_file, False
    else:
        # A new project directory: the snapshot's own config will be written there.
        config_path, write_config = target_dir / manifest.project.config_file, True
        staged = read_config_bytes(repo, manifest)
    environ: dict[str, str] = {}  # the target is described by its config alone, not by this process's environment
    read_from = config_path
    if (database_url or storage_overrides) and read_from.suffix.lower() in (".js", ".mjs", ".cjs", ".json", ".yaml", ".yml"):
        raise ConfigError(f"--database-url and --storage can only be written into a dotenv config, not {read_from.name}; "
                          "put the new settings into your config and pass it with --config")
    target_project = _project_from(target_dir, read_from, environ, database_url, staged)
    database = target_project.database
    if manifest.database is not None and database.engine != manifest.database.engine:
        raise ConfigError(f"snapshot {manifest.id} holds a {manifest.database.engine} database but the target is "
                          f"{database.describe()}; restore into a {manifest.database.engine} database (use `move` to change engines)")
    locations: dict[str, StorageLocation] = {}
    overrides = storage_overrides or {}
    for info in manifest.storage:
        if info.name in overrides:
            like = next((l for l in target_project.storage if l.name == info.name), None)
            locations[info.name] = StorageLocation.from_url(info.name, overrides[info.name], like)
            continue
        try:
            locations[info.name] = target_project.location(info.name)
        except ConfigError:
            raise ConfigError(f"snapshot {manifest.id} has storage location '{info.name}' but {read_from} has none by "
                              f"that name; add it to STORAGE_LOCATIONS there or pass --storage {info.name}=PATH_OR_S3_URL") from None
    unknown = set(overrides) - {info.name for info in manifest.storage}
    if unknown:
        raise ConfigError(f"--storage {sorted(unknown)[0]}=…: snapshot {manifest.id} has no storage location of that name "
                          f"(it has: {', '.join(i.name for i in manifest.storage) or 'none'})")
    if manifest.has_database:  # a snapshot without its database leaves the target's database alone
        assert manifest.database is not None
        if manifest.database.dump_format == "pg_dump-custom":
            db.pg_tool("pg_restore")
        elif manifest.database.dump_format == "mysql-sql":
            db.mysql_tool("client")
        db.check_restorable(database, replace)
    for name, location in locations.items():
        _check_location_can_hold(manifest, name, location)
        location.check_writable()
        if location.driver == "local":  # found now, not halfway through the copy
            paths.check_folders(location.root, (e.key for e in manifest.objects if e.location == name))
    for kind, folder in ((EXTENSIONS, target_project.extensions_path), (MIGRATIONS, target_project.migrations_path)):
        paths.check_folders(str(folder), (e.key for e in manifest.artifact(kind)))
    new_parts = restore_cleanup.observe(target_dir, database if manifest.has_database else None, locations)
    return RestoreTarget(project_dir=target_dir, config_path=config_path, write_config=write_config,
                         database=database, locations=locations, database_url_override=bool(database_url),
                         storage_overridden=tuple(overrides), snapshot_config=staged, new_parts=new_parts)


def _check_location_can_hold(manifest: Manifest, name: str, location: StorageLocation) -> None:
    """S3 cannot hold a symbolic link or a name that is not UTF-8 (a raw key): such a snapshot location goes to
    local storage."""
    if location.driver == "local":
        return
    for entry in manifest.objects:
        if entry.location == name and (entry.symlink or entry.key.startswith(paths.RAW_PREFIX)):
            what = "a symbolic link" if entry.symlink else "a name that is not UTF-8"
            raise ConfigError(f"snapshot {manifest.id}: {paths.display_key(entry.key)!r} in storage location '{name}' is "
                              f"{what}, which {location.describe()} cannot hold; restore that location into local "
                              f"storage with --storage {name}=PATH")


def read_config_bytes(repo: Repository, manifest: Manifest) -> bytes:
    """The snapshot's config file (decrypted, checked), in memory: its secrets are written nowhere but the
    target's config file."""
    buffer = io.BytesIO()
    repo.copy_object_to(manifest.artifact(CONFIG)[0], buffer, what="config")
    return buffer.getvalue()


def _project_from(target_dir: Path, config_path: Path, environ: dict[str, str], database_url: str | None = None,
                  content: bytes | None = None) -> Project:
    """The target as a project, read from ``config_path`` (or its ``content``), whether or not its directory
    exists yet."""
    project = load_project(target_dir, config_path, environ, directory_may_be_missing=True, config_content=content)
    if database_url:
        project = replace(project, database=DatabaseSettings.from_url(database_url))
    return project


def fetch_verified(repo: Repository, entry: Entry, destination: Path) -> Path:
    """Copy one object to a local file, checking size and sha256 on the way (moved into place once checked)."""
    if entry.location == DATABASE:  # the dump is fetched under its key into a staging folder
        problem = paths.KeyCheck().problem(DATABASE, entry.key)
        if problem:
            raise paths.unsafe_snapshot(None, DATABASE, entry.key, problem)
    with progress.track(f"fetch {paths.display_key(entry.key)}", entry.size) as tracker:
        write_entry(repo, entry, str(destination.parent), paths.key_from_name(destination.name), 0o600, tracker.advance)
    return destination


def write_entry(repo: Repository, entry: Entry, root: str, key: str, mode: int = 0o644,
                on_bytes: Any = None) -> None:
    """One entry written as ``key`` under the local folder ``root``, without following any symlink there: its
    content verified in a temporary file, then renamed over what is there; a symlink entry made the same link."""
    if entry.symlink:
        link = io.BytesIO()
        repo.copy_object_to(entry, link, on_bytes)
        paths.write_symlink(root, key, link.getvalue())
        return
    out = paths.LocalUncommitted(root, key, mode)
    try:
        repo.copy_object_to(entry, out, on_bytes)  # type: ignore[arg-type]
        out.commit()
    except BaseException:
        with contextlib.suppress(Exception):
            out.discard()
        raise


def restore_database(repo: Repository, manifest: Manifest, target: RestoreTarget, replace: bool,
                     staging_dir: Path) -> dict[str, int]:
    """Verify the dump, empty the target if replacing, load the dump; return the restored row counts
    (none for a snapshot taken without its database: the target's database is left as it is)."""
    if not manifest.has_database:
        log.warning("snapshot %s holds no database (taken with --backup-database none): %s was not touched; "
                    "restore the database from a snapshot that has one", manifest.id, target.database.describe())
        return {}
    return load_database(repo, manifest, target.database, replace, staging_dir)


def require_database(manifest: Manifest) -> DatabaseInfo:
    """The snapshot's database info, or a clear refusal for a snapshot taken without its database."""
    if not manifest.has_database or manifest.database is None:
        raise SnapshotNotFound(f"snapshot {manifest.id} holds no database (it was taken with --backup-database none); "
                               "restore the database from a snapshot that has one (`directus-ops snapshots` lists them)")
    return manifest.database


def load_database(repo: Repository, manifest: Manifest, database: DatabaseSettings, replace: bool,
                  staging_dir: Path) -> dict[str, int]:
    """The snapshot's database into ``database`` (emptied first when ``replace``), row counts checked."""
    info = require_database(manifest)
    dump_file = fetch_verified(repo, manifest.database_dump, staging_dir / manifest.database_dump.key)
    faults.checkpoint("database-fetched")
    if db.check_restorable(database, replace):  # non-empty: only reached with replace
        log.info("replacing the contents of %s", database.describe())
        db.clear_database(database)
    db.ensure_database(database, info.charset, info.collation)
    log.info("restoring %s into %s", manifest.database_dump.key, database.describe())
    db.restore(database, dump_file, info.dump_format, info.skipped_foreign_keys)
    dump_file.unlink(missing_ok=True)
    with db.connect(database) as conn:
        counts = db.count_rows(conn)
    differing = {t: (n, counts.get(t)) for t, n in info.row_counts.items() if counts.get(t) != n}
    if differing:
        table, (want, got) = next(iter(differing.items()))
        raise IntegrityError(f"restored database differs from the snapshot: table {table} has {got} rows, the snapshot "
                             f"recorded {want} ({len(differing)} tables differ)")
    return counts


def restore_location(repo: Repository, manifest: Manifest, name: str, location: StorageLocation,
                     workers: int = DEFAULT_WORKERS) -> dict[str, int]:
    """Write every object of one snapshot location into the target location, verifying each on the way."""
    entries = [e for e in manifest.objects if e.location == name]
    local = location.driver == "local"
    fs = None if local else location.filesystem()
    counts = {"objects": len(entries), "written": 0, "skipped": 0, "bytes_written": 0}
    lock = threading.Lock()
    total = sum(e.size for e in entries)
    with progress.track(f"restore storage '{name}': {len(entries)} files", total) as tracker:
        def write(entry: Entry) -> None:
            # Local: found identical without following a symlink (a link at the key is not the file).
            if local and paths.local_matches(location.root, entry.key, entry.size, entry.sha256, entry.symlink):
                tracker.advance(entry.size)
                with lock:
                    counts["skipped"] += 1
                return
            # Uncommitted until verified: a bad copy never replaces the file that is there (local: a temporary
            # file renamed into place; S3: a multipart upload completed only on commit).
            if local:
                write_entry(repo, entry, location.root, entry.key, on_bytes=tracker.advance)
                faults.checkpoint("object-restored")
            else:
                if entry.symlink or entry.key.startswith(paths.RAW_PREFIX):  # plan_restore refuses these first
                    raise ConfigError(f"{location.describe()} cannot hold {paths.display_key(entry.key)!r}")
                out = location.open_uncommitted(entry.key, fs)
                try:
                    repo.copy_object_to(entry, out, tracker.advance)  # type: ignore[arg-type]
                    out.commit()
                    faults.checkpoint("object-restored")
                except BaseException:
                    with contextlib.suppress(Exception):
                        out.discard()
                    raise
            with lock:
                counts["written"] += 1
                counts["bytes_written"] += entry.size

        run_parallel(write, entries, workers)
    return counts


def restore_project_files(repo: Repository, manifest: Manifest, target: RestoreTarget,
                          extensions_path: Path, migrations_path: Path) -> dict[str, int]:
    """Config (into a new project dir), package files (if absent), extensions and migrations folders."""
    counts = {"config": 0, "package_files": 0, "extensions": 0, "migrations": 0}
    target.project_dir.mkdir(parents=True, exist_ok=True)
    project_dir = str(target.project_dir)
    overrides = _config_overrides(target)
    if target.write_config:
        # Only to its final place, 0600 from creation, atomically (never a readable or partial config), and
        # once: with the new settings already in, so it never names the snapshot's database meanwhile.
        content = target.snapshot_config or read_config_bytes(repo, manifest)
        if overrides:
            content = update_dotenv_text(content.decode("utf-8"), *overrides).encode("utf-8")
        write_private_text(target.config_path, content)
        faults.checkpoint("config-written")
        counts["config"] = 1
    for entry in manifest.artifact(PROJECT_FILES):
        if not os.path.lexists(target.project_dir / paths.name_from_key(entry.key)):
            write_entry(repo, entry, project_dir, entry.key)
            counts["package_files"] += 1
    for location, folder in ((EXTENSIONS, extensions_path), (MIGRATIONS, migrations_path)):
        for entry in manifest.artifact(location):
            write_entry(repo, entry, str(folder), entry.key)  # never through a symlink inside the folder
            counts[location.lstrip("@")] += 1
    if overrides and not target.write_config:
        write_private_text(target.config_path, update_dotenv(target.config_path, *overrides))
    return counts


def _config_overrides(target: RestoreTarget) -> tuple[dict[str, Any], frozenset[str]] | None:
    """The settings --database-url and --storage put into the target's config: (values to set, keys to drop)."""
    if not (target.database_url_override or target.storage_overridden):
        return None
    values: dict[str, Any] = {}
    remove: set[str] = set()
    if target.database_url_override:
        values.update(target.database.config_values())
        remove |= db.DB_CONFIG_KEYS - set(values)
    for name in target.storage_overridden:
        values.update(target.locations[name].config_values())
    return values, frozenset(remove)


def target_project(target: RestoreTarget) -> Project:
    """The target as a Project (its folders, as its config names them), before or after its config is written."""
    return _project_from(target.project_dir, target.config_path, {}, content=target.snapshot_config)


def license_notice(target: RestoreTarget, opened: Callable[[], tuple[Repository, Manifest]]) -> str | None:
    """What becomes of a Directus 12 license activated in the restored database when the target runs under
    another PUBLIC_URL than the snapshot's project did (None: no such license, or the same URL). ``opened``
    gives the repository and manifest, asked for only when there is a key to compare URLs for."""
    if target.write_config:  # the snapshot's own config: its own PUBLIC_URL
        return None
    public_url = target_project(target).config.text("PUBLIC_URL")
    license = licensing.settings_license(target.database, public_url)
    if license is None:
        return None
    repo, manifest = opened()
    if not manifest.has_database:  # the target's database was left as it was: not this snapshot's license
        return None
    name = Path(manifest.project.config_file)  # its kind: the snapshot's config is read from memory
    source = read_config_file(name, {}, read_config_bytes(repo, manifest)).get("PUBLIC_URL")
    return licensing.public_url_notice(license, str(source) if source else None, public_url)


def elapsed_since(start: float) -> float:
    return round(time.monotonic() - start, 3)

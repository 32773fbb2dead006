"""Taking a snapshot of a project into a repository (what a snapshot holds: ``snapshot``): the plain functions
that the backup tasks wrap. Each step streams bytes between its source and the repository and writes its part
of the manifest to a small JSON file in a staging directory, so flows pass paths, not data.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from pydantic import TypeAdapter

from . import codec, dumps, faults, progress
from . import database as db
from .database import DatabaseSettings
from .errors import (
    ConfigError,
    IntegrityError,
    StorageError,
    StorageRootMissing,
    StorageUnlistable,
    StorageUnreadable,
)
from .manifest import (
    CONFIG,
    DATABASE,
    EXTENSIONS,
    MIGRATIONS,
    PROJECT_FILES,
    DatabaseInfo,
    Entry,
    LocationInfo,
    Manifest,
    ManifestHeader,
    ProjectInfo,
    Stats,
    new_snapshot_id,
)
from .paths import display_key, key_from_name
from .project import Project
from .redact import redact
from .repository import PutResult, Repository
from .snapshot import DEFAULT_WORKERS, run_parallel
from .storage import StorageLocation, StoredObject

log = logging.getLogger("directus_ops.snapshot_backup")

LOCAL_WORKERS = 2 * (os.cpu_count() or 1)  # measured: 4 threads on 2 cores copy fastest, 8 are 20% slower
LISTING_THRESHOLD = 256  # objects to store above which one repository listing beats checking each
MISSING_NAMES_SHOWN = 5  # directus_files rows without their file: how many names a warning shows


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

        result = dumps.dump(project.database, consume, staging_dir, tables)
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

    if project.compose is None:
        add(CONFIG, project.config_path.name, project.config_path, secret=True)
    else:  # the first is the Compose file; then its override, .env, env files, CONFIG_PATH file
        for path in project.config_files():
            add(CONFIG, key_from_name(path.relative_to(project.root).as_posix()), path, secret=True)
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
                            config_file=(project.compose.file if project.compose else project.config_path).name,
                            directus_version=project.directus_version, migrations=migrations,
                            compose=project.compose is not None,
                            service=project.compose.service if project.compose else None),
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

"""Restoring a snapshot (what a snapshot holds: ``snapshot``): everything checked before anything is changed
(``plan_restore``), then the database, each storage location and the project files, every object verified
before it takes its place; the plain functions that the restore tasks wrap.
"""

from __future__ import annotations

import io
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import database as db
from . import compose, dumps, faults, licensing, paths, progress, restore_cleanup, verified_copy
from .config import read_config_file, update_dotenv, update_dotenv_text, write_private_text
from .database import DatabaseSettings
from .errors import ConfigError, IntegrityError, SnapshotNotFound
from .manifest import CONFIG, DATABASE, EXTENSIONS, MIGRATIONS, PROJECT_FILES, DatabaseInfo, Entry, Manifest
from .project import Project, load_project
from .repository import Repository
from .snapshot import DEFAULT_WORKERS, run_parallel
from .storage import StorageLocation

log = logging.getLogger("directus_ops.snapshot_restore")


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
    compose: bool = False  # a Docker Compose project: its config is its Compose file's service
    service: str | None = None  # its Directus service, when named


def plan_restore(repo: Repository, manifest: Manifest, project_dir: str | Path, config: str | Path | None = None,
                 database_url: str | None = None, replace: bool = False,
                 storage_overrides: dict[str, str] | None = None, staging_dir: Path | None = None,
                 service: str | None = None) -> RestoreTarget:
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
    compose_file = compose.find_compose_file(target_dir) if target_dir.is_dir() and not config else None
    if compose_file is not None:
        target_project = load_project(target_dir, service=service)
        if target_project.compose is not None:
            # A Docker Compose project (the snapshot's own, or another with its own Compose file and database).
            if database_url or storage_overrides:
                raise ConfigError(f"--database-url and --storage cannot be written into the Compose project {target_dir}; "
                                  f"set the Directus service's environment in {compose_file.name} instead")
            return _plan_compose_restore(manifest, target_project, replace)
    if service:
        raise ConfigError(f"--service {service}: {target_dir} holds no Compose file; --service is for Docker Compose projects")
    if manifest.project.compose:
        raise ConfigError(f"snapshot {manifest.id} is of a Docker Compose project: restore it into a Compose project "
                          f"(a directory with its Compose file, its database service running); {target_dir} has none")
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
    return _checked_target(manifest, target_project, replace, locations, config_path=config_path,
                           write_config=write_config, database_url_override=bool(database_url),
                           storage_overridden=tuple(overrides), snapshot_config=staged)


def _plan_compose_restore(manifest: Manifest, project: Project, replace: bool) -> RestoreTarget:
    assert project.compose is not None
    if manifest.database is not None and project.database.engine != manifest.database.engine:
        raise ConfigError(f"snapshot {manifest.id} holds a {manifest.database.engine} database but the target is "
                          f"{project.database.describe()}; restore into a {manifest.database.engine} database (use `move` to change engines)")
    locations: dict[str, StorageLocation] = {}
    for info in manifest.storage:
        try:
            locations[info.name] = project.location(info.name)
        except ConfigError:
            raise ConfigError(f"snapshot {manifest.id} has storage location '{info.name}' but service "
                              f"'{project.compose.service}' of {project.compose.file} has none by that name; add it to "
                              "STORAGE_LOCATIONS in its environment") from None
    for kind in (EXTENSIONS, MIGRATIONS):
        folder = kind.lstrip("@")
        if manifest.artifact(kind) and folder in project.unmounted:
            raise ConfigError(f"snapshot {manifest.id} holds {folder} but the target cannot take them: "
                              f"{project.unmounted[folder]}")
    return _checked_target(manifest, project, replace, locations, config_path=project.config_path, write_config=False,
                           database_url_override=False, compose=True, service=project.compose.service)


def _checked_target(manifest: Manifest, target_project: Project, replace: bool, locations: dict[str, StorageLocation],
                    **fields: Any) -> RestoreTarget:
    """The remaining checks of a restore target (database, locations, folders), then the target."""
    target_dir = target_project.root
    database = target_project.database
    if manifest.has_database:  # a snapshot without its database leaves the target's database alone
        assert manifest.database is not None
        if database.container is None and manifest.database.dump_format == "pg_dump-custom":
            db.pg_tool("pg_restore")
        elif database.container is None and manifest.database.dump_format == "mysql-sql":
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
    return RestoreTarget(project_dir=target_dir, database=database, locations=locations, new_parts=new_parts, **fields)


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
    with verified_copy.committed(paths.LocalUncommitted(root, key, mode)) as out:
        repo.copy_object_to(entry, out, on_bytes)  # type: ignore[arg-type]


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
    dumps.restore(database, dump_file, info.dump_format, info.skipped_foreign_keys)
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
                with verified_copy.committed(location.open_uncommitted(entry.key, fs)) as out:
                    repo.copy_object_to(entry, out, tracker.advance)  # type: ignore[arg-type]
                faults.checkpoint("object-restored")
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
    if target.compose:
        return load_project(target.project_dir, service=target.service)
    return _project_from(target.project_dir, target.config_path, {}, content=target.snapshot_config)


def give_to_container_user(project: Project, target: RestoreTarget) -> None:
    """What the restore wrote into a Compose project's mounts goes to its container's user (compose.hand_over)."""
    assert project.compose is not None
    roots = [Path(l.root) for l in target.locations.values() if l.driver == "local"]
    roots += [getattr(project, f"{kind}_path") for kind in ("extensions", "migrations") if kind not in project.unmounted]
    if project.database.engine == "sqlite" and project.database.filename is not None:
        roots.append(project.database.filename.parent)
    project.compose.hand_over(roots)



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

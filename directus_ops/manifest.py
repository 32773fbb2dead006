"""The snapshot manifest: the one record of what a snapshot holds (what that is: ``snapshot``). A snapshot
exists only once its manifest is in the repository (it is written last). Its files and bytes are specified in
``docs/repository-format.md``.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from pydantic import BaseModel, Field

MANIFEST_FORMAT = 3  # 3: stored behind a MAC line (repository format 3); 2 read when signed by an upgrade

# Pseudo-locations of the artifacts that are not storage objects.
DATABASE = "@database"
CONFIG = "@config"
PROJECT_FILES = "@project"  # package.json, package-lock.json
EXTENSIONS = "@extensions"
MIGRATIONS = "@migrations"


class Entry(BaseModel):
    """One file in a snapshot: where it came from, and the content it had (stored under its sha256)."""

    location: str
    key: str  # path under the location's root; a non-UTF-8 name in its raw form (``paths``)
    size: int
    sha256: str
    mtime: float | None = None
    etag: str | None = None
    stored_size: int | None = None  # bytes of the object in the repository (header, compression, encryption)
    compressed: bool = False  # zstd
    encrypted: bool = False  # AES-256-GCM; stored as object "<sha256>.enc"
    symlink: bool = False  # a symbolic link: the content is the link's target, restored as the same link

    @property
    def fingerprint(self) -> str:
        return self.etag if self.etag else f"{self.mtime!r}"

    @property
    def object_name(self) -> str:
        return f"{self.sha256}.enc" if self.encrypted else self.sha256


class DatabaseInfo(BaseModel):
    engine: str  # postgresql | mysql | sqlite
    client: str  # DB_CLIENT
    name: str
    server_version: str
    dump_tool: str
    dump_format: str  # pg_dump-custom | mysql-sql | sqlite-file
    row_counts: dict[str, int]
    charset: str | None = None
    collation: str | None = None
    # Which tables the dump holds: entire, system (only ``directus_*``) or project (all but those). Manifests
    # written before scopes existed read as entire.
    scope: str = "entire"
    # Foreign keys (table, constraint) of a scoped dump that point at tables outside it; restore leaves them out.
    skipped_foreign_keys: list[tuple[str, str]] = Field(default_factory=list)


class LocationInfo(BaseModel):
    name: str
    driver: str
    root: str
    bucket: str | None = None
    objects: int = 0
    bytes: int = 0
    # directus_files rows of this location whose file was not among the listed objects (None: not checked)
    missing_files: int | None = None


class ProjectInfo(BaseModel):
    name: str
    dir: str
    host: str
    config_file: str  # file name of the config, as restored into a new project dir
    directus_version: str | None
    migrations: list[str]
    # A Docker Compose project: its config artifacts are the Compose file(s), .env and env files; the
    # Directus service it ran as. Absent in older manifests: an npm project.
    compose: bool = False
    service: str | None = None


class Stats(BaseModel):
    files: int = 0
    bytes: int = 0
    new_objects: int = 0
    bytes_written: int = 0  # bytes that went into the repository for this snapshot
    storage_bytes_written: int = 0  # of which from storage locations
    storage_objects_read: int = 0  # storage objects whose bytes were read (new or changed)
    seconds: float = 0.0


class ManifestHeader(BaseModel):
    """A manifest without its entries: what listings and reports need. Parsing skips the entry lists
    (a 10,000-file manifest reads ~10x faster)."""

    format: int = MANIFEST_FORMAT
    id: str
    time: datetime
    encrypted: bool = False  # the whole snapshot (--encrypt); the config artifact is encrypted always
    project: ProjectInfo
    database: DatabaseInfo | None  # None: a snapshot taken without its database (delete --backup-database none)
    storage: list[LocationInfo]
    stats: Stats = Field(default_factory=Stats)


class Manifest(ManifestHeader):
    artifacts: list[Entry] = Field(description="database dump, config, package files, extensions, migrations")
    objects: list[Entry] = Field(description="every object of every storage location")

    def artifact(self, location: str) -> list[Entry]:
        return [a for a in self.artifacts if a.location == location]

    @property
    def database_dump(self) -> Entry:
        return self.artifact(DATABASE)[0]

    @property
    def has_database(self) -> bool:
        return self.database is not None and bool(self.artifact(DATABASE))

    def all_entries(self) -> list[Entry]:
        return [*self.artifacts, *self.objects]


def new_snapshot_id(now: datetime | None = None) -> str:
    """Sortable by time, unique by its random tail: ``20261126T073345Z-1a2b3c``."""
    now = now or datetime.now(timezone.utc)
    return f"{now.strftime('%Y%m%dT%H%M%SZ')}-{secrets.token_hex(3)}"

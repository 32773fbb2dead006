"""A Directus project as Directus itself sees it: directory, config, database, storage, extensions,
migrations, installed version. Every procedure starts by loading one; nothing else parses the config.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .config import DirectusConfig, load_config, resolve_config_path
from .database import DatabaseSettings, applied_migrations, connect
from .errors import ConfigError, ProjectError
from .storage import StorageLocation

PACKAGE_FILES = ("package.json", "package-lock.json")


@dataclass(frozen=True)
class Project:
    root: Path
    config: DirectusConfig
    database: DatabaseSettings
    storage: tuple[StorageLocation, ...]
    extensions_path: Path
    migrations_path: Path

    @property
    def name(self) -> str:
        """The project's name: its directory's name (what an operator types to confirm a destructive step)."""
        return self.root.name

    @property
    def config_path(self) -> Path:
        assert self.config.path is not None
        return self.config.path

    def location(self, name: str) -> StorageLocation:
        for location in self.storage:
            if location.name == name:
                return location
        raise ConfigError(f"storage location '{name}' is not in STORAGE_LOCATIONS of {self.config_path}")

    @property
    def directus_version(self) -> str | None:
        return installed_directus_version(self.root)

    def applied_migrations(self) -> list[str]:
        with connect(self.database) as conn:
            return applied_migrations(conn)

    def package_files(self) -> list[Path]:
        return [self.root / name for name in PACKAGE_FILES if (self.root / name).is_file()]


def load_project(project_dir: str | Path, config_path: str | Path | None = None,
                 environ: Mapping[str, str] | None = None, *, directory_may_be_missing: bool = False,
                 config_content: bytes | None = None) -> Project:
    """Read a project directory (and its config, ``<dir>/.env`` unless ``config_path``) into a Project.

    ``directory_may_be_missing`` is for a restore target that will be created: its config is read from
    elsewhere and relative paths resolve against the directory to be. ``config_content``: the config's bytes
    (a snapshot's, not on disk yet).
    """
    root = Path(project_dir).expanduser()
    if not root.is_dir() and not (directory_may_be_missing and not root.exists()):
        raise ProjectError(f"project directory {root} does not exist; pass the directory of a Directus project (the one holding its .env)")
    root = root.resolve()
    environ = os.environ if environ is None else environ
    path = resolve_config_path(root, config_path)
    config = load_config(path, environ, config_content)
    database = DatabaseSettings.from_config(config, root)
    names = config.list("STORAGE_LOCATIONS") or ["local"]
    seen = set()
    for name in names:
        if name.lower() in seen:
            raise ConfigError(f"STORAGE_LOCATIONS in {path} names '{name}' twice; each location once")
        seen.add(name.lower())
    storage = tuple(StorageLocation.from_config(name, config, root) for name in names)
    extensions = Path(config.text("EXTENSIONS_PATH") or "./extensions").expanduser()
    extensions = extensions if extensions.is_absolute() else (root / extensions).resolve()
    explicit = "MIGRATIONS_PATH" in config.file_keys or "MIGRATIONS_PATH" in environ
    if explicit:
        migrations = Path(config.text("MIGRATIONS_PATH") or "./migrations").expanduser()
    elif (installed_directus_version(root) or "").startswith("9."):
        migrations = extensions / "migrations"  # Directus 9 kept custom migrations inside the extensions folder
    else:
        migrations = Path("./migrations")
    migrations = migrations if migrations.is_absolute() else (root / migrations).resolve()
    return Project(root=root, config=config, database=database, storage=storage, extensions_path=extensions,
                   migrations_path=migrations)


def installed_directus_version(root: Path) -> str | None:
    """The installed ``directus`` package's version, or None when node_modules is absent."""
    package = root / "node_modules" / "directus" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None

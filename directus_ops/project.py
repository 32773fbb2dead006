"""A Directus project as Directus itself sees it: directory, config, database, storage, extensions,
migrations, installed version. Every procedure starts by loading one; nothing else parses the config.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import compose
from .compose import ComposeProject
from .config import DirectusConfig, effective_config, load_config, read_config_file, resolve_config_path
from .container_database import DatabaseContainer
from .database import DatabaseSettings, applied_migrations, connect, default_port
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
    # A Docker Compose project: its Directus service (None: a project installed with npm in ``root``).
    compose: ComposeProject | None = None
    # Folders Directus reads that no mount of the Compose service holds ("extensions", "migrations" -> why).
    unmounted: Mapping[str, str] = field(default_factory=dict)

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
        if self.compose is not None:
            return self.compose.directus_version()
        return installed_directus_version(self.root)

    def config_files(self) -> list[Path]:
        """The files that hold the project's config: its config file; for a Compose project the Compose
        file(s), the ``.env`` they are interpolated from, the service's env files and its CONFIG_PATH file
        (those inside the project directory)."""
        if self.compose is None:
            return [self.config_path]
        found = [*self.compose.config_files(), *([self.config_path] if self.config_path != self.compose.file else [])]
        unique: list[Path] = []
        for path in found:
            if path.is_file() and path.is_relative_to(self.root) and path not in unique:
                unique.append(path)
        return unique

    def applied_migrations(self) -> list[str]:
        with connect(self.database) as conn:
            return applied_migrations(conn)

    def package_files(self) -> list[Path]:
        if self.compose is not None:
            return []  # the image holds Directus and its packages
        return [self.root / name for name in PACKAGE_FILES if (self.root / name).is_file()]


def load_project(project_dir: str | Path, config_path: str | Path | None = None,
                 environ: Mapping[str, str] | None = None, *, directory_may_be_missing: bool = False,
                 config_content: bytes | None = None, service: str | None = None) -> Project:
    """Read a project directory (and its config, ``<dir>/.env`` unless ``config_path``) into a Project.

    A directory with a Compose file (directus_ops.compose) is a Docker project: its config is the Directus
    service's environment (``service`` names that service when the file has several).

    ``directory_may_be_missing`` is for a restore target that will be created: its config is read from
    elsewhere and relative paths resolve against the directory to be. ``config_content``: the config's bytes
    (a snapshot's, not on disk yet).
    """
    root = Path(project_dir).expanduser()
    if not root.is_dir() and not (directory_may_be_missing and not root.exists()):
        raise ProjectError(f"project directory {root} does not exist; pass the directory of a Directus project (the one holding its .env)")
    root = root.resolve()
    if config_path is None and config_content is None and root.is_dir() and compose.find_compose_file(root):
        try:
            return load_compose_project(compose.load_compose(root, service))
        except ProjectError:
            if service is not None or installed_directus_version(root) is None:
                raise  # no Directus service, and no npm install of Directus beside the Compose file either
    elif service is not None:
        raise ConfigError(f"--service {service}: {root} holds no Compose file; --service is for Docker Compose projects")
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


def load_compose_project(deployment: ComposeProject) -> Project:
    """A Docker Compose project as Directus in its container sees it, its paths mapped to this host."""
    environment = {**compose.IMAGE_DEFAULTS, **deployment.environment()}
    raw: dict[str, object] = dict(environment)
    config_path = deployment.file
    if environment.get("CONFIG_PATH"):
        config_path = deployment.host_path(environment["CONFIG_PATH"], "CONFIG_PATH")
        file_values = read_config_file(config_path, environment)
        raw.update(file_values)
    config = effective_config(config_path, raw, set(raw), lambda value: deployment.host_path(value, "a *_FILE variable"))
    database = DatabaseSettings.from_config(config, Path(compose.WORKDIR))
    if database.engine == "sqlite":
        database = replace(database, filename=deployment.host_path(config.text("DB_FILENAME") or "", "DB_FILENAME"))
    else:
        database = reached_from_host(deployment, database)
    names = config.list("STORAGE_LOCATIONS") or ["local"]
    storage = []
    for name in names:
        location = StorageLocation.from_config(name, config, Path(compose.WORKDIR))
        if location.driver == "local":
            root_text = config.text(f"STORAGE_{name.upper()}_ROOT") or "."
            location = replace(location, root=str(deployment.host_path(root_text, f"STORAGE_{name.upper()}_ROOT")))
        storage.append(location)
    folders: dict[str, Path] = {}
    unmounted: dict[str, str] = {}
    for kind, key, default in (("extensions", "EXTENSIONS_PATH", "./extensions"),
                               ("migrations", "MIGRATIONS_PATH", "./migrations")):
        try:
            folders[kind] = deployment.host_path(config.text(key) or default, key)
        except ConfigError as exc:
            # Not mounted: the image's own folder (empty in the official image); a restore that has some to
            # write says so (snapshot_restore).
            folders[kind] = deployment.directory / ".directus-ops" / f"unmounted-{kind}"
            unmounted[kind] = exc.message
    return Project(root=deployment.directory, config=config, database=database, storage=tuple(storage),
                   extensions_path=folders["extensions"], migrations_path=folders["migrations"], compose=deployment,
                   unmounted=unmounted)


def reached_from_host(deployment: ComposeProject, database: DatabaseSettings) -> DatabaseSettings:
    """``database`` as seen from the Directus container (its DB_HOST), as this host reaches it: directly, or
    through the container of the stack's service it names."""
    if database.engine == "sqlite" or not database.host or not _names_a_service(deployment, database.host):
        return database
    return replace(database, container=DatabaseContainer(project=deployment.name,
                                                         service=_service_named(deployment, database.host),
                                                         port=database.port or default_port(database.engine)))


def _names_a_service(deployment: ComposeProject, host: str) -> bool:
    """A DB_HOST that is a service of the stack (its name, container_name or hostname) and that this host cannot
    resolve itself: reached through that service's container."""
    if not any(host == name or host in (spec.get("container_name"), spec.get("hostname"))
               for name, spec in deployment.services.items()):
        return False
    try:
        socket.getaddrinfo(host, None)
    except OSError:
        return True
    return False


def _service_named(deployment: ComposeProject, host: str) -> str:
    for name, spec in deployment.services.items():
        if host == name or host in (spec.get("container_name"), spec.get("hostname")):
            return name
    return host


def installed_directus_version(root: Path) -> str | None:
    """The installed ``directus`` package's version, or None when node_modules is absent."""
    package = root / "node_modules" / "directus" / "package.json"
    try:
        return str(json.loads(package.read_text())["version"])
    except (OSError, ValueError, KeyError):
        return None

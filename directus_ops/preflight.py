"""The checks a procedure makes before it writes anything, shared by the flows that take a backup first."""

from __future__ import annotations

from . import database as db
from .errors import ConfigError
from .project import Project, load_project
from .repository import Repository, RepositoryLocation

DATABASE_SCOPES = ("entire", "system", "project", "none")


def check_backup(project_dir: str, repo: RepositoryLocation, config_path: str | None = None,
                 database_scope: str = "entire", service: str | None = None) -> Project:
    """Everything a backup needs, checked before anything is written: the project, its database, the dump
    tool, and a writable repository. Raises the first problem as a one-line OpsError."""
    if database_scope not in DATABASE_SCOPES:
        raise ConfigError(f"database scope {database_scope!r} is not one of: {', '.join(DATABASE_SCOPES)}")
    project = load_project(project_dir, config_path, service=service)
    db.server_version(project.database)
    if database_scope == "none" or project.database.container:
        pass  # no dump, or dumped by the server's own tool in its container
    elif project.database.engine == "postgresql":
        db.pg_tool("pg_dump")
    elif project.database.engine == "mysql":
        db.mysql_tool("dump", db.server_version(project.database))
    Repository.open(repo, create=True).master_key(create=True)  # the config is always encrypted: passphrase first
    return project

"""Tasks on the project itself: load it (config rules), back up and restore its files."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import snapshot
from directus_ops.project import Project, load_project
from directus_ops.repository import Repository, RepositoryLocation

from .repository import opened_snapshot as _opened

from .retry import RETRY_DELAYS, is_transient


@task(name="load-project", cache_policy=NO_CACHE)
def load_project_task(project_dir: str, config_path: str | None = None) -> Project:
    return load_project(project_dir, config_path)


@task(name="backup-project-files", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def backup_project_files_task(project: Project, repo: RepositoryLocation, staging_dir: str,
                              encrypt: bool = False) -> snapshot.PartResult:
    return snapshot.backup_project_files(project, Repository.open(repo, create=True), Path(staging_dir), encrypt)


@task(name="restore-project-files", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def restore_project_files_task(repo: RepositoryLocation, snapshot_id: str, target: snapshot.RestoreTarget,
                               extensions_path: str, migrations_path: str) -> dict[str, int]:
    return snapshot.restore_project_files(*_opened(repo, snapshot_id), target, Path(extensions_path),
                                          Path(migrations_path))


@task(name="plan-restore", cache_policy=NO_CACHE)
def plan_restore_task(repo: RepositoryLocation, snapshot_id: str, project_dir: str, config_path: str | None,
                      database_url: str | None, replace: bool, storage_overrides: dict[str, str] | None,
                      staging_dir: str) -> snapshot.RestoreTarget:
    """Every check a restore needs, before anything is changed."""
    repository, manifest = _opened(repo, snapshot_id)
    return snapshot.plan_restore(repository, manifest, project_dir, config_path, database_url, replace,
                                 storage_overrides, Path(staging_dir))

"""Tasks on the project itself: load it (config rules), back up and restore its files."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import delete, snapshot_backup, snapshot_restore
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
                              encrypt: bool = False, extensions: bool = True) -> snapshot_backup.PartResult:
    return snapshot_backup.backup_project_files(project, Repository.open(repo, create=True), Path(staging_dir), encrypt,
                                         extensions)


@task(name="restore-project-files", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def restore_project_files_task(repo: RepositoryLocation, snapshot_id: str, target: snapshot_restore.RestoreTarget,
                               extensions_path: str, migrations_path: str) -> dict[str, int]:
    return snapshot_restore.restore_project_files(*_opened(repo, snapshot_id), target, Path(extensions_path),
                                          Path(migrations_path))


@task(name="plan-restore", cache_policy=NO_CACHE)
def plan_restore_task(repo: RepositoryLocation, snapshot_id: str, project_dir: str, config_path: str | None,
                      database_url: str | None, replace: bool, storage_overrides: dict[str, str] | None,
                      staging_dir: str, service: str | None = None) -> snapshot_restore.RestoreTarget:
    """Every check a restore needs, before anything is changed."""
    repository, manifest = _opened(repo, snapshot_id)
    return snapshot_restore.plan_restore(repository, manifest, project_dir, config_path, database_url, replace,
                                         storage_overrides, Path(staging_dir), service)


@task(name="restore-license-notice", cache_policy=NO_CACHE)
def restore_license_notice_task(repo: RepositoryLocation, snapshot_id: str,
                                target: snapshot_restore.RestoreTarget) -> str | None:
    """An activated Directus 12 license in the restored database, under another PUBLIC_URL: what becomes of it."""
    return snapshot_restore.license_notice(target, lambda: _opened(repo, snapshot_id))


@task(name="check-delete", cache_policy=NO_CACHE)
def check_delete_task(project_dir: str, config_path: str | None, confirm: str | None, repo: str | None,
                      backup_database: str, backup_files: bool, backup_extensions: bool, keep_root: bool,
                      dry_run: bool, service: str | None = None) -> delete.DeletePlan:
    """Every refusal of a delete (nothing changed), then its plan."""
    project = delete.check_delete(project_dir, config_path, confirm, repo, backup_database, backup_files,
                                  backup_extensions, keep_root, dry_run, service)
    backups = delete.describe_backups(project, repo, backup_database, backup_files, backup_extensions)
    return delete.plan_delete(project, keep_root, backups)


@task(name="plan-delete", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def plan_delete_task(project_dir: str, config_path: str | None, keep_root: bool, backups: list[str],
                     service: str | None = None) -> delete.DeletePlan:
    """The plan read again right before the drop (the exact tables and foreign keys there are now)."""
    return delete.plan_delete(load_project(project_dir, config_path, service=service), keep_root, backups)


@task(name="delete-project-root", cache_policy=NO_CACHE)
def delete_root_task(plan: delete.DeletePlan) -> list[str]:
    return delete.delete_root(plan)

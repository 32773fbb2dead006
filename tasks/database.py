"""Tasks on the project's database: dump into the repository, restore from it."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import delete, snapshot_backup, snapshot_restore
from directus_ops.project import Project
from directus_ops.repository import Repository, RepositoryLocation

from .repository import opened_snapshot as _opened

from .retry import RETRY_DELAYS, is_transient


@task(name="dump-database", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def dump_database_task(project: Project, repo: RepositoryLocation, staging_dir: str,
                       encrypt: bool = False, scope: str = "entire") -> snapshot_backup.PartResult:
    return snapshot_backup.backup_database(project, Repository.open(repo, create=True), Path(staging_dir), encrypt, scope)


@task(name="restore-database", cache_policy=NO_CACHE)
def restore_database_task(repo: RepositoryLocation, snapshot_id: str, target: snapshot_restore.RestoreTarget,
                          replace: bool, staging_dir: str) -> dict[str, int]:
    # Not retried: a half-applied restore is cleaned by the next run's --replace, not by blind repetition.
    return snapshot_restore.restore_database(*_opened(repo, snapshot_id), target, replace, Path(staging_dir))


@task(name="backed-up-row-counts", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def backed_up_row_counts_task(repo: RepositoryLocation, snapshot_id: str) -> tuple[dict[str, int], str] | None:
    """The snapshot's row counts and database scope (None: it holds no database)."""
    info = Repository.open(repo).load_header(snapshot_id).database
    return (dict(info.row_counts), info.scope) if info else None


@task(name="drop-system-tables", cache_policy=NO_CACHE)
def drop_system_tables_task(plan: delete.DeletePlan,
                            backed_up: tuple[dict[str, int], str] | None = None) -> delete.DropResult:
    # Not retried: a drop that failed half-way (MySQL commits each DDL) is looked at, not repeated blindly.
    project = plan.load()
    counts, scope = backed_up if backed_up else (None, "entire")
    return delete.drop_system_tables(project.database, plan, counts, scope)


@task(name="verify-deleted", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def verify_deleted_task(plan: delete.DeletePlan) -> delete.Verification:
    project = plan.load()
    return delete.verify_deleted(project.database, plan)

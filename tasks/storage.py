"""Tasks on storage locations: copy every object into the repository, or back out of it."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import snapshot_backup, snapshot_restore
from directus_ops.database import DatabaseSettings
from directus_ops.repository import Repository, RepositoryLocation

from .repository import opened_snapshot as _opened
from directus_ops.storage import StorageLocation

from .retry import RETRY_DELAYS, is_transient


@task(name="backup-storage-location", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient, task_run_name="backup-storage-{location.name}")
def backup_location_task(location: StorageLocation, repo: RepositoryLocation, staging_dir: str,
                         parent_snapshot: str | None, workers: int, encrypt: bool = False,
                         database: DatabaseSettings | None = None) -> snapshot_backup.PartResult:
    """``database``: the project's, whose ``directus_files`` rows are checked against the listing."""
    repository = Repository.open(repo, create=True)
    parent = repository.load_manifest(parent_snapshot) if parent_snapshot else None
    return snapshot_backup.backup_location(location, repository, Path(staging_dir), parent, workers, encrypt, database)


@task(name="restore-storage-location", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient, task_run_name="restore-storage-{name}")
def restore_location_task(repo: RepositoryLocation, snapshot_id: str, name: str, location: StorageLocation,
                          workers: int) -> dict[str, int]:
    return snapshot_restore.restore_location(*_opened(repo, snapshot_id), name, location, workers)

"""Tasks that check a repository: manifests and objects (optionally re-reading the bytes), and the
restore drill into a scratch database."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import verify
from directus_ops.database import DatabaseSettings
from directus_ops.errors import IntegrityError
from directus_ops.repository import Repository, RepositoryLocation

from .retry import RETRY_DELAYS, is_transient


@task(name="check-repository", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def check_repository_task(repo: RepositoryLocation, snapshot: str, read_data_percent: float | None,
                          workers: int) -> verify.VerifyReport:
    return verify.check(Repository.open(repo), snapshot, read_data_percent, workers)


@task(name="restore-drill", cache_policy=NO_CACHE)
def restore_drill_task(repo: RepositoryLocation, snapshot: str, scratch_database_url: str,
                       staging_dir: str) -> verify.DrillResult:
    repository = Repository.open(repo)
    manifest = repository.resolve("latest" if snapshot == "all" else snapshot)
    return verify.restore_drill(repository, manifest, DatabaseSettings.from_url(scratch_database_url), Path(staging_dir))


@task(name="verify-snapshot-content", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def verify_snapshot_content_task(repo: RepositoryLocation, snapshot_id: str, workers: int) -> int:
    """Re-read every object of one snapshot; raise IntegrityError naming the first damaged one."""
    report = verify.check(Repository.open(repo), snapshot_id, 100, workers)
    if report.problems:
        raise IntegrityError(f"{report.problems[0]}; {len(report.problems)} problems in all, nothing was changed "
                             "(restore another snapshot)")
    return report.objects_read

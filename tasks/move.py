"""Tasks of the move procedure: plan, copy the database (native or across engines), copy storage locations,
verify both sides, write and switch the config (the app's stop, start and health: tasks.app)."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import move, snapshot, storage_copy
from directus_ops.database import DatabaseSettings
from directus_ops.repository import Repository, RepositoryLocation

from .retry import RETRY_DELAYS, is_transient


@task(name="plan-move", cache_policy=NO_CACHE)
def plan_move_task(project_dir: str, config_path: str | None, to_database: str | None,
                   to_storage: dict[str, str] | None, config_out: str | None, cutover: bool, stop_command: str | None,
                   start_command: str | None, url: str | None, repo_given: bool,
                   service: str | None = None) -> move.MovePlan:
    """Every check a move needs, before anything is changed."""
    return move.plan_move(project_dir, config_path, to_database, to_storage, config_out, cutover, stop_command,
                          start_command, url, repo_given, service=service)


@task(name="copy-database-native", cache_policy=NO_CACHE)
def copy_native_task(plan: move.MovePlan, repo: RepositoryLocation, snapshot_id: str,
                     final: bool = False) -> dict[str, int]:
    # Not retried: a half-loaded target is not emptied by a blind repetition (the flow removes a failed copy).
    staging = snapshot.make_staging_dir()
    try:
        return move.copy_native(plan, Repository.open(repo), snapshot_id, staging, final=final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


@task(name="copy-database-across-engines", cache_policy=NO_CACHE)
def copy_across_task(plan: move.MovePlan, final: bool = False) -> dict:
    return move.copy_across(plan, final=final)


@task(name="remove-partial-copy", cache_policy=NO_CACHE)
def remove_partial_copy_task(plan: move.MovePlan) -> str:
    return move.remove_partial_copy(plan)


@task(name="copy-storage-location", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient, task_run_name="copy-storage-{storage_move.source.name}")
def copy_location_task(storage_move: storage_copy.StorageMove, staging_dir: str, previous_records: str | None,
                       workers: int) -> storage_copy.LocationCopy:
    return storage_copy.copy_location(storage_move, Path(staging_dir), previous_records, workers)


@task(name="compare-databases", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def compare_databases_task(source: DatabaseSettings, target: DatabaseSettings) -> list[move.TableCheck]:
    return move.compare_databases(source, target)


@task(name="check-storage-location", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient,
      task_run_name="check-storage-{storage_move.source.name}")
def check_location_task(storage_move: storage_copy.StorageMove,
                        copy: storage_copy.LocationCopy) -> storage_copy.LocationCheck:
    return storage_copy.check_location(storage_move, copy)


@task(name="rename-storage-location", cache_policy=NO_CACHE, task_run_name="rename-storage-{old}-to-{new}")
def rename_location_task(settings: DatabaseSettings, old: str, new: str) -> int:
    return move.rename_location_rows(settings, old, new)


@task(name="count-files-per-location", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def files_per_location_task(settings: DatabaseSettings) -> dict[str, int]:
    return move.files_per_location(settings)


@task(name="write-config", cache_policy=NO_CACHE)
def write_config_task(plan: move.MovePlan) -> str:
    return move.write_config(plan)


@task(name="switch-config", cache_policy=NO_CACHE)
def switch_config_task(plan: move.MovePlan) -> str:
    return move.switch_config(plan)


@task(name="put-back-config", cache_policy=NO_CACHE)
def put_back_config_task(plan: move.MovePlan, before: str) -> None:
    move.put_back_config(plan, before)

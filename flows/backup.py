"""backup: database dump + every storage location + config + extensions -> one snapshot in the repository."""

from __future__ import annotations

import shutil
import time

from prefect import flow, get_run_logger

from directus_ops import heap, locks, snapshot, snapshot_backup
from directus_ops.preflight import check_backup
from directus_ops.project import Project
from directus_ops.repository import Repository
from tasks.database import dump_database_task
from tasks.project import backup_project_files_task
from tasks.repository import repository_location, write_manifest_task
from tasks.storage import backup_location_task

from . import parameters as p
from .exclusive import exclusive
from .report import artifact_key, human_bytes, publish, publish_snapshot_table


@flow(name="backup", description="Back up a Directus project (database, storage, config, extensions) into a snapshot repository.")
@exclusive("backup")
def backup(
    project_dir: p.ProjectDir,
    repo: p.Repo,
    config_path: p.ConfigPath = None,
    service: p.ComposeService = None,
    encrypt: p.Encrypt = False,
    workers: p.Workers = snapshot.DEFAULT_WORKERS,
    lock_wait_seconds: p.LockWaitSeconds = 600.0,
    database_scope: p.DatabaseScope = "entire",
    include_storage: p.IncludeStorage = True,
    include_extensions: p.IncludeExtensions = True,
) -> str:
    """Returns the new snapshot's id. The config file is always stored encrypted; ``encrypt`` encrypts
    everything (database dump, files, manifest). A partial snapshot (what ``delete`` keeps): the database
    ``entire``, only its ``system`` (``directus_*``) or ``project`` tables, or ``none``; storage objects only
    with ``include_storage``; package files, extensions and migrations only with ``include_extensions``."""
    logger = get_run_logger()
    started_clock = time.monotonic()
    heap.freeze_long_lived()  # the imports: full collections during the backup skip them
    location = repository_location(repo)
    # The checks and the parent's lookup are plain calls, not tasks: a few milliseconds of work each, against
    # 15-30 ms of task-run bookkeeping on the server (an incremental backup's whole budget is 0.3 s); their
    # errors fail the run with the same one-line message.
    project = check_backup(project_dir, location, config_path, database_scope, service)
    snapshot_id, started = snapshot_backup.start_snapshot_id()
    logger.info("snapshot %s of project %s into %s", snapshot_id, project.name, repo.url)
    staging = snapshot.make_staging_dir()
    # A shared lock: other backups may run, prune may not (it would delete objects not yet in a manifest,
    # or those of the parent snapshot this one reuses).
    with locks.hold(Repository.open(location, create=True), "backup", exclusive=False, wait=lock_wait_seconds):
        parent = snapshot_backup.find_parent(Repository.open(location), project)
        try:
            database_part = (dump_database_task(project, location, str(staging), encrypt, database_scope)
                             if database_scope != "none" else None)
            location_parts = [backup_location_task(l, location, str(staging), parent, workers, encrypt,
                                                   project.database)
                              for l in (project.storage if include_storage else ())]
            files_part = backup_project_files_task(project, location, str(staging), encrypt, include_extensions)
            summary = write_manifest_task(project, location, snapshot_id, started, database_part, location_parts,
                                          files_part, encrypt)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("snapshot %s saved: %d files, %s, %s new", summary.id, summary.files, human_bytes(summary.bytes),
                human_bytes(summary.bytes_written))
    # The snapshot exists from here on: nothing below (reports, the listing of the other snapshots) may fail
    # the backup or keep its id from the caller; problems become warnings.
    try:
        table_warnings = publish_snapshot_table(location)  # other snapshots' damaged manifests: warnings
    except Exception as exc:  # noqa: BLE001 - a report is not the backup
        table_warnings = [f"the table of snapshots could not be published: {_first_line(exc)}"]
    for warning in table_warnings:
        logger.warning("%s", warning)
    warnings = [w for part in location_parts for w in part.warnings] + table_warnings  # the parts logged theirs
    try:
        _publish_report(project, repo.url, summary, parent, encrypt, started_clock, warnings)
    except Exception as exc:  # noqa: BLE001
        logger.warning("snapshot %s is saved, but its report could not be published: %s", summary.id, _first_line(exc))
    return summary.id


def _first_line(exc: BaseException) -> str:
    return (str(exc).splitlines() or [type(exc).__name__])[0]


def _publish_report(project: Project, repo: str, summary: snapshot_backup.SnapshotSummary, parent: str | None,
                    encrypt: bool, started_clock: float, warnings: list[str]) -> None:
    publish(
        artifact_key("backup", project.name),
        f"Backup of {project.name}: snapshot {summary.id}",
        [
            ("Snapshot", f"`{summary.id}`" + (" (encrypted)" if encrypt else "")),
            ("Repository", repo),
            ("Directus", summary.directus_version or "not installed"),
            ("Database", f"{summary.database}: {summary.tables} tables, {summary.rows} rows"),
            ("Storage objects", ", ".join(f"{k}: {v}" for k, v in summary.locations.items()) or "none"),
            ("Files in directus_files missing from storage",
             ", ".join(f"{k}: {'not checked' if v is None else v}" for k, v in summary.missing_files.items()) or "none"),
            ("Total", f"{summary.files} files, {human_bytes(summary.bytes)}"),
            ("Written to the repository", human_bytes(summary.bytes_written)),
            ("Storage objects read (new or changed)", summary.storage_objects_read),
            ("Parent snapshot", f"`{parent}`" if parent else "none (first snapshot)"),
            ("Duration", f"{time.monotonic() - started_clock:.1f} s"),
        ],
        [f"warning: {w}" for w in warnings],
    )

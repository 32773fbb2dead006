"""delete: the optional backups first (the backup flow as a subflow, then every byte of the snapshot re-read),
then every ``directus_*`` table dropped so the project's own tables stay as a plain SQL database, checked,
and the project root removed (the SQLite database file inside it kept)."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from directus_ops import snapshot
from directus_ops.delete import backups_requested
from directus_ops.results import DeleteResult
from tasks.app import stop_compose_service_task
from tasks.database import backed_up_row_counts_task, drop_system_tables_task, verify_deleted_task
from tasks.project import check_delete_task, delete_root_task, plan_delete_task
from tasks.repository import repository_location
from tasks.verify import verify_snapshot_content_task

from . import parameters as p
from .backup import backup
from .exclusive import exclusive
from .report import artifact_key, publish


@flow(name="delete", description="Delete a Directus project: optional verified backups, every directus_* table dropped (project tables kept and checked), the project root removed.")
@exclusive("delete")
def delete_project(
    project_dir: p.ProjectDir,
    confirm: p.DeleteConfirmation,
    repo: p.OptionalRepo = None,
    backup_database: p.BackupDatabase = "entire",
    backup_files: p.BackupFiles = False,
    backup_extensions: p.BackupExtensions = False,
    keep_root: p.KeepRoot = False,
    dry_run: p.DeleteDryRun = False,
    config_path: p.ConfigPath = None,
    service: p.ComposeService = None,
    workers: p.Workers = snapshot.DEFAULT_WORKERS,
) -> DeleteResult:
    """``confirm`` is required (a deployment run without it is refused before it starts) and must be the
    project's name (its directory's name): check_delete refuses a mismatch before anything is written (a dry
    run does not compare it). ``backup_database``: entire, system (only ``directus_*``), project (all but
    those) or none. check_delete is the first step and the only check (the backup subflow checks its repository
    before it writes): a refusal changes nothing."""
    logger = get_run_logger()
    started = time.monotonic()
    plan = check_delete_task(project_dir, config_path, confirm, repo.url if repo else None, backup_database,
                             backup_files, backup_extensions, keep_root, dry_run, service)
    if plan.license_notice:
        logger.warning("%s", plan.license_notice)
    if dry_run:
        publish(artifact_key("delete", plan.project_name, "plan"), f"Delete of {plan.project_name}: plan (dry run)",
                [("Plan", "<br>".join(plan.lines()))], notes=["Nothing was changed."])
        return DeleteResult(dry_run=True, plan=plan.lines(), license_notice=plan.license_notice)
    snapshot_id = None
    backed_up = None
    if backups_requested(backup_database, backup_files, backup_extensions):
        assert repo is not None  # check_delete refused a backup without a repository
        # The safety net: no verified snapshot, no delete (a failing backup raises here, nothing changed).
        snapshot_id = backup(project_dir=plan.project_dir, repo=repo, config_path=config_path, service=service,
                             workers=workers,
                             database_scope=backup_database, include_storage=backup_files,
                             include_extensions=backup_extensions)
        location = repository_location(repo)
        verify_snapshot_content_task(location, snapshot_id, workers)
        logger.info("snapshot %s verified (every object re-read)", snapshot_id)
        backed_up = backed_up_row_counts_task(location, snapshot_id)
    if plan.compose_service:  # Directus must not write meanwhile, nor bootstrap its tables again afterwards
        stop_compose_service_task(plan.project_dir, plan.compose_service)
    plan = plan_delete_task(plan.project_dir, config_path, keep_root, plan.backups, service)
    # The drop compares the tables with the snapshot's row counts first: rows written since the backup refuse it.
    dropped = drop_system_tables_task(plan, backed_up)
    # Checked before the root goes: if anything is off, the directory stays for a look (and the restore).
    verification = verify_deleted_task(plan)
    removed = delete_root_task(plan) if plan.delete_root else []
    seconds = round(time.monotonic() - started, 1)
    publish(
        artifact_key("delete", plan.project_name),
        f"Delete of {plan.project_name}",
        [
            ("Snapshot before", f"`{snapshot_id}` (verified: every object re-read)" if snapshot_id else "none (--backup-database none)"),
            ("Backups", "<br>".join(plan.backups) or "none"),
            ("Database", plan.database),
            ("Dropped tables", f"{len(dropped.dropped_tables)}: " + ", ".join(dropped.dropped_tables)),
            ("Dropped foreign keys (project → system)", "<br>".join(dropped.dropped_foreign_keys) or "none"),
            *([("Rebuilt without them (SQLite)", ", ".join(dropped.rebuilt_tables))] if dropped.rebuilt_tables else []),
            ("Verified", f"no directus_* table left; {verification.tables} project tables, {verification.rows} rows "
                         f"(counts unchanged, every table read); {verification.foreign_keys} foreign keys between "
                         "project tables in place and joining the same rows"),
            ("Project root", f"removed ({len(removed)} paths)" if plan.delete_root else
             f"kept (Compose service '{plan.compose_service}' stopped)" if plan.compose_service else "kept (--keep-root)"),
            *[("Kept", p) for p in plan.keep_paths],
            *[("Not touched", p) for p in plan.untouched],
            *([("License", plan.license_notice)] if plan.license_notice else []),
            ("Duration", f"{seconds} s"),
        ],
        notes=["Columns that pointed at users or files keep their ids: the rows they named are gone."],
    )
    logger.info("deleted project %s: %d system tables dropped, %d project tables (%d rows) verified", plan.project_name,
                len(dropped.dropped_tables), verification.tables, verification.rows)
    return DeleteResult(
        dry_run=False,
        snapshot=snapshot_id,
        dropped_tables=dropped.dropped_tables,
        dropped_foreign_keys=dropped.dropped_foreign_keys,
        rebuilt_tables=dropped.rebuilt_tables,
        project_tables=verification.tables,
        rows=verification.rows,
        root_removed=plan.delete_root,
        removed_paths=removed,
        kept_paths=plan.keep_paths,
        untouched=plan.untouched,
        license_notice=plan.license_notice,
        seconds=seconds,
        compose_service=plan.compose_service,
    )

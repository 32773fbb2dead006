"""restore: a snapshot into the same project or a new target (database, storage, project directory)."""

from __future__ import annotations

import shutil
import time

from prefect import flow, get_run_logger

from directus_ops import faults, restore_cleanup
from directus_ops import snapshot, snapshot_restore
from directus_ops.database_password import with_password
from directus_ops.results import RestoreResult
from tasks.database import restore_database_task
from tasks.project import plan_restore_task, restore_license_notice_task, restore_project_files_task
from tasks.repository import repository_location, resolve_snapshot_task
from tasks.storage import restore_location_task
from tasks.verify import verify_snapshot_content_task

from . import parameters as p
from .exclusive import exclusive
from .report import artifact_key, human_bytes, publish


@flow(name="restore", description="Restore a snapshot into the same Directus project or a new target, verifying every checksum.")
@exclusive("restore")
def restore(
    repo: p.Repo,
    project_dir: p.ProjectDir,
    snapshot_id: p.RestoreSnapshot = "latest",
    config_path: p.ConfigPath = None,
    service: p.ComposeService = None,
    database_url: p.DatabaseUrl = None,
    replace: p.Replace = False,
    storage: p.StorageTargets = None,
    workers: p.Workers = snapshot.DEFAULT_WORKERS,
) -> RestoreResult:
    logger = get_run_logger()
    started = time.monotonic()
    location = repository_location(repo)
    resolved = resolve_snapshot_task(location, snapshot_id)
    staging = snapshot.make_staging_dir()
    try:
        target = plan_restore_task(location, resolved, project_dir, config_path, with_password(database_url), replace,
                                   storage, str(staging), service)
        faults.checkpoint("restore-planned")
        logger.info("restoring snapshot %s into %s (%s)", resolved, target.project_dir, target.database.describe())
        if replace:
            # Replacing destroys what is there: every byte of the snapshot is proven readable first.
            verify_snapshot_content_task(location, resolved, workers)
        begun: list[str] = []  # parts written to, in order; the last one unfinished while it runs
        try:
            begun.append("database")
            row_counts = restore_database_task(location, resolved, target, replace, str(staging))
            storage_counts = {}
            for name, loc in target.locations.items():
                begun.append(f"storage:{name}")
                storage_counts[name] = restore_location_task(location, resolved, name, loc, workers)
            # The project's folders as the target config names them (relative to the target directory).
            project = snapshot_restore.target_project(target)
            begun.append("files")
            file_counts = restore_project_files_task(location, resolved, target, str(project.extensions_path),
                                                     str(project.migrations_path))
            if project.compose is not None:  # what the container will read and write: its user's files
                snapshot_restore.give_to_container_user(project, target)
        except BaseException as exc:  # a new target's parts removed again; the error says what is left
            restore_cleanup.raise_failed(exc, target, resolved, replace, begun, begun[:-1])
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    license_notice = restore_license_notice_task(location, resolved, target)
    if license_notice:
        logger.warning("%s", license_notice)
    result = RestoreResult(
        snapshot=resolved,
        project_dir=str(target.project_dir),
        database=target.database.describe(),
        tables=len(row_counts),
        rows=sum(row_counts.values()),
        database_restored=bool(row_counts),
        storage=storage_counts,
        files=file_counts,
        license_notice=license_notice,
        seconds=round(time.monotonic() - started, 1),
    )
    written = sum(c["bytes_written"] for c in storage_counts.values())
    publish(
        artifact_key("restore", target.project_dir.name),
        f"Restore of snapshot {resolved} into {target.project_dir.name}",
        [
            ("Snapshot", f"`{resolved}`"),
            ("Project directory", str(target.project_dir)),
            ("Database", f"{target.database.describe()}: {result.tables} tables, {result.rows} rows (row counts match the snapshot)"
             if row_counts else "not in this snapshot (taken without its database): left as it was"),
            *[(f"Storage '{n}'", f"{c['objects']} objects: {c['written']} written, {c['skipped']} already identical")
              for n, c in storage_counts.items()],
            ("Bytes written to storage", human_bytes(written)),
            ("Config written", "yes" if file_counts["config"] else "kept the existing one"),
            ("Extensions / migrations files", f"{file_counts['extensions']} / {file_counts['migrations']}"),
            *([("License", license_notice)] if license_notice else []),
            ("Duration", f"{result.seconds} s"),
        ],
        notes=["Restart Directus on the restored project: it caches the schema."],
    )
    logger.info("restored snapshot %s: %d tables, %d rows, storage %s", resolved, result.tables, result.rows,
                {n: c["objects"] for n, c in storage_counts.items()})
    return result

"""verify: are the snapshots whole and readable? Optionally re-read the bytes, and rehearse a restore of
the database into a scratch database (the restore drill; schedule it weekly)."""

from __future__ import annotations

import shutil
import time

from prefect import flow, get_run_logger

from directus_ops import snapshot as snapshots
from directus_ops.database_password import with_password
from directus_ops.errors import ConfigError, VerificationFailed
from directus_ops.results import VerifyResult
from directus_ops.verify import problems_text
from tasks.repository import repository_location
from tasks.verify import check_repository_task, restore_drill_task

from . import parameters as p
from .report import artifact_key, human_bytes, publish


@flow(name="verify", description="Check a snapshot repository (optionally re-reading the data) and run a restore drill.")
def verify(
    repo: p.Repo,
    snapshot: p.SnapshotRef = "all",
    read_data_percent: p.ReadDataPercent = None,
    restore_drill: p.RestoreDrill = False,
    scratch_database_url: p.ScratchDatabaseUrl = None,
    workers: p.Workers = snapshots.DEFAULT_WORKERS,
) -> VerifyResult:
    logger = get_run_logger()
    started = time.monotonic()
    if restore_drill and not scratch_database_url:
        raise ConfigError("the restore drill needs a scratch database: pass --scratch-database URL (it is created and dropped)")
    location = repository_location(repo)
    report = check_repository_task(location, snapshot, read_data_percent, workers)
    drill = None
    if restore_drill:
        assert scratch_database_url  # checked above
        staging = snapshots.make_staging_dir()
        try:
            drill = restore_drill_task(location, snapshot, with_password(scratch_database_url), str(staging))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    rows = [
        ("Repository", repo.url),
        ("Snapshots checked", len(report.snapshots)),
        ("Entries checked", report.entries),
        ("Objects re-read", f"{report.objects_read} ({human_bytes(report.bytes_read)})" if read_data_percent else "no (--read-data not given)"),
        ("Problems", len(report.problems)),
        ("Noted for repair by the next backup", f"{report.noted_for_repair} objects" if report.unhealthy else "none"),
    ]
    if drill:
        rows.append(("Restore drill", f"snapshot `{drill.snapshot}` into {drill.database}: {drill.tables} tables, "
                                      f"{drill.rows} rows, " + ("row counts match" if drill.ok else f"{len(drill.mismatches)} tables differ")))
    rows.append(("Duration", f"{time.monotonic() - started:.1f} s"))
    notes = problems_text(report.problems)
    if drill and not drill.ok:
        notes += [f"restore drill: table {t} has {got} rows, the manifest recorded {want}" for t, (want, got) in drill.mismatches.items()]
    publish(artifact_key("verify", repo.url.rsplit("/", 1)[-1] or "repository"), f"Verify {repo.url}", rows, notes)
    for line in notes:
        logger.error("%s", line)
    if report.problems or (drill and not drill.ok):
        count = len(report.problems) + (len(drill.mismatches) if drill else 0)
        healing = (f"; {report.noted_for_repair} missing or damaged objects are noted for the next backup to store "
                   "again from the project's files") if report.noted_for_repair else ""
        raise VerificationFailed(f"{count} problems found in {repo.url}; first: {notes[0]}{healing}", report, drill)
    logger.info("repository %s verified: %d snapshots, %d entries, %d objects re-read", repo.url, len(report.snapshots),
                report.entries, report.objects_read)
    return VerifyResult(repo=repo.url, snapshots=report.snapshots, entries=report.entries,
                        objects_read=report.objects_read, bytes_read=report.bytes_read,
                        read_data_percent=read_data_percent, drill=drill)

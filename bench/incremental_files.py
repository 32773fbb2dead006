"""Benchmark: 10,000 files of mixed sizes in local storage and in S3 (moto). The time of a second backup
after changing 1% of the files, divided by the first backup's time. Target: <= 0.05.

    .venv/bin/python bench/incremental_files.py [--files 10000] [--storage local s3]

Measured twice, each pair against its own fresh repository:
- ``ratio``: the backup procedure itself, the plain functions the flow's tasks wrap, in the flow's order
  (what the tool does per file: list, compare with the parent snapshot, read what changed, save the manifest);
- ``flow_ratio``: both backups as flow runs against a Prefect server on loopback (the path a scheduled
  deployment takes). It adds Prefect's fixed cost per run (~0.3 s of API calls, plus up to 1 s joining the
  flow's heartbeat thread), the same for 10 files or a million;
- ``native_listing_share``: the native listing of the storage (``find``; boto3 list_objects_v2) divided by the
  first backup's time: the floor of any incremental backup that must notice every change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from _files import file_bytes, make_project, timed

from harness import moto_server


def backup_procedure(project_dir: str, repo: str) -> str:
    """The backup flow's steps as plain calls, lock included (no Prefect run, task runs or artifacts)."""
    from directus_ops import locks, snapshot
    from directus_ops.repository import Repository, RepositoryLocation
    from flows.backup import check_backup

    location = RepositoryLocation(repo)
    project = check_backup(project_dir, location)
    snapshot_id, started = snapshot.start_snapshot_id()
    staging = snapshot.make_staging_dir()
    try:
        with locks.hold(Repository.open(location, create=True), "backup", exclusive=False, wait=0):
            parent_id = snapshot.find_parent(Repository.open(location), project)
            parent = Repository.open(location).load_manifest(parent_id) if parent_id else None
            database_part = snapshot.backup_database(project, Repository.open(location), staging)
            location_parts = [snapshot.backup_location(l, Repository.open(location), staging, parent)
                              for l in project.storage]
            files_part = snapshot.backup_project_files(project, Repository.open(location), staging)
            return snapshot.save_snapshot(project, Repository.open(location), snapshot_id, started, database_part,
                                          location_parts, files_part).id
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def change_files(project: Path, storage: str, keys: list[str], seed: int) -> int:
    from directus_ops.project import load_project

    changed = keys[seed:: 100]  # 1%
    location = load_project(project).storage[0]
    for index, key in enumerate(changed):
        with location.open(key, "wb") as handle:
            handle.write(file_bytes(50_000, index + seed))
    return len(changed)


def native_listing(project: Path, storage: str, s3: object | None) -> float:
    """What no incremental backup can skip: listing every object with its size and mtime/ETag, by the native
    tool (``find -printf``; boto3's list_objects_v2 pages)."""
    if storage == "local":
        return timed(subprocess.run, ["find", str(project / "uploads"), "-type", "f", "-printf", "%s %T@ %p\n"],
                     check=True, stdout=subprocess.DEVNULL)[0]
    from directus_ops.project import load_project

    location = load_project(project).storage[0]

    def list_all() -> None:
        pages = s3.client().get_paginator("list_objects_v2")  # type: ignore[attr-defined]
        for _ in pages.paginate(Bucket=location.bucket, Prefix=location.root + "/"):
            pass

    return timed(list_all)[0]


def measure(storage: str, count: int, s3: object | None) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from directus_ops.repository import Repository, RepositoryLocation
    from flows.backup import backup

    work = Path(tempfile.mkdtemp(prefix=f"bench-incremental-{storage}-"))
    try:
        project, keys = make_project(work, storage, s3, count)
        result: dict = {"storage": storage, "files": count}
        for label, run, seed in (("", backup_procedure, 0), ("flow_", None, 1)):
            repo = str(work / f"repo{seed}")
            # The procedure runs with no Prefect server alive (its background services would compete for the
            # two cores); the flows against one, started for them.
            server = prefect_test_harness(server_startup_timeout=120) if run is None else contextlib.nullcontext()
            run = run or (lambda project_dir, repo: backup(project_dir=project_dir, repo=repo))
            with server:
                first_seconds, _ = timed(run, str(project), repo)
                result["changed"] = change_files(project, storage, keys, seed)
                second_seconds, second_id = timed(run, str(project), repo)
            stats = Repository.open(RepositoryLocation(repo)).load_manifest(second_id).stats  # type: ignore[arg-type]
            assert stats.storage_objects_read == result["changed"], stats
            result.update({f"{label}first_seconds": round(first_seconds, 2),
                           f"{label}second_seconds": round(second_seconds, 2),
                           f"{label}ratio": round(second_seconds / first_seconds, 4)})
        listing = native_listing(project, storage, s3)
        result.update({"native_listing_seconds": round(listing, 2),
                       "native_listing_share": round(listing / result["first_seconds"], 4), "target": 0.05})
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--storage", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    args = parser.parse_args()
    results = []
    with moto_server() as s3:
        for storage in args.storage:
            results.append(measure(storage, args.files, s3))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

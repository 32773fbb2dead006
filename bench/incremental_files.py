"""Benchmark: 10,000 files of mixed sizes (3 GB together by default) in local storage and in S3 (moto). The
time of a second backup after changing 1% of the files, divided by the first backup's time. Targets: <= 0.05
as a flow run in this process, <= 0.10 through the CLI.

    .venv/bin/python bench/incremental_files.py [--files 10000] [--gigabytes 3] [--storage local s3]
                                                [--ways procedure flow cli] [--rounds 3]

Each way of running is measured ``--rounds`` times, each round against its own fresh repository (a full
backup, 1% of the files changed, a second backup); per-round ratios, their median and best-of are reported:
- ``ratio``: the backup procedure itself, the plain functions the flow's tasks wrap, in the flow's order
  (what the tool does per file: list, compare with the parent snapshot, read what changed, save the manifest),
  no Prefect;
- ``flow_ratio`` (target <= 0.05): both backups as flow runs in this process against a Prefect server on
  loopback (the path a scheduled deployment takes), with flow heartbeats off (Prefect 3.9's sync flow engine
  joins its heartbeat thread, which sleeps in 1 s steps: a second per run). Prefect's own cost per run is
  measured against the same server in the same run: ``empty_flow_seconds`` (a flow that does nothing) and
  ``six_task_flow_seconds`` (no-op tasks and artifacts in the backup flow's shape), heartbeats off, the floor of
  any flow run; ``empty_flow_heartbeat_seconds`` is the empty flow with Prefect's default heartbeats;
- ``cli_ratio`` (target <= 0.10): both backups through ``directus-ops backup`` as a user runs it (a subprocess,
  PREFECT_API_URL unset, a temporary PREFECT_HOME; one untimed warm-up run of the CLI first, which may start a
  local Prefect server in the background; stopped at the end with ``directus-ops server stop`` where the CLI
  has that command);
- ``native_listing_share``: the native listing of the storage (``find``; boto3 list_objects_v2) divided by the
  first backup's time: the floor of any incremental backup that must notice every change.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import tempfile
from pathlib import Path

from _cli import UserCli
from _files import change_files, make_project, sizes, timed

from harness import moto_server


def backup_procedure(project_dir: str, repo: str) -> str:
    """The backup flow's steps as plain calls, lock included (no Prefect run, task runs or artifacts)."""
    from directus_ops import heap, locks, snapshot, snapshot_backup
    from directus_ops.repository import Repository, RepositoryLocation
    from flows.backup import check_backup

    heap.freeze_long_lived()  # as the flow does
    location = RepositoryLocation(repo)
    project = check_backup(project_dir, location)
    snapshot_id, started = snapshot_backup.start_snapshot_id()
    staging = snapshot.make_staging_dir()
    try:
        with locks.hold(Repository.open(location, create=True), "backup", exclusive=False, wait=0):
            parent_id = snapshot_backup.find_parent(Repository.open(location), project)
            parent = Repository.open(location).load_manifest(parent_id) if parent_id else None
            database_part = snapshot_backup.backup_database(project, Repository.open(location), staging)
            location_parts = [snapshot_backup.backup_location(l, Repository.open(location), staging, parent)
                              for l in project.storage]
            files_part = snapshot_backup.backup_project_files(project, Repository.open(location), staging)
            return snapshot_backup.save_snapshot(project, Repository.open(location), snapshot_id, started, database_part,
                                          location_parts, files_part).id
    finally:
        shutil.rmtree(staging, ignore_errors=True)


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


def trivial_flows(runs: int = 3) -> dict:
    """Prefect's own fixed cost per run against the same server: an empty flow, and one with as many no-op
    tasks and artifacts as the backup flow (the floor under any flow run, whatever it does)."""
    from prefect import flow, task
    from prefect.artifacts import create_markdown_artifact

    @task
    def nothing() -> None:
        return None

    @flow
    def empty() -> None:
        return None

    @flow
    def shaped() -> None:  # the backup flow's shape: 6 tasks, 2 artifacts
        for _ in range(6):
            nothing()
        for index in range(2):
            create_markdown_artifact(key=f"bench-floor-{index}", markdown="x")

    empty()  # the first run of a flow registers it
    shaped()
    return {"empty_flow_seconds": round(min(timed(empty)[0] for _ in range(runs)), 3),
            "six_task_flow_seconds": round(min(timed(shaped)[0] for _ in range(runs)), 3)}


WAYS = ("procedure", "flow", "cli")
LABELS = {"procedure": "", "flow": "flow_", "cli": "cli_"}  # the procedure's keys kept their old names


def measure(storage: str, count: int, total: int, s3: object | None, rounds: int, ways: list[str],
            cli: UserCli) -> dict:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    from directus_ops.repository import Repository, RepositoryLocation
    from flows.backup import backup

    def flow_run(project_dir: str, repo: str) -> str:
        return backup(project_dir=project_dir, repo=repo)

    def cli_run(project_dir: str, repo: str) -> str:
        return cli.backup(Path(project_dir), repo)

    runs = {"procedure": backup_procedure, "flow": flow_run, "cli": cli_run}
    work = Path(tempfile.mkdtemp(prefix=f"bench-incremental-{storage}-"))
    try:
        project, keys = make_project(work, storage, s3, count, total)
        result: dict = {"storage": storage, "files": count, "bytes": sum(sizes(count, total=total)),
                        "rounds": rounds}
        seed = 0
        for way in ways:
            run, label = runs[way], LABELS[way]
            # The procedure and the CLI run with no Prefect server of ours alive (its background services would
            # compete for the two cores); the flows against one, started for them.
            with contextlib.ExitStack() as stack:
                if way == "flow":
                    stack.enter_context(prefect_test_harness(server_startup_timeout=120))
                    result["empty_flow_heartbeat_seconds"] = trivial_flows()["empty_flow_seconds"]
                    stack.enter_context(temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}))
                    result.update(trivial_flows())
                if way == "cli":
                    cli.warm_up()
                firsts, seconds = [], []
                for _ in range(rounds):  # each round: a fresh repository, a full backup, 1% changed, a second
                    repo = str(work / f"repo{seed}")
                    settle()
                    first_seconds, _ = timed(run, str(project), repo)
                    result["changed"] = change_files(project, keys, seed)
                    settle()
                    second_seconds, second_id = timed(run, str(project), repo)
                    stats = Repository.open(RepositoryLocation(repo)).load_manifest(second_id).stats
                    assert stats.storage_objects_read == result["changed"], stats
                    firsts.append(first_seconds)
                    seconds.append(second_seconds)
                    seed += 1
            ratios = [b / a for a, b in zip(firsts, seconds)]
            result.update({f"{label}first_seconds": [round(t, 2) for t in firsts],
                           f"{label}second_seconds": [round(t, 3) for t in seconds],
                           f"{label}round_ratios": [round(b / a, 4) for a, b in zip(firsts, seconds)],
                           f"{label}median_ratio": round(statistics.median(ratios), 4),
                           f"{label}best_ratio": round(min(seconds) / min(firsts), 4)})
        listing = min(native_listing(project, storage, s3) for _ in range(3))
        fastest_first = min(min(result[f"{LABELS[way]}first_seconds"]) for way in ways)
        result.update({"native_listing_seconds": round(listing, 3),
                       "native_listing_share": round(listing / fastest_first, 4),
                       "targets": {"flow_median_ratio": 0.05, "cli_median_ratio": 0.10}})
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def settle() -> None:
    """Each measured backup starts with everything written so far on disk."""
    subprocess.run(["sync"], check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--gigabytes", type=float, default=3.0, help="total size of the files")
    parser.add_argument("--storage", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--ways", nargs="+", default=list(WAYS), choices=WAYS,
                        help="procedure: the plain functions; flow: flow runs in this process; cli: directus-ops")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of backups per way of running them")
    args = parser.parse_args()
    if args.files < 100 or args.rounds < 1 or args.gigabytes <= 0:
        parser.error("--files must be at least 100 (1% of them change), --rounds and --gigabytes positive")
    results = []
    cli_work = Path(tempfile.mkdtemp(prefix="bench-incremental-cli-"))
    cli = UserCli(cli_work)
    try:
        with moto_server() as s3:
            for storage in args.storage:
                results.append(measure(storage, args.files, int(args.gigabytes * 1e9), s3, args.rounds, args.ways,
                                       cli))
    finally:
        server_note = cli.stop_server() if "cli" in args.ways else None
        shutil.rmtree(cli_work, ignore_errors=True)
    print(json.dumps(results, indent=2))
    if server_note:
        print(f"Prefect server: {server_note}")


if __name__ == "__main__":
    main()

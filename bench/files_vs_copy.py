"""Benchmark: full file-backup throughput against a raw copy of the same objects in the same run:
``cp -r`` for local storage, an fsspec copy for S3 (moto). Throughput ratio = copy time / backup time of the
storage location. Target: >= 0.9.

    .venv/bin/python bench/files_vs_copy.py [--files 10000] [--storage local s3] [--workers 8]

Measures the storage step itself (``backup_location``: list, hash, compress when it pays, store), the same
work ``cp`` does, without the database dump and Prefect's bookkeeping around it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _files import make_project, timed

from harness import moto_server


def fsspec_copy(location, destination: Path, workers: int) -> None:
    fs = location.filesystem()
    keys = [o.key for o in location.list_objects(fs)]

    def copy(key: str) -> None:
        target = destination / key
        with location.open(key, "rb", fs) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)

    destination.mkdir(parents=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy, keys))


def measure(storage: str, count: int, s3: object | None, workers: int, rounds: int = 2) -> dict:
    from directus_ops.project import load_project
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot import backup_location

    work = Path(tempfile.mkdtemp(prefix=f"bench-copy-{storage}-"))
    try:
        project, _ = make_project(work, storage, s3, count)
        location = load_project(project).storage[0]
        total = sum(o.size for o in location.list_objects())
        copy_times, backup_times = [], []
        for round_number in range(rounds):  # alternating, each from a synced disk; the best of each counts
            subprocess.run(["sync"], check=True)
            if storage == "local":
                seconds, _ = timed(subprocess.run, ["cp", "-r", str(project / "uploads"), str(work / "copy")], check=True)
                flush, _ = timed(subprocess.run, ["sync"], check=True)
                copy_times.append(seconds + flush)  # cp's bytes on disk, as the backup's flush() makes its own
            else:
                copy_times.append(timed(fsspec_copy, location, work / "copy", workers)[0])
            shutil.rmtree(work / "copy")
            subprocess.run(["sync"], check=True)
            repo = Repository.open(RepositoryLocation(str(work / f"repo-{round_number}")), create=True)
            staging = work / f"staging-{round_number}"
            staging.mkdir()

            def backup_files() -> None:
                backup_location(location, repo, staging, None, workers)
                repo.flush()

            backup_times.append(timed(backup_files)[0])
            shutil.rmtree(work / f"repo-{round_number}")
        copy_seconds, backup_seconds = min(copy_times), min(backup_times)
        return {"storage": storage, "files": count, "bytes": total, "copy_seconds": [round(t, 2) for t in copy_times],
                "backup_seconds": [round(t, 2) for t in backup_times],
                "copy_mb_per_s": round(total / copy_seconds / 1e6, 1),
                "backup_mb_per_s": round(total / backup_seconds / 1e6, 1),
                "throughput_ratio": round(copy_seconds / backup_seconds, 3), "target": 0.9}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--storage", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args()
    with moto_server() as s3:
        results = [measure(storage, args.files, s3, args.workers) for storage in args.storage]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

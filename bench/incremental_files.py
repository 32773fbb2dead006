"""Benchmark: 10,000 files of mixed sizes in local storage and in S3 (moto). The time of a second backup
after changing 1% of the files, divided by the first backup's time. Target: <= 0.05.

    .venv/bin/python bench/incremental_files.py [--files 10000] [--storage local s3]

Both backups are flow runs against a Prefect server on loopback (the path a scheduled deployment takes).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path

from _files import file_bytes, make_project, timed

from harness import moto_server


def measure(storage: str, count: int, s3: object | None) -> dict:
    from flows.backup import backup

    work = Path(tempfile.mkdtemp(prefix=f"bench-incremental-{storage}-"))
    try:
        project, keys = make_project(work, storage, s3, count)
        repo = str(work / "repo")
        first_seconds, _ = timed(backup, project_dir=str(project), repo=repo)
        changed = keys[:: 100]  # 1%
        for index, key in enumerate(changed):
            data = file_bytes(50_000, index)
            if storage == "local":
                (project / "uploads" / key).write_bytes(data)
            else:
                from directus_ops.project import load_project

                location = load_project(project).storage[0]
                with location.open(key, "wb") as handle:
                    handle.write(data)
        second_seconds, second_id = timed(backup, project_dir=str(project), repo=repo)
        from directus_ops.repository import Repository, RepositoryLocation

        stats = Repository.open(RepositoryLocation(repo)).load_manifest(second_id).stats  # type: ignore[arg-type]
        return {"storage": storage, "files": count, "changed": len(changed),
                "first_backup_seconds": round(first_seconds, 2), "second_backup_seconds": round(second_seconds, 2),
                "objects_read_second": stats.storage_objects_read, "ratio": round(second_seconds / first_seconds, 4),
                "target": 0.05}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--storage", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    results = []
    with prefect_test_harness(server_startup_timeout=120), moto_server() as s3:
        for storage in args.storage:
            results.append(measure(storage, args.files, s3))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: full file-backup throughput against a raw copy of the same objects in the same run:
``cp -r`` for local storage, an fsspec copy for S3 (moto). Throughput ratio = copy time / backup time of the
storage location. Target: >= 0.9.

    .venv/bin/python bench/files_vs_copy.py [--files 10000] [--storage local s3] [--workers 8] [--rounds 4]
                                            [--cache warm|cold]

Measures the storage step itself (``backup_location``: list, hash, compress when it pays, store, one
filesystem sync), the same work ``cp`` does, without the database dump and Prefect's bookkeeping around it.
``--cache cold`` drops the page cache before every run (root only), so both sides read from the disk, as a
backup of files nobody touched lately does; ``warm`` leaves the files in memory from their creation.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from _files import make_project, timed

from harness import moto_server


def fsspec_copy(location, destination: Path, workers: int) -> None:
    fs = location.filesystem()
    sizes = {o.key: o.size for o in location.list_objects(fs)}
    keys = list(sizes)

    def copy(key: str) -> None:
        target = destination / key
        with location.open_to_copy(key, sizes[key], fs) as source, open(target, "wb") as out:
            shutil.copyfileobj(source, out, 1024 * 1024)  # one GET per object under 8 MiB, as the backup

    destination.mkdir(parents=True)
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(copy, keys))


def cpu_seconds() -> float:
    """CPU time of this process (every thread) and of its finished children (cp, sync)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def settle(cold: bool) -> None:
    """The same starting state for each measured run: everything written so far on disk and, with ``cold``,
    the page cache dropped (root only), so both read their sources from the disk."""
    subprocess.run(["sync"], check=True)
    if cold:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


def measure(storage: str, count: int, s3: object | None, workers: int, rounds: int, cold: bool) -> dict:
    from directus_ops.project import load_project
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot import backup_location

    work = Path(tempfile.mkdtemp(prefix=f"bench-copy-{storage}-"))
    try:
        project, _ = make_project(work, storage, s3, count)
        location = load_project(project).storage[0]
        total = sum(o.size for o in location.list_objects())

        def copy(round_number: int) -> float:
            target = work / f"copy-{round_number}"
            if storage == "local":
                seconds, _ = timed(subprocess.run, ["cp", "-r", str(project / "uploads"), str(target)], check=True)
                flush, _ = timed(subprocess.run, ["sync"], check=True)
                return seconds + flush  # cp's bytes on disk, as the backup's flush() makes its own
            return timed(fsspec_copy, location, target, workers)[0]

        def backup(round_number: int) -> float:
            repo = Repository.open(RepositoryLocation(str(work / f"repo-{round_number}")), create=True)
            staging = work / f"staging-{round_number}"
            staging.mkdir()

            def backup_files() -> None:
                backup_location(location, repo, staging, None, workers)
                repo.flush()

            return timed(backup_files)[0]

        copy_times, backup_times, copy_cpu, backup_cpu = [], [], [], []
        # Alternating order over an even number of rounds, so a drift of the machine (a disk filling up,
        # other work) weighs on both sides alike. Nothing is deleted until the end: this filesystem (ext4
        # without a journal) passes over every inode freed in the last minute when it allocates a new one,
        # which made whichever run came right after a deletion slower.
        for round_number in range(rounds):
            order = (copy, backup) if round_number % 2 == 0 else (backup, copy)
            for run in order:
                settle(cold)
                before = cpu_seconds()
                (copy_times if run is copy else backup_times).append(run(round_number))
                (copy_cpu if run is copy else backup_cpu).append(cpu_seconds() - before)
        return {"storage": storage, "files": count, "bytes": total, "cache": "cold" if cold else "warm",
                "copy_seconds": [round(t, 2) for t in copy_times],
                "backup_seconds": [round(t, 2) for t in backup_times],
                "copy_mb_per_s": round(total * len(copy_times) / sum(copy_times) / 1e6, 1),
                "backup_mb_per_s": round(total * len(backup_times) / sum(backup_times) / 1e6, 1),
                # all rounds together (the order evens out), and the best run of each side
                "throughput_ratio": round(sum(copy_times) / sum(backup_times), 3),
                "best_ratio": round(min(copy_times) / min(backup_times), 3),
                "round_ratios": [round(c / b, 3) for c, b in zip(copy_times, backup_times)],
                # CPU time (user + system) of cp and sync, or of this process during the backup (all threads)
                "copy_cpu_seconds": [round(t, 2) for t in copy_cpu],
                "backup_cpu_seconds": [round(t, 2) for t in backup_cpu], "target": 0.9}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--storage", nargs="+", default=["local", "s3"], choices=["local", "s3"])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4, help="rounds, alternating which side goes first (even)")
    parser.add_argument("--cache", choices=["warm", "cold"], default="warm",
                        help="cold: drop the page cache before each run (needs root), so both read from the disk")
    args = parser.parse_args()
    with moto_server() as s3:
        results = [measure(storage, args.files, s3, args.workers, args.rounds, args.cache == "cold")
                   for storage in args.storage]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

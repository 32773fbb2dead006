"""Benchmark: ``directus-ops backup`` against ``restic backup`` of the same files, each from its own command
line into its own fresh repository, in the same run. Target: ours / restic <= 1.0 for the first backup and
for the second.

    .venv/bin/python bench/vs_restic.py [--files 10000] [--gigabytes G] [--rows local encrypt s3] [--rounds 4]
                                        [--cache warm|cold] [--json]

The project: 10,000 files of mixed sizes in local storage (half random, half text: bench/_files.py), 1.76 GB
unless ``--gigabytes`` scales them. Each round of a row: a fresh repository for each tool, a first backup by
each, 1% of the files rewritten (the same change seen by both), a second backup by each; rounds alternate which
tool goes first. Ratio = all rounds' time of ours / all rounds' time of restic. Rows:
- ``local``: both repositories local directories;
- ``encrypt``: the same with ``directus-ops backup --encrypt`` (restic always encrypts; without the option
  ours encrypts only the config file);
- ``s3``: both repositories in S3 on one moto_server on loopback (ours ``s3://BUCKET/ops``, restic's
  ``s3:http://127.0.0.1:PORT/BUCKET2``); the project's files stay local.

Fairness: both read the same files, but restic backs up only the storage folder while ours backs up the whole
project (its SQLite database dump, the config, the storage folder). Ours runs as a user runs it: the command in
a subprocess with no Prefect server configured (PREFECT_API_URL unset, a temporary PREFECT_HOME), after one
untimed warm-up run of the CLI (its first use may start a local Prefect server in the background); it makes its
repository in its first backup (key included), while ``restic init`` runs untimed before restic's. Restic comes
from Debian (installed here with apt-get when missing: root only) and keeps its cache in the work directory.
``--cache cold`` drops the page cache before every timed run (root only), so both read the files from disk;
``warm`` leaves them in memory from their creation.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _cli import UserCli
from _files import change_files, make_project, timed

from harness import S3_REGION, moto_server

from directus_ops import process

PASSPHRASE = os.environ["DIRECTUS_OPS_PASSPHRASE"]  # set by _files unless the caller chose one
ROWS = ("local", "encrypt", "s3")


def ensure_restic() -> str:
    path = shutil.which("restic")
    if path:
        return path
    if os.geteuid() != 0:
        sys.exit("vs_restic: restic is not installed; install it (apt-get install restic) or run as root")
    print("installing restic from Debian (apt-get install -y restic) ...", file=sys.stderr)
    process.run(["apt-get", "install", "-y", "restic"], env={"DEBIAN_FRONTEND": "noninteractive"}, timeout=1800)
    path = shutil.which("restic")
    if not path:
        sys.exit("vs_restic: apt-get installed no restic command")
    return path


def children_cpu() -> float:
    """CPU time (user + system) of the finished children: the command and what it waited for."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def settle(cold: bool) -> None:
    """The same starting state for every timed run: everything written so far on disk and, with ``cold``,
    the page cache dropped, so the run reads the files from the disk."""
    subprocess.run(["sync"], check=True)
    if cold:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")


class Ours:
    name = "directus-ops"

    def __init__(self, cli: UserCli, project: Path, row: str, work: Path, s3: object | None) -> None:
        self.cli, self.project, self.row, self.work, self.s3 = cli, project, row, work, s3
        self.options = ["--encrypt"] if row == "encrypt" else []
        self.env: dict[str, str] = {}
        if row == "s3":
            self.options += ["--repo-endpoint", s3.endpoint, "--repo-region", S3_REGION]  # type: ignore[attr-defined]
            self.env = {"DIRECTUS_OPS_REPO_ACCESS_KEY_ID": s3.key_id,  # type: ignore[attr-defined]
                        "DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY": s3.secret}  # type: ignore[attr-defined]

    def new_repository(self, round_number: int) -> None:
        if self.row == "s3":
            self.repo = f"s3://{self.s3.create_bucket()}/ops"  # type: ignore[attr-defined]
        else:
            self.repo = str(self.work / f"ours-{self.row}-{round_number}")

    def backup(self) -> str:
        """One backup (the timed part); returns the snapshot id."""
        return self.cli.backup(self.project, self.repo, *self.options, env=self.env)

    def files_read(self, snapshot_id: str) -> int:
        """How many storage files that backup read, from its snapshot's stats."""
        from directus_ops.repository import Repository, RepositoryLocation

        location = RepositoryLocation(self.repo)
        if self.row == "s3":
            location = RepositoryLocation(self.repo, endpoint=self.s3.endpoint, region=S3_REGION,  # type: ignore[attr-defined]
                                          key_id=self.s3.key_id, secret=self.s3.secret)  # type: ignore[attr-defined]
        return Repository.open(location).load_manifest(snapshot_id).stats.storage_objects_read


class Restic:
    name = "restic"

    def __init__(self, restic: str, project: Path, row: str, work: Path, s3: object | None) -> None:
        self.restic, self.storage, self.row, self.work, self.s3 = restic, project / "uploads", row, work, s3
        self.env = {"RESTIC_PASSWORD": PASSPHRASE, "RESTIC_CACHE_DIR": str(work / "restic-cache")}
        if row == "s3":
            self.env.update({"AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret,  # type: ignore[attr-defined]
                             "AWS_DEFAULT_REGION": S3_REGION})

    def new_repository(self, round_number: int) -> None:
        if self.row == "s3":
            self.repo = f"s3:{self.s3.endpoint}/{self.s3.create_bucket()}"  # type: ignore[attr-defined]
        else:
            self.repo = str(self.work / f"restic-{self.row}-{round_number}")
        process.run([self.restic, "-r", self.repo, "init"], env=self.env)

    def backup(self) -> str:
        """One backup (the timed part); returns what restic printed."""
        return process.run([self.restic, "-r", self.repo, "backup", "--host", "bench", str(self.storage)],
                           env=self.env)

    def files_read(self, printed: str) -> int:
        """How many files that backup read: new + changed, from its summary."""
        found = re.search(r"Files:\s+(\d+) new,\s+(\d+) changed", printed)
        assert found, printed
        return int(found[1]) + int(found[2])


def measure_row(row: str, sides: tuple[Ours, Restic], project: Path, keys: list[str], rounds: int, cold: bool,
                seeds: list[int]) -> dict:
    times: dict[str, dict[str, list[float]]] = {s.name: {"first": [], "second": [], "first_cpu": [],
                                                          "second_cpu": []} for s in sides}
    changed = 0
    for round_number in range(rounds):
        order = sides if round_number % 2 == 0 else sides[::-1]
        for side in order:
            side.new_repository(round_number)
        for which in ("first", "second"):
            if which == "second":
                seeds[0] += 1
                changed = change_files(project, keys, seeds[0] % 100)
            for side in order:
                settle(cold)
                cpu = children_cpu()
                seconds, outcome = timed(side.backup)
                times[side.name][which].append(seconds)
                times[side.name][f"{which}_cpu"].append(children_cpu() - cpu)
                read = side.files_read(outcome)
                expected = len(keys) if which == "first" else changed
                assert read == expected, f"{side.name} {row} {which} backup read {read} files, not {expected}"
    ours, restic = times["directus-ops"], times["restic"]
    result: dict = {"row": row, "rounds": rounds, "changed": changed}
    for which in ("first", "second"):
        result.update({
            f"ours_{which}_seconds": [round(t, 2) for t in ours[which]],
            f"restic_{which}_seconds": [round(t, 2) for t in restic[which]],
            f"ours_{which}_cpu_seconds": [round(t, 2) for t in ours[f"{which}_cpu"]],
            f"restic_{which}_cpu_seconds": [round(t, 2) for t in restic[f"{which}_cpu"]],
            f"{which}_ratio": round(sum(ours[which]) / sum(restic[which]), 3),
            f"{which}_round_ratios": [round(a / b, 3) for a, b in zip(ours[which], restic[which])],
        })
    result["target"] = 1.0
    return result


def span(values: list[float]) -> str:
    low, high = min(values), max(values)
    return f"{low:.2f} s" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}–{high:.2f} s"


def table(results: list[dict]) -> str:
    labels = {"local": "local", "encrypt": "local, ours --encrypt", "s3": "S3 (moto)"}
    header = ("| row | first: ours | first: restic | first ratio (per round) | second: ours | second: restic "
              "| second ratio (per round) | target |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for r in results:
        cells = [labels[r["row"]]]
        for which in ("first", "second"):
            met = "" if r[f"{which}_ratio"] <= r["target"] else " ✗"
            cells += [span(r[f"ours_{which}_seconds"]), span(r[f"restic_{which}_seconds"]),
                      f"**{r[f'{which}_ratio']}**{met} ({', '.join(map(str, r[f'{which}_round_ratios']))})"]
        cells.append(f"≤ {r['target']}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--gigabytes", type=float, default=None,
                        help="total size of the files (default: the natural mix, 1.76 GB for 10,000 files)")
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--rounds", type=int, default=4, help="rounds per row, alternating which tool goes first")
    parser.add_argument("--cache", choices=["warm", "cold"], default="warm",
                        help="cold: drop the page cache before each timed run (needs root)")
    parser.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = parser.parse_args()
    if args.files < 100 or args.rounds < 1 or (args.gigabytes is not None and args.gigabytes <= 0):
        parser.error("--files must be at least 100 (1% of them change), --rounds and --gigabytes positive")
    if args.cache == "cold" and os.geteuid() != 0:
        parser.error("--cache cold drops the page cache: run as root")
    restic = ensure_restic()
    version = process.run([restic, "version"]).strip()

    work = Path(tempfile.mkdtemp(prefix="bench-restic-"))
    cli = UserCli(work)
    results, load_before = [], os.getloadavg()
    try:
        total = int(args.gigabytes * 1e9) if args.gigabytes else None
        project, keys = make_project(work, "local", None, args.files, total)
        size = sum(p.stat().st_size for p in (project / "uploads").iterdir())
        cli.warm_up()
        seeds = [0]
        # Nothing is deleted until the end: this VM's ext4 (no journal) passes over every inode freed in the last
        # minute when it makes a new one, which slowed whichever run came right after a deletion.
        with moto_server() if "s3" in args.rows else contextlib.nullcontext() as s3:
            for row in args.rows:
                sides = (Ours(cli, project, row, work, s3), Restic(restic, project, row, work, s3))
                results.append(measure_row(row, sides, project, keys, args.rounds, args.cache == "cold", seeds))
    finally:
        server_note = cli.stop_server()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"{args.files} files, {size / 1e9:.2f} GB (half random, half text), cache {args.cache}, "
          f"{args.rounds} rounds per row; {version}; load average {load_before[0]:.1f} before, "
          f"{load_after[0]:.1f} after; {time.strftime('%Y-%m-%d %H:%M')}")
    print(table(results))
    print(f"Prefect server: {server_note}")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""Benchmark: the CLI's fixed cost (issue 14, goal 3): what ``directus-ops`` costs above the work it does.
Targets: ``directus-ops snapshots`` <= 0.5 s on a 100-snapshot repository; a procedure's CLI time minus its own
work <= 1 s, with no Prefect server configured and with one; every timed run recorded as a flow run on the server
it reported to.

    .venv/bin/python bench/cli_fixed_cost.py [--snapshots 100] [--files 200] [--rounds 5] [--json]

A SQLite project of ``--files`` files (50 kB on average, half random, half text) is backed up ``--snapshots``
times into a local repository, in this process with the plain functions the backup flow's tasks wrap (1% of the
files rewritten between snapshots, so no two are alike). Then, ``directus-ops`` run as a user runs it
(``_cli.UserCli``: a subprocess running the console script's own call, the warm runner's client, from this tree;
one untimed warm-up first, which starts the local Prefect server and the warm runner in the background):

- ``snapshots --repo R``, ``--rounds`` times (median, min, max; target <= 0.5 s), and the same with
  ``DIRECTUS_OPS_RUNNER=off`` (the command imports everything in its own process: for information). The
  listing's own work in this process (``Repository.headers``) is shown beside it.
- three procedures, each timed ``--rounds`` times three ways in rotating order: the procedure itself in this
  process (the plain functions the flow's tasks call, in the flow's order, project and repository locks
  included; no Prefect), ``directus-ops`` through the warm runner, and ``directus-ops`` with the runner off.
  Overhead = CLI time - the procedure's time in the same round (median over rounds; target <= 1 s for the
  warm runner). The procedures: ``backup`` of the unchanged project into the repository (an incremental backup:
  every object reused), ``verify --snapshot latest`` (manifest and objects present; the overhead does not grow
  with the work, and a small work keeps the difference out of the noise), and ``restore`` of the latest snapshot
  into a new, empty project directory (its own SQLite database).
  Two settings: ``local server`` (PREFECT_API_URL unset: the CLI reports to its local server, started by the
  warm-up, untimed) and ``configured server`` (``prefect server start`` on a free loopback port with its own
  PREFECT_HOME, started and stopped by the bench; PREFECT_API_URL set for the CLI only, so the project lock
  also takes the server's concurrency limit, as it does for a user with a server). Each setting starts with one
  untimed run of each command (a flow's first run on a server registers it).
- untimed: every timed CLI run must appear as a completed flow run of its flow on the server it reported to
  (``/api/flow_runs/filter``, runs started after the setting's warm-up); the count found is printed.

Everything is made in a temporary directory and removed; the configured server, the CLI's local server and its
warm runner are stopped at the end. The machine's load average is printed: figures under load are indicative.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from _cli import UserCli
from _files import change_files, make_project, timed
from incremental_files import backup_procedure
from prefect_server import prefect_server  # tests/prefect_server.py (tests/ is on the path through _files)

PROCEDURES = ("backup", "verify", "restore")
WAYS = ("procedure", "cli", "cli_runner_off")
RUNNER_OFF = {"DIRECTUS_OPS_RUNNER": "off"}
TARGETS = {"snapshots_seconds": 0.5, "overhead_seconds": 1.0}
AVERAGE_FILE_BYTES = 50_000  # a small project: the work stays small next to the fixed cost being measured


# -- the procedures as plain calls (no Prefect), in their flows' order ------------------------------------------

def as_a_new_process() -> None:
    """Forget the master keys this process opened: every command runs in a new process (a fork of the warm
    runner, which holds no key), so the passphrase's scrypt (about 0.1 s) is part of each run's own work."""
    from directus_ops import repository

    repository._opened_keys.clear()


def backup_work(project: Path, repo: str) -> str:
    from flows.exclusive import hold

    with hold(str(project), "backup", wait=0):
        return backup_procedure(str(project), repo)


def verify_work(repo: str) -> int:
    from directus_ops import verify
    from directus_ops.repository import Repository, RepositoryLocation

    report = verify.check(Repository.open(RepositoryLocation(repo)), "latest")
    assert not report.problems, report.problems
    return report.entries


def restore_work(repo: str, target: Path) -> int:
    """The restore flow's tasks as plain calls: each opens the repository and loads the manifest, as they do."""
    from directus_ops import snapshot, snapshot_restore
    from directus_ops.repository import Repository, RepositoryLocation
    from flows.exclusive import hold
    from tasks.repository import opened_snapshot

    location = RepositoryLocation(repo)
    with hold(str(target), "restore", wait=0):
        snapshot_id = Repository.open(location).resolve("latest").id
        staging = snapshot.make_staging_dir()
        try:
            plan = snapshot_restore.plan_restore(*opened_snapshot(location, snapshot_id), target, staging_dir=staging)
            rows = snapshot_restore.restore_database(*opened_snapshot(location, snapshot_id), plan, False, staging)
            for name, storage in plan.locations.items():
                snapshot_restore.restore_location(*opened_snapshot(location, snapshot_id), name, storage)
            restored = snapshot_restore.target_project(plan)
            snapshot_restore.restore_project_files(*opened_snapshot(location, snapshot_id), plan,
                                           restored.extensions_path, restored.migrations_path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return sum(rows.values())


def listing_work(repo: str) -> int:
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot_backup import SnapshotSummary

    as_a_new_process()
    return len([SnapshotSummary.of(m) for m in Repository.open(RepositoryLocation(repo)).headers()])


# -- measuring ----------------------------------------------------------------------------------------------------

def spread(seconds: list[float]) -> dict:
    return {"runs": len(seconds), "median": round(statistics.median(seconds), 3), "min": round(min(seconds), 3),
            "max": round(max(seconds), 3), "all": [round(s, 3) for s in seconds]}


def build_repository(project: Path, keys: list[str], repo: str, count: int) -> float:
    started = time.perf_counter()
    for index in range(count):
        if index:
            change_files(project, keys, index % 100)
        backup_work(project, repo)
    return time.perf_counter() - started


def measure_snapshots(cli: UserCli, repo: str, count: int, rounds: int) -> dict:
    def listed(env: dict[str, str] | None = None) -> float:
        seconds, output = timed(cli.run, "snapshots", "--repo", repo, env=env)
        rows = [line for line in output.splitlines() if line[:8].isdigit()]  # ids start with the date
        assert len(rows) == count, f"snapshots listed {len(rows)} of {count}:\n{output[-2000:]}"
        return seconds

    first = listed()  # the header cache as the backups left it
    return {"snapshots": count, "first_seconds": round(first, 3),
            "cli": spread([listed() for _ in range(rounds)]),
            "cli_runner_off": spread([listed(RUNNER_OFF) for _ in range(rounds)]),
            "work": spread([timed(listing_work, repo)[0] for _ in range(rounds)])}


class Procedures:
    """Each procedure three ways; restores go to a new directory each time (kept until the end: this VM's ext4
    passes over recently freed inodes when it makes new ones, which would slow the next run)."""

    def __init__(self, cli: UserCli, project: Path, repo: str, targets: Path) -> None:
        self.cli, self.project, self.repo, self.targets = cli, project, repo, targets
        self.restores = 0

    def _target(self) -> Path:
        self.restores += 1
        return self.targets / f"restore-{self.restores}"

    def run(self, procedure: str, way: str, env: dict[str, str]) -> None:
        if way == "procedure":
            as_a_new_process()
            {"backup": lambda: backup_work(self.project, self.repo), "verify": lambda: verify_work(self.repo),
             "restore": lambda: restore_work(self.repo, self._target())}[procedure]()
            return
        env = {**env, **(RUNNER_OFF if way == "cli_runner_off" else {})}
        if procedure == "backup":
            output = self.cli.run("backup", str(self.project), "--repo", self.repo, env=env)
            expected = "-"  # the snapshot id
        elif procedure == "verify":
            output = self.cli.run("verify", "--repo", self.repo, "--snapshot", "latest", env=env)
            expected = "ok: 1 snapshots"
        else:
            output = self.cli.run("restore", "--repo", self.repo, "--project-dir", str(self._target()), env=env)
            expected = "restored snapshot"
        assert expected in output.strip().splitlines()[-1], f"directus-ops {procedure}:\n{output[-2000:]}"


def recorded_runs(api_url: str, since: datetime) -> Counter:
    """Completed flow runs per flow name started after ``since`` on the server at ``api_url``."""
    with httpx.Client(base_url=api_url, timeout=30) as http:
        runs, offset = [], 0
        while True:
            page = http.post("/flow_runs/filter", json={
                "flow_runs": {"start_time": {"after_": since.isoformat()},
                              "state": {"type": {"any_": ["COMPLETED"]}}},
                "limit": 200, "offset": offset})
            page.raise_for_status()
            runs += page.json()
            if len(page.json()) < 200:
                break
            offset += 200
        flow_ids = sorted({run["flow_id"] for run in runs})
        flows = http.post("/flows/filter", json={"flows": {"id": {"any_": flow_ids}}}) if flow_ids else None
        names = {f["id"]: f["name"] for f in flows.json()} if flows else {}
    return Counter(names.get(run["flow_id"], "?") for run in runs)


def measure_setting(name: str, api_url: str, env: dict[str, str], procedures: Procedures, rounds: int) -> dict:
    for procedure in PROCEDURES:  # untimed: the flow's first run on this server registers it
        procedures.run(procedure, "cli", env)
    since = datetime.now(UTC)
    times: dict[str, dict[str, list[float]]] = {p: {w: [] for w in WAYS} for p in PROCEDURES}
    for index in range(rounds):
        for procedure in PROCEDURES:
            order = WAYS[index % len(WAYS):] + WAYS[:index % len(WAYS)]  # who goes first rotates
            for way in order:
                times[procedure][way].append(timed(procedures.run, procedure, way, env)[0])
    found = recorded_runs(api_url, since)
    result: dict = {"setting": name, "api_url": api_url, "procedures": {}}
    for procedure in PROCEDURES:
        t = times[procedure]
        result["procedures"][procedure] = {
            **{way: spread(t[way]) for way in WAYS},
            "overhead": spread([c - p for c, p in zip(t["cli"], t["procedure"])]),
            "overhead_runner_off": spread([c - p for c, p in zip(t["cli_runner_off"], t["procedure"])]),
            "flow_runs_expected": 2 * rounds,  # the warm runner's and the runner-off runs
            "flow_runs_found": found.get(procedure, 0),
        }
    return result


# -- report -------------------------------------------------------------------------------------------------------

def table(listing: dict, settings: list[dict]) -> str:
    lines = [f"| `directus-ops snapshots` ({listing['snapshots']} snapshots) | median | min | max | target |",
             "|---|---|---|---|---|"]
    for key, label, target in (("cli", "warm runner", f"≤ {TARGETS['snapshots_seconds']} s"),
                               ("cli_runner_off", "runner off (own process)", "information"),
                               ("work", "the listing's own work, in-process", "–")):
        s = listing[key]
        lines.append(f"| {label} | {s['median']:.3f} s | {s['min']:.3f} s | {s['max']:.3f} s | {target} |")
    lines.append(f"\nfirst listing after the backups: {listing['first_seconds']:.3f} s")
    lines += ["", ("| setting | procedure | work in-process | CLI (warm runner) | overhead median (min–max) "
                   "| CLI runner off | overhead runner off | flow runs recorded | target |"),
              "|---|---|---|---|---|---|---|---|---|"]
    for setting in settings:
        for procedure, r in setting["procedures"].items():
            o, oo = r["overhead"], r["overhead_runner_off"]
            lines.append(
                f"| {setting['setting']} | {procedure} | {r['procedure']['median']:.2f} s | {r['cli']['median']:.2f} s "
                f"| **{o['median']:.2f} s** ({o['min']:.2f}–{o['max']:.2f}) | {r['cli_runner_off']['median']:.2f} s "
                f"| {oo['median']:.2f} s ({oo['min']:.2f}–{oo['max']:.2f}) "
                f"| {r['flow_runs_found']} of {r['flow_runs_expected']} | ≤ {TARGETS['overhead_seconds']} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=100, help="snapshots in the repository that is listed")
    parser.add_argument("--files", type=int, default=200, help="files in the project's storage")
    parser.add_argument("--rounds", type=int, default=5, help="timed runs of each command, each way")
    parser.add_argument("--json", action="store_true", help="also print the measurements as JSON")
    args = parser.parse_args()
    if args.snapshots < 1 or args.files < 100 or args.rounds < 1:
        parser.error("--snapshots and --rounds must be positive, --files at least 100 (1% of them change)")

    import flows.backup  # noqa: F401 (Prefect's logging set up first, so the procedures' INFO lines can be muted)

    logging.getLogger("directus_ops").setLevel(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="bench-fixed-"))
    # This process's procedures and the CLI share the project locks' and the header cache's folders, inside work.
    os.environ["DIRECTUS_OPS_CACHE"] = str(work / "cache")
    cli = UserCli(work / "cli")
    os.environ["DIRECTUS_OPS_STATE_DIR"] = cli.env["DIRECTUS_OPS_STATE_DIR"]
    load_before = os.getloadavg()
    result: dict = {"files": args.files, "rounds": args.rounds, "date": time.strftime("%Y-%m-%d %H:%M")}
    server_note = "none started"
    try:
        project, keys = make_project(work / "source", "local", None, args.files, args.files * AVERAGE_FILE_BYTES)
        repo = str(work / "repo")
        result["build_seconds"] = round(build_repository(project, keys, repo, args.snapshots), 1)
        cli.warm_up()
        result["snapshots"] = measure_snapshots(cli, repo, args.snapshots, args.rounds)

        from directus_ops import local_server

        procedures = Procedures(cli, project, repo, work / "restored")
        procedures.targets.mkdir()
        for procedure in PROCEDURES:  # untimed: this process's imports and first opens
            procedures.run(procedure, "procedure", {})
        local = local_server.running(cli.home)
        assert local is not None, "the warm-up did not leave the CLI's local Prefect server running"
        result["settings"] = [measure_setting("local server", local.api_url, {}, procedures, args.rounds)]
        with prefect_server(work / "configured-server") as server:
            result["settings"].append(measure_setting("configured server", server.api,
                                                      {"PREFECT_API_URL": server.api}, procedures, args.rounds))
        result["snapshots_after"] = listing_work(repo)
    finally:
        if cli.warmed_up:
            server_note = cli.stop_server()
        shutil.rmtree(work, ignore_errors=True)
    load_after = os.getloadavg()
    print(f"{args.snapshots} snapshots of a SQLite project with {args.files} files "
          f"({args.files * AVERAGE_FILE_BYTES / 1e6:.0f} MB), made in {result['build_seconds']} s; {args.rounds} rounds; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after; {result['date']}")
    print(table(result["snapshots"], result["settings"]))
    print(f"Prefect servers: the configured one stopped; {server_note}")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

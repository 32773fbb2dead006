"""Benchmark: a backup through the CLI as a user runs it, against the database's own dump tool to a file, in the
same run: ``directus-ops backup`` vs ``pg_dump -Fc`` on a PostgreSQL Directus project, and vs ``mariadb-dump``
on a MariaDB one. Target: CLI / native <= 1.10 for each.

    .venv/bin/python bench/backup_vs_native.py [--gigabytes 1.0] [--rounds 3] [--engines pg,mysql] [--server-flow]

For each engine it makes a database (a user with a password, as in tests/harness.py), bootstraps Directus
10.13.4 on it (the install cached in ~/.cache/directus-ops, or DIRECTUS_OPS_TEST_CACHE), grows a generated
``readings`` collection to ``--gigabytes``, and drops everything at the end.

The CLI side is a subprocess running the ``directus-ops`` script's own call (the warm runner's client: what the
``directus-ops`` script runs) into a fresh local repository each round, with no Prefect server configured:
``PREFECT_API_URL`` and every other ``PREFECT_*`` variable unset and a fresh ``PREFECT_HOME`` under the bench's
temporary directory, stderr not a terminal (no progress bars). Its time is the whole command: interpreter
start, imports, whatever Prefect starts, the dump and the repository writes.

The native side is what a user would type for a consistent dump: ``pg_dump -Fc -f FILE``; ``mariadb-dump`` with
the options the backup uses (``--single-transaction --quick --routines --triggers --hex-blob
--no-tablespaces --default-character-set=utf8mb4``) redirected to a file. Both connect as the project's user.

Before the timed rounds, one untimed CLI backup and one untimed native dump per engine warm up: the first CLI
call under a fresh PREFECT_HOME may pay one-time costs (Prefect's database, or a local Prefect server the CLI
starts in the background and reuses), and both sides then read a database already in the page cache. Rounds
alternate which side goes first. At the end the bench stops a background Prefect server if the CLI left one
(``directus-ops server stop`` when the CLI has it; else any process still running under the bench's
PREFECT_HOME, which it names).

``--keep DIR`` keeps each engine's project and database (``DIR/kept.json`` names them) for the next run with
the same ``--keep DIR`` and ``--gigabytes``, which skips the minutes of growing it; ``--drop-kept`` drops them.

``--server-flow`` adds a third, separately labelled side: the backup flow called in this process against a
Prefect test server (``prefect_test_harness``), the path a scheduled deployment takes; not what an ad-hoc
user runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client-side telemetry

import psycopg  # noqa: E402
import pymysql  # noqa: E402

from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Database, Databases, directus_install, link_directus, write_env  # noqa: E402

from directus_ops import directus_cli  # noqa: E402

TARGET = 1.10
ENGINE_NAMES = {"pg": "PostgreSQL", "mysql": "MariaDB"}
NATIVE_NAMES = {"pg": "pg_dump -Fc", "mysql": "mariadb-dump"}
ROW_BYTES = 245  # what one generated row takes in either database, indexes included (measured)
MARIADB_DUMP_OPTIONS = ["--single-transaction", "--quick", "--routines", "--triggers", "--hex-blob", "--no-tablespaces",
                        "--default-character-set=utf8mb4"]


# -- the data -----------------------------------------------------------------------------------------------------
def batch_rows(gigabytes: float) -> int:
    """Rows per INSERT: about a quarter of the target (so a small target is not overshot), 500,000 at most."""
    return max(10_000, min(500_000, int(gigabytes * 1024 ** 3 / ROW_BYTES / 4)))


def grow_postgresql(database: Database, gigabytes: float) -> int:
    """A Directus-style collection of generated rows until the database holds ``gigabytes``."""
    with psycopg.connect(f"postgresql://{database.user}:{database.password}@127.0.0.1:5432/{database.name}",
                         autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (id bigserial PRIMARY KEY, sensor uuid NOT NULL, taken_at timestamptz NOT NULL,"
                     " value numeric(12,4), note text, payload jsonb)")
        while True:
            conn.execute(
                "INSERT INTO readings (sensor, taken_at, value, note, payload) SELECT "
                "md5(g::text)::uuid, now() - (g || ' seconds')::interval, (g %% 100000) / 7.0, "
                "repeat(md5(random()::text), 2), jsonb_build_object('g', g, 'tag', md5(g::text)) "
                "FROM generate_series(1, %s) g", (batch_rows(gigabytes),))
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            if size >= gigabytes * 1024 ** 3:
                conn.execute("VACUUM ANALYZE readings")
                return int(size)


def grow_mariadb(database: Database, gigabytes: float) -> int:
    """The same collection on MariaDB (uuid as char(36), as Directus stores it there), rows from the SEQUENCE
    engine's ``seq_1_to_N`` table."""
    conn = pymysql.connect(host="127.0.0.1", port=3306, user=database.user, password=database.password,
                           database=database.name, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE readings (id bigint AUTO_INCREMENT PRIMARY KEY, sensor char(36) NOT NULL,"
                    " taken_at datetime NOT NULL, value decimal(12,4), note text, payload json)"
                    " CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        while True:
            cur.execute(
                "INSERT INTO readings (sensor, taken_at, value, note, payload) SELECT "
                "CONCAT_WS('-', SUBSTR(h, 1, 8), SUBSTR(h, 9, 4), SUBSTR(h, 13, 4), SUBSTR(h, 17, 4), SUBSTR(h, 21, 12)), "
                "NOW() - INTERVAL seq SECOND, MOD(seq, 100000) / 7.0, REPEAT(MD5(RAND()), 2), "
                "JSON_OBJECT('g', seq, 'tag', h) "
                f"FROM (SELECT seq, MD5(seq) AS h FROM seq_1_to_{batch_rows(gigabytes)}) generated")
            cur.execute("ANALYZE TABLE readings")  # information_schema's sizes are InnoDB's estimates until then
            cur.fetchall()
            cur.execute("SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = %s",
                        (database.name,))
            size = int(cur.fetchone()[0])
            if size >= gigabytes * 1024 ** 3:
                return size


def kept_project(keep: Path, databases: Databases, engine: str, gigabytes: float) -> tuple[Path, Database, int]:
    """The project a previous run with ``--keep`` left for this engine and size, else a new one, recorded."""
    record = keep / "kept.json"
    kept = json.loads(record.read_text()) if record.exists() else {}
    entry = kept.get(f"{engine}-{gigabytes}")
    if entry and Path(entry["project"]).is_dir():
        database = Database(engine, entry["name"], entry["user"], entry["password"])
        with contextlib.suppress(Exception):
            if engine == "mysql":
                pymysql.connect(host="127.0.0.1", port=3306, user=database.user, password=database.password,
                                database=database.name).close()
            else:
                psycopg.connect(database.url).close()
            return Path(entry["project"]), database, entry["bytes"]
    project, database, size = make_project(keep, databases, engine, gigabytes)
    databases.created.remove(database)  # outlives this run
    kept[f"{engine}-{gigabytes}"] = {"engine": engine, "project": str(project), "name": database.name, "user": database.user,
                                     "password": database.password, "bytes": size}
    record.touch(mode=0o600)
    record.write_text(json.dumps(kept, indent=2))
    return project, database, size


def drop_kept(keep: Path) -> None:
    record = keep / "kept.json"
    databases = Databases(keep)
    for entry in (json.loads(record.read_text()) if record.exists() else {}).values():
        databases.created.append(Database(entry["engine"], entry["name"], entry["user"], entry["password"]))
    databases.drop_all()
    shutil.rmtree(keep, ignore_errors=True)


def make_project(work: Path, databases: Databases, engine: str, gigabytes: float) -> tuple[Path, Database, int]:
    database = databases.create(engine)
    project = work / f"project-{engine}-{database.name}"
    link_directus(project, directus_install())
    write_env(project / ".env", {**database.env(), "KEY": f"bench-key-{secrets.token_hex(4)}",
                                 "SECRET": f"bench-secret-{secrets.token_hex(8)}", "TELEMETRY": "false"})
    directus_cli.bootstrap(project, ADMIN_EMAIL, ADMIN_PASSWORD)
    size = grow_postgresql(database, gigabytes) if engine == "pg" else grow_mariadb(database, gigabytes)
    return project, database, size


# -- the sides ----------------------------------------------------------------------------------------------------
def native_dump(engine: str, database: Database, target: Path, work: Path) -> None:
    if engine == "pg":
        env = {**os.environ, "PGHOST": "127.0.0.1", "PGPORT": "5432", "PGUSER": database.user or "",
               "PGPASSWORD": database.password or "", "PGDATABASE": database.name}
        subprocess.run(["pg_dump", "-Fc", "-f", str(target)], env=env, check=True)
        return
    defaults = work / "mariadb-client.cnf"  # the password off the command line, as a user's ~/.my.cnf would hold it
    if not defaults.exists():
        defaults.touch(mode=0o600)
        defaults.write_text(f"[client]\nhost=127.0.0.1\nport=3306\nuser={database.user}\npassword={database.password}\n")
    tool = shutil.which("mariadb-dump") or "mysqldump"
    with target.open("wb") as out:
        subprocess.run([tool, f"--defaults-extra-file={defaults}", *MARIADB_DUMP_OPTIONS, database.name],
                       stdout=out, check=True)


def cli_env(work: Path) -> dict[str, str]:
    """A user's shell with no Prefect configured: no PREFECT_* variable, a PREFECT_HOME of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PREFECT_HOME=str(work / "prefect-home"), DIRECTUS_OPS_STATE_DIR=str(work / "state"),
               DIRECTUS_OPS_PASSPHRASE=PASSPHRASE,
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    return env


PASSPHRASE = f"bench-passphrase-{secrets.token_hex(8)}"


def cli(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", "from directus_ops.runner import main; main()", *args], env=env, cwd=ROOT, text=True,
                          stdin=subprocess.DEVNULL, capture_output=True)
    if check and done.returncode != 0:
        raise SystemExit(f"directus-ops {' '.join(args[:1])} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done


def wait_for_runner(env: dict[str, str]) -> None:
    """The first command ran in its own process and started the warm runner: wait until it answers, as it does
    for every command of a user after the first."""
    from directus_ops import runner

    path = runner.socket_path(Path(env["DIRECTUS_OPS_STATE_DIR"]))
    deadline = time.monotonic() + 120
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def cli_backup(env: dict[str, str], project: Path, repo: Path) -> None:
    cli(env, "backup", str(project), "--repo", str(repo))


def timed(function, *args) -> float:
    started = time.perf_counter()
    function(*args)
    return time.perf_counter() - started


def tree_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


# -- a background Prefect server the CLI may have left ------------------------------------------------------------
def processes_under(home: Path) -> list[tuple[int, str]]:
    """Processes still running with PREFECT_HOME=home in their environment: started by this bench's CLI runs."""
    marker = f"PREFECT_HOME={home}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append((int(entry.name), (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()))
    return found


def stop_background_server(env: dict[str, str]) -> list[str]:
    """Stop what the CLI left running; return notes for the report."""
    notes = []
    from directus_ops import runner

    runner.stop_all(Path(env["DIRECTUS_OPS_STATE_DIR"]))
    stop = cli(env, "server", "stop", check=False)
    if stop.returncode == 0:
        notes.append(f"directus-ops server stop: {(stop.stdout or stop.stderr).strip() or 'ok'}")
    time.sleep(1)  # the CLI's process watchdog (a sh) ends a moment after the CLI itself
    for pid, command in processes_under(Path(env["PREFECT_HOME"])):
        notes.append(f"left running by the CLI, stopped by the bench: pid {pid}: {command[:160]}")
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 15)
    return notes


def quiet_prefect_console() -> None:
    """Prefect's console lines for the in-process flow runs off the bench's output (they still go to the API,
    as the CLI's do without --verbose)."""
    import logging

    from prefect.logging.handlers import PrefectConsoleHandler

    for logger in [logging.getLogger(), *[l for l in logging.root.manager.loggerDict.values() if isinstance(l, logging.Logger)]]:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(logging.CRITICAL)


# -- the run ------------------------------------------------------------------------------------------------------
@dataclass
class Round:
    first: str
    seconds: dict[str, float] = field(default_factory=dict)

    def ratio(self, side: str) -> float:
        return self.seconds[side] / self.seconds["native"]


def run_engine(engine: str, project: Path, database: Database, work: Path, env: dict[str, str], rounds: int,
               server_flow: object | None) -> tuple[list[Round], dict[str, int]]:
    sides = ["native", "cli"] + (["flow"] if server_flow else [])
    dump_file = work / f"native-{engine}.dump"

    def side_run(side: str, label: str) -> tuple[float, int]:
        target = dump_file if side == "native" else work / f"repo-{engine}-{side}-{label}"
        if side == "native":
            seconds = timed(native_dump, engine, database, target, work)
        elif side == "cli":
            seconds = timed(cli_backup, env, project, target)
        else:
            seconds = timed(lambda: server_flow(project_dir=str(project), repo=str(target)))
        size = tree_bytes(target)
        remove(target)
        return seconds, size

    sizes: dict[str, int] = {}
    warmup = {}
    for side in sides:  # warm-up, untimed: one-time starts, and the database into the page cache
        warmup[side], sizes[side] = side_run(side, "warmup")
    if "cli" in sides:
        wait_for_runner(env)
    print(f"  {ENGINE_NAMES[engine]} warm-up (not counted): " + ", ".join(
        f"{side} {seconds:.2f} s" for side, seconds in warmup.items()), file=sys.stderr, flush=True)
    results = []
    for number in range(rounds):
        shift = number % len(sides)
        order = sides[shift:] + sides[:shift]
        result = Round(first=order[0])
        for side in order:
            result.seconds[side], sizes[side] = side_run(side, str(number))
        results.append(result)
        print(f"  {ENGINE_NAMES[engine]} round {number + 1}: " + ", ".join(
            f"{side} {result.seconds[side]:.2f} s" for side in sides), file=sys.stderr, flush=True)
    return results, sizes


def report(engine: str, results: list[Round], sizes: dict[str, int], database_bytes: int) -> dict[str, object]:
    sides = [s for s in ("cli", "flow") if s in results[0].seconds]
    labels = {"native": NATIVE_NAMES[engine], "cli": "directus-ops backup (CLI)",
              "flow": "flow in process, Prefect test server"}
    print(f"\n{ENGINE_NAMES[engine]}: database {database_bytes / 1024 ** 3:.2f} GiB; "
          f"{labels['native']} file {sizes['native'] / 1024 ** 2:.0f} MiB, "
          + ", ".join(f"{labels[s]} repository {sizes[s] / 1024 ** 2:.0f} MiB" for s in sides))
    header = f"{'round':>5}  {'first':<6}  {labels['native'] + ' s':>16}" + "".join(
        f"  {s + ' s':>8}  {s + ' ratio':>10}" for s in sides)
    print(header)
    print("-" * len(header))
    for number, result in enumerate(results, 1):
        print(f"{number:>5}  {result.first:<6}  {result.seconds['native']:>16.2f}" + "".join(
            f"  {result.seconds[s]:>8.2f}  {result.ratio(s):>10.3f}" for s in sides))
    summary: dict[str, object] = {"engine": engine, "database_bytes": database_bytes, "sizes": sizes,
                                  "rounds": [{"first": r.first, **{k: round(v, 3) for k, v in r.seconds.items()}}
                                             for r in results]}
    best_native = min(r.seconds["native"] for r in results)
    for side in sides:
        median = statistics.median(r.ratio(side) for r in results)
        best = min(r.seconds[side] for r in results) / best_native
        verdict = "met" if median <= TARGET else "NOT met"
        print(f"{labels[side]}: median ratio {median:.3f}, ratio of best times {best:.3f} "
              f"(target <= {TARGET:.2f}: {verdict if side == 'cli' else 'not a target'})")
        summary[f"{side}_ratio_median"] = round(median, 3)
        summary[f"{side}_ratio_best"] = round(best, 3)
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0, help="size each database is grown to")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per engine; the first side alternates")
    parser.add_argument("--engines", default="pg,mysql", help="comma list of pg, mysql (MariaDB)")
    parser.add_argument("--server-flow", action="store_true",
                        help="also time the backup flow in this process against a Prefect test server (labelled apart)")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--keep", type=Path, help="keep the projects and databases in this directory for the next run "
                        "with the same --keep and --gigabytes (reused if there)")
    parser.add_argument("--drop-kept", action="store_true", help="with --keep: drop what it holds, and stop")
    args = parser.parse_args()
    if args.drop_kept:
        if not args.keep:
            parser.error("--drop-kept needs --keep DIR")
        drop_kept(args.keep)
        return
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINE_NAMES for e in engines) or args.rounds < 1 or args.gigabytes <= 0:
        parser.error("--engines takes pg and/or mysql; --rounds >= 1; --gigabytes > 0")

    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    databases = Databases(work)
    env = cli_env(work)
    notes: list[str] = []
    summaries = []
    try:
        projects = {}
        for engine in engines:
            print(f"making the {ENGINE_NAMES[engine]} project ({args.gigabytes} GiB)", file=sys.stderr, flush=True)
            if args.keep:
                args.keep.mkdir(parents=True, exist_ok=True)
                projects[engine] = kept_project(args.keep.resolve(), databases, engine, args.gigabytes)
            else:
                projects[engine] = make_project(work, databases, engine, args.gigabytes)
        with contextlib.ExitStack() as stack:
            server_flow = None
            if args.server_flow:
                os.environ["PREFECT_HOME"] = str(work / "prefect-home-flow")  # apart from the CLI's
                os.environ["DIRECTUS_OPS_PASSPHRASE"] = PASSPHRASE
                os.environ["DIRECTUS_OPS_STATE_DIR"] = str(work / "state-flow")
                from prefect.testing.utilities import prefect_test_harness

                from flows.backup import backup as server_flow

                stack.enter_context(prefect_test_harness(server_startup_timeout=120))
                quiet_prefect_console()
            try:
                for engine in engines:
                    project, database, size = projects[engine]
                    results, sizes = run_engine(engine, project, database, work, env, args.rounds, server_flow)
                    summaries.append(report(engine, results, sizes, size))
            finally:
                notes = stop_background_server(env)
        for note in notes:
            print(f"note: {note}")
        if args.json:
            print(json.dumps({"target": TARGET, "engines": summaries, "notes": notes}, indent=2))
    finally:
        databases.drop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

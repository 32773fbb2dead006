"""Benchmark: the backup flow's wall time on a >= 1 GB PostgreSQL Directus database, divided by a raw
``pg_dump -Fc`` of the same database to a file, both measured in the same run. Target: <= 1.10.

    .venv/bin/python bench/backup_vs_native.py [--gigabytes 1.0] [--keep]

Creates its own database (a bootstrapped Directus 10.13.4 plus a generated ``readings`` collection), a
Prefect server on loopback (the path a scheduled deployment takes), runs both, prints the figures as JSON,
and drops everything it made.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

import psycopg  # noqa: E402

from harness import ADMIN_EMAIL, ADMIN_PASSWORD, PG_ADMIN, directus_install, link_directus, write_env  # noqa: E402

from directus_ops import directus_cli  # noqa: E402


def generate(database: str, gigabytes: float) -> int:
    """A Directus-style collection of generated rows until the database holds ``gigabytes``."""
    url = f"postgresql://postgres@127.0.0.1:5432/{database}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE readings (id bigserial PRIMARY KEY, sensor uuid NOT NULL, taken_at timestamptz NOT NULL,"
                     " value numeric(12,4), note text, payload jsonb)")
        batch = 500_000
        while True:
            conn.execute(
                "INSERT INTO readings (sensor, taken_at, value, note, payload) SELECT "
                "md5(g::text)::uuid, now() - (g || ' seconds')::interval, (g %% 100000) / 7.0, "
                "repeat(md5(random()::text), 2), jsonb_build_object('g', g, 'tag', md5(g::text)) "
                "FROM generate_series(1, %s) g", (batch,))
            size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
            if size >= gigabytes * 1024 ** 3:
                conn.execute("VACUUM ANALYZE readings")
                return int(size)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gigabytes", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2, help="alternating native/flow runs; the best of each counts")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench-backup-"))
    name = f"bench_{secrets.token_hex(3)}"
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        project = work / "project"
        link_directus(project, directus_install())
        write_env(project / ".env", {"DB_CLIENT": "pg", "DB_HOST": "127.0.0.1", "DB_PORT": "5432", "DB_DATABASE": name,
                                     "DB_USER": "postgres", "KEY": "bench-key", "SECRET": "bench-secret",
                                     "TELEMETRY": "false"})
        directus_cli.bootstrap(project, ADMIN_EMAIL, ADMIN_PASSWORD)
        size = generate(name, args.gigabytes)

        from prefect.testing.utilities import prefect_test_harness

        from flows.backup import backup

        native_times, flow_times, dump_sizes = [], [], []
        with prefect_test_harness(server_startup_timeout=120):
            for round_number in range(args.rounds):
                dump_file = work / "native.dump"
                env = {**os.environ, "PGHOST": "127.0.0.1", "PGUSER": "postgres", "PGDATABASE": name}
                seconds, _ = timed(subprocess.run, ["pg_dump", "-Fc", "-f", str(dump_file)], env=env, check=True)
                native_times.append(seconds)
                dump_sizes.append(dump_file.stat().st_size)
                dump_file.unlink()
                repo = work / f"repo-{round_number}"
                seconds, _ = timed(backup, project_dir=str(project), repo=str(repo))
                flow_times.append(seconds)
                shutil.rmtree(repo)
        native, flow = min(native_times), min(flow_times)
        print(json.dumps({
            "database_bytes": size,
            "dump_bytes": dump_sizes[0],
            "native_pg_dump_seconds": [round(t, 2) for t in native_times],
            "backup_flow_seconds": [round(t, 2) for t in flow_times],
            "ratio_best": round(flow / native, 3),
            "target": 1.10,
        }, indent=2))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

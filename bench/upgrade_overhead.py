"""Benchmark: wall time of the upgrade flow against the bare ``npm install --save-exact directus@X`` +
``directus database migrate:latest`` it wraps, in the same run. The difference is the preflight, the backup
snapshot, the health check on a started Directus, and Prefect's bookkeeping.

    .venv/bin/python bench/upgrade_overhead.py [--from 11.17.4] [--to 12.4.0] [--engine pg] [--rows 20000]

The default pair is the test suite's (harness.upgrade_pair(): DIRECTUS_OPS_TEST_DIRECTUS, else 12.4.0, from the
previous major line's release). A pair that changes Node (10.13.4 -> 11.17.4: 20 -> 22) gets the target's Node
from the npm registry on both paths.

Each measurement gets its own identical project (own node_modules copy, own database seeded with
``--rows`` rows), so every run upgrades from the same state; the bare path runs before and after the flow
(the npm cache is warm for both) and the faster of the two counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client-side telemetry
os.environ.setdefault("DIRECTUS_OPS_PASSPHRASE", "benchmark passphrase")

import sqlalchemy as sa  # noqa: E402

from harness import Databases, directus_install, make_project, upgrade_pair  # noqa: E402


def project(work: Path, databases: Databases, version: str, engine: str, rows: int) -> Path:
    from directus_ops.database import open_engine
    from directus_ops.project import load_project

    made = make_project(work, directus_install(version), databases.create(engine), own_node_modules=True)
    db = open_engine(load_project(made.dir).database)
    with db.begin() as conn:
        conn.execute(sa.text("CREATE TABLE articles (id INTEGER PRIMARY KEY, title VARCHAR(200), body TEXT)"))
        conn.execute(sa.text("INSERT INTO articles VALUES (:i, :t, :b)"),
                     [{"i": i, "t": f"Article {i}", "b": "lorem ipsum " * 40} for i in range(rows)])
    db.dispose()
    return made.dir


def bare(project_dir: Path, version: str) -> float:
    from directus_ops import directus_cli

    started = time.perf_counter()
    directus_cli.npm_install_directus(project_dir, version)
    directus_cli.migrate(project_dir, "migrate:latest", project_dir / ".env")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_from, default_to = upgrade_pair()
    parser.add_argument("--from", dest="from_version", default=default_from)
    parser.add_argument("--to", default=default_to)
    parser.add_argument("--engine", default="pg", choices=["pg", "mysql", "sqlite3"])
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    from prefect.testing.utilities import prefect_test_harness

    work = Path(tempfile.mkdtemp(prefix="bench-upgrade-"))
    databases = Databases(work)
    try:
        projects = [project(work / name, databases, args.from_version, args.engine, args.rows)
                    for name in ("bare1", "flow", "bare2")]
        bare_times = [bare(projects[0], args.to)]
        with prefect_test_harness(server_startup_timeout=120):
            from flows.upgrade import upgrade_directus

            started = time.perf_counter()
            # install_node: the bare path fetches the target's Node when it needs one too (npm_install_directus).
            upgrade_directus(project_dir=str(projects[1]), repo=str(work / "repo"), to=args.to, install_node=True,
                             accept_license_change=True)
            flow_seconds = time.perf_counter() - started
        bare_times.append(bare(projects[2], args.to))
        best = min(bare_times)
        print(json.dumps({"engine": args.engine, "rows": args.rows, "from": args.from_version, "to": args.to,
                          "bare_seconds": [round(t, 1) for t in bare_times], "flow_seconds": round(flow_seconds, 1),
                          "overhead_seconds": round(flow_seconds - best, 1),
                          "ratio": round(flow_seconds / best, 2)}, indent=2))
    finally:
        databases.drop_all()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

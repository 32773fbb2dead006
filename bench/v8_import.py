"""Benchmark: the v8 migration's items step (database mode) on a v8 collection of 200,000 rows, against a raw
copy of the same table (``mariadb --batch --quick -e 'SELECT …' | psql -c 'COPY … FROM STDIN'``) into a
same-shaped PostgreSQL table, in the same run. Target: the items step within 3x of the raw copy's time.
With ``--target mysql`` the Directus project is on MariaDB and the raw copy is ``mariadb-dump v8 articles |
mariadb scratch`` (the table as it is, its rows in the dump's multi-row INSERTs).

    .venv/bin/python bench/v8_import.py [--rows 200000] [--target pg|mysql] [--mode api]

Loads the shared v8.8.1 sample (../shared/fixtures/v8) into a scratch MariaDB database, generates the rows in
``articles`` on the server (INSERT … SELECT over a numbers CTE: owner, created_on, status, a CSV field, a JSON
field, m2o fields to authors and to files, some of them dangling), bootstraps a scratch Directus 10.13.4 on
PostgreSQL (or MariaDB), runs the whole migration (timing the items step on its own), then the raw copy. Prints
the figures as JSON; drops every database and directory it made. ``--mode api``: the same through the running
target's REST API (directus_ops/v8/api_target.py, an admin's static token, 1mb bodies); the re-run and raw copy
are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import psycopg  # noqa: E402
import pymysql  # noqa: E402

from harness import Databases, directus_install, make_project  # noqa: E402

from directus_ops.database import DatabaseSettings  # noqa: E402
from directus_ops.dumps import restore  # noqa: E402
from directus_ops import directus_cli  # noqa: E402
from directus_ops.project import load_project  # noqa: E402
from directus_ops.v8 import api_target, migrate  # noqa: E402
from directus_ops.v8.target import DatabaseTarget  # noqa: E402
from directus_ops.v8.target_writer import TargetWriter  # noqa: E402

FIXTURES = Path("/work/shared/fixtures/v8") if Path("/work/shared/fixtures/v8").exists() \
    else ROOT.parent / "shared" / "fixtures" / "v8"
FIRST_ID = 1000  # above the sample's own articles

# Ten digits cross-joined six times: a million numbers on the server, no client round trips.
GENERATE = """
INSERT INTO articles (id, status, sort, created_by, created_on, modified_by, modified_on, title, slug, summary,
                      body, author, cover, published_on, featured, reading_time, rating, category, keywords, seo)
WITH RECURSIVE digits (d) AS (SELECT 0 UNION ALL SELECT d + 1 FROM digits WHERE d < 9),
numbers (n) AS (
  SELECT a.d + 10 * b.d + 100 * c.d + 1000 * e.d + 10000 * f.d + 100000 * g.d
  FROM digits a, digits b, digits c, digits e, digits f, digits g)
SELECT {first} + n, ELT(1 + n % 3, 'published', 'draft', 'deleted'), n,
       IF(n % 500 = 7, 9999, {user_min} + n % {users}),          -- owner; every 500th points at a deleted user
       TIMESTAMP('2019-01-01 00:00:00') + INTERVAL n MINUTE,
       IF(n % 4 = 0, NULL, {user_min} + (n + 1) % {users}),
       TIMESTAMP('2019-06-01 00:00:00') + INTERVAL n MINUTE,
       CONCAT('Generated article ', n, ' — Ünïcode ✓'), CONCAT('generated-article-', n),
       CONCAT('Summary of article ', n, '\ttab\nline'),
       CONCAT('<h2>Article ', n, '</h2><p>', REPEAT('Body text, "quoted" \\\\ backslash. ', 1 + n % 8), '</p>'),
       IF(n % 700 = 3, 99999, {author_min} + n % {authors}),      -- m2o to authors; some dangling
       IF(n % 5 = 0, NULL, IF(n % 900 = 11, 99999, {file_min} + n % {files})),  -- m2o to files
       IF(n % 3 = 1, NULL, TIMESTAMP('2020-01-01 12:00:00') + INTERVAL n SECOND),
       n % 2, n % 30, (n % 50) / 10, ELT(1 + n % 4, 'news', 'travel', 'culture', 'tech'),
       IF(n % 6 = 0, NULL, CONCAT_WS(',', 'tag', CONCAT('t', n % 17), IF(n % 2 = 0, 'even', NULL))),
       IF(n % 9 = 0, NULL, JSON_OBJECT('meta_title', CONCAT('Article ', n), 'no_index', n % 2 = 0, 'n', n))
FROM numbers WHERE n < {rows}
"""

RAW_TABLE = """CREATE TABLE articles_raw (
  id integer PRIMARY KEY, status varchar(20) NOT NULL, sort integer, created_by integer, created_on timestamp,
  modified_by integer, modified_on timestamp, title varchar(255) NOT NULL, slug varchar(255) UNIQUE, summary text,
  body text, author integer, cover integer, published_on timestamp, featured boolean, reading_time integer,
  rating numeric(3,1), category varchar(50), keywords varchar(255), seo text)"""
RAW_COLUMNS = ("id, status, sort, created_by, created_on, modified_by, modified_on, title, slug, summary, body, "
               "author, cover, published_on, featured, reading_time, rating, category, keywords, seo")


def generate(v8_url: str, rows: int) -> int:
    settings = DatabaseSettings.from_url(v8_url)
    with pymysql.connect(host="127.0.0.1", port=3306, user="root", database=settings.database) as conn, \
            conn.cursor() as cur:
        bounds = {}
        for name, table in (("user", "directus_users"), ("author", "authors"), ("file", "directus_files")):
            cur.execute(f"SELECT MIN(id), MAX(id) FROM {table}")
            low, high = cur.fetchone()
            bounds[f"{name}_min"], bounds[f"{name}s"] = low, high - low + 1
        cur.execute(GENERATE.format(first=FIRST_ID, rows=rows, **bounds))
        conn.commit()
        cur.execute("SELECT COUNT(*) FROM articles")
        return int(cur.fetchone()[0])


def raw_copy(v8_database: str, pg_url: str) -> tuple[float, int]:
    """The floor: the server's own text export piped into COPY, no conversion, no reference rewrite."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS articles_raw")
        conn.execute(RAW_TABLE)
    started = time.perf_counter()
    # --batch prints tab-separated rows escaping \t, \n and \\ as COPY's text format expects; NULL prints as NULL.
    export = subprocess.Popen(["mariadb", "--batch", "--quick", "--skip-column-names", "-h", "127.0.0.1", "-u", "root",
                               v8_database, "-e", f"SELECT {RAW_COLUMNS} FROM articles"], stdout=subprocess.PIPE)
    load = subprocess.run(["psql", "-v", "ON_ERROR_STOP=1", "-q", pg_url, "-c",
                           f"COPY articles_raw ({RAW_COLUMNS}) FROM STDIN WITH (FORMAT text, NULL 'NULL')"],
                          stdin=export.stdout, capture_output=True, text=True)
    assert export.stdout is not None
    export.stdout.close()
    if export.wait() != 0 or load.returncode != 0:
        raise SystemExit(f"raw copy failed: {load.stderr.strip()}")
    seconds = time.perf_counter() - started
    with psycopg.connect(pg_url, autocommit=True) as conn:
        copied = int(conn.execute("SELECT count(*) FROM articles_raw").fetchone()[0])
        conn.execute("DROP TABLE articles_raw")
    return seconds, copied


def raw_copy_mysql(v8_database: str, databases: Databases) -> tuple[float, int]:
    """The floor on MariaDB: the table dumped and loaded by the server's own tools, no conversion."""
    scratch = databases.create("mysql")
    started = time.perf_counter()
    export = subprocess.Popen(["mariadb-dump", "--quick", "--skip-triggers", "-h", "127.0.0.1", "-u", "root",
                               v8_database, "articles"], stdout=subprocess.PIPE)
    load = subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", scratch.name], stdin=export.stdout,
                          capture_output=True, text=True)
    assert export.stdout is not None
    export.stdout.close()
    if export.wait() != 0 or load.returncode != 0:
        raise SystemExit(f"raw copy failed: {load.stderr.strip()}")
    seconds = time.perf_counter() - started
    return seconds, target_count(scratch.name, "mysql", "articles")


def target_count(database: str, engine: str, table: str) -> int:
    if engine == "pg":
        with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database}") as conn:
            return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
    with pymysql.connect(host="127.0.0.1", user="root", database=database) as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return int(cur.fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows generated in articles (at most 1,000,000)")
    parser.add_argument("--target", choices=("pg", "mysql"), default="pg", help="the Directus project's engine")
    parser.add_argument("--mode", choices=("database", "api"), default="database", help="how the target is written")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bench-v8-"))
    databases = Databases(scratch / "db")
    server = contextlib.ExitStack()  # api mode: the target running while the steps run
    try:
        v8 = databases.create("mysql")
        restore(DatabaseSettings.from_url(v8.url), FIXTURES / "v8_sample.sql", "mysql-sql")
        started = time.perf_counter()
        articles = generate(v8.url, args.rows)
        generated = time.perf_counter() - started
        with tarfile.open(FIXTURES / "v8_uploads.tar.gz") as archive:
            archive.extractall(scratch / "uploads", filter="data")
        v8_storage = str(scratch / "uploads" / "uploads" / "_")
        target = databases.create(args.target)
        project = make_project(scratch / "target", directus_install(), target, with_extras=False)
        work = scratch / "work"

        steps: dict[str, float] = {}
        token, limit = "bench-v8-api-token-0123456789", api_target.payload_limit("1mb")
        writer: TargetWriter
        if args.mode == "api":
            with project.server() as admin:
                admin.patch(f"/users/{admin.get('/users/me')['id']}", {"token": token})
            server.enter_context(directus_cli.running_server(project.dir, project.url))
            writer = server.enter_context(api_target.ApiTarget(project.url, token, limit))  # closed before the server
            work_home = str(scratch)
        else:
            writer, work_home = DatabaseTarget(load_project(project.dir)), str(project.dir)
        plan = [("prepare", lambda: migrate.prepare(v8.url, v8_storage, work_home, work, writer)),
                ("people", lambda: migrate.write_people(work, writer)),
                ("files", lambda: migrate.write_files(work, writer)),
                ("schema", lambda: migrate.write_schema(work, writer)),
                ("items", lambda: migrate.write_items(work, writer, v8.url)),
                ("permissions", lambda: migrate.write_permissions(work, writer))]
        if args.mode != "api":
            plan.append(("sequences", lambda: migrate.finish(work, writer)))
        started = time.perf_counter()
        for name, step in plan:
            began = time.perf_counter()
            result = step()
            steps[name] = round(time.perf_counter() - began, 2)
            if name == "items":
                items = result
        whole = time.perf_counter() - started
        # A second run of the items step writes nothing (the idempotence the speed must not cost).
        began = time.perf_counter()
        again = migrate.write_items(work, writer, v8.url)
        rerun = time.perf_counter() - began
        server.close()

        written = items["collections"]["articles"]["written"]
        in_target = target_count(target.name, args.target, "articles")
        if args.target == "pg":
            raw_seconds, raw_rows = raw_copy(v8.name, f"postgresql://postgres@127.0.0.1:5432/{target.name}")
        else:
            raw_seconds, raw_rows = raw_copy_mysql(v8.name, databases)
        item_rows = sum(c["read"] for c in items["collections"].values())
        print(json.dumps({
            "target": args.target, "mode": args.mode, "rows": articles, "generated_seconds": round(generated, 1),
            "items": {"rows": item_rows, "articles_written": written, "articles_in_target": in_target,
                      "seconds": steps["items"], "rows_per_s": round(item_rows / steps["items"]),
                      "dangling": len(items["dangling"]), "references": items["collections"]["articles"]["references"]},
            "whole_migration": {"seconds": round(whole, 2), "steps": steps},
            "rerun_items": {"seconds": round(rerun, 2),
                            "written": sum(c["written"] for c in again["collections"].values())},
            "raw_copy": {"rows": raw_rows, "seconds": round(raw_seconds, 2), "rows_per_s": round(raw_rows / raw_seconds)},
            "ratio_items_to_raw": round(steps["items"] / raw_seconds, 2),
            "target_ratio": 3.0,
        }, indent=1))
    finally:
        server.close()
        databases.drop_all()
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()

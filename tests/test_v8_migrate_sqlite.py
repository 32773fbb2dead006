"""The v8 migration, database mode, into a Directus project of the suite's version on SQLite: the shared v8.8.1 sample
(loaded into a scratch MariaDB database, as test_v8_migrate does) migrated by the real CLI into a fresh project whose
database is a SQLite file. Directus then starts and serves what v8 held (tests/v8_checks.py: counts, references by
natural key, asset bytes, users and roles, the singleton, translations, comments, permissions as the license
allows, the next id); the tables are what Directus itself creates on SQLite for the same field types, the foreign
keys inside them; values are what Directus stores there (epoch milliseconds for dates, REAL for decimals); a second
run changes nothing; a dry run and bad input change nothing; a killed run completes when run again."""

from __future__ import annotations

import contextlib
import hashlib
import json
import signal
import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from harness import DIRECTUS_VERSION, Databases, TestProject, free_project_slot, link_directus, make_project, write_env
from test_v8_migrate import (  # noqa: F401 (fixtures shared with the PostgreSQL target's tests)
    MAJOR,
    migrate_args,
    migrated,
    run_cli,
    server_env,
    storage_listing,
    uploads,
    v8_url,
)
from v8_checks import (COLLECTIONS, PROBE_FIELDS, TEMP_PASSWORD, check_report_counts, check_through_api, create_probe,
                       v8_query)

from directus_ops.errors import ConfigError
from directus_ops.v8.writers import writer_for

EPOCH = datetime(1970, 1, 1)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases: Databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8sqlite"), directus, module_databases.create("sqlite3"),
                        with_extras=False)


def target_query(project: TestProject, sql: str) -> list[tuple]:
    with contextlib.closing(sqlite3.connect(project.database.filename)) as conn:
        return list(conn.execute(sql))


def sqlite_digest(project: TestProject) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of every table (sqlite_sequence too: the counters), and the schema."""
    out = {}
    with contextlib.closing(sqlite3.connect(project.database.filename)) as conn:
        tables = [t for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1")]
        for table in tables:
            rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
            out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        schema = sorted(repr(r) for r in conn.execute("SELECT type, name, sql FROM sqlite_master"))
        out["_schema"] = (len(schema), hashlib.sha256("\n".join(schema).encode()).hexdigest())
    return out


def from_ms(value: int | None) -> datetime | None:
    return None if value is None else EPOCH + timedelta(milliseconds=value)


def test_migrated_project_reads_back_through_the_api(migrated: dict[str, Any], target: TestProject, v8_url: str,  # noqa: F811
                                                     uploads: Path) -> None:  # noqa: F811
    report = migrated["report"]
    assert report["directus"] == DIRECTUS_VERSION
    check_report_counts(report, v8_url)
    assert report["items"]["dangling"] == []
    # SQLite's foreign keys come with their tables (it cannot add one later): all 16 in the schema step
    assert (report["schema"]["foreign_keys"], report["items"]["foreign_keys"]) == (16, 0)
    assert report["sequences"] == 7  # every collection with an auto-increment key (not languages: a string key)
    assert (report["comments"]["written"], report["comments"]["planned"]) == (2, 2)
    assert report["permissions"]["written"] == report["permissions"]["planned"] > 0
    if MAJOR >= 11:
        assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (2, 2, 2)
    check_through_api(target, v8_url, uploads)


def test_values_are_what_directus_stores_on_sqlite(migrated: dict[str, Any], target: TestProject, v8_url: str) -> None:  # noqa: F811
    """Timestamps, datetimes and dates as epoch milliseconds (UTC; the sample ran in UTC), decimals as the REAL of
    knex's ``float``, booleans 0/1, JSON text; references rewritten to the id map's UUIDs."""
    rows = target_query(target, "SELECT id, rating, published_on, created_on, featured, category, reading_time "
                                "FROM articles ORDER BY id")
    v8 = v8_query(v8_url, "SELECT id, rating, published_on, created_on, featured, category, reading_time "
                          "FROM articles ORDER BY id")
    assert [(i, r, from_ms(p), from_ms(c), f, g, t) for i, r, p, c, f, g, t in rows] == \
        [(i, None if r is None else float(r), p, c, f, g, t) for i, r, p, c, f, g, t in v8]
    assert {type(r[3]) for r in rows} == {int}  # stored as Directus stores them: integers, not ISO text
    authors = "SELECT id, birthday, bio FROM authors ORDER BY id"
    assert [(i, None if b is None else from_ms(b).date(), bio) for i, b, bio in target_query(target, authors)] == \
        [(i, b if isinstance(b, date) else None, bio) for i, b, bio in v8_query(v8_url, authors)]
    ids = json.loads(Path(migrated["report"]["id_map"]).read_text())
    covers = "SELECT id, cover, created_by FROM articles ORDER BY id"
    assert target_query(target, covers) == [
        (i, ids["directus_files"].get(str(c)) if c else None, ids["directus_users"].get(str(u)) if u else None)
        for i, c, u in v8_query(v8_url, covers)]
    keywords = dict(target_query(target, "SELECT id, keywords FROM articles WHERE keywords IS NOT NULL"))
    for ident, csv in v8_query(v8_url, "SELECT id, keywords FROM articles WHERE keywords IS NOT NULL"):
        assert json.loads(keywords[ident]) == [k.strip() for k in csv.split(",") if k.strip()]  # CSV → JSON list
    # The system rows' timestamps too (a file's upload time, a comment's date).
    uploaded = dict(v8_query(v8_url, "SELECT filename_download, uploaded_on FROM directus_files"))
    assert {name: from_ms(on) for name, on in target_query(target, "SELECT filename_download, uploaded_on "
                                                                   "FROM directus_files")} == uploaded


def column_types(project: TestProject, table: str) -> dict[str, tuple[str, int, Any, int]]:
    """name: (declared type, not null, default, primary key position) as PRAGMA table_info gives them."""
    return {name: (kind.lower(), notnull, default, pk) for _, name, kind, notnull, default, pk in
            target_query(project, f"PRAGMA table_info(`{table}`)")}


def test_tables_are_what_directus_creates_on_sqlite(migrated: dict[str, Any], target: TestProject) -> None:  # noqa: F811
    """Directus itself creates a collection with the same field types through its API; each migrated column has
    the declared type Directus gave its counterpart (uuid char(36), boolean, decimal float, timestamp and dateTime
    datetime, varchar(n), text, json, date), the auto-increment key AUTOINCREMENT (Directus's schema reader looks for
    the word), the foreign keys ON DELETE SET NULL inside the table, unique columns knex's named index; and
    Directus reads each migrated field as the type its own would have (timestamps need cast-timestamp here)."""
    probe = PROBE_FIELDS
    with target.server() as client:
        create_probe(client)
        by_directus = column_types(target, "v8_probe")
        probe_types = {f["field"]: f["type"] for f in client.get("/fields/v8_probe")}
        fields = {f["field"]: (f["type"], f["meta"]["special"]) for f in client.get("/fields/articles")}
        client.request("DELETE", "/collections/v8_probe")
    migrated_tables = {table: column_types(target, table) for _, (table, _) in probe.values()}
    for name, (_, (table, column)) in probe.items():
        assert migrated_tables[table][column][0] == by_directus[name][0], (name, table, column)
    assert probe_types["amount"] == "float" and probe_types["stamp"] == "timestamp"  # what Directus makes of them
    assert migrated_tables["authors"]["name"][1] == 1  # NOT NULL
    assert column_types(target, "languages")["code"][:2] == ("varchar(5)", 1)  # a string primary key
    sql = dict(target_query(target, "SELECT name, sql FROM sqlite_master WHERE type = 'table'"))
    assert "AUTOINCREMENT" in sql["articles"].upper() and "AUTOINCREMENT" not in sql["languages"].upper()
    # Directus reads the migrated columns as the types it gives such fields on SQLite (decimal: knex's float).
    assert {k: fields[k][0] for k in ("id", "cover", "featured", "rating", "created_on", "published_on", "seo",
                                      "keywords", "title", "author")} == {
        "id": "integer", "cover": "uuid", "featured": "boolean", "rating": "float", "created_on": "timestamp",
        "published_on": "dateTime", "seo": "json", "keywords": "json", "title": "string", "author": "integer"}
    assert "cast-timestamp" in fields["created_on"][1] and "cast-json" in fields["seo"][1]
    keys = {(table, column): (referenced, on_delete) for table in COLLECTIONS
            for _, _, referenced, column, _, _, on_delete, _ in
            target_query(target, f"PRAGMA foreign_key_list(`{table}`)")}
    assert len(keys) == 16 and keys[("articles", "author")] == ("authors", "SET NULL")
    assert keys[("article_translations", "language")] == ("languages", "SET NULL")
    assert keys[("articles_files", "directus_files_id")] == ("directus_files", "SET NULL")
    assert target_query(target, "PRAGMA foreign_key_check") == []  # every reference points at a row
    assert ("articles_slug_unique", 1) in [(name, unique) for _, name, unique, *_ in
                                           target_query(target, "PRAGMA index_list(`articles`)")]


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, v8_url: str, uploads: Path,  # noqa: F811
                                      server_env: dict[str, str]) -> None:  # noqa: F811
    before, files_before = sqlite_digest(target), storage_listing(target)  # every table, the counters, the schema
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    assert "(52 rows read, 0 written), 0 files copied" in result.stdout
    assert sqlite_digest(target) == before and storage_listing(target) == files_before
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    assert report["schema"]["tables"] == report["schema"]["foreign_keys"] == 0
    assert report["permissions"]["written"] == report["comments"]["written"] == 0
    for name in ("report.json", "plan.json", "source.json", "id-map.json"):
        text = (target.dir / "v8-migration" / name).read_text()
        assert TEMP_PASSWORD not in text and "pw-" not in text and "$2y$" not in text  # no password, no hash


# -- a dry run, bad input, a killed run: on a second, fresh project -------------------------------------------------
@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases: Databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8sqlite-fresh"), directus, module_databases.create("sqlite3"),
                        with_extras=False)


def refused(args: list[str], project: TestProject, env: dict[str, str], *phrases: str, code: int) -> None:
    before, files_before = sqlite_digest(project), storage_listing(project)
    result = run_cli(*args, env=env)
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert sqlite_digest(project) == before and storage_listing(project) == files_before
    assert not (project.dir / "v8-migration").exists()


def test_a_dry_run_and_bad_input_change_nothing(fresh: TestProject, v8_url: str, uploads: Path, tmp_path: Path,  # noqa: F811
                                                directus: Path, server_env: dict[str, str]) -> None:  # noqa: F811
    before = sqlite_digest(fresh)
    dry = run_cli(*migrate_args(v8_url, uploads, fresh.dir, "--dry-run", "--work-dir", str(tmp_path / "dry")),
                  env=server_env)
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: checks passed; would migrate "), dry.stderr
    assert sqlite_digest(fresh) == before and storage_listing(fresh) == []
    assert (tmp_path / "dry" / "id-map.json").exists()

    if MAJOR >= 12:  # Core: v8's permissions need custom rules, which it ignores; refused unless accepted
        refused(migrate_args(v8_url, uploads, fresh.dir, accept=False), fresh, server_env,
                "does not include custom permission rules", "pass --accept-license-limits to migrate anyway", code=16)
    with contextlib.closing(sqlite3.connect(fresh.database.filename)) as conn:
        conn.execute("CREATE TABLE tags (id integer PRIMARY KEY AUTOINCREMENT, label text)")
        conn.commit()
    refused(migrate_args(v8_url, uploads, fresh.dir), fresh, server_env,
            "already has 1 collections named like v8 ones (tags)", "--skip-collections", code=5)
    with contextlib.closing(sqlite3.connect(fresh.database.filename)) as conn:
        conn.execute("DROP TABLE tags")
        conn.commit()

    # A project whose SQLite file is not there: refused, and the file is not created.
    missing = tmp_path / "missing"
    link_directus(missing, directus)
    write_env(missing / ".env", {"DB_CLIENT": "sqlite3", "DB_FILENAME": str(tmp_path / "nowhere" / "data.db"),
                                 "KEY": "k-1234567890", "SECRET": "s-1234567890"})
    result = run_cli(*migrate_args(v8_url, uploads, missing), env=server_env)
    assert result.returncode != 0 and result.stderr.count("\n") == 1, result.stderr
    assert "does not exist; check DB_FILENAME" in result.stderr
    assert not (tmp_path / "nowhere").exists() and not (missing / "v8-migration").exists()


def test_engines_without_a_writer_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"writes into PostgreSQL, MySQL/MariaDB or SQLite targets, not mssql; .*"
                                          r"DB_CLIENT=pg, mysql or sqlite3"):
        writer_for("mssql")


def test_a_killed_run_completes_when_run_again(fresh: TestProject, v8_url: str, uploads: Path,  # noqa: F811
                                               cli_env: dict[str, str]) -> None:
    """Killed after the roles (11.x+: before their policies), after the second file, after the schema step's
    third table (SQLite's DDL is transactional: no table is left, and none without its index or foreign keys),
    then in the items; the last run completes all of it."""
    args = migrate_args(v8_url, uploads, fresh.dir)
    points = [("v8-roles-written", "roles")] if MAJOR >= 11 else []
    for point, partial in (*points, ("v8-file-copied:2", "files"), ("v8-table-created:3", "schema"),
                           ("v8-items-batch:3", "items")):
        killed = run_cli(*args, env={**cli_env, "DIRECTUS_OPS_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(fresh.dir)
        tables = {t for (t,) in target_query(fresh, "SELECT name FROM sqlite_master WHERE type = 'table'")}
        if partial == "roles":
            assert target_query(fresh, "SELECT count(*) FROM directus_roles")[0][0] == 3
            assert target_query(fresh, "SELECT count(*) FROM directus_policies")[0][0] == 2  # the bootstrap's only
        elif partial == "files":
            assert len(storage_listing(fresh)) == 2 and "articles" not in tables
        elif partial == "schema":  # the files all copied, the step that had made three tables rolled back
            assert len(storage_listing(fresh)) == 4 and not tables & {*COLLECTIONS, "languages"}
            assert target_query(fresh, "SELECT count(*) FROM directus_collections "
                                       "WHERE collection = 'articles'") == [(0,)]
        else:
            counts = [target_query(fresh, f"SELECT count(*) FROM `{c}`")[0][0] for c in COLLECTIONS]
            assert 0 < sum(counts) < 49  # some collections written, the rest not yet
            assert sum(len(target_query(fresh, f"PRAGMA foreign_key_list(`{c}`)")) for c in COLLECTIONS) == 16
    finished = run_cli(*args, env=cli_env)
    assert finished.returncode == 0, finished.stderr
    for collection in COLLECTIONS:
        assert target_query(fresh, f"SELECT count(*) FROM `{collection}`") == \
            v8_query(v8_url, f"SELECT count(*) FROM `{collection}`")
    assert sum(len(target_query(fresh, f"PRAGMA foreign_key_list(`{c}`)")) for c in COLLECTIONS) == 16
    assert target_query(fresh, "PRAGMA foreign_key_check") == []
    assert len(storage_listing(fresh)) == 4  # no temporary leftovers of the killed copy
    report = json.loads((fresh.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and sum(s["written"] for s in report["items"]["collections"].values()) < 52
    if MAJOR >= 11:  # each custom role on its own policy
        assert sorted(target_query(fresh, """
            SELECT r.name, p.name FROM directus_roles r JOIN directus_access a ON a.role = r.id
            JOIN directus_policies p ON p.id = a.policy WHERE NOT p.admin_access""")) == [("Author", "Author"),
                                                                                           ("Editor", "Editor")]

"""The v8 migration, database mode, into a Directus project of the suite's version on MariaDB: the shared v8.8.1 sample (loaded into
a scratch MariaDB database, as test_v8_migrate does) migrated by the real CLI into a fresh project whose database
is another scratch MariaDB database. Directus then starts and serves what v8 held (tests/v8_checks.py: counts,
references by natural key, asset bytes, users and roles, the singleton, translations, comments, permissions, the
next id);
the tables are what Directus itself creates on MySQL for the same field types; values are exact (decimals,
datetimes in UTC, booleans); a second run changes nothing; a killed run completes when run again."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pymysql
import pytest
from harness import Databases, TestProject, free_project_slot, make_project
from test_v8_migrate import (  # noqa: F401 (fixtures shared with the PostgreSQL target's tests)
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

from directus_ops.content_digest import table_digests
from directus_ops.database import DatabaseSettings


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8maria"), directus, module_databases.create("mysql"),
                        with_extras=False)


def target_query(project: TestProject, sql: str) -> list[tuple]:
    """Straight from the target database, in a UTC session (timestamp columns convert to the session's zone)."""
    conn = pymysql.connect(host="127.0.0.1", user="root", database=project.database.name, init_command="SET time_zone = '+00:00'")
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def test_migrated_project_reads_back_through_the_api(migrated: dict[str, Any], target: TestProject, v8_url: str,  # noqa: F811
                                                     uploads: Path) -> None:  # noqa: F811
    report = migrated["report"]
    check_report_counts(report, v8_url)
    assert report["items"]["dangling"] == [] and report["items"]["foreign_keys"] == 16
    assert report["sequences"] == 7  # every collection with an auto-increment key (not languages: a string key)
    assert (report["comments"]["written"], report["comments"]["planned"]) == (2, 2)
    check_through_api(target, v8_url, uploads)


def test_values_are_exact(migrated: dict[str, Any], target: TestProject, v8_url: str) -> None:  # noqa: F811
    """Decimals digit for digit, datetimes as v8 held them (the sample ran in UTC; timestamps stored as UTC
    instants), booleans, JSON; references rewritten to the id map's UUIDs."""
    columns = "id, rating, published_on, created_on, featured, category, reading_time"
    assert target_query(target, f"SELECT {columns} FROM articles ORDER BY id") == \
        v8_query(v8_url, f"SELECT {columns} FROM articles ORDER BY id")
    assert target_query(target, "SELECT id, birthday, bio FROM authors ORDER BY id") == \
        v8_query(v8_url, "SELECT id, birthday, bio FROM authors ORDER BY id")
    ids = json.loads(Path(migrated["report"]["id_map"]).read_text())
    covers = target_query(target, "SELECT id, cover, created_by FROM articles ORDER BY id")
    v8 = v8_query(v8_url, "SELECT id, cover, created_by FROM articles ORDER BY id")
    assert covers == [(i, ids["directus_files"].get(str(c)) if c else None, ids["directus_users"].get(str(u)) if u else None)
                      for i, c, u in v8]
    keywords = dict(target_query(target, "SELECT id, keywords FROM articles WHERE keywords IS NOT NULL"))
    for ident, csv in v8_query(v8_url, "SELECT id, keywords FROM articles WHERE keywords IS NOT NULL"):
        assert json.loads(keywords[ident]) == [k.strip() for k in csv.split(",") if k.strip()]  # CSV → JSON list
    # The system rows' timestamps are UTC instants too (a file's upload time).
    uploaded = dict(v8_query(v8_url, "SELECT filename_download, uploaded_on FROM directus_files"))
    assert dict(target_query(target, "SELECT filename_download, uploaded_on FROM directus_files")) == uploaded


def column_types(project: TestProject, table: str) -> dict[str, tuple[str, str, str]]:
    return {name: (kind, nullable, extra) for name, kind, nullable, extra in target_query(project, f"""
        SELECT column_name, column_type, is_nullable, extra FROM information_schema.columns
        WHERE table_schema = DATABASE() AND table_name = '{table}'""")}


def test_tables_are_what_directus_creates_on_mysql(migrated: dict[str, Any], target: TestProject) -> None:  # noqa: F811
    """Directus itself creates a collection with the same field types through its API; each migrated column has
    the column type Directus gave its counterpart (uuid char(36), boolean tinyint(1), decimal(p,s), timestamp,
    datetime, varchar(n), text, json, unsigned int keys and the m2o columns referencing them)."""
    probe = PROBE_FIELDS
    with target.server() as client:
        create_probe(client)
        by_directus = column_types(target, "v8_probe")
        fields = {f["field"]: f["type"] for f in client.get("/fields/articles")}
        client.request("DELETE", "/collections/v8_probe")
    migrated_tables = {table: column_types(target, table) for _, (table, _) in probe.values()}
    for name, (_, (table, column)) in probe.items():
        assert migrated_tables[table][column][0] == by_directus[name][0], (name, table, column)
    assert migrated_tables["articles"]["id"][2] == "auto_increment"
    assert migrated_tables["authors"]["name"][1] == "NO"
    assert column_types(target, "languages")["code"][:2] == ("varchar(5)", "NO")  # a string primary key
    # Directus reads the migrated columns as the types the mapping gave them.
    assert {k: fields[k] for k in ("id", "cover", "featured", "rating", "created_on", "published_on", "seo", "keywords",
                                   "title", "author")} == {
        "id": "integer", "cover": "uuid", "featured": "boolean", "rating": "decimal", "created_on": "timestamp",
        "published_on": "dateTime", "seo": "json", "keywords": "json", "title": "string", "author": "integer"}
    foreign_keys = target_query(target, """
        SELECT k.table_name, k.column_name, k.referenced_table_name, r.delete_rule FROM information_schema.key_column_usage k
        JOIN information_schema.referential_constraints r ON r.constraint_name = k.constraint_name
        WHERE k.table_schema = DATABASE() AND r.constraint_schema = DATABASE() AND k.referenced_table_name IS NOT NULL""")
    ours = {(t, c): (ref, rule) for t, c, ref, rule in foreign_keys if t in COLLECTIONS}
    assert len(ours) == 16 and ours[("articles", "author")] == ("authors", "SET NULL")
    assert ours[("article_translations", "language")] == ("languages", "SET NULL")
    assert ours[("articles_files", "directus_files_id")] == ("directus_files", "SET NULL")
    assert target_query(target, "SELECT index_name FROM information_schema.statistics WHERE table_schema = DATABASE() "
                                "AND table_name = 'articles' AND column_name = 'slug'") == [("articles_slug_unique",)]
    comments = dict(target_query(target, "SELECT column_name, column_comment FROM information_schema.columns "
                                         "WHERE table_schema = DATABASE() AND table_name = 'articles' AND column_comment <> ''"))
    assert comments == {"reading_time": "Minutes", "seo": "Free-form SEO metadata"}


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, v8_url: str, uploads: Path,  # noqa: F811
                                      server_env: dict[str, str]) -> None:  # noqa: F811
    settings = DatabaseSettings.from_url(target.database.url)
    tables = [t for (t,) in target_query(target, "SHOW TABLES")]  # every table: the system ones of its version too
    before, files_before = table_digests(settings, tables), storage_listing(target)
    counters = target_query(target, "SELECT table_name, auto_increment FROM information_schema.tables "
                                    "WHERE table_schema = DATABASE() ORDER BY 1")
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    assert "(52 rows read, 0 written), 0 files copied" in result.stdout
    assert table_digests(settings, tables) == before and storage_listing(target) == files_before
    assert target_query(target, "SELECT table_name, auto_increment FROM information_schema.tables "
                                "WHERE table_schema = DATABASE() ORDER BY 1") == counters
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    assert report["schema"]["tables"] == 0 and report["permissions"]["written"] == report["comments"]["written"] == 0
    for name in ("report.json", "plan.json", "source.json", "id-map.json"):
        text = (target.dir / "v8-migration" / name).read_text()
        assert TEMP_PASSWORD not in text and "pw-" not in text and "$2y$" not in text  # no password, no hash


def test_a_killed_run_completes_when_run_again(tmp_path: Path, directus: Path, databases: Databases, v8_url: str,  # noqa: F811
                                               uploads: Path, cli_env: dict[str, str]) -> None:  # noqa: F811
    project = make_project(tmp_path, directus, databases.create("mysql"), with_extras=False)
    args = migrate_args(v8_url, uploads, project.dir)
    for point, partial in (("v8-file-copied:2", "files"), ("v8-items-batch:3", "items")):
        killed = run_cli(*args, env={**cli_env, "DIRECTUS_OPS_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(project.dir)
        tables = {t for (t,) in target_query(project, "SHOW TABLES")}
        if partial == "files":
            assert len(storage_listing(project)) == 2 and "articles" not in tables
        else:
            counts = [target_query(project, f"SELECT count(*) FROM `{c}`")[0][0] for c in COLLECTIONS if c in tables]
            assert 0 < sum(counts) < 49  # some collections written, the rest not yet
    finished = run_cli(*args, env=cli_env)
    assert finished.returncode == 0, finished.stderr
    for collection in COLLECTIONS:
        assert target_query(project, f"SELECT count(*) FROM `{collection}`") == \
            v8_query(v8_url, f"SELECT count(*) FROM `{collection}`")
    foreign_keys = target_query(project, "SELECT count(*) FROM information_schema.referential_constraints "
                                         "WHERE constraint_schema = DATABASE() AND table_name IN ("
                                         + ", ".join(f"'{c}'" for c in COLLECTIONS) + ")")
    assert foreign_keys == [(16,)]
    assert len(storage_listing(project)) == 4  # no temporary leftovers of the killed copy
    report = json.loads((project.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and sum(s["written"] for s in report["items"]["collections"].values()) < 52

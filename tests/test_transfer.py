"""Cross-engine copies of real Directus projects (SQLite -> PostgreSQL, MariaDB -> PostgreSQL, PostgreSQL -> MariaDB,
PostgreSQL -> SQLite): equal content digests, system tables typed as a fresh Directus types them on the target,
foreign keys from user tables to directus_users/directus_files, sequences that continue after the copied ids,
and Directus started on the copy serving the same items and files; refusals that change nothing."""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import threading
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from directus_ops import content_digest, directus_cli, transfer
from directus_ops.database import DatabaseSettings, connect, open_engine
from directus_ops.directus_api import DirectusClient
from directus_ops.errors import ConfigError, DatabaseError, DatabaseUnreachable, TargetNotEmpty, VersionError
from harness import (ADMIN_EMAIL, ADMIN_PASSWORD, Database, Databases, TestProject, api_state, free_port,
                     make_project, seed, write_env)

PAIRS = [("sqlite3", "pg"), ("mysql", "pg"), ("pg", "mysql"), ("pg", "sqlite3")]


def settings_of(database: Database) -> DatabaseSettings:
    return DatabaseSettings.from_url(database.url)


@pytest.fixture(scope="module")
def sources(directus: Path, module_databases: Databases,
            tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[TestProject, dict[str, Any]]]:
    """One seeded Directus project per source engine, with what its API showed (its server stopped again)."""
    found = {}
    for engine in sorted({source for source, _ in PAIRS}):
        project = make_project(tmp_path_factory.mktemp(f"source-{engine}"), directus, module_databases.create(engine))
        with project.server() as client:
            project.seeded = seed(client, ["local"])
            found[engine] = (project, api_state(client))
    return found


def column_types(settings: DatabaseSettings, system_only: bool = True) -> dict[str, dict[str, tuple[str, bool]]]:
    engine = open_engine(settings)
    try:
        inspector = sa.inspect(engine)
        return {table: {c["name"]: (str(c["type"]), bool(c["nullable"])) for c in inspector.get_columns(table)}
                for table in inspector.get_table_names() if table.startswith("directus_") or not system_only}
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def fresh_types(directus: Path, module_databases: Databases,
                tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, dict[str, tuple[str, bool]]]]:
    """The system tables' column types of a Directus freshly bootstrapped on each target engine."""
    types = {}
    for engine in sorted({target for _, target in PAIRS}):
        database = module_databases.create(engine)
        make_project(tmp_path_factory.mktemp(f"fresh-{engine}"), directus, database, with_extras=False)
        types[engine] = column_types(settings_of(database))
    return types


NUMBER = re.compile(r"-?\d+(\.\d+)?")


def as_values(state: Any) -> Any:
    """What the API showed, without the JSON typing Directus varies by engine (SQLite answers booleans as 0/1
    and json fields without ``cast-json`` as text, PostgreSQL bigints and decimals as strings): every number
    and boolean as its decimal value, JSON text parsed."""
    if isinstance(state, dict):
        return {k: as_values(v) for k, v in state.items()}
    if isinstance(state, list):
        return [as_values(v) for v in state]
    if isinstance(state, str) and state[:1] in ("{", "["):
        with contextlib.suppress(ValueError):
            return as_values(json.loads(state))
    if isinstance(state, (bool, int, float)) or (isinstance(state, str) and NUMBER.fullmatch(state)):
        return Decimal(str(int(state) if isinstance(state, bool) else state)).normalize()
    return state


def target_config(project: TestProject, target: Database) -> tuple[Path, str]:
    """A config for the source project's directory (its node_modules, extensions, uploads) on the target DB."""
    port = free_port()
    env = {k: v for k, v in project.env.items() if not k.startswith("DB_")}
    env.update(target.env(), PORT=str(port), PUBLIC_URL=f"http://127.0.0.1:{port}")
    path = project.dir / f"target-{target.name}.env"
    write_env(path, env)
    return path, f"http://127.0.0.1:{port}"


def foreign_keys(settings: DatabaseSettings, table: str) -> set[tuple[str, str, str]]:
    engine = open_engine(settings)
    try:
        return {(fk["constrained_columns"][0], fk["referred_table"], fk["referred_columns"][0])
                for fk in sa.inspect(engine).get_foreign_keys(table)}
    finally:
        engine.dispose()


def key_actions(settings: DatabaseSettings) -> dict[tuple[str, tuple[str, ...], str], tuple[str, str]]:
    """ON DELETE / ON UPDATE of every foreign key, by (table, columns, referred table); the database's default
    (no action) spelt one way whichever engine reports it."""
    from directus_ops.database import foreign_keys as all_keys

    def action(value: str | None) -> str:
        return (value or "NO ACTION").upper()

    with connect(settings) as conn:
        return {(k.table, k.columns, k.referred_table): (action(k.on_delete), action(k.on_update))
                for k in all_keys(conn)}


def assert_same_copy(source: DatabaseSettings, target: DatabaseSettings, target_types) -> None:
    """Every table with equal content digests, typed as a fresh Directus types them on the target engine, and
    the project's foreign keys with their ON DELETE / ON UPDATE as on the source."""
    source_digests, target_digests = content_digest.table_digests(source), content_digest.table_digests(target)
    assert content_digest.compare_digests(source_digests, target_digests) == []
    assert set(source_digests) == set(target_digests) and "ops_marker" in target_digests
    # The system tables are typed exactly as a Directus freshly bootstrapped on the target engine types them.
    assert column_types(target) == target_types
    # Relations to system tables are real foreign keys on the target, like Directus makes them, and act alike.
    assert ("user_created", "directus_users", "id") in foreign_keys(target, "authors")
    assert {("cover", "directus_files", "id"), ("author", "authors", "id")} <= foreign_keys(target, "articles")
    project_keys = {k: v for k, v in key_actions(source).items() if not k[0].startswith("directus_")}
    assert project_keys and {k: v for k, v in key_actions(target).items() if k in project_keys} == project_keys


@pytest.mark.parametrize(("source_engine", "target_engine"), PAIRS, ids=[f"{s}-to-{t}" for s, t in PAIRS])
def test_copy_serves_the_same_project(source_engine: str, target_engine: str, sources, fresh_types,
                                      databases: Databases) -> None:
    project, state = sources[source_engine]
    source = settings_of(project.database)
    target_db = databases.create(target_engine)
    target = settings_of(target_db)
    progress: list[tuple[str, int]] = []

    report = transfer.copy_database(source, target, batch_rows=5, directus_dir=project.dir,
                                    on_progress=lambda table, rows: progress.append((table, rows)))

    assert report.system_tables_created_by == "directus"
    json.dumps(report.to_dict())  # the report artifact is plain JSON
    assert ("articles", 10) in progress and ("articles", 12) in progress  # streamed in batches of 5
    assert {t.table: t.rows for t in report.tables}["articles"] == 12
    assert_same_copy(source, target, fresh_types[target_engine])

    # Directus on the copy: admin login, the same items, users and file bytes, and new rows (with their
    # activity and revision rows, whose sequences were reset too).
    config, url = target_config(project, target_db)
    with directus_cli.running_server(project.dir, url, config_path=config):
        with DirectusClient.login(url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            assert as_values(api_state(client)) == as_values(state)
            created = client.post("/items/articles", {"title": "After the move", "published": True,
                                                      "rating": "3.75", "data": {"moved": True},
                                                      "author": 1, "cover": project.seeded["files"][0]})
            assert created["id"] == 13
            assert client.items("articles", filter=json.dumps({"id": {"_eq": 13}}))[0]["rating"] in ("3.75", 3.75)
            editor = DirectusClient.login(url, "editor@example.com", "editor-password-1")
            editor.close()

    # A plain insert takes the next id (PostgreSQL's sequence was reset; MySQL/SQLite counters followed).
    with connect(target) as conn:
        q = conn.dialect.identifier_preparer.quote
        conn.execute(sa.text(f"INSERT INTO {q('authors')} (name) VALUES ('Katherine')"))
        new_id = conn.execute(sa.text("SELECT max(id) FROM authors")).scalar()
        conn.commit()
    assert new_id == 3


OTHER_PAIRS = [("sqlite3", "mysql"), ("mysql", "sqlite3")]


@pytest.mark.parametrize(("source_engine", "target_engine"), OTHER_PAIRS, ids=[f"{s}-to-{t}" for s, t in OTHER_PAIRS])
def test_the_other_pairs_copy_the_same_project(source_engine: str, target_engine: str, sources, fresh_types,
                                               databases: Databases) -> None:
    """The engine pairs test_copy_serves_the_same_project leaves out, checked on the database alone (cheaply:
    no Directus started on the copy)."""
    project, _ = sources[source_engine]
    target_db = databases.create(target_engine)
    report = transfer.copy_database(settings_of(project.database), settings_of(target_db), directus_dir=project.dir)
    assert report.system_tables_created_by == "directus"
    assert_same_copy(settings_of(project.database), settings_of(target_db), fresh_types[target_engine])


def test_digests_see_one_changed_value(sources, databases: Databases) -> None:
    project, _ = sources["sqlite3"]
    target_db = databases.create("pg")
    target = settings_of(target_db)
    transfer.copy_database(settings_of(project.database), target, directus_dir=project.dir)
    before = content_digest.table_digests(target)
    assert content_digest.compare_digests(content_digest.table_digests(settings_of(project.database)), before) == []
    with connect(target) as conn:
        conn.execute(sa.text("UPDATE articles SET rating = rating + 0.01 WHERE id = 7"))
        conn.commit()
    after = content_digest.table_digests(target)
    assert content_digest.compare_digests(before, after) == ["articles: same row count (12) but different content"]
    with connect(target) as conn:  # JSON compares by value: the same object with other key order is equal
        conn.execute(sa.text("UPDATE articles SET rating = rating - 0.01, "
                             "data = CAST(:d AS json) WHERE id = 7"), {"d": '{"tags": ["a", "b"], "n": 6}'})
        conn.commit()
    assert content_digest.compare_digests(before, content_digest.table_digests(target)) == []
    with connect(target) as conn:  # a text value, and a NULL where the copy has an empty string
        conn.execute(sa.text("UPDATE authors SET name = 'Adb' WHERE name = 'Ada'"))
        conn.execute(sa.text("UPDATE directus_users SET last_name = '' WHERE last_name IS NULL"))
        conn.commit()
    assert content_digest.compare_digests(before, content_digest.table_digests(target)) == [
        "authors: same row count (2) but different content", "directus_users: same row count (2) but different content"]


def test_refusals_change_nothing(sources, databases: Databases, tmp_path: Path) -> None:
    project, _ = sources["pg"]
    source = settings_of(project.database)
    source_digests = content_digest.table_digests(source)

    with pytest.raises(ConfigError, match="not supported.*PostgreSQL, MySQL/MariaDB, SQLite"):
        transfer.copy_database(source, DatabaseSettings(engine="mssql", database="x", host="db"))  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not supported"):
        DatabaseSettings.from_url("oracle://u:p@db:1521/x")

    with pytest.raises(DatabaseUnreachable, match="cannot connect"):
        transfer.copy_database(source, DatabaseSettings.from_url("postgresql://nobody:pw@127.0.0.1:9/nowhere"))

    busy_db = databases.create("pg")
    busy = settings_of(busy_db)
    with connect(busy) as conn:
        conn.execute(sa.text("CREATE TABLE keep_me (id integer)"))
        conn.commit()
    with pytest.raises(TargetNotEmpty, match="not empty .*1 tables.*new or empty database"):
        transfer.copy_database(source, busy, directus_dir=project.dir)
    assert busy_db.tables() == ["keep_me"]

    busy_file = tmp_path / "busy.db"
    with sqlite3.connect(busy_file) as conn:
        conn.execute("CREATE TABLE keep_me (id integer)")
    with pytest.raises(TargetNotEmpty):
        transfer.check_transfer(source, DatabaseSettings.from_url(f"sqlite:///{busy_file}"))

    # A Directus install with migrations the source lacks would create other system tables: refused first.
    plain = sample_database(databases, "mysql", "1.5")
    fresh_db = databases.create("pg")
    with pytest.raises(VersionError, match="migrations the source database lacks .*migrate:latest"):
        transfer.copy_database(plain, settings_of(fresh_db), directus_dir=project.dir)
    assert fresh_db.tables() == []

    with pytest.raises(ConfigError, match="same database"):
        transfer.check_transfer(source, source)
    assert content_digest.table_digests(source) == source_digests


# -- values that must survive exactly, on plain databases (no Directus: every table through the mapping) --------
SAMPLE_DDL = {
    "mysql": ["CREATE TABLE samples (code varchar(64) NOT NULL PRIMARY KEY, note text, big decimal(20,10), "
              "at timestamp NULL, local datetime, day date, clock time, doc json, ref char(36), flag boolean, "
              "raw blob, count bigint, status varchar(16) NOT NULL DEFAULT 'draft')",
              "CREATE UNIQUE INDEX samples_ref_unique ON samples (ref)"],
    "pg": ["CREATE TABLE samples (code varchar(64) NOT NULL PRIMARY KEY, note text, big numeric(20,10), "
           "at timestamptz, local timestamp, day date, clock time, doc json, ref uuid, flag boolean, raw bytea, "
           "count bigint, status varchar(16) NOT NULL DEFAULT 'draft')",
           "CREATE UNIQUE INDEX samples_ref_unique ON samples (ref)"],
}
TRICKY_TEXT = "tab\there\nnew line\r\\back\\slash \\N 😀 Ünïcode ✓ 'quote' \"double\""
SAMPLE_ROWS = [
    {"code": "a-1", "note": TRICKY_TEXT, "big": "1234567890.0123456789", "at": "2026-03-04 05:06:07",
     "local": "2026-03-04 05:06:07", "day": "2026-03-04", "clock": "23:59:58",
     "doc": '{"z": 1, "a": [true, null, "x\\ty"], "u": "😀"}', "ref": "0b6f3a4e-7c1d-4e2f-9a8b-1c2d3e4f5a6b",
     "flag": True, "raw": bytes(range(256)) * 3, "count": 9007199254740993},
    {"code": "b-2", "note": None, "big": "-0.0000000001", "at": None, "local": None, "day": None, "clock": None,
     "doc": None, "ref": None, "flag": False, "raw": None, "count": None},
]


def sample_database(databases: Databases, engine: str, big: str) -> DatabaseSettings:
    database = databases.create(engine)
    settings = settings_of(database)
    with connect(settings) as conn:
        for statement in SAMPLE_DDL[engine]:
            conn.execute(sa.text(statement))
        if engine == "mysql":
            conn.execute(sa.text("SET time_zone = '+00:00'"))
        else:
            conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        rows = [{**SAMPLE_ROWS[0], "big": big}, SAMPLE_ROWS[1]]
        if engine == "mysql":  # a zero date (MariaDB's default sql_mode allows it): Directus reads it as null
            rows.append({**SAMPLE_ROWS[1], "code": "z-0", "local": "0000-00-00 00:00:00"})
        for row in rows:
            conn.execute(sa.text("INSERT INTO samples (code, note, big, at, local, day, clock, doc, ref, flag, raw, count) "
                                 "VALUES (:code, :note, :big, :at, :local, :day, :clock, :doc, :ref, :flag, :raw, :count)"),
                         row)
        conn.commit()
    return settings


@pytest.mark.parametrize(("source_engine", "target_engine"),
                         [("mysql", "pg"), ("pg", "mysql"), ("pg", "sqlite3"), ("mysql", "sqlite3")])
def test_values_survive_exactly(source_engine: str, target_engine: str, databases: Databases) -> None:
    # SQLite has no exact decimal (Directus makes decimals float there): give it one a double holds
    big = "12345.6789" if target_engine == "sqlite3" else "1234567890.0123456789"
    source = sample_database(databases, source_engine, big)
    target = settings_of(databases.create(target_engine))
    report = transfer.copy_database(source, target)
    assert report.system_tables_created_by == "mapping" and report.rows == (3 if source_engine == "mysql" else 2)
    assert content_digest.compare_digests(content_digest.table_digests(source), content_digest.table_digests(target)) == []
    with connect(target) as conn:
        note, big_value, raw, count, doc, status = conn.execute(sa.text(
            "SELECT note, big, raw, count, doc, status FROM samples WHERE code = 'a-1'")).one()
        conn.execute(sa.text("INSERT INTO samples (code) VALUES ('c-3')"))  # the default came along
        assert conn.execute(sa.text("SELECT status FROM samples WHERE code = 'c-3'")).scalar() == "draft"
        with pytest.raises(sa.exc.IntegrityError):  # and so did the unique index
            conn.execute(sa.text("INSERT INTO samples (code, ref) VALUES ('d-4', :r)"), {"r": SAMPLE_ROWS[0]["ref"]})
    assert note == TRICKY_TEXT
    assert bytes(raw) == SAMPLE_ROWS[0]["raw"]
    assert count == 9007199254740993
    assert json.loads(doc if isinstance(doc, str) else json.dumps(doc)) == json.loads(SAMPLE_ROWS[0]["doc"])
    assert str(big_value) == big
    if source_engine == "mysql":
        with connect(target) as conn:
            assert conn.execute(sa.text("SELECT local FROM samples WHERE code = 'z-0'")).scalar() is None
    assert status == "draft"


def test_sqlite_target_has_one_writer(databases: Databases) -> None:
    """Each table holds SQLite's write lock until its commit: a second table written meanwhile would wait out the
    driver's 5 s busy timeout and fail. A progress callback that takes 6 s on the first batch stands in for a
    table that takes longer than that to copy."""
    source = settings_of(databases.create("pg"))
    with connect(source) as conn:
        for name in ("first", "second"):
            conn.execute(sa.text(f"CREATE TABLE {name} (id integer PRIMARY KEY, label varchar(32))"))
            conn.execute(sa.text(f"INSERT INTO {name} SELECT n, 'row ' || n FROM generate_series(1, 20000) n"))
        conn.commit()
    target = settings_of(databases.create("sqlite3"))
    slow = threading.Event()

    def progress(table: str, rows: int) -> None:
        if not slow.is_set():
            slow.set()
            time.sleep(6)

    report = transfer.copy_database(source, target, batch_rows=1000, workers=2, on_progress=progress)

    assert {t.table: t.rows for t in report.tables} == {"first": 20000, "second": 20000}
    assert content_digest.compare_digests(content_digest.table_digests(source), content_digest.table_digests(target)) == []


def test_a_refused_row_stops_the_copy_with_a_clear_error(databases: Databases) -> None:
    """A value the target refuses (MariaDB's strict mode: more than TEXT's 64 KB) is one DatabaseError naming the
    table, without the value; the tables still queued are not copied, and the target is left empty."""
    source = settings_of(databases.create("pg"))
    long_value = "VALUE-7f3a-" * 7000  # 77 KB
    with connect(source) as conn:
        conn.execute(sa.text("CREATE TABLE notes (id integer PRIMARY KEY, note text)"))
        conn.execute(sa.text("INSERT INTO notes SELECT n, 'note ' || n FROM generate_series(1, 3000) n"))
        conn.execute(sa.text("INSERT INTO notes VALUES (3001, :v)"), {"v": long_value})
        for name in ("later_a", "later_b", "later_c"):  # smaller: queued after notes
            conn.execute(sa.text(f"CREATE TABLE {name} (id integer PRIMARY KEY)"))
            conn.execute(sa.text(f"INSERT INTO {name} VALUES (1)"))
        conn.commit()
    target_db = databases.create("mysql")
    progress: list[str] = []

    with pytest.raises(DatabaseError) as raised:
        transfer.copy_database(source, settings_of(target_db), workers=1,
                               on_progress=lambda table, rows: progress.append(table))

    message = str(raised.value)
    assert "table notes" in message and "'note'" in message and "copy again" in message
    assert "\n" not in message and "VALUE-7f3a" not in message and target_db.password not in message
    assert set(progress) <= {"notes"}
    assert target_db.tables() == []


def test_fractional_seconds_are_truncated_for_mysql(databases: Databases) -> None:
    """MySQL's second-precision columns round a fraction on insert (…:07.6 -> :08), MariaDB's truncate it; the
    copy truncates on the source so both store :07. Only MariaDB runs here: this checks the stored second and
    that the digests agree, not MySQL's rounding itself."""
    source = settings_of(databases.create("pg"))
    with connect(source) as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        conn.execute(sa.text("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz, local timestamp, "
                             "clock time)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, '2026-03-04 05:06:07.6+00', '2026-03-04 05:06:07.6', "
                             "'05:06:07.6'), (2, '2026-12-31 23:59:59.999+00', '2026-12-31 23:59:59.999', "
                             "'23:59:59.999')"))
        conn.commit()
    target = settings_of(databases.create("mysql"))

    transfer.copy_database(source, target)

    with connect(target) as conn:
        conn.execute(sa.text("SET time_zone = '+00:00'"))
        rows = conn.execute(sa.text("SELECT CAST(at AS CHAR), CAST(local AS CHAR), CAST(clock AS CHAR) "
                                    "FROM events ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [("2026-03-04 05:06:07", "2026-03-04 05:06:07", "05:06:07"),
                                        ("2026-12-31 23:59:59", "2026-12-31 23:59:59", "23:59:59")]
    assert content_digest.compare_digests(content_digest.table_digests(source), content_digest.table_digests(target)) == []


def test_sub_millisecond_fractions_are_truncated_for_sqlite(databases: Databases) -> None:
    """Directus on SQLite stores epoch milliseconds: a PostgreSQL time at …:00.9996 is …:00.999 there, never the
    next second (casting to bigint rounded, and the digests then saw another second)."""
    source = settings_of(databases.create("pg"))
    with connect(source) as conn:
        conn.execute(sa.text("SET TIME ZONE 'UTC'"))
        conn.execute(sa.text("CREATE TABLE events (id integer PRIMARY KEY, at timestamptz, local timestamp)"))
        conn.execute(sa.text("INSERT INTO events VALUES (1, '2026-06-30 12:00:00.9996+00', '2026-06-30 12:00:00.9996'), "
                             "(2, '2026-06-30 12:00:00.0004+00', '2026-06-30 12:00:00.0004')"))
        conn.commit()
    target = settings_of(databases.create("sqlite3"))

    transfer.copy_database(source, target)

    noon = int(datetime(2026, 6, 30, 12, tzinfo=timezone.utc).timestamp()) * 1000
    with connect(target) as conn:
        rows = conn.execute(sa.text("SELECT at, local FROM events ORDER BY id")).all()
    assert [tuple(r) for r in rows] == [(noon + 999, noon + 999), (noon, noon)]
    assert content_digest.compare_digests(content_digest.table_digests(source), content_digest.table_digests(target)) == []


# MariaDB's SHOW CREATE TABLE (what SQLAlchemy reflects) writes a text default holding a quote as \' , which
# SQLAlchemy does not read: the text column's default here has backslashes and a percent sign, no quote.
TRICKY_DEFAULTS = {"label": "a\\b 'quoted' 50% c:\\", "body": "C:\\new\\table 100%\\"}
DEFAULTS_DDL = ("CREATE TABLE settings (id integer PRIMARY KEY, label varchar(64) DEFAULT {label}, "
                "body text DEFAULT {body})")


@pytest.mark.parametrize(("source_engine", "target_engine"), [("mysql", "pg"), ("pg", "mysql")])
def test_text_defaults_with_backslashes_and_quotes(source_engine: str, target_engine: str,
                                                   databases: Databases) -> None:
    source = settings_of(databases.create(source_engine))
    with connect(source) as conn:
        literals = {k: sa.literal(v, sa.String()).compile(conn, compile_kwargs={"literal_binds": True})
                    for k, v in TRICKY_DEFAULTS.items()}
        conn.exec_driver_sql(DEFAULTS_DDL.format(**{k: str(v) for k, v in literals.items()}))
        conn.execute(sa.text("INSERT INTO settings (id) VALUES (1)"))
        assert tuple(conn.execute(sa.text("SELECT label, body FROM settings")).one()) == tuple(TRICKY_DEFAULTS.values())
        conn.commit()
    target = settings_of(databases.create(target_engine))

    transfer.copy_database(source, target)

    with connect(target) as conn:
        conn.execute(sa.text("INSERT INTO settings (id) VALUES (2)"))
        assert tuple(conn.execute(sa.text("SELECT label, body FROM settings WHERE id = 2")).one()) == tuple(
            TRICKY_DEFAULTS.values())


KEY_ACTIONS_DDL = {
    # As knex writes them for Directus: on SQLite the constraints are backtick-quoted, which SQLAlchemy's
    # reflection reads without their ON DELETE / ON UPDATE.
    "sqlite3": ["CREATE TABLE `parents` (`id` integer not null primary key autoincrement, `name` varchar(255))",
                "CREATE TABLE `children` (`id` integer not null primary key autoincrement, `parent` integer, "
                "`owner` integer, CONSTRAINT `children_parent_foreign` FOREIGN KEY (`parent`) REFERENCES `parents` "
                "(`id`) ON DELETE SET NULL ON UPDATE CASCADE, CONSTRAINT `children_owner_foreign` FOREIGN KEY "
                "(`owner`) REFERENCES `parents` (`id`) ON DELETE CASCADE)"],
    "pg": ["CREATE TABLE parents (id serial PRIMARY KEY, name varchar(255))",
           "CREATE TABLE children (id serial PRIMARY KEY, parent integer, owner integer, CONSTRAINT "
           "children_parent_foreign FOREIGN KEY (parent) REFERENCES parents (id) ON DELETE SET NULL ON UPDATE "
           "CASCADE, CONSTRAINT children_owner_foreign FOREIGN KEY (owner) REFERENCES parents (id) ON DELETE CASCADE)"],
    "mysql": ["CREATE TABLE parents (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, name varchar(255)) ENGINE=InnoDB",
              "CREATE TABLE children (id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY, parent int unsigned, owner "
              "int unsigned, CONSTRAINT children_parent_foreign FOREIGN KEY (parent) REFERENCES parents (id) ON DELETE "
              "SET NULL ON UPDATE CASCADE, CONSTRAINT children_owner_foreign FOREIGN KEY (owner) REFERENCES parents "
              "(id) ON DELETE CASCADE) ENGINE=InnoDB"],
}
ALL_PAIRS = [(s, t) for s in ("sqlite3", "pg", "mysql") for t in ("sqlite3", "pg", "mysql") if s != t]


@pytest.mark.parametrize(("source_engine", "target_engine"), ALL_PAIRS, ids=[f"{s}-to-{t}" for s, t in ALL_PAIRS])
def test_foreign_key_actions_survive_every_engine_pair(source_engine: str, target_engine: str,
                                                       databases: Databases) -> None:
    """ON DELETE / ON UPDATE of every foreign key arrive as they were, and act so: deleting a parent nulls one
    reference and deletes the row of the other, as on the source."""
    from directus_ops.database import foreign_keys

    source = settings_of(databases.create(source_engine))
    if source.filename:
        sqlite3.connect(source.filename).close()  # the file a SQLite project has
    with connect(source) as conn:
        for statement in KEY_ACTIONS_DDL[source_engine]:
            conn.execute(sa.text(statement))
        conn.execute(sa.text("INSERT INTO parents (id, name) VALUES (1, 'one'), (2, 'two')"))
        conn.execute(sa.text("INSERT INTO children (id, parent, owner) VALUES (10, 1, 2), (11, 2, 1)"))
        conn.commit()
    target = settings_of(databases.create(target_engine))
    transfer.copy_database(source, target)

    def actions(settings: DatabaseSettings) -> dict[tuple[str, ...], tuple[str | None, str | None]]:
        with connect(settings) as conn:
            return {k.columns: ((k.on_delete or "").upper() or None, (k.on_update or "").upper() or None)
                    for k in foreign_keys(conn) if k.table == "children"}

    expected = {("parent",): ("SET NULL", "CASCADE"), ("owner",): ("CASCADE", None)}
    assert actions(source) == expected  # read right on the source too (SQLite: from its PRAGMA)
    assert actions(target) == expected
    with connect(target) as conn:
        if target_engine == "sqlite3":
            conn.execute(sa.text("PRAGMA foreign_keys = ON"))  # as Directus runs SQLite
        conn.execute(sa.text("DELETE FROM parents WHERE id = 1"))
        conn.commit()
        assert conn.execute(sa.text("SELECT id, parent, owner FROM children ORDER BY id")).all() == [(10, None, 2)]

"""delete on real Directus projects (PostgreSQL, MariaDB, SQLite), seeded with project tables that reference
directus_users and directus_files: afterwards no directus_* table is left, the project tables hold exactly the
rows they held and join with plain SQL, the root is gone (the SQLite file inside it kept). Each backup option
gives a snapshot that the ordinary restore takes into an empty database, holding exactly what it promises.
Dry runs and refusals change nothing.

One bootstrapped, seeded project per engine is shared; tests that change a project work on a copy
(``CREATE DATABASE ... TEMPLATE`` on PostgreSQL, a dump piped into a new database on MariaDB, a file copy on
SQLite) with a copy of the project directory."""

from __future__ import annotations

import contextlib
import hashlib
import json
import secrets
import shutil
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from harness import (CLI, DIRECTUS_VERSION, PG_ADMIN, S3_REGION, Database, Databases, TestProject,
                     assert_one_line_error, make_project, run_cli, seed, write_env)

from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.repository import Repository, RepositoryLocation
from directus_ops.results import RestoreResult

SEEDED_TABLES = {"articles", "authors", "ops_marker"}  # ops_marker: made by the project's own migration


# -- shared projects ------------------------------------------------------------------------------------------------
@dataclass
class Copy:
    """A project directory and its own database, copied from a shared seeded project."""

    dir: Path
    database: Database

    @property
    def settings(self) -> DatabaseSettings:
        return DatabaseSettings.from_url(self.database.url)


class Sources:
    """One seeded Directus project per engine (made on first use), and the copies made of them."""

    def __init__(self, root: Path, directus: Path, s3, databases: Databases) -> None:
        self.root = root
        self.directus = directus
        self.s3 = s3
        self.buckets: dict[str, str] = {}
        self.databases = databases
        self.projects: dict[str, TestProject] = {}
        self.copies: list[Database] = []

    def get(self, engine: str) -> TestProject:
        if engine not in self.projects:
            database = self.databases.create(engine)
            storage = {"local": {"DRIVER": "local", "ROOT": "./uploads"}}
            if engine == "pg":  # the PostgreSQL project also keeps files on S3
                self.buckets[engine] = bucket = self.s3.create_bucket()
                storage["s3"] = {"DRIVER": "s3", "KEY": self.s3.key_id, "SECRET": self.s3.secret, "BUCKET": bucket,
                                 "REGION": S3_REGION, "ENDPOINT": self.s3.endpoint, "FORCE_PATH_STYLE": "true",
                                 "ROOT": "files"}
            project = make_project(self.root / f"source-{engine}", self.directus, database, storage)
            with project.server() as client:
                seed(client, list(storage))
            self.projects[engine] = project
        return self.projects[engine]

    def copy(self, engine: str, target: Path) -> Copy:
        source = self.get(engine)
        project_dir = target / "project"
        shutil.copytree(source.dir, project_dir, symlinks=True)
        env = dict(source.env)
        name = f"dops_{secrets.token_hex(4)}"
        if engine == "pg":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source.database.name}"')
            database = Database("pg", name, source.database.user, source.database.password)
            self.copies.append(database)
            env["DB_DATABASE"] = name
        elif engine == "mysql":
            conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
            with conn, conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{source.database.user}'@'%'")
            dump = subprocess.run(["mariadb-dump", "-h", "127.0.0.1", "-u", "root", "--routines", "--triggers",
                                   source.database.name], capture_output=True, check=True)
            subprocess.run(["mariadb", "-h", "127.0.0.1", "-u", "root", name], input=dump.stdout, check=True)
            database = Database("mysql", name, source.database.user, source.database.password)
            self.copies.append(database)
            env["DB_DATABASE"] = name
        else:
            # As usual for SQLite, the database file lives inside the project root.
            shutil.copyfile(source.database.filename, project_dir / "data.db")  # type: ignore[arg-type]
            database = Database("sqlite3", name, filename=project_dir / "data.db")
            env["DB_FILENAME"] = "./data.db"
        write_env(project_dir / ".env", env)
        return Copy(project_dir, database)

    def close(self) -> None:
        for database in self.copies:  # before their sources' roles and users go (module_databases, after this)
            if database.engine == "pg":
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
            else:
                conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
                with conn, conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{database.name}`")


@pytest.fixture(scope="module")
def sources(tmp_path_factory, directus, s3, module_databases) -> Iterator[Sources]:
    shared = Sources(tmp_path_factory.mktemp("delete-sources"), directus, s3, module_databases)
    yield shared
    shared.close()


# -- what a user would look at ----------------------------------------------------------------------------------------
@contextlib.contextmanager
def connected(settings: DatabaseSettings) -> Iterator[sa.Connection]:
    engine = open_engine(settings)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def table_names(settings: DatabaseSettings) -> set[str]:
    with connected(settings) as conn:
        return set(sa.inspect(conn).get_table_names())


def system_tables(settings: DatabaseSettings) -> set[str]:
    return {t for t in table_names(settings) if t.startswith("directus_")}


def full_rows(settings: DatabaseSettings, tables: set[str]) -> dict[str, list[tuple]]:
    """Every row of every table, in a stable order."""
    with connected(settings) as conn:
        return {t: sorted((tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(t)}"))), key=repr)
                for t in sorted(tables)}


def row_counts(settings: DatabaseSettings, tables: set[str]) -> dict[str, int]:
    with connected(settings) as conn:
        quote = conn.dialect.identifier_preparer.quote
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {quote(t)}")).scalar() for t in sorted(tables)}


def articles_with_authors(settings: DatabaseSettings) -> list[tuple]:
    """The plain SQL join a user of the left-over database would write."""
    with connected(settings) as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT a.title, w.name FROM articles a JOIN authors w ON a.author = w.id ORDER BY a.id"))]


def foreign_keys(settings: DatabaseSettings) -> set[tuple[str, str, str]]:
    """(table, column, referred table) of every foreign key."""
    with connected(settings) as conn:
        inspector = sa.inspect(conn)
        return {(t, ",".join(k["constrained_columns"]), k["referred_table"])
                for t in inspector.get_table_names() for k in inspector.get_foreign_keys(t)}


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        digest.update(str(item.relative_to(path)).encode())
        if item.is_file() and not item.is_symlink():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def state(copy: Copy) -> tuple:
    """Tables, all their rows, and the project directory, byte for byte: what 'nothing changed' means."""
    tables = table_names(copy.settings)
    return tables, full_rows(copy.settings, tables), tree_digest(copy.dir)


def manifest_of(repo: Path, snapshot_id: str) -> dict:
    """A snapshot's manifest as plain data, read (and authenticated) through the repository."""
    return Repository.open(RepositoryLocation(url=str(repo))).load_manifest(snapshot_id).model_dump(mode="json")


def backup_scoped(project_dir: Path, repo: Path, scope: str, **options) -> str:
    from flows.backup import backup

    return backup(project_dir=str(project_dir), repo=str(repo), database_scope=scope, **options)


def restore_into(repo: Path, snapshot_id: str, target_dir: Path, database: Database,
                 storage: dict[str, str] | None = None) -> RestoreResult:
    from flows.restore import restore

    with database.flow_url() as url:
        return restore(repo=str(repo), project_dir=str(target_dir), snapshot_id=snapshot_id, database_url=url,
                       storage=storage)


def assert_delete_result(copy: Copy, before_tables: set[str], directus_tables: set[str], before_rows: dict,
                         before_join: list[tuple]) -> None:
    """Exactly the tables Directus's own bootstrap of the installed version created are gone (whatever tables
    that version has: directus_comments, directus_deployments, directus_oauth_* on 12.x), the project's tables
    hold exactly the rows they held and join as before."""
    # The derived set is the installed version's, with the system tables added since 11.1 when it has them (the
    # lower bounds: the releases these are known in).
    version = tuple(int(part) for part in DIRECTUS_VERSION.split(".")[:2])
    if version >= (11, 1):  # comments apart from activity
        assert "directus_comments" in directus_tables
    if version >= (11, 17):  # deployments
        assert {"directus_deployments", "directus_deployment_projects", "directus_deployment_runs"} <= directus_tables
    if version >= (12, 4):  # OAuth for MCP clients
        assert {"directus_oauth_clients", "directus_oauth_codes", "directus_oauth_tokens"} <= directus_tables
    assert before_tables == SEEDED_TABLES | directus_tables
    assert before_tables - table_names(copy.settings) == directus_tables
    assert system_tables(copy.settings) == set()
    assert set(table_names(copy.settings)) == SEEDED_TABLES
    assert full_rows(copy.settings, SEEDED_TABLES) == before_rows
    assert articles_with_authors(copy.settings) == before_join
    assert len(before_join) == 12 and {name for _, name in before_join} == {"Ada", "Grace"}
    keys = foreign_keys(copy.settings)
    assert ("articles", "author", "authors") in keys  # between project tables: kept
    assert not [k for k in keys if k[2].startswith("directus_")]


# -- the delete, per engine ---------------------------------------------------------------------------------------------
def test_delete_postgresql_with_project_files_and_extensions_backup(sources, tmp_path, databases, prefect_server,
                                                                   directus_tables):
    from flows.delete import delete_project

    copy = sources.copy("pg", tmp_path / "copy")
    before_tables = table_names(copy.settings)
    before_rows = full_rows(copy.settings, SEEDED_TABLES)
    before_join = articles_with_authors(copy.settings)
    assert ("articles", "cover", "directus_files") in foreign_keys(copy.settings)
    assert ("authors", "user_created", "directus_users") in foreign_keys(copy.settings)
    uploads = files_of(copy.dir / "uploads")
    extensions = files_of(copy.dir / "extensions")
    source_bucket = sources.buckets["pg"]
    bucket_objects = sources.s3.objects(source_bucket, "files/")
    assert uploads and extensions and bucket_objects
    repo = tmp_path / "repo"

    result = delete_project(project_dir=str(copy.dir), confirm="project", repo=str(repo), backup_database="project",
                            backup_files=True, backup_extensions=True)

    assert_delete_result(copy, before_tables, directus_tables, before_rows, before_join)
    assert set(result.dropped_tables) == directus_tables
    assert any(k.startswith("articles.articles_cover_foreign ") for k in result.dropped_foreign_keys)
    assert any(k.startswith("authors.authors_user_created_foreign ") for k in result.dropped_foreign_keys)
    assert not copy.dir.exists()
    assert sources.s3.objects(source_bucket, "files/") == bucket_objects  # outside the root: not touched
    assert any(p.startswith("storage 's3'") for p in result.untouched)

    # The project-only snapshot: no directus_* table, the project rows, the files and the custom code.
    manifest = manifest_of(repo, result.snapshot)
    assert manifest["database"]["scope"] == "project"
    assert set(manifest["database"]["row_counts"]) == SEEDED_TABLES
    assert ["articles", "articles_cover_foreign"] in manifest["database"]["skipped_foreign_keys"]
    target_db = databases.create("pg", create_database=False)
    target_dir = tmp_path / "restored"
    target_bucket = sources.s3.create_bucket()
    restore_into(repo, result.snapshot, target_dir, target_db, {"s3": f"s3://{target_bucket}/files"})
    target = DatabaseSettings.from_url(target_db.url)
    assert table_names(target) == SEEDED_TABLES
    assert full_rows(target, SEEDED_TABLES) == before_rows
    assert articles_with_authors(target) == before_join
    assert ("articles", "author", "authors") in foreign_keys(target)
    assert files_of(target_dir / "uploads") == uploads
    assert sources.s3.objects(target_bucket, "files/") == bucket_objects
    assert files_of(target_dir / "extensions") == extensions


def test_delete_mariadb_through_the_cli_keeping_the_root(sources, tmp_path, databases, cli_env, directus_tables):
    copy = sources.copy("mysql", tmp_path / "copy")
    before_tables = table_names(copy.settings)
    before_rows = full_rows(copy.settings, SEEDED_TABLES)
    before_join = articles_with_authors(copy.settings)
    before_system = row_counts(copy.settings, system_tables(copy.settings))
    assert ("articles", "cover", "directus_files") in foreign_keys(copy.settings)
    repo = tmp_path / "repo"

    done = subprocess.run([*CLI, "delete", str(copy.dir), "--confirm", "project", "--repo", str(repo), "--keep-root"],
                          env=cli_env, capture_output=True, text=True, timeout=600)

    assert done.returncode == 0, done.stderr
    assert "project root kept" in done.stdout and "snapshot before: " in done.stdout
    assert_delete_result(copy, before_tables, directus_tables, before_rows, before_join)
    assert (copy.dir / ".env").is_file() and (copy.dir / "uploads").is_dir()
    for secret in (copy.database.password or "", sources.get("mysql").env["SECRET"]):
        assert secret not in done.stdout + done.stderr

    # The default backup is the entire database: every table, every row count.
    snapshot_id = done.stdout.strip().rsplit("snapshot before: ", 1)[1].rstrip(")")
    assert manifest_of(repo, snapshot_id)["database"]["scope"] == "entire"
    target_db = databases.create("mysql")
    restore_into(repo, snapshot_id, tmp_path / "restored", target_db)
    target = DatabaseSettings.from_url(target_db.url)
    assert table_names(target) == SEEDED_TABLES | set(before_system)
    assert row_counts(target, set(before_system)) == before_system
    assert full_rows(target, SEEDED_TABLES) == before_rows


@pytest.mark.matrix
def test_delete_sqlite_keeps_the_database_file_and_a_system_only_backup(sources, tmp_path, databases, prefect_server,
                                                                       directus_tables):
    from flows.delete import delete_project

    copy = sources.copy("sqlite3", tmp_path / "copy")
    before_tables = table_names(copy.settings)
    before_rows = full_rows(copy.settings, SEEDED_TABLES)
    before_join = articles_with_authors(copy.settings)
    before_system = row_counts(copy.settings, system_tables(copy.settings))
    with contextlib.closing(sqlite3.connect(copy.database.filename)) as conn:
        # An author added and deleted: the AUTOINCREMENT counter is now above the highest id.
        conn.execute("INSERT INTO authors (name) VALUES ('Temporary')")
        conn.execute("DELETE FROM authors WHERE name = 'Temporary'")
        conn.commit()
        sequence = dict(conn.execute("SELECT name, seq FROM sqlite_sequence"))
        assert sequence["authors"] > conn.execute("SELECT max(id) FROM authors").fetchone()[0]
    repo = tmp_path / "repo"

    result = delete_project(project_dir=str(copy.dir), confirm="project", repo=str(repo), backup_database="system")

    assert_delete_result(copy, before_tables, directus_tables, before_rows, before_join)
    assert set(result.dropped_tables) == directus_tables
    assert sorted(p.name for p in copy.dir.iterdir()) == ["data.db"]  # the root is gone but for the database
    assert set(result.rebuilt_tables) == {"articles", "authors"}
    with contextlib.closing(sqlite3.connect(copy.database.filename)) as conn:
        conn.execute("PRAGMA foreign_keys = ON")
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        schema = " ".join(r[0] for r in conn.execute("SELECT sql FROM sqlite_master WHERE sql IS NOT NULL"))
        assert "directus_" not in schema
        # The counters go on where they were: a new article gets the next id, not a reused one.
        assert {k: v for k, v in conn.execute("SELECT name, seq FROM sqlite_sequence")} == \
            {k: v for k, v in sequence.items() if not k.startswith("directus_")}
        # Foreign keys between project tables still work: a dangling author is refused.
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute("INSERT INTO articles (title, author) VALUES ('orphan', 9999)")
    with contextlib.closing(sqlite3.connect(copy.database.filename)) as conn:
        assert conn.execute("PRAGMA freelist_count").fetchone()[0] == 0  # the dropped tables' pages are not kept
    assert b"editor@example.com" not in copy.database.filename.read_bytes()  # the users' rows erased, not just freed

    # The system-only snapshot: only directus_* tables, with their row counts.
    manifest = manifest_of(repo, result.snapshot)
    assert manifest["database"]["scope"] == "system" and manifest["objects"] == []
    assert not [a for a in manifest["artifacts"] if a["location"] in ("@extensions", "@migrations")]
    target_db = databases.create("sqlite3")
    restore_into(repo, result.snapshot, tmp_path / "restored", target_db)
    target = DatabaseSettings.from_url(target_db.url)
    assert table_names(target) == set(before_system)
    assert row_counts(target, set(before_system)) == before_system


# -- each backup scope is restorable and holds what it promises ------------------------------------------------------
def test_system_only_backup_postgresql(sources, tmp_path, databases, prefect_server):
    project = sources.get("pg")
    source = DatabaseSettings.from_url(project.database.url)
    counts = row_counts(source, system_tables(source))
    repo = tmp_path / "repo"
    snapshot_id = backup_scoped(project.dir, repo, "system", include_storage=False, include_extensions=False)
    target_db = databases.create("pg", create_database=False)
    restore_into(repo, snapshot_id, tmp_path / "restored", target_db)
    target = DatabaseSettings.from_url(target_db.url)
    assert table_names(target) == set(counts)
    assert row_counts(target, set(counts)) == counts
    assert ("directus_users", "role", "directus_roles") in foreign_keys(target)


@pytest.mark.parametrize("engine", ["mysql", "sqlite3"])
def test_project_and_system_only_backups(engine, sources, tmp_path, databases, prefect_server):
    project = sources.get(engine)
    source = DatabaseSettings.from_url(project.database.url)
    system_counts = row_counts(source, system_tables(source))
    rows = full_rows(source, SEEDED_TABLES)
    repo = tmp_path / "repo"
    for scope in ("project", "system"):
        snapshot_id = backup_scoped(project.dir, repo, scope, include_storage=False, include_extensions=False)
        target_db = databases.create(engine)
        restore_into(repo, snapshot_id, tmp_path / f"restored-{scope}", target_db)
        target = DatabaseSettings.from_url(target_db.url)
        if scope == "project":
            assert table_names(target) == SEEDED_TABLES
            assert full_rows(target, SEEDED_TABLES) == rows
            assert articles_with_authors(target) == articles_with_authors(source)
            keys = foreign_keys(target)
            assert ("articles", "author", "authors") in keys and not [k for k in keys if k[2].startswith("directus_")]
        else:
            assert table_names(target) == set(system_counts)
            assert row_counts(target, set(system_counts)) == system_counts


def test_files_and_extensions_backup_without_database(sources, tmp_path, prefect_server):
    from directus_ops.errors import SnapshotNotFound
    from directus_ops.manifest import Manifest
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot_restore import load_database

    project = sources.get("sqlite3")
    repo = tmp_path / "repo"
    snapshot_id = backup_scoped(project.dir, repo, "none", include_storage=True, include_extensions=True)
    manifest = manifest_of(repo, snapshot_id)
    assert manifest["database"] is None
    assert not [a for a in manifest["artifacts"] if a["location"] == "@database"]
    target_dir = tmp_path / "restored"
    from flows.restore import restore

    result = restore(repo=str(repo), project_dir=str(target_dir), snapshot_id=snapshot_id)
    assert result.database_restored is False and not (target_dir / "data.db").exists()
    assert files_of(target_dir / "uploads") == files_of(project.dir / "uploads")
    assert files_of(target_dir / "extensions") == files_of(project.dir / "extensions")
    assert files_of(target_dir / "migrations") == files_of(project.dir / "migrations")
    # Asking for the database of such a snapshot is refused in one line naming the way out.
    repository = Repository.open(RepositoryLocation(url=str(repo)))
    with pytest.raises(SnapshotNotFound, match="holds no database.*snapshot that has one"):
        load_database(repository, repository.load_manifest(snapshot_id),
                      DatabaseSettings.from_url(f"sqlite:///{tmp_path / 'x.db'}"), False, tmp_path)
    assert repository.load_manifest(snapshot_id).database is None
    # A manifest written before scopes existed reads as a whole database with nothing left out.
    full_id = backup_scoped(project.dir, repo, "entire", include_storage=False, include_extensions=False)
    old = manifest_of(repo, full_id)
    del old["database"]["scope"], old["database"]["skipped_foreign_keys"]
    info = Manifest.model_validate(old).database
    assert info is not None and info.scope == "entire" and info.skipped_foreign_keys == []


# -- dry run and refusals: nothing changed ------------------------------------------------------------------------------
def test_dry_run_prints_the_plan_and_changes_nothing(sources, tmp_path, cli_env):
    copy = sources.copy("pg", tmp_path / "copy")
    before = state(copy)
    repo = tmp_path / "repo"
    done = subprocess.run([*CLI, "delete", str(copy.dir), "--dry-run", "--repo", str(repo), "--backup-files",
                           "--backup-extensions"], env=cli_env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for table in system_tables(copy.settings):
        assert f"\n  {table}\n" in out
    assert "articles.articles_cover_foreign (cover) -> directus_files (id)" in out
    assert "authors.authors_user_created_foreign (user_created) -> directus_users (id)" in out
    assert "articles.articles_author_foreign (author) -> authors (id)" in out  # kept
    for path in (".env", "uploads/", "extensions/", "node_modules", "package.json"):
        assert f"\n  {copy.dir / path.rstrip('/')}{'/' if path.endswith('/') else ''}\n" in out, path
    assert "database: the entire database" in out and "storage 'local': every object" in out
    assert "storage 's3': every object" in out and "not touched: storage 's3'" in out
    assert sources.s3.secret not in out + done.stderr and copy.database.password not in out + done.stderr
    assert out.strip().endswith("dry run: nothing was changed")
    assert state(copy) == before
    assert not repo.exists()


def test_refusals_change_nothing(sources, tmp_path, cli_env_no_server):
    copy = sources.copy("sqlite3", tmp_path / "copy")
    before = state(copy)
    repo = tmp_path / "repo"
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    project = str(copy.dir)
    cases = [
        ((project, "--repo", str(repo)), 16, ("--confirm project", "--dry-run")),
        ((project, "--confirm", "Project", "--repo", str(repo)), 16, ("does not match", "--confirm project")),
        ((project, "--confirm", "project"), 2, ("--backup-database entire (the default) needs --repo", "--backup-database none")),
        ((project, "--confirm", "project", "--backup-database", "none", "--backup-files"), 2, ("--backup-files needs --repo",)),
        ((project, "--confirm", "project", "--backup-database", "half"), 2, ("choose one of entire, system, project, none",)),
        ((project, "--confirm", "project", "--repo", str(blocker / "repo")), 7, ("repository",)),
        ((project, "--confirm", "project", "--repo", str(copy.dir / "backups")), 2, ("inside the project root", "--keep-root")),
    ]
    for args, code, fragments in cases:
        done = run_cli(cli_env_no_server, "delete", *args)
        assert_one_line_error(done, code, *fragments)
        assert state(copy) == before, args
        assert not repo.exists()

    # A directory that is not a Directus project's is not removed.
    (copy.dir / "package.json").unlink()
    (copy.dir / "node_modules").unlink()
    before = state(copy)
    done = run_cli(cli_env_no_server, "delete", project, "--confirm", "project", "--backup-database", "none")
    assert_one_line_error(done, 2, "does not look like a Directus project directory", "--keep-root")
    assert state(copy) == before


def test_a_failing_backup_stops_the_delete(sources, tmp_path, prefect_server):
    """The flow on its own (as a deployment runs it): the backup subflow fails, nothing is dropped or removed."""
    from flows.delete import delete_project

    copy = sources.copy("sqlite3", tmp_path / "copy")
    before = state(copy)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(Exception, match="repository"):
        delete_project(project_dir=str(copy.dir), confirm="project", repo=str(blocker / "repo"), backup_files=True)
    assert state(copy) == before


def test_root_refusals_and_sqlite_reference_removal():
    from directus_ops.delete import check_root
    from directus_ops.errors import ProjectError
    from directus_ops.sqlite_foreign_keys import sqlite_constraint_names, sqlite_table_without_references

    for path in (Path("/"), Path.home()):
        with pytest.raises(ProjectError, match="refusing to delete"):
            check_root(path)
    statement = ('CREATE TABLE "t" (id integer primary key, u char(36) CONSTRAINT t_u_fk REFERENCES [directus_users](id) '
                 'ON DELETE SET NULL NOT DEFERRABLE INITIALLY IMMEDIATE NOT NULL, a int REFERENCES authors(id), '
                 'CONSTRAINT `t_f_foreign` FOREIGN KEY (`f`) REFERENCES `directus_files` (`id`), f char(36))')
    assert sqlite_table_without_references(statement, {"directus_users", "directus_files"}, "t2") == (
        'CREATE TABLE "t2" (id integer primary key, u char(36)  NOT NULL, a int REFERENCES authors(id), f char(36))')
    assert sqlite_constraint_names(statement) == {(("u",), "directus_users"): "t_u_fk",
                                                  (("f",), "directus_files"): "t_f_foreign"}
    tricky = 'CREATE TABLE "a(b" (x text DEFAULT \')\', y int CONSTRAINT "y,fk" REFERENCES "p(q)" (id), z int)'
    assert sqlite_constraint_names(tricky) == {(("y",), "p(q)"): "y,fk"}
    assert sqlite_table_without_references(tricky, {"p(q)"}) == 'CREATE TABLE "a(b" (x text DEFAULT \')\', y int , z int)'


def test_postgresql_drop_is_one_transaction(sources, tmp_path, prefect_server):
    """A view over a system table stops the drop (no CASCADE): everything is rolled back, the root is kept."""
    from flows.delete import delete_project

    from directus_ops.errors import DatabaseError

    copy = sources.copy("pg", tmp_path / "copy")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{copy.database.name}", autocommit=True) as conn:
        conn.execute("CREATE VIEW editor_emails AS SELECT email FROM directus_users")
    before = state(copy)
    keys = foreign_keys(copy.settings)
    assert ("articles", "cover", "directus_files") in keys
    with pytest.raises(DatabaseError, match="cannot drop the system tables.*nothing was changed"):
        delete_project(project_dir=str(copy.dir), confirm="project", backup_database="none")
    assert state(copy) == before
    assert foreign_keys(copy.settings) == keys


@pytest.mark.parametrize("engine", ["pg", "mysql", "sqlite3"])
def test_rows_written_after_the_backup_refuse_the_drop(engine, sources, tmp_path, prefect_server):
    """A Directus still running logs activity after the dump: those rows are in no backup, so the drop is refused
    (the plain steps of the flow in order: backup, plan, a row written, drop) and nothing is dropped."""
    from directus_ops.delete import check_delete, drop_system_tables, plan_delete
    from directus_ops.errors import DatabaseError

    copy = sources.copy(engine, tmp_path / "copy")
    repo = tmp_path / "repo"
    snapshot_id = backup_scoped(copy.dir, repo, "system")
    backed_up = manifest_of(repo, snapshot_id)["database"]
    assert backed_up["scope"] == "system" and "directus_activity" in backed_up["row_counts"]
    project = check_delete(str(copy.dir), None, "project", str(repo), "system")
    plan = plan_delete(project)
    with connected(copy.settings) as conn, conn.begin():
        conn.execute(sa.text("INSERT INTO directus_activity (action, collection, item) VALUES ('login', "
                             "'directus_users', 'x')"))
    before = state(copy)
    activity = backed_up["row_counts"]["directus_activity"]
    with pytest.raises(DatabaseError, match=rf"changed since the backup \(table directus_activity: {activity + 1} "
                                            rf"rows, the snapshot has {activity}\): stop Directus and run again"):
        drop_system_tables(project.database, plan, backed_up["row_counts"], backed_up["scope"])
    assert state(copy) == before
    assert "directus_activity" in system_tables(copy.settings)


# -- PostgreSQL: a project whose tables live in another schema (DB_SEARCH_PATH) -------------------------------------
SCHEMA_SQL = """
CREATE SCHEMA app;
CREATE TABLE app.directus_users (id uuid PRIMARY KEY, email varchar(255));
CREATE TABLE app.directus_files (id uuid PRIMARY KEY, filename_disk varchar(255),
                                 uploaded_by uuid REFERENCES app.directus_users (id));
CREATE TABLE app.directus_activity (id serial PRIMARY KEY, action varchar(45), "user" uuid REFERENCES app.directus_users (id));
CREATE TABLE app.authors (id serial PRIMARY KEY, name text);
CREATE TABLE app.articles (id serial PRIMARY KEY, title text, author integer REFERENCES app.authors (id),
                           editor uuid CONSTRAINT articles_editor_foreign REFERENCES app.directus_users (id),
                           cover uuid CONSTRAINT articles_cover_foreign REFERENCES app.directus_files (id));
INSERT INTO app.directus_users VALUES ('6f1c1b5e-0000-4000-8000-000000000001', 'ada@example.com');
INSERT INTO app.directus_files VALUES ('6f1c1b5e-0000-4000-8000-0000000000f1', 'cover.jpg',
                                       '6f1c1b5e-0000-4000-8000-000000000001');
INSERT INTO app.directus_activity (action, "user") VALUES ('login', '6f1c1b5e-0000-4000-8000-000000000001'),
                                                           ('create', '6f1c1b5e-0000-4000-8000-000000000001');
INSERT INTO app.authors (name) VALUES ('Ada'), ('Grace');
INSERT INTO app.articles (title, author, editor, cover) VALUES
    ('One', 1, '6f1c1b5e-0000-4000-8000-000000000001', '6f1c1b5e-0000-4000-8000-0000000000f1'),
    ('Two', 2, NULL, NULL), ('Three', 1, '6f1c1b5e-0000-4000-8000-000000000001', NULL);
"""


def schema_state(database: Database) -> dict[str, list[tuple]]:
    """Every table of every schema, with all its rows, and every foreign key: as psql would show them."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{database.name}") as conn:
        tables = [f"{s}.{t}" for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema NOT IN "
            "('pg_catalog', 'information_schema') ORDER BY 1, 2")]
        found = {t: sorted(conn.execute(f'SELECT * FROM {t}').fetchall(), key=repr) for t in tables}
        found["foreign keys"] = sorted(conn.execute(
            "SELECT conrelid::regclass::text, conname, confrelid::regclass::text FROM pg_constraint "
            "WHERE contype = 'f'").fetchall())
    return found


def test_postgresql_project_outside_public(databases, tmp_path, cli_env_no_server, prefect_server):
    """DB_SEARCH_PATH=app: exactly app's directus_* tables are dropped (and backed up), app's project tables and
    a directus_* table of another schema are kept; with the search path wrong, nothing is found and the delete
    is refused instead of removing the root."""
    from flows.delete import delete_project

    database = databases.create("pg")
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute(SCHEMA_SQL)
    project_dir = tmp_path / "project"
    project_dir.mkdir()
    (project_dir / "package.json").write_text(json.dumps({"dependencies": {"directus": DIRECTUS_VERSION}}))
    env = {**database.env(), "KEY": "k", "SECRET": "s"}
    write_env(project_dir / ".env", env)  # no DB_SEARCH_PATH: Directus would look in public
    before = schema_state(database), tree_digest(project_dir)
    done = run_cli(cli_env_no_server, "delete", str(project_dir), "--confirm", "project", "--backup-database", "none")
    assert_one_line_error(done, 2, f'no directus_* tables found in schema public of PostgreSQL database "{database.name}"',
                          "is DB_SEARCH_PATH right?")
    assert (schema_state(database), tree_digest(project_dir)) == before

    with psycopg.connect(database.url, autocommit=True) as conn:  # another project's table, not this one's
        conn.execute("CREATE TABLE public.directus_settings (id serial PRIMARY KEY, project_name text)")
        conn.execute("INSERT INTO public.directus_settings (project_name) VALUES ('other')")
    write_env(project_dir / ".env", {**env, "DB_SEARCH_PATH": "app"})
    before = schema_state(database)
    repo = tmp_path / "repo"
    result = delete_project(project_dir=str(project_dir), confirm="project", repo=str(repo), backup_database="system")

    assert sorted(result.dropped_tables) == ["app.directus_activity", "app.directus_files", "app.directus_users"]
    after = schema_state(database)
    kept = ["app.articles", "app.authors", "public.directus_settings"]
    assert sorted(t for t in after if t != "foreign keys") == kept
    assert {t: after[t] for t in kept} == {t: before[t] for t in kept}
    # With search_path=app, regclass names app's tables plainly; here (admin, search_path public) app.x.
    assert after["foreign keys"] == [("app.articles", "articles_author_fkey", "app.authors")]
    assert not project_dir.exists()
    backed_up = manifest_of(repo, result.snapshot)["database"]
    assert backed_up["row_counts"] == {"app.directus_activity": 2, "app.directus_files": 1, "app.directus_users": 1}
    # pg_dump --table writes no CREATE SCHEMA: the restore makes app, and the system-only dump goes into it.
    target = databases.create("pg")
    restore_into(repo, result.snapshot, tmp_path / "restored", target)
    restored = schema_state(target)
    system = ["app.directus_activity", "app.directus_files", "app.directus_users"]
    assert sorted(t for t in restored if t != "foreign keys") == system
    assert {t: restored[t] for t in system} == {t: before[t] for t in system}
    assert restored["foreign keys"] == [k for k in before["foreign keys"] if k[0] in system]

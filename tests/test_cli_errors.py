"""Bad input: each case is one clear line on stderr naming the problem and the fix, a documented non-zero
exit code, and nothing changed (no repository created, no target touched)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from harness import DIRECTUS_VERSION, assert_one_line_error, free_port, run_cli, write_env


def sqlite_project(root: Path, **extra: str) -> Path:
    """A minimal project: a SQLite database with a table and rows, local uploads, a .env."""
    project = root / "project"
    (project / "uploads").mkdir(parents=True)
    (project / "uploads" / "a.txt").write_bytes(b"file a")
    with sqlite3.connect(project / "data.db") as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.executemany("INSERT INTO notes (body) VALUES (?)", [("one",), ("two",)])
    write_env(project / ".env", {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./data.db", "KEY": "k-0123456789",
                                 "SECRET": "s-0123456789", **extra})
    return project


def tree_digest(path: Path) -> str:
    digest = hashlib.sha256()
    for item in sorted(path.rglob("*")):
        digest.update(str(item.relative_to(path)).encode())
        if item.is_file():
            digest.update(item.read_bytes())
    return digest.hexdigest()


def test_missing_project_dir(tmp_path, cli_env_no_server):
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(tmp_path / "nope"), "--repo", str(repo))
    assert_one_line_error(done, 2, "does not exist", "directory of a Directus project")
    assert not repo.exists()


def test_config_without_db_client(tmp_path, cli_env_no_server):
    project = sqlite_project(tmp_path)
    write_env(project / ".env", {"DB_FILENAME": "./data.db"})
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", str(repo))
    assert_one_line_error(done, 2, "DB_CLIENT is not set", "pg, mysql", "sqlite3")
    assert not repo.exists()


def test_unsupported_client(tmp_path, cli_env_no_server):
    project = sqlite_project(tmp_path)
    write_env(project / ".env", {"DB_CLIENT": "mssql", "DB_DATABASE": "x"})
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", str(repo))
    assert_one_line_error(done, 2, "DB_CLIENT=mssql", "not supported", "supported: pg")
    assert not repo.exists()


def test_unreachable_database(tmp_path, cli_env_no_server):
    project = sqlite_project(tmp_path)
    port = free_port()  # nothing listens there
    write_env(project / ".env", {"DB_CLIENT": "pg", "DB_HOST": "127.0.0.1", "DB_PORT": str(port),
                                 "DB_DATABASE": "app", "DB_USER": "app", "DB_PASSWORD": "hunter2-secret"})
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", str(repo))
    assert_one_line_error(done, 4, "cannot connect", f"127.0.0.1:{port}", "check the DB_* settings")
    assert "hunter2-secret" not in done.stderr + done.stdout
    assert not repo.exists()


def test_unknown_storage_driver(tmp_path, cli_env_no_server):
    project = sqlite_project(tmp_path, STORAGE_LOCATIONS="local,cloud", STORAGE_CLOUD_DRIVER="gcs")
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", str(repo))
    assert_one_line_error(done, 2, "STORAGE_CLOUD_DRIVER=gcs", "supported drivers: local, s3")
    assert not repo.exists()


def test_repository_not_writable(tmp_path, cli_env_no_server):
    project = sqlite_project(tmp_path)
    before = tree_digest(project)
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", "/sys/directus-ops-repo")  # read-only even for root
    assert_one_line_error(done, 7, "cannot write to the repository", "choose a location you can write to")
    assert tree_digest(project) == before


@pytest.fixture
def repo_with_snapshot(tmp_path, prefect_server):
    from flows.backup import backup

    project = sqlite_project(tmp_path / "source")
    repo = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project), repo=str(repo))
    return project, repo, snapshot_id


def test_unknown_snapshot_id(tmp_path, cli_env_no_server, repo_with_snapshot):
    _, repo, _ = repo_with_snapshot
    target = tmp_path / "target"
    done = run_cli(cli_env_no_server, "restore", "--repo", str(repo), "--snapshot", "20200101T000000Z-abcdef",
                   "--project-dir", str(target))
    assert_one_line_error(done, 8, "no snapshot 20200101T000000Z-abcdef", "directus-ops snapshots --repo")
    assert not target.exists()


def test_restore_into_non_empty_database_needs_replace(tmp_path, cli_env, repo_with_snapshot):
    cli_env_no_server = cli_env  # the replacing run reports to the session's Prefect server
    project, repo, snapshot_id = repo_with_snapshot
    target = tmp_path / "target"
    target.mkdir()
    with sqlite3.connect(target / "existing.db") as conn:
        conn.execute("CREATE TABLE precious (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO precious (v) VALUES ('keep me')")
    before = tree_digest(target)
    done = run_cli(cli_env_no_server, "restore", "--repo", str(repo), "--snapshot", snapshot_id, "--project-dir", str(target),
                   "--database-url", f"sqlite:///{target / 'existing.db'}")
    assert_one_line_error(done, 5, "is not empty", "--replace")
    assert tree_digest(target) == before

    # With --replace the same restore goes through and the database holds the snapshot's rows.
    done = run_cli(cli_env_no_server, "restore", "--repo", str(repo), "--snapshot", snapshot_id, "--project-dir", str(target),
                   "--database-url", f"sqlite:///{target / 'existing.db'}", "--replace")
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(target / "existing.db") as conn:
        assert conn.execute("SELECT body FROM notes ORDER BY id").fetchall() == [("one",), ("two",)]
        assert conn.execute("SELECT name FROM sqlite_master WHERE name='precious'").fetchall() == []
    assert (target / "uploads" / "a.txt").read_bytes() == b"file a"


def test_every_command_has_help(cli_env_no_server):
    for command in ([], ["backup"], ["snapshots"], ["restore"], ["verify"], ["forget"], ["demo"]):
        done = run_cli(cli_env_no_server, *command, "--help")
        assert done.returncode == 0 and "Usage:" in done.stdout, (command, done.stderr)


def test_missing_dump_tool_is_named(tmp_path, cli_env_no_server, databases):
    database = databases.create("pg")
    project = sqlite_project(tmp_path)
    write_env(project / ".env", database.env())
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    repo = tmp_path / "repo"
    done = run_cli({**cli_env_no_server, "PATH": str(empty_bin)}, "backup", str(project), "--repo", str(repo))
    assert_one_line_error(done, 3, "`pg_dump` is needed", "postgresql-client")
    assert not repo.exists()


def test_a_failed_npm_install_names_npms_error_without_verbose(tmp_path, cli_env_no_server):
    """npm ends with "A complete log of this run can be found in ...": the error line must be the one before.
    A version nobody published is refused before npm runs; a real npm failure (the demo project's own
    package.json broken) is reported by its error code and reason."""
    env = {**cli_env_no_server, "npm_config_cache": str(tmp_path / "npm-cache")}
    done = run_cli(env, "demo", "--dir", str(tmp_path / "demo"), "--directus-version", "0.0.999-nonexistent")
    assert done.returncode == 14, (done.stdout, done.stderr)
    assert done.stderr.strip().splitlines()[-1] == ("directus-ops: error: no directus@0.0.999-nonexistent is "
                                                    "published on the npm registry; pass another --directus-version")
    project = tmp_path / "demo" / "project"
    project.mkdir(parents=True)
    (project / "package.json").write_text("{not json\n")
    done = run_cli(env, "demo", "--dir", str(tmp_path / "demo"), "--directus-version", DIRECTUS_VERSION)
    assert done.returncode == 10, (done.stdout, done.stderr)
    error = done.stderr.strip().splitlines()[-1]  # after the demo's "installing directus@... from npm" line
    assert error.startswith("directus-ops: error: npm failed with exit code 1: npm error code EJSONPARSE | "), error
    assert "Invalid package.json" in error and "complete log" not in error

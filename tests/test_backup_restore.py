"""Backup -> restore round trips of real Directus projects on PostgreSQL, MariaDB and SQLite, with local
and S3 storage: after a restore into a fresh database and fresh storage, Directus started on the restored
project serves the same items and byte-identical files."""

from __future__ import annotations

import contextlib
import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import CLI, DIRECTUS_VERSION, S3_REGION, TestProject, api_state, link_directus, make_project, seed


@contextlib.contextmanager
def captured_logs() -> Iterator[list[str]]:
    """Every log line of the run, from any logger, as a user would find it in a log file."""
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))

    handler = Collect(level=logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    loggers = [logging.getLogger(n) for n in ("", "prefect", "prefect.flow_runs", "prefect.task_runs", "directus_ops")]
    previous = [(l, l.level) for l in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
    try:
        yield lines
    finally:
        for logger, level in previous:
            logger.removeHandler(handler)
            logger.setLevel(level)


def repo_objects(repo: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (repo / "objects").rglob("*") if p.is_file()}


def s3_storage(s3, bucket: str) -> dict[str, str]:
    return {"DRIVER": "s3", "KEY": s3.key_id, "SECRET": s3.secret, "BUCKET": bucket, "REGION": S3_REGION,
            "ENDPOINT": s3.endpoint, "FORCE_PATH_STYLE": "true", "ROOT": "files"}


def restored_project(target_dir: Path, directus: Path, source: TestProject, database) -> TestProject:
    link_directus(target_dir, directus)
    return TestProject(target_dir, database, source.port, source.storage, source.env)


def test_round_trip_postgresql_with_local_and_s3_storage(tmp_path, directus, databases, s3, prefect_server, monkeypatch):
    from flows.backup import backup
    from flows.restore import restore

    from directus_ops.repository import Repository, RepositoryLocation

    source_bucket = s3.create_bucket()
    source_db = databases.create("pg")
    project = make_project(tmp_path / "source", directus, source_db,
                           {"local": {"DRIVER": "local", "ROOT": "./uploads"}, "s3": s3_storage(s3, source_bucket)})
    with project.server() as client:
        seed(client, ["local", "s3"])
        before = api_state(client)
    assert before["marker"] == "marker-ok"
    assert {f["storage"] for f in before["files"]} == {"local", "s3"}

    # The repository itself on S3, credentials from the environment.
    repo_bucket = s3.create_bucket()
    repo = f"s3://{repo_bucket}/snapshots"
    repo_options = {"url": repo, "endpoint": s3.endpoint, "region": S3_REGION}
    monkeypatch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
    monkeypatch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
    with captured_logs() as logs:
        snapshot_id = backup(project_dir=str(project.dir), repo=repo_options)

    manifest_bytes = s3.objects(repo_bucket, f"snapshots/snapshots/{snapshot_id}.json")[f"snapshots/snapshots/{snapshot_id}.json"]
    repository = Repository.open(RepositoryLocation(repo, endpoint=s3.endpoint, region=S3_REGION))
    manifest = repository.load_manifest(snapshot_id)  # authenticated and parsed by the repository
    assert manifest.project.directus_version == DIRECTUS_VERSION
    assert manifest.project.migrations[-1] == "20990101A"  # the project's own migration
    assert manifest.database.engine == "postgresql" and manifest.database.dump_format == "pg_dump-custom"
    assert manifest.database.row_counts["articles"] == 12 and manifest.database.row_counts["authors"] == 2
    assert {e.location for e in manifest.objects} == {"local", "s3"}
    assert {e.key for e in manifest.artifact("@extensions")} == {"directus-extension-marker/package.json",
                                                                 "directus-extension-marker/dist/index.js"}
    # No secret of the project appears in the logs or the manifest.
    text = "\n".join(logs)
    assert "dump" in text  # the capture did see the run
    for secret in project.secrets:
        assert secret not in text, "a secret reached the logs"
        assert secret.encode() not in manifest_bytes, "a secret reached the manifest"

    # A second backup right away reads and copies no storage object again.
    repo_before = s3.objects(repo_bucket, "snapshots/objects/")
    second_id = backup(project_dir=str(project.dir), repo=repo_options)
    repo_after = s3.objects(repo_bucket, "snapshots/objects/")
    second = repository.load_manifest(second_id)
    assert second.stats.storage_objects_read == 0 and second.stats.storage_bytes_written == 0
    new_objects = set(repo_after) - set(repo_before)
    dump_key = f"snapshots/objects/{second.database_dump.sha256[:2]}/{second.database_dump.sha256}"
    assert new_objects <= {dump_key}, "only the new database dump may be new in the repository"
    assert {(e.key, e.sha256) for e in second.objects} == {(e.key, e.sha256) for e in manifest.objects}

    # Restore into a database that does not exist yet, a fresh directory and a fresh bucket.
    target_db = databases.create("pg", create_database=False)
    target_bucket = s3.create_bucket()
    target_dir = tmp_path / "restored"
    with target_db.flow_url() as target_url:
        result = restore(repo=repo_options, project_dir=str(target_dir), snapshot_id=snapshot_id,
                         database_url=target_url, storage={"s3": f"s3://{target_bucket}/files"})
    assert result.rows == sum(manifest.database.row_counts.values())
    assert s3.objects(target_bucket, "files/") == s3.objects(source_bucket, "files/")
    restored_env = (target_dir / ".env").read_text()
    assert f"DB_DATABASE={target_db.name}" in restored_env and target_bucket in restored_env

    with restored_project(target_dir, directus, project, target_db).server() as client:
        after = api_state(client)
    assert after == before
    assert source_db.tables() == target_db.tables()


@pytest.mark.matrix
def test_round_trip_mariadb(tmp_path, directus, databases, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    from directus_ops.repository import Repository, RepositoryLocation

    source_db = databases.create("mysql")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    repo = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project.dir), repo=str(repo))
    manifest = Repository.open(RepositoryLocation(str(repo))).load_manifest(snapshot_id)
    assert manifest.project.directus_version == DIRECTUS_VERSION
    assert manifest.database.dump_format == "mysql-sql"
    assert "MariaDB" in manifest.database.server_version

    target_db = databases.create("mysql")
    target_dir = tmp_path / "restored"
    with target_db.flow_url() as target_url:
        restore(repo=str(repo), project_dir=str(target_dir), snapshot_id="latest", database_url=target_url)
    with restored_project(target_dir, directus, project, target_db).server() as client:
        after = api_state(client)
    assert after == before
    assert source_db.tables() == target_db.tables()


def test_round_trip_sqlite_through_the_cli(tmp_path, directus, databases, cli_env_no_server):
    """The CLI exactly as a user runs it: no Prefect server anywhere (ephemeral mode)."""
    cli_env = cli_env_no_server
    source_db = databases.create("sqlite3")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    repo = tmp_path / "repo"
    done = subprocess.run([*CLI, "backup", str(project.dir), "--repo", str(repo)], env=cli_env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    snapshot_id = done.stdout.strip().splitlines()[-1]
    assert (repo / "snapshots" / f"{snapshot_id}.json").exists()

    listed = subprocess.run([*CLI, "snapshots", "--repo", str(repo), "--json"], env=cli_env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and [s["id"] for s in json.loads(listed.stdout)] == [snapshot_id]

    target_db = databases.create("sqlite3")
    target_dir = tmp_path / "restored"
    done = subprocess.run([*CLI, "restore", "--repo", str(repo), "--snapshot", snapshot_id, "--project-dir",
                           str(target_dir), "--database-url", target_db.url], env=cli_env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "all checksums verified" in done.stdout
    for secret in project.secrets:
        assert secret not in done.stdout + done.stderr
    with restored_project(target_dir, directus, project, target_db).server() as client:
        after = api_state(client)
    assert after == before
    # Uploads and the project's own folders came back byte for byte.
    for relative in ("extensions/directus-extension-marker/dist/index.js", "migrations/20990101A-add-marker-table.js"):
        assert (target_dir / relative).read_bytes() == (project.dir / relative).read_bytes()
    source_files = {p.name: p.read_bytes() for p in (project.dir / "uploads").iterdir()}
    assert {p.name: p.read_bytes() for p in (target_dir / "uploads").iterdir()} == source_files

"""Restoring a snapshot into the same project puts everything back (rows, sequences, files, extensions),
on each engine; every run leaves its report as a Prefect artifact and no secret in the run's logs."""

from __future__ import annotations

import asyncio
import os

import pytest
import sqlalchemy as sa

from harness import rows, small_project, write_env

from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.repository import Repository, RepositoryLocation

async def run_artifacts_and_logs(flow_run_id) -> tuple[list, str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))
        logs = await client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
    return artifacts, "\n".join(log.message for log in logs)


@pytest.mark.parametrize("engine", ["pg", "mysql", "sqlite3"])
def test_restore_in_place_puts_everything_back(engine, tmp_path, databases, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    database = databases.create(engine)
    project, settings = small_project(tmp_path, database)
    before = rows(settings)
    photo = (project / "uploads" / "photo.jpg").read_bytes()
    repo = tmp_path / "repo"
    state = backup(project_dir=str(project), repo=str(repo), return_state=True)
    snapshot_id = state.result()

    # Damage: rows deleted and changed, a file overwritten, another added, the extension edited.
    engine_ = open_engine(settings)
    with engine_.begin() as conn:
        conn.execute(sa.text("DELETE FROM books WHERE id = 3"))
        conn.execute(sa.text("UPDATE authors SET name = 'Mallory' WHERE id = 1"))
    engine_.dispose()
    (project / "uploads" / "photo.jpg").write_bytes(b"overwritten")
    (project / "extensions" / "hooks" / "index.js").write_text("broken\n")

    with pytest.raises(Exception, match="is not empty"):
        restore(repo=str(repo), project_dir=str(project), snapshot_id=snapshot_id)
    assert rows(settings)["authors"][0][1] == "Mallory"  # refused: nothing changed

    result = restore(repo=str(repo), project_dir=str(project), snapshot_id=snapshot_id, replace=True)
    assert rows(settings) == before
    assert (project / "uploads" / "photo.jpg").read_bytes() == photo
    assert (project / "extensions" / "hooks" / "index.js").read_text() == "export default () => {};\n"
    assert result.storage["local"] == {"objects": 1, "written": 1, "skipped": 0, "bytes_written": len(photo)}

    # The identity/sequence continues after the restored rows: a new row gets the next id, no duplicate key.
    engine_ = open_engine(settings)
    with engine_.begin() as conn:
        conn.execute(sa.text("INSERT INTO books (title, author) VALUES ('New', 1)"))
        assert conn.execute(sa.text("SELECT max(id) FROM books")).scalar() == 4
    engine_.dispose()

    artifacts, logs = asyncio.run(run_artifacts_and_logs(state.state_details.flow_run_id))
    assert any(snapshot_id in (a.data or "") for a in artifacts if a.type == "markdown")
    assert "dumped" in logs  # the library's own log lines reach the run's log in Prefect
    for secret in ("key-abcdef0123", "secret-abcdef0123", database.password or "key-abcdef0123"):
        assert secret not in logs
    assert Repository.open(RepositoryLocation(str(repo))).load_manifest(snapshot_id).database.row_counts == {
        "authors": 2, "books": 3}


def test_s3_repository_credentials_from_a_prefect_secret_block(tmp_path, databases, s3, prefect_server, monkeypatch):
    from prefect.blocks.system import Secret

    from flows.backup import backup
    from flows.parameters import RepositoryOptions
    from flows.restore import restore

    for name in ("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", "DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    block = f"repo-creds-{os.getpid()}"
    Secret(value={"aws_access_key_id": s3.key_id, "aws_secret_access_key": s3.secret, "endpoint_url": s3.endpoint,
                  "region_name": "eu-west-1"}).save(block, overwrite=True)
    database = databases.create("sqlite3")
    project, settings = small_project(tmp_path, database)
    repo = f"s3://{s3.create_bucket()}/backups"
    snapshot_id = backup(project_dir=str(project), repo=RepositoryOptions(url=repo, secret_block=block))
    assert any(key.endswith(f"{snapshot_id}.json") for key in s3.objects(repo[5:].split("/")[0], "backups/snapshots/"))

    target = databases.create("sqlite3")
    restore(repo=RepositoryOptions(url=repo, secret_block=block), project_dir=str(tmp_path / "copy"),
            snapshot_id="latest", database_url=target.url)
    assert rows(DatabaseSettings.from_url(target.url)) == rows(settings)
    with pytest.raises(Exception, match="no Prefect Secret block named 'missing-block'"):
        backup(project_dir=str(project), repo=RepositoryOptions(url=repo, secret_block="missing-block"))


def test_restore_into_a_new_target_named_by_its_own_config(tmp_path, databases, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    source = databases.create("mysql")
    project, settings = small_project(tmp_path, source)
    repo = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project), repo=str(repo))

    target = databases.create("mysql")
    new_dir = tmp_path / "new-site"
    new_dir.mkdir()
    config = tmp_path / "new-site.env"  # a config outside the project dir, as CONFIG_PATH allows
    write_env(config, {**target.env(), "STORAGE_LOCAL_ROOT": str(tmp_path / "new-uploads"), "KEY": "k2-0123456789",
                       "SECRET": "s2-0123456789"})
    before = config.read_text()
    restore(repo=str(repo), project_dir=str(new_dir), snapshot_id=snapshot_id, config_path=str(config))
    assert rows(DatabaseSettings.from_url(target.url)) == rows(settings)
    assert (tmp_path / "new-uploads" / "photo.jpg").read_bytes() == (project / "uploads" / "photo.jpg").read_bytes()
    assert (new_dir / "extensions" / "hooks" / "index.js").exists()
    assert config.read_text() == before  # the target's own config is left as it is
    assert not (new_dir / ".env").exists()

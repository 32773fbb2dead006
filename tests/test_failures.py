"""What a killed or disturbed backup leaves behind. The backup runs in its own process and is killed with a
real SIGKILL at a chosen point (``directus_ops.faults``); S3 faults come from pausing a real moto_server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from harness import S3_REGION, free_project_slot, rows, small_project

from directus_ops import verify
from directus_ops.database import DatabaseSettings
from directus_ops.repository import Repository, RepositoryLocation

KILL_POINTS = [
    "lock-taken:1",
    "repo-bytes:1",
    "repo-bytes:400000",
    "repo-bytes:5000000",  # inside the large file's upload
    "upload-tmp:1",
    "object-stored:1",
    "object-stored:3",
    "object-stored:6",
    "file-tmp:1",
    "before-manifest:1",
]
BACKUP = ("import sys; from flows.backup import backup; backup(project_dir=sys.argv[1], "
          "repo={'url': sys.argv[2], 'endpoint': sys.argv[3] or None, 'region': sys.argv[4] or None})")


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch):
    if request.param == "local":
        return str(tmp_path / "repo"), RepositoryLocation(str(tmp_path / "repo")), ("", "")
    s3 = request.getfixturevalue("s3")
    bucket = s3.create_bucket()
    monkeypatch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
    monkeypatch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
    url = f"s3://{bucket}/repo"
    return url, RepositoryLocation(url, endpoint=s3.endpoint, region=S3_REGION), (s3.endpoint, S3_REGION)


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_backup_killed_anywhere_leaves_no_snapshot_and_no_damage(point, backend, tmp_path, databases, cli_env):
    from flows.backup import backup
    from flows.restore import restore

    url, location, (endpoint, region) = backend
    repo_options = {"url": url, "endpoint": endpoint or None, "region": region or None}
    if location.is_s3:
        # On S3 a manifest is one PUT: there is no temporary name to die at. Small files go into one pack
        # (S3 stores them packed): the third and sixth stored objects become the pack written, and indexed.
        point = {"file-tmp:1": "before-manifest:1", "object-stored:3": "pack-stored:1",
                 "object-stored:6": "pack-indexed:1"}.get(point, point)
    database = databases.create("sqlite3")
    project, settings = small_project(tmp_path, database)
    first = backup(project_dir=str(project), repo=repo_options)
    for index in range(6):
        (project / "uploads" / f"new-{index}.bin").write_bytes(os.urandom(120_000))
    (project / "uploads" / "video.bin").write_bytes(os.urandom(9 * 1024 * 1024))  # a large object: the streaming path

    killed = subprocess.run([sys.executable, "-c", BACKUP, str(project), url, endpoint, region],
                            env={**cli_env, "DIRECTUS_OPS_TEST_KILL_AT": point}, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()[-2000:]
    free_project_slot(project)

    repo = Repository.open(location)
    assert repo.snapshot_ids() == [first]  # no half snapshot is listed
    report = verify.check(repo, "all", read_data_percent=100)
    assert report.ok, report.problems

    second = backup(project_dir=str(project), repo=repo_options)
    assert Repository.open(location).snapshot_ids() == [first, second]
    assert verify.check(Repository.open(location), second, read_data_percent=100).ok
    target = databases.create("sqlite3")
    restore(repo=repo_options, project_dir=str(tmp_path / "restored"), snapshot_id=second, database_url=target.url)
    assert rows(DatabaseSettings.from_url(target.url)) == rows(settings)
    for path in (project / "uploads").iterdir():
        assert (tmp_path / "restored" / "uploads" / path.name).read_bytes() == path.read_bytes()


def test_s3_pausing_mid_upload_is_retried_and_the_backup_completes(tmp_path, databases, prefect_server, monkeypatch,
                                                                   own_moto_server):
    from flows.backup import backup

    monkeypatch.setenv("DIRECTUS_OPS_S3_TIMEOUT", "2")  # so a paused server is noticed quickly
    with own_moto_server() as s3:
        bucket = s3.create_bucket()
        monkeypatch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
        monkeypatch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
        database = databases.create("sqlite3")
        project, _ = small_project(tmp_path, database)
        for index in range(40):  # 40 MB: packs of 16 MiB are uploaded while the backup runs
            (project / "uploads" / f"file-{index:02}.bin").write_bytes(os.urandom(1_000_000))
        client = s3.client()
        paused = threading.Event()

        def pause_when_uploading() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                listed = client.list_objects_v2(Bucket=bucket, Prefix="repo/packs/")
                if listed.get("KeyCount", 0) >= 1:
                    os.killpg(s3.pid, signal.SIGSTOP)  # the server stops answering, mid-backup
                    paused.set()
                    time.sleep(8)
                    os.killpg(s3.pid, signal.SIGCONT)
                    return
                time.sleep(0.05)

        watcher = threading.Thread(target=pause_when_uploading, daemon=True)
        watcher.start()
        location = RepositoryLocation(f"s3://{bucket}/repo", endpoint=s3.endpoint, region=S3_REGION)
        snapshot_id = backup(project_dir=str(project),
                             repo={"url": location.url, "endpoint": s3.endpoint, "region": S3_REGION})
        watcher.join(timeout=30)
        assert paused.is_set(), "the server was never paused during the upload"
        repo = Repository.open(location)
        assert repo.snapshot_ids() == [snapshot_id]
        assert verify.check(repo, "all", read_data_percent=100).ok
        assert len(repo.load_manifest(snapshot_id).objects) == 41

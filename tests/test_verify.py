"""verify, the restore drill, damaged bytes, and encryption at rest, on real repositories."""

from __future__ import annotations

import os

import pytest

from harness import object_file, rows, run_cli, small_project


@pytest.fixture
def snapshot_repo(tmp_path, databases, prefect_server):
    """A project with its database, two snapshots of it in a local repository."""
    from flows.backup import backup

    database = databases.create("sqlite3")
    project, settings = small_project(tmp_path, database)
    (project / "uploads" / "notes.txt").write_text("hello " * 1000)  # compressible
    repo = tmp_path / "repo"
    first = backup(project_dir=str(project), repo=str(repo))
    (project / "uploads" / "later.bin").write_bytes(os.urandom(20_000))
    second = backup(project_dir=str(project), repo=str(repo))
    return project, settings, repo, first, second


def test_verify_passes_on_a_sound_repository(snapshot_repo, cli_env):
    from directus_ops.repository import Repository, RepositoryLocation

    _, _, repo, first, second = snapshot_repo
    manifest = Repository.open(RepositoryLocation(str(repo))).load_manifest(first)
    compressed = {e.key: e.compressed for e in manifest.all_entries()}
    # Compression is recorded per entry: text and the SQLite file shrink, a JPEG is kept as it is.
    assert compressed["notes.txt"] and compressed["database.sqlite"] and not compressed["photo.jpg"]
    assert all(e.encrypted == (e.location == "@config") for e in manifest.all_entries())
    done = run_cli(cli_env, "verify", "--repo", str(repo), "--read-data")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("ok: 2 snapshots") and "objects re-read" in done.stdout
    done = run_cli(cli_env, "verify", "--repo", str(repo), "--snapshot", first, "--read-data", "50")
    assert done.returncode == 0 and "ok: 1 snapshots" in done.stdout, done.stderr


def test_a_flipped_byte_is_named_by_verify_and_refused_by_restore(snapshot_repo, cli_env, tmp_path, databases):
    from directus_ops.repository import Repository, RepositoryLocation

    project, settings, repo, first, second = snapshot_repo
    manifest = Repository.open(RepositoryLocation(str(repo))).load_manifest(first)
    photo = next(e for e in manifest.objects if e.key == "photo.jpg")
    path = object_file(repo, photo)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    # Without --read-data the sizes still match: nothing to see. With it, the damaged file is named in both snapshots.
    assert run_cli(cli_env, "verify", "--repo", str(repo)).returncode == 0
    done = run_cli(cli_env, "verify", "--repo", str(repo), "--read-data")
    assert done.returncode == 9
    named = [line for line in done.stdout.splitlines() if "local/photo.jpg" in line]
    assert {line.split(":")[0] for line in named} == {f"snapshot {first}", f"snapshot {second}"}
    assert all("content does not match" in line for line in named)
    assert len(done.stdout.splitlines()) == 2  # nothing else is reported

    # A restore into a fresh target fails naming it and leaves no unverified file behind.
    target = databases.create("sqlite3")
    done = run_cli(cli_env, "restore", "--repo", str(repo), "--snapshot", first, "--project-dir", str(tmp_path / "t"),
                   "--database-url", target.url)
    assert done.returncode == 9 and "local/photo.jpg" in done.stderr, done.stderr
    assert not (tmp_path / "t" / "uploads" / "photo.jpg").exists()
    # A restore that would replace the project refuses before changing anything.
    before = rows(settings)
    (project / "uploads" / "photo.jpg").write_bytes(b"current photo")
    done = run_cli(cli_env, "restore", "--repo", str(repo), "--snapshot", first, "--project-dir", str(project),
                   "--replace")
    assert done.returncode == 9 and "local/photo.jpg" in done.stderr, done.stderr
    assert rows(settings) == before and (project / "uploads" / "photo.jpg").read_bytes() == b"current photo"


def test_a_missing_object_is_named_without_reading_data(snapshot_repo, cli_env):
    from directus_ops.repository import Repository, RepositoryLocation

    _, _, repo, first, second = snapshot_repo
    manifest = Repository.open(RepositoryLocation(str(repo))).load_manifest(second)
    later = next(e for e in manifest.objects if e.key == "later.bin")
    object_file(repo, later).unlink()
    done = run_cli(cli_env, "verify", "--repo", str(repo))
    assert done.returncode == 9
    assert done.stdout.strip() == f"snapshot {second}: local/later.bin: object {later.sha256[:12]}… is missing"


@pytest.mark.parametrize("engine", ["pg", "mysql", "sqlite3"])
def test_restore_drill_restores_compares_and_drops(engine, tmp_path, databases, cli_env, prefect_server):
    from flows.backup import backup

    database = databases.create(engine)
    project, settings = small_project(tmp_path, database)
    repo = tmp_path / "repo"
    backup(project_dir=str(project), repo=str(repo))
    scratch = databases.create(engine, create_database=False)
    if engine == "mysql":  # the MySQL test user may not create databases: the drill runs as root there
        scratch_url = f"mysql://root@127.0.0.1:3306/{scratch.name}"
    else:
        scratch_url = scratch.url
    done = run_cli(cli_env, "verify", "--repo", str(repo), "--snapshot", "latest", "--restore-drill",
                   "--scratch-database", scratch_url)
    assert done.returncode == 0, done.stderr
    assert "restore drill" in done.stdout and "2 tables, 5 rows match" in done.stdout
    assert not _exists(engine, scratch)  # dropped afterwards
    if scratch.password:
        assert scratch.password not in done.stdout + done.stderr
    # A scratch database that holds data is refused, and left alone.
    done = run_cli(cli_env, "verify", "--repo", str(repo), "--restore-drill", "--scratch-database",
                   database.url if engine != "mysql" else f"mysql://root@127.0.0.1:3306/{database.name}")
    assert done.returncode == 5 and "is not empty" in done.stderr
    assert rows(settings)["books"]


def _exists(engine, database) -> bool:
    if engine == "sqlite3":
        return database.filename.exists()
    from directus_ops.database import DatabaseSettings, database_exists

    url = database.url if engine == "pg" else f"mysql://root@127.0.0.1:3306/{database.name}"
    return database_exists(DatabaseSettings.from_url(url))


def test_config_is_encrypted_at_rest_and_a_wrong_passphrase_fails_clearly(tmp_path, databases, cli_env, prefect_server):
    from flows.backup import backup

    database = databases.create("pg")
    project, settings = small_project(tmp_path, database)
    repo = tmp_path / "repo"
    backup(project_dir=str(project), repo=str(repo))
    config_text = (project / ".env").read_text()
    secrets = [database.password, "key-abcdef0123", "secret-abcdef0123"]
    assert all(s in config_text for s in secrets)
    for path in repo.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"{secret} in {path}"

    wrong = {**cli_env, "DIRECTUS_OPS_PASSPHRASE": "not the passphrase"}
    done = run_cli(wrong, "restore", "--repo", str(repo), "--project-dir", str(tmp_path / "copy"))
    assert done.returncode == 12 and done.stderr.strip().count("\n") == 0
    assert "wrong passphrase for the repository" in done.stderr and not (tmp_path / "copy").exists()
    none = {k: v for k, v in cli_env.items() if not k.startswith("DIRECTUS_OPS_PASSPHRASE")}
    done = run_cli(none, "backup", str(project), "--repo", str(tmp_path / "other"))
    assert done.returncode == 12 and "needs a passphrase" in done.stderr


def test_encrypt_flag_encrypts_the_whole_snapshot(tmp_path, databases, cli_env, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    database = databases.create("sqlite3")
    project, settings = small_project(tmp_path, database)
    marker = b"unencrypted-marker-" * 200
    (project / "uploads" / "marker.txt").write_bytes(marker)
    repo = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project), repo=str(repo), encrypt=True)
    assert (repo / "snapshots" / f"{snapshot_id}.json.enc").exists()
    for path in repo.rglob("*"):
        if path.is_file():
            assert b"unencrypted-marker" not in path.read_bytes() and b"photo.jpg" not in path.read_bytes()
    assert all(p.name.endswith(".enc") for p in (repo / "objects").rglob("*") if p.is_file())
    target = databases.create("sqlite3")
    restore(repo=str(repo), project_dir=str(tmp_path / "copy"), snapshot_id=snapshot_id, database_url=target.url)
    assert (tmp_path / "copy" / "uploads" / "marker.txt").read_bytes() == marker
    listed = run_cli(cli_env, "snapshots", "--repo", str(repo))
    assert snapshot_id in listed.stdout

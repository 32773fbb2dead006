"""Storage edge cases of a backup (issue 13, items 4, 5, 6 and 8): any file name the filesystem allows,
symbolic links in and out of the storage root, locations that cannot be read (a missing or wrong root, an
unreachable S3 endpoint, a bucket that does not exist or may not be listed), the directus_files cross-check,
and a repository that heals: an object lost from it is stored again by the next backup.

Tests run as root, so a permission fault (chmod 000) cannot be caused on a local root: the unreadable roots
here are a root that is a file and a root that is a dangling symbolic link."""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import S3_REGION, make_project, object_file, run_cli, small_project, write_env


# Every kind of name item 6 names: not UTF-8, 255 bytes (Linux's limit), a newline, a backslash, leading
# dashes (an option to any tool a name were passed to), and a folder whose own name is not UTF-8.
ODD_NAMES = [
    b"caf\xe9-latin1.jpg",
    b"n" * 251 + b".bin",
    b"line\nbreak.txt",
    b"back\\slash.txt",
    b"-rf.txt",
    b"--help",
    b"dir\xff\xfe/inner \xc3(.txt",
]


def one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> str:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: "), done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def snapshots_in(repo: Path) -> list[str]:
    folder = repo / "snapshots"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def open_repo(repo: Path):
    from directus_ops.repository import Repository, RepositoryLocation

    return Repository.open(RepositoryLocation(str(repo)))


def content_of(repo, entry) -> bytes:
    out = io.BytesIO()
    repo.copy_object_to(entry, out)
    return out.getvalue()


# -- item 6: any file name ---------------------------------------------------------------------------------------
def test_any_file_name_is_backed_up_byte_for_byte(tmp_path, databases, prefect_server):
    """Names that are not UTF-8, 255 bytes long, with a newline, a backslash or leading dashes: the manifest
    holds each one's exact key (raw form where not UTF-8) and its object the exact bytes, in storage and in
    the extensions folder. (Before: a traceback and no snapshot.)"""
    from flows.backup import backup

    from directus_ops.paths import key_bytes

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    uploads = os.fsencode(project / "uploads")
    extensions = os.fsencode(project / "extensions")
    expected: dict[tuple[str, bytes], bytes] = {}
    for index, name in enumerate(ODD_NAMES):
        for location, root in (("local", uploads), ("@extensions", extensions)):
            path = os.path.join(root, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            data = f"{location} file {index} ".encode() + name + os.urandom(64)
            with open(path, "wb") as handle:
                handle.write(data)
            expected[(location, name)] = data
    repo_dir = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project), repo=str(repo_dir))

    repo = open_repo(repo_dir)
    manifest = repo.load_manifest(snapshot_id)
    found = {(e.location, key_bytes(e.key)): e for e in manifest.all_entries() if e.location in ("local", "@extensions")}
    for (location, name), data in expected.items():
        entry = found.get((location, name))
        assert entry is not None, f"{location}/{name!r} is not in the manifest"
        assert content_of(repo, entry) == data, f"{location}/{name!r} was stored with other bytes"
    # A second backup of the unchanged files reads none of them again.
    second = repo.load_manifest(backup(project_dir=str(project), repo=str(repo_dir)))
    assert second.stats.storage_objects_read == 0


def test_any_file_name_round_trips_through_restore(tmp_path, databases, cli_env):
    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    uploads = os.fsencode(project / "uploads")
    for name in ODD_NAMES:
        path = os.path.join(uploads, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(name * 3)
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    target = tmp_path / "restored"
    done = run_cli(cli_env, "restore", "--repo", str(repo), "--snapshot", "latest", "--project-dir", str(target),
                   "--database-url", databases.create("sqlite3").url)
    assert done.returncode == 0, done.stderr
    for name in [*ODD_NAMES, b"photo.jpg"]:
        with open(os.path.join(os.fsencode(target / "uploads"), name), "rb") as restored, \
                open(os.path.join(uploads, name), "rb") as source:
            assert restored.read() == source.read(), name


# -- item 4: symbolic links --------------------------------------------------------------------------------------
def test_symlinks_are_stored_as_links_and_nothing_outside_the_root_is_read(tmp_path, databases, prefect_server):
    from flows.backup import backup

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    uploads = project / "uploads"
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    secret = b"outside the storage root " + os.urandom(32)
    (outside / "secret.txt").write_bytes(secret)
    (outside / "folder" / "hidden.txt").write_bytes(secret + b" in a folder")
    (uploads / "sub").mkdir()
    (uploads / "sub" / "deep.txt").write_bytes(b"deep inside")
    links = {
        "passwd.png": str(outside / "secret.txt"),  # a file outside, by absolute path
        "climb.png": "../../outside/secret.txt",  # a file outside, by a relative path
        "alias.jpg": "photo.jpg",  # a file inside the root
        "outside-folder": str(outside / "folder"),  # a folder outside
        "sub-alias": "sub",  # a folder inside
        "dangling.png": "no/such/file",
    }
    for name, target in links.items():
        (uploads / name).symlink_to(target)
    repo_dir = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project), repo=str(repo_dir))

    repo = open_repo(repo_dir)
    manifest = repo.load_manifest(snapshot_id)
    entries = {e.key: e for e in manifest.objects}
    assert set(entries) == {"photo.jpg", "sub/deep.txt", *links}, "a linked folder was followed, or a link left out"
    for name, target in links.items():
        assert entries[name].symlink, f"{name} was not stored as a link"
        assert content_of(repo, entries[name]) == target.encode(), f"{name}: its object is not the link's target"
    assert not entries["photo.jpg"].symlink and not entries["sub/deep.txt"].symlink
    # Nothing from outside the root reached the repository.
    digests = {hashlib.sha256(secret).hexdigest(), hashlib.sha256(secret + b" in a folder").hexdigest()}
    assert not digests & {e.sha256 for e in manifest.all_entries()}
    assert not [p for p in (repo_dir / "objects").rglob("*") if p.name[:64] in digests]

    # Incremental: an unchanged link is not read again; one pointed elsewhere is.
    again = repo.load_manifest(backup(project_dir=str(project), repo=str(repo_dir)))
    assert again.stats.storage_objects_read == 0
    (uploads / "alias.jpg").unlink()
    (uploads / "alias.jpg").symlink_to("sub/deep.txt")
    os.utime(uploads / "alias.jpg", (1, 1), follow_symlinks=False)  # a different lstat mtime for certain
    changed = repo.load_manifest(backup(project_dir=str(project), repo=str(repo_dir)))
    assert changed.stats.storage_objects_read == 1
    alias = next(e for e in changed.objects if e.key == "alias.jpg")
    assert alias.symlink and content_of(repo, alias) == b"sub/deep.txt"

    # Restored as the same links, nothing outside the target written.
    from flows.restore import restore

    outside_before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    target = tmp_path / "restored"
    restore(repo=str(repo_dir), project_dir=str(target), snapshot_id=changed.id,
            database_url=databases.create("sqlite3").url)
    restored = target / "uploads"
    for name, link in {**links, "alias.jpg": "sub/deep.txt"}.items():
        assert (restored / name).is_symlink() and os.readlink(restored / name) == link, name
    assert (restored / "sub" / "deep.txt").read_bytes() == b"deep inside"
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == outside_before


# -- item 5: a location that cannot be read ----------------------------------------------------------------------
def sqlite_project(root: Path, storage: dict[str, str]) -> Path:
    """A minimal project with a SQLite database and the given STORAGE_* settings."""
    import sqlite3

    project = root / "project"
    project.mkdir(parents=True)
    with sqlite3.connect(project / "data.db") as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('one')")
    write_env(project / ".env", {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./data.db", "KEY": "k-0123456789",
                                 "SECRET": "s-0123456789", **storage})
    return project


def add_directus_files(project: Path, rows: list[tuple[str, str]]) -> None:
    """A directus_files table with the two columns the cross-check reads (the real one is checked in
    test_directus_files_cross_check_on_a_real_directus_project)."""
    import sqlite3

    with sqlite3.connect(project / "data.db") as conn:
        conn.execute("CREATE TABLE directus_files (id TEXT PRIMARY KEY, storage TEXT NOT NULL, filename_disk TEXT)")
        conn.executemany("INSERT INTO directus_files VALUES (?, ?, ?)",
                         [(str(uuid.uuid4()), storage, name) for storage, name in rows])


def test_a_missing_local_root_is_a_warning_without_files_and_an_error_with_them(tmp_path, cli_env):
    project = sqlite_project(tmp_path, {"STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local",
                                        "STORAGE_LOCAL_ROOT": "./uploadz"})
    repo = tmp_path / "repo"
    # No file recorded for the location: the backup succeeds, and its report says the root is missing.
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    snapshot_id = done.stdout.strip().splitlines()[-1]
    from test_move import latest_artifact

    report = latest_artifact(f"backup-{project.name}")
    assert snapshot_id in report and "uploadz) does not exist" in report and "STORAGE_LOCAL_ROOT" in report
    # The database records files there (a mistyped STORAGE_LOCAL_ROOT): the backup fails, saving nothing.
    add_directus_files(project, [("local", "a.jpg"), ("local", "b.jpg")])
    before = snapshots_in(repo)
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    one_line_error(done, 6, "storage location 'local'", "does not exist", "directus_files records 2 files",
                   "check STORAGE_LOCAL_ROOT")
    assert snapshots_in(repo) == before


@pytest.mark.parametrize("fault", ["root is a file", "root is a dangling symlink"])
def test_a_local_root_that_cannot_be_read_fails_the_backup(fault, tmp_path, cli_env):
    # An absolute root: a relative one is resolved (links followed) when the config is read, so a dangling
    # link there reads as a root that does not exist (a warning, or an error when directus_files has rows).
    project = sqlite_project(tmp_path, {"STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local",
                                        "STORAGE_LOCAL_ROOT": str(tmp_path / "project" / "uploads")})
    if fault == "root is a file":
        (project / "uploads").write_bytes(b"not a folder")
    else:
        (project / "uploads").symlink_to(tmp_path / "unmounted-disk")
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    one_line_error(done, 6, "cannot list storage location 'local'", "check STORAGE_LOCAL_ROOT")
    assert snapshots_in(repo) == []


def test_a_file_that_cannot_be_read_fails_the_backup_and_special_files_are_said(tmp_path, databases, prefect_server,
                                                                                  monkeypatch):
    """A file the backup may not read fails it in one line naming the file: nothing is saved. The permission
    fault is a fake (os.open raising EACCES for that one file), since as root chmod 000 does not stop a read.
    A FIFO (a real one) is not a file a project stores: skipped, and the log says so."""
    import errno

    from flows.backup import backup

    from directus_ops import storage
    from directus_ops.errors import StorageError

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    os.mkfifo(project / "uploads" / "a-pipe")
    (project / "uploads" / "locked.bin").write_bytes(os.urandom(2000))
    repo = tmp_path / "repo"
    real_open = storage._open_no_follow

    def refuse_locked(path, flags):
        if os.fsdecode(path).endswith("/locked.bin"):
            raise PermissionError(errno.EACCES, "Permission denied", path)
        return real_open(path, flags)

    monkeypatch.setattr(storage, "_open_no_follow", refuse_locked)
    said: list[str] = []
    monkeypatch.setattr(storage.log, "warning", lambda text, *args: said.append(text % args))
    with pytest.raises(StorageError) as refused:
        backup(project_dir=str(project), repo=str(repo))
    message = str(refused.value)
    assert "\n" not in message and "locked.bin" in message and "permission denied" in message, message
    assert "let the user that runs directus-ops read it" in message
    assert snapshots_in(repo) == []
    assert any("special files" in line and "a-pipe" in line for line in said), said

    monkeypatch.setattr(storage, "_open_no_follow", real_open)
    manifest = open_repo(repo).load_manifest(backup(project_dir=str(project), repo=str(repo)))
    assert {e.key for e in manifest.objects} == {"photo.jpg", "locked.bin"}


def s3_settings(endpoint: str, bucket: str, key_id: str, secret: str) -> dict[str, str]:
    return {"STORAGE_LOCATIONS": "s3", "STORAGE_S3_DRIVER": "s3", "STORAGE_S3_KEY": key_id,
            "STORAGE_S3_SECRET": secret, "STORAGE_S3_BUCKET": bucket, "STORAGE_S3_REGION": S3_REGION,
            "STORAGE_S3_ENDPOINT": endpoint, "STORAGE_S3_FORCE_PATH_STYLE": "true", "STORAGE_S3_ROOT": "files"}


def test_an_unreachable_s3_endpoint_fails_the_listing(tmp_path):
    """A closed port on 127.0.0.1. The plain backup step (the flow retries a connection failure, as it does
    every transient one, before it exits 6 like the other listing errors below)."""
    from directus_ops.errors import StorageError
    from directus_ops.repository import Repository, RepositoryLocation
    from directus_ops.snapshot_backup import backup_location
    from directus_ops.storage import StorageLocation

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    location = StorageLocation(name="s3", driver="s3", root="files", bucket="media", region=S3_REGION,
                               endpoint=f"http://127.0.0.1:{port}", key_id="id", secret="secret-s3-key-0042",
                               force_path_style=True)
    repo = Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True)
    staging = tmp_path / "staging"
    staging.mkdir()
    with pytest.raises(StorageError) as raised:
        backup_location(location, repo, staging)
    message = str(raised.value)
    assert message.startswith("cannot list storage location 's3' (s3://media/files)") and "\n" not in message
    assert "STORAGE_S3_ENDPOINT" in message and "secret-s3-key-0042" not in message
    assert list(staging.iterdir()) == []  # nothing listed, nothing staged for a manifest


def test_a_bucket_that_does_not_exist_fails_the_backup(tmp_path, s3, cli_env):
    project = sqlite_project(tmp_path, s3_settings(s3.endpoint, "no-such-bucket-4711", s3.key_id, s3.secret))
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    one_line_error(done, 6, "cannot list storage location 's3'", "'no-such-bucket-4711' does not exist",
                   "check STORAGE_S3_BUCKET")
    assert snapshots_in(repo) == [] and s3.secret not in done.stderr


@contextlib.contextmanager
def s3_with_iam(moto_server: Callable) -> Iterator[tuple]:
    """A moto server of its own that enforces IAM policies (moto checks identity policies on every request
    once authentication is on; its bucket policies cover object requests only, not s3:ListBucket): a bucket
    with one file, and the keys of a user whose policy allows everything on S3 but listing that bucket."""
    import boto3
    import requests

    with moto_server() as server:
        bucket = server.create_bucket()
        server.client().put_object(Bucket=bucket, Key="files/a.jpg", Body=b"a file")
        iam = boto3.client("iam", endpoint_url=server.endpoint, region_name="us-east-1",
                           aws_access_key_id=server.key_id, aws_secret_access_key=server.secret)
        iam.create_user(UserName="cannot-list")
        iam.put_user_policy(UserName="cannot-list", PolicyName="no-list", PolicyDocument=json.dumps({
            "Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "s3:*", "Resource": "*"},
                {"Effect": "Deny", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]}))
        key = iam.create_access_key(UserName="cannot-list")["AccessKey"]
        requests.post(f"{server.endpoint}/moto-api/reset-auth", data=b"0", timeout=10)  # from now on, enforced
        try:
            yield server, bucket, key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            requests.post(f"{server.endpoint}/moto-api/reset-auth", data=b"inf", timeout=10)


def test_a_bucket_that_may_not_be_listed_fails_the_backup(tmp_path, cli_env, own_moto_server):
    with s3_with_iam(own_moto_server) as (server, bucket, key_id, secret):
        project = sqlite_project(tmp_path, s3_settings(server.endpoint, bucket, key_id, secret))
        repo = tmp_path / "repo"
        done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
        one_line_error(done, 6, "cannot list storage location 's3'", "access denied", "s3:ListBucket",
                       "check STORAGE_S3_KEY/STORAGE_S3_SECRET")
        assert snapshots_in(repo) == [] and secret not in done.stderr


def test_directus_files_cross_check_in_the_manifest_and_report(tmp_path, cli_env):
    project = sqlite_project(tmp_path, {"STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local",
                                        "STORAGE_LOCAL_ROOT": "./uploads"})
    (project / "uploads").mkdir()
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        (project / "uploads" / name).write_bytes(name.encode())
    add_directus_files(project, [("local", "a.jpg"), ("local", "b.jpg"), ("local", "c.jpg"),
                                 ("local", "gone-1.jpg"), ("local", "gone-2.jpg"), ("s3", "elsewhere.jpg")])
    # (The s3 row belongs to another location: it does not count for this one.)
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    snapshot_id = done.stdout.strip().splitlines()[-1]
    manifest = open_repo(repo).load_manifest(snapshot_id)
    assert [(l.name, l.missing_files) for l in manifest.storage] == [("local", 2)]
    from test_move import latest_artifact

    report = latest_artifact(f"backup-{project.name}")
    assert "| Files in directus_files missing from storage | local: 2 |" in report
    assert "2 files that directus_files records are not in storage (first: gone-1.jpg, gone-2.jpg)" in report

    # Every file gone (a wrong root, bucket or credentials look the same): the backup fails, naming the fix.
    for path in (project / "uploads").iterdir():
        path.unlink()
    before = snapshots_in(repo)
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo))
    one_line_error(done, 6, "storage location 'local'", "holds no file, but directus_files records 5 files",
                   "check STORAGE_LOCAL_ROOT")
    assert snapshots_in(repo) == before


def test_directus_files_cross_check_on_a_real_directus_project(tmp_path, directus, databases, prefect_server):
    """A bootstrapped Directus (PostgreSQL): its own directus_files table, rows as Directus writes them."""
    from flows.backup import backup

    database = databases.create("pg")
    project = make_project(tmp_path / "source", directus, database, with_extras=False)
    uploads = project.dir / "uploads"
    uploads.mkdir(exist_ok=True)
    (uploads / "present.png").write_bytes(b"present")
    engine = sa.create_engine(database.url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:
        for name in ("present.png", "lost.png"):
            conn.execute(sa.text("INSERT INTO directus_files (id, storage, filename_disk, filename_download, type) "
                                 "VALUES (:id, 'local', :name, :name, 'image/png')"), {"id": str(uuid.uuid4()), "name": name})
    engine.dispose()
    repo = tmp_path / "repo"
    snapshot_id = backup(project_dir=str(project.dir), repo=str(repo))
    manifest = open_repo(repo).load_manifest(snapshot_id)
    assert [(l.name, l.objects, l.missing_files) for l in manifest.storage] == [("local", 1, 1)]


# -- item 8: self-healing ----------------------------------------------------------------------------------------
def test_an_object_lost_from_the_repository_is_stored_again_by_the_next_backup(tmp_path, databases, cli_env):
    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    (project / "uploads" / "notes.txt").write_bytes(os.urandom(30_000))
    repo_dir = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo_dir))
    assert done.returncode == 0, done.stderr
    first = done.stdout.strip().splitlines()[-1]
    entries = {e.key: e for e in open_repo(repo_dir).load_manifest(first).objects}
    lost, damaged = entries["photo.jpg"], entries["notes.txt"]
    object_file(repo_dir, lost).unlink()
    data = bytearray(object_file(repo_dir, damaged).read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only reading the data tells
    object_file(repo_dir, damaged).write_bytes(bytes(data))

    done = run_cli(cli_env, "verify", "--repo", str(repo_dir), "--read-data")
    assert done.returncode == 9
    assert "local/photo.jpg" in done.stdout and "local/notes.txt" in done.stdout
    assert "2 missing or damaged objects are noted for the next backup" in done.stderr
    notes = list((repo_dir / "repairs").iterdir())
    assert len(notes) == 1 and set(json.loads(notes[0].read_text())["objects"]) == {lost.object_name,
                                                                                    damaged.object_name}

    done = run_cli(cli_env, "backup", str(project), "--repo", str(repo_dir))
    assert done.returncode == 0, done.stderr
    healed = open_repo(repo_dir).load_manifest(done.stdout.strip().splitlines()[-1])
    assert healed.stats.storage_objects_read == 2  # exactly the two lost ones were read from the project again
    done = run_cli(cli_env, "verify", "--repo", str(repo_dir), "--read-data")
    assert done.returncode == 0, done.stdout + done.stderr  # the older snapshot is whole again too
    # Prune drops the note once its objects are sound again.
    done = run_cli(cli_env, "forget", "--repo", str(repo_dir), "--keep-last", "5", "--prune")
    assert done.returncode == 0, done.stderr
    assert list((repo_dir / "repairs").iterdir()) == []


def test_a_backup_that_lists_the_repository_anyway_heals_without_verify(tmp_path, databases, prefect_server):
    """Many changed files make a backup list the repository; a reused entry whose object that listing lacks
    is stored again, without a verify first."""
    from flows.backup import backup

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    repo_dir = tmp_path / "repo"
    first_id = backup(project_dir=str(project), repo=str(repo_dir))
    photo = next(e for e in open_repo(repo_dir).load_manifest(first_id).objects if e.key == "photo.jpg")
    object_file(repo_dir, photo).unlink()
    for index in range(300):  # more than LISTING_THRESHOLD new files
        (project / "uploads" / f"new-{index}.txt").write_bytes(f"file {index}".encode())
    second = open_repo(repo_dir).load_manifest(backup(project_dir=str(project), repo=str(repo_dir)))
    assert second.stats.storage_objects_read == 301
    assert object_file(repo_dir, photo).exists()
    assert content_of(open_repo(repo_dir), photo) == (project / "uploads" / "photo.jpg").read_bytes()


def test_repair_notes_are_untrusted_input(tmp_path, databases, prefect_server):
    """A note dropped into the repository by someone else: only object names are taken from it (no path), a
    file that is not a note is skipped, a backup still succeeds, and prune drops the forged note."""
    from flows.backup import backup

    from directus_ops.retention import prune

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    repo_dir = tmp_path / "repo"
    backup(project_dir=str(project), repo=str(repo_dir))
    (repo_dir / "repairs").mkdir()
    outside = tmp_path / "victim.txt"
    outside.write_bytes(b"untouched")
    (repo_dir / "repairs" / "forged.json").write_text(json.dumps({"objects": {
        "../../victim.txt": None, str(outside): "x", "objects/ab/" + "a" * 64: None, "A" * 64: None}}))
    (repo_dir / "repairs" / "garbage.json").write_bytes(b"\xff not json")
    repo = open_repo(repo_dir)
    assert repo.repair_notes() == {str(repo_dir / "repairs" / "forged.json"): {}}
    assert repo.repairs() == set()
    snapshot_id = backup(project_dir=str(project), repo=str(repo_dir))
    assert open_repo(repo_dir).load_manifest(snapshot_id).stats.storage_objects_read == 0
    assert outside.read_bytes() == b"untouched"
    assert prune(open_repo(repo_dir)).repair_notes_removed == 1
    assert sorted(p.name for p in (repo_dir / "repairs").iterdir()) == ["garbage.json"]

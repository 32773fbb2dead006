"""A hostile repository and a booby-trapped target: restore never writes outside its target, never through a
symlink there, restores any file name byte for byte, and a failed restore into a new target leaves nothing.

Manifests are forged by loading the genuine one through the Repository API, editing its entries and writing it
back with ``repo.save_manifest`` (which signs it once manifests are authenticated: the worst case, an attacker
who holds the key). Every case runs against a local and an S3 (moto) repository."""

from __future__ import annotations

import base64
import io
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness import CLI, S3_REGION, rows, small_project

from directus_ops import paths, verify
from directus_ops.database import DatabaseSettings
from directus_ops.errors import IntegrityError, UnsafeSnapshot, UnsafeTarget
from directus_ops.manifest import DATABASE, EXTENSIONS, MIGRATIONS, PROJECT_FILES, Entry, Manifest, new_snapshot_id
from directus_ops.repository import Repository, RepositoryLocation


def repository_of(kind: str, root: Path, request: pytest.FixtureRequest, patch: pytest.MonkeyPatch) -> tuple:
    """(repo URL, RepositoryLocation, the flows' repository options besides its URL): local under ``root``, or a new
    bucket on the session's S3 server, its credentials set through ``patch``."""
    if kind == "local":
        return str(root / "repo"), RepositoryLocation(str(root / "repo")), {}
    s3 = request.getfixturevalue("s3")
    bucket = s3.create_bucket()
    patch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
    patch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
    url = f"s3://{bucket}/repo"
    return url, RepositoryLocation(url, endpoint=s3.endpoint, region=S3_REGION), \
        {"endpoint": s3.endpoint, "region": S3_REGION}


@pytest.fixture(params=["local", "s3"])
def backend(request, tmp_path, monkeypatch):
    return repository_of(request.param, tmp_path, request, monkeypatch)


@pytest.fixture
def backed_up(backend, tmp_path, databases, prefect_server):
    """A small SQLite project (uploads/photo.jpg, uploads/sub/deep.bin, an extension file) and its snapshot, the
    test's own: it may change them."""
    return make_backup(backend, tmp_path, databases, "sqlite3")


@pytest.fixture(scope="module", params=["local", "s3"])
def shared_backup(request, tmp_path_factory, module_databases, prefect_server) -> Iterator[dict]:
    """backed_up, made once per backend for the tests that leave the project and its snapshot as they are (the
    snapshots they forge are new ones)."""
    root = tmp_path_factory.mktemp(f"shared-{request.param}")
    with pytest.MonkeyPatch.context() as patch:  # S3 credentials set for as long as the backup is used
        yield make_backup(repository_of(request.param, root, request, patch), root, module_databases, "sqlite3")


def make_backup(backend, tmp_path: Path, databases, engine: str) -> dict:
    from flows.backup import backup

    url, location, repo_args = backend
    database = databases.create(engine)
    project, settings = small_project(tmp_path, database)
    (project / "uploads" / "sub").mkdir()
    (project / "uploads" / "sub" / "deep.bin").write_bytes(os.urandom(3000))
    (project / "migrations").mkdir()
    (project / "migrations" / "20260101A-note.js").write_text("export async function up() {}\n")
    repo = {"url": url, **repo_args}  # the flows' repository parameter
    snapshot_id = backup(project_dir=str(project), repo=repo)
    return {"url": url, "location": location, "repo": repo, "project": project, "settings": settings,
            "snapshot": snapshot_id}


def tree(path: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under ``path`` (not through symlinks, the repository left out): kind and content or link target."""
    found: dict[str, tuple[str, bytes]] = {}
    if not os.path.lexists(path):
        return found
    for folder, subfolders, files in os.walk(path):
        if folder == str(path) and "repo" in subfolders:
            subfolders.remove("repo")
        for name in subfolders + files:
            full = os.path.join(folder, name)
            relative = os.path.relpath(full, path)
            if os.path.islink(full):
                found[relative] = ("link", os.fsencode(os.readlink(full)))
            elif os.path.isdir(full):
                found[relative] = ("dir", b"")
            else:
                found[relative] = ("file", Path(full).read_bytes())
    return found


def forge(case: dict, manifest: Manifest, **changes) -> str:
    """Save an edited copy of ``manifest`` as a new snapshot (the repository's own writer); return its id."""
    repo = Repository.open(case["location"])
    forged = manifest.model_copy(update={"id": new_snapshot_id(), **changes})
    repo.save_manifest(forged)
    return forged.id


def with_key(manifest: Manifest, location: str, key: str, which: int = 0) -> dict:
    """The entry lists of ``manifest`` with the ``which``-th entry of ``location`` renamed to ``key``."""
    artifacts, objects = list(manifest.artifacts), list(manifest.objects)
    for entries in (artifacts, objects):
        matching = [i for i, e in enumerate(entries) if e.location == location]
        if matching:
            index = matching[which]
            entries[index] = entries[index].model_copy(update={"key": key})
            return {"artifacts": artifacts, "objects": objects}
    raise AssertionError(f"no entry of {location}")


def raw(name: bytes) -> str:
    return paths.RAW_PREFIX + base64.urlsafe_b64encode(name).decode()


# Every case: (location of the entry, the forged key). "{canary}" is replaced with an absolute path outside the target.
FORGED_KEYS = {
    "traversal": ("local", "../../canary/escaped.jpg"),
    "deep-traversal": ("local", "sub/../../../canary/escaped.jpg"),
    "absolute": ("local", "{canary}/absolute.jpg"),
    "empty-component": ("local", "sub//photo.jpg"),
    "dot-component": ("local", "./photo.jpg"),
    "trailing-slash": ("local", "sub/"),
    "nul": ("local", "photo\0.jpg"),
    "empty": ("local", ""),
    "raw-traversal": ("local", raw(b"../../canary/\xffescaped.jpg")),
    "raw-absolute": ("local", raw(b"{canary}/\xff.jpg")),
    "raw-of-utf8": ("local", raw(b"photo-again.jpg")),
    "raw-garbage": ("local", paths.RAW_PREFIX + "not base64!"),
    "too-long-name": ("local", "x" * 256),
    "extension-traversal": (EXTENSIONS, "../../canary/escaped.js"),
    "migration-absolute": (MIGRATIONS, "{canary}/escaped.js"),
    "project-file-in-folder": (PROJECT_FILES, "sub/package.json"),
    "project-file-traversal": (PROJECT_FILES, "../package.json"),
    "database-traversal": (DATABASE, "../escaped.sqlite"),
    "database-in-folder": (DATABASE, "sub/database.sqlite"),
}


def _add_project_file(manifest: Manifest) -> Manifest:
    """@project has no entry in a project without package.json: give it one (the extension file's object)."""
    if manifest.artifact(PROJECT_FILES):
        return manifest
    source = manifest.artifact(EXTENSIONS)[0]
    entry = source.model_copy(update={"location": PROJECT_FILES, "key": "package.json"})
    return manifest.model_copy(update={"artifacts": [*manifest.artifacts, entry]})


@pytest.mark.parametrize("case_name", sorted(FORGED_KEYS))
def test_a_forged_key_refuses_the_snapshot_before_anything_is_written(case_name, shared_backup, tmp_path, databases):
    from flows.restore import restore

    case = shared_backup
    location, key = FORGED_KEYS[case_name]
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "keep.txt").write_text("canary")
    key = key.replace("{canary}", str(canary))
    if case_name == "raw-absolute":
        key = raw(os.fsencode(str(canary)) + b"/\xff.jpg")
    repo = Repository.open(case["location"])
    manifest = _add_project_file(repo.load_manifest(case["snapshot"]))
    forged = forge(case, manifest, **with_key(manifest, location, key))

    target_db = databases.create("sqlite3")
    before = tree(tmp_path)
    with pytest.raises(UnsafeSnapshot) as refused:
        restore(repo=case["repo"], project_dir=str(tmp_path / "target"), snapshot_id=forged, database_url=target_db.url)
    message = str(refused.value)
    assert "\n" not in message
    assert f"snapshot {forged}" in message and location in message and repr(paths.display_key(key)) in message
    assert "tampered with or damaged; restore another snapshot" in message
    assert tree(tmp_path) == before  # no target dir, no database file, canary untouched, nothing anywhere

    # and --replace into the project itself changes nothing either
    project_before = tree(case["project"])
    with pytest.raises(UnsafeSnapshot):
        restore(repo=case["repo"], project_dir=str(case["project"]), snapshot_id=forged, replace=True)
    assert tree(case["project"]) == project_before
    assert tree(canary) == {"keep.txt": ("file", b"canary")}

    report = verify.check(Repository.open(case["location"]), forged)
    assert any(p.location == location and p.key == repr(paths.display_key(key)) and "unsafe key" in p.problem
               for p in report.problems), report.problems


def test_forged_config_file_and_duplicate_keys_are_refused_and_reported(shared_backup, tmp_path, databases):
    from flows.restore import restore

    case = shared_backup
    repo = Repository.open(case["location"])
    manifest = repo.load_manifest(case["snapshot"])
    config_escape = forge(case, manifest, project=manifest.project.model_copy(update={"config_file": "../x.env"}))
    photo = next(e for e in manifest.objects if e.key == "photo.jpg")
    duplicate = forge(case, manifest, objects=[*manifest.objects, photo])
    file_and_folder = forge(case, manifest, objects=[*manifest.objects, photo.model_copy(update={"key": "sub/deep.bin/x"})])
    for forged, fragment in ((config_escape, "config_file key '../x.env'"), (duplicate, "'photo.jpg' appears twice"),
                             (file_and_folder, "lies inside 'sub/deep.bin'")):
        target_db = databases.create("sqlite3")
        before = tree(tmp_path)
        with pytest.raises(UnsafeSnapshot, match=fragment):
            restore(repo=case["repo"], project_dir=str(tmp_path / "target"), snapshot_id=forged,
                    database_url=target_db.url)
        assert tree(tmp_path) == before
        assert not verify.check(Repository.open(case["location"]), forged).ok


def test_the_cli_refuses_a_forged_snapshot_in_one_line(shared_backup, tmp_path, cli_env):
    case = shared_backup
    if case["location"].is_s3:
        pytest.skip("the library and flow refusals run on S3 above; one CLI run shows the line")
    repo = Repository.open(case["location"])
    manifest = repo.load_manifest(case["snapshot"])
    forged = forge(case, manifest, **with_key(manifest, "local", "../../../escaped\n.jpg"))
    before = tree(tmp_path)
    done = subprocess.run([*CLI, "restore", "--repo", case["url"], "--project-dir", str(tmp_path / "target"),
                           "--snapshot", forged, "--database-url", f"sqlite:///{tmp_path}/target.db"],
                          env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "'../../../escaped\\n.jpg' has a '..' path component" in lines[0]
    assert "restore another snapshot" in lines[0]
    assert tree(tmp_path) == before
    done = subprocess.run([*CLI, "verify", "--repo", case["url"], "--snapshot", forged], env=cli_env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode != 0 and "escaped\\n.jpg" in done.stdout + done.stderr, done.stdout + done.stderr


# -- symlinks in the target ----------------------------------------------------------------------------------------
def _new_target(tmp_path: Path) -> tuple[Path, Path]:
    target = tmp_path / "target"
    (target / "uploads").mkdir(parents=True)
    canary = tmp_path / "canary"
    canary.mkdir()
    (canary / "deep.bin").write_bytes(b"outside the target")
    (canary / "secret.txt").write_bytes(b"do not overwrite me")
    return target, canary


def test_a_symlink_at_a_files_name_is_replaced_never_written_through(backed_up, tmp_path, databases):
    from flows.restore import restore

    case = backed_up
    target, canary = _new_target(tmp_path)
    (target / "uploads" / "photo.jpg").symlink_to(canary / "secret.txt")
    (target / "extensions" / "hooks").mkdir(parents=True)
    (target / "extensions" / "hooks" / "index.js").symlink_to(canary / "secret.txt")
    target_db = databases.create("sqlite3")
    restore(repo=case["repo"], project_dir=str(target), snapshot_id=case["snapshot"], database_url=target_db.url)
    assert tree(canary) == {"deep.bin": ("file", b"outside the target"), "secret.txt": ("file", b"do not overwrite me")}
    for relative in ("uploads/photo.jpg", "extensions/hooks/index.js"):
        restored = target / relative
        assert not restored.is_symlink() and restored.read_bytes() == (case["project"] / relative).read_bytes()
    assert rows(DatabaseSettings.from_url(target_db.url)) == rows(case["settings"])
    assert not [n for n, _ in tree(target).items() if n.endswith(".restoring")]

    # --replace into the source project, whose file was swapped for a link: the link is replaced
    original = (case["project"] / "uploads" / "photo.jpg").read_bytes()
    (case["project"] / "uploads" / "photo.jpg").unlink()
    (case["project"] / "uploads" / "photo.jpg").symlink_to(canary / "secret.txt")
    restore(repo=case["repo"], project_dir=str(case["project"]), snapshot_id=case["snapshot"], replace=True)
    assert not (case["project"] / "uploads" / "photo.jpg").is_symlink()
    assert (case["project"] / "uploads" / "photo.jpg").read_bytes() == original
    assert (canary / "secret.txt").read_bytes() == b"do not overwrite me"


def test_a_symlinked_folder_in_the_target_is_never_followed(backed_up, tmp_path, databases):
    from flows.restore import restore

    case = backed_up
    target, canary = _new_target(tmp_path)
    (target / "uploads" / "sub").symlink_to(canary, target_is_directory=True)
    target_db = databases.create("sqlite3")
    before = tree(target)
    with pytest.raises(UnsafeTarget) as refused:
        restore(repo=case["repo"], project_dir=str(target), snapshot_id=case["snapshot"], database_url=target_db.url)
    message = str(refused.value)
    assert "\n" not in message and f"'{target}/uploads/sub' is a symbolic link" in message, message
    assert tree(canary) == {"deep.bin": ("file", b"outside the target"), "secret.txt": ("file", b"do not overwrite me")}
    # found while planning: nothing was written, so nothing needed removing
    assert tree(target) == before and not target_db.filename.exists(), message

    # the same with --replace into the source project: refused before its database or files are touched
    (case["project"] / "uploads" / "sub" / "deep.bin").unlink()
    (case["project"] / "uploads" / "sub").rmdir()
    (case["project"] / "uploads" / "sub").symlink_to(canary, target_is_directory=True)
    project_before, rows_before = tree(case["project"]), rows(case["settings"])
    with pytest.raises(UnsafeTarget) as refused:
        restore(repo=case["repo"], project_dir=str(case["project"]), snapshot_id=case["snapshot"], replace=True)
    message = str(refused.value)
    assert "\n" not in message and "is a symbolic link" in message, message
    assert tree(case["project"]) == project_before and rows(case["settings"]) == rows_before
    assert tree(canary) == {"deep.bin": ("file", b"outside the target"), "secret.txt": ("file", b"do not overwrite me")}


def test_a_replace_that_fails_midway_says_what_state_the_target_is_in(backed_up, databases, monkeypatch):
    """A disk that fills up halfway through the storage copy (a fake: ENOSPC cannot be caused for root on this
    machine's filesystem) after the database was replaced: the one-line error says which parts are replaced,
    which partly written, which not yet, and that the same restore finishes it; and it does."""
    import errno

    from flows.restore import restore

    from directus_ops.errors import ProcedureFailed

    case = backed_up
    project, source_rows = case["project"], rows(case["settings"])
    source_tree = tree(project)
    (project / "uploads" / "photo.jpg").write_bytes(b"changed since the backup")
    (project / "uploads" / "sub" / "deep.bin").write_bytes(b"changed too")
    commits = {"n": 0}
    real_commit = paths.LocalUncommitted.commit

    def commit_until_the_disk_is_full(self):
        commits["n"] += 1
        if commits["n"] >= 2:  # and stays full: the task's retries meet it too
            self.discard()
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_commit(self)

    monkeypatch.setattr(paths.LocalUncommitted, "commit", commit_until_the_disk_is_full)
    with pytest.raises(ProcedureFailed) as failed:
        restore(repo=case["repo"], project_dir=str(project), snapshot_id=case["snapshot"], replace=True)
    message = str(failed.value)
    assert "\n" not in message and "No space left on device" in message, message
    assert "replaced: database" in message and "partly written: storage location 'local'" in message, message
    assert "not yet written: project files" in message and "run the same restore again (with --replace)" in message

    monkeypatch.setattr(paths.LocalUncommitted, "commit", real_commit)
    restore(repo=case["repo"], project_dir=str(project), snapshot_id=case["snapshot"], replace=True)
    assert rows(case["settings"]) == source_rows and tree(project) == source_tree


# -- names ---------------------------------------------------------------------------------------------------------
NAMES = [
    "n" * 251 + ".jpg",  # 255 bytes: today's temporary name overflowed NAME_MAX
    "é" * 127 + ".",  # 255 bytes of two-byte characters
    "new\nline.txt",
    "back\\slash.txt",
    "-leading-dash.txt",
    "--.txt",
    "sub/" + "d" * 255 + "/deep name.txt",
]
RAW_NAMES = [b"caf\xe9.jpg", b"\xff\xfe/inside \x80 folder.bin", b"-\xe9\n.txt"]


def test_any_name_the_filesystem_allows_is_restored_byte_for_byte(backend, tmp_path, databases, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    url, location, repo_args = backend
    database = databases.create("sqlite3")
    project, _ = small_project(tmp_path, database)
    uploads = project / "uploads"
    for name in NAMES:
        (uploads / name).parent.mkdir(parents=True, exist_ok=True)
        (uploads / name).write_bytes(name.encode() * 3)
    snapshot_id = backup(project_dir=str(project), repo={"url": url, **repo_args})
    repo = Repository.open(location)
    manifest = repo.load_manifest(snapshot_id)
    assert {e.key for e in manifest.objects} >= set(NAMES)
    # Non-UTF-8 names as a backup stores them (raw keys), and a symbolic link entry: forged into the manifest
    # so this test does not depend on the backup side.
    extra = []
    for name in RAW_NAMES:
        put = repo.put(io.BytesIO(name * 2))
        extra.append(Entry(location="local", key=paths.key_from_name(os.fsdecode(name)), size=put.size, sha256=put.sha256,
                           stored_size=put.stored_size, compressed=put.compressed, encrypted=put.encrypted))
    link = repo.put(io.BytesIO(b"../photo.jpg"))
    extra.append(Entry(location="local", key="links/photo-link", size=link.size, sha256=link.sha256,
                       stored_size=link.stored_size, compressed=link.compressed, symlink=True))
    forged = manifest.model_copy(update={"id": new_snapshot_id(), "objects": [*manifest.objects, *extra]})
    repo.save_manifest(forged)
    assert verify.check(Repository.open(location), forged.id, read_data_percent=100).ok

    target = tmp_path / "target"
    for attempt in range(2):  # the second time every file is found identical (never hashed through a link)
        restore(repo={"url": url, **repo_args}, project_dir=str(target), snapshot_id=forged.id,
                database_url=f"sqlite:///{tmp_path}/target-{attempt}.db")
        restored = target / "uploads"
        for name in NAMES:
            assert (restored / name).read_bytes() == name.encode() * 3
        for name in RAW_NAMES:
            assert Path(os.fsdecode(os.fsencode(str(restored)) + b"/" + name)).read_bytes() == name * 2
        assert os.readlink(restored / "links" / "photo-link") == "../photo.jpg"
        assert not [n for n in tree(target) if n.endswith(".restoring")]
    assert (restored / "links" / "photo-link").read_bytes() == (uploads / "photo.jpg").read_bytes()


# -- a failed restore into a new target ----------------------------------------------------------------------------
def _damage(case: dict, entry: Entry) -> None:
    """Swap an object's bytes for others of the same length (a real fault: a damaged repository)."""
    repo = Repository.open(case["location"])
    path = repo.object_path(entry.object_name)
    size = repo.fs.size(path)
    if not case["location"].is_s3:
        os.chmod(path, 0o644)
    repo.fs.pipe_file(path, os.urandom(size))


@pytest.mark.parametrize("engine", ["sqlite3", "pg"])
def test_a_failed_restore_into_a_new_target_leaves_nothing(engine, backend, tmp_path, databases, prefect_server):
    from flows.restore import restore

    case = make_backup(backend, tmp_path, databases, engine)
    repo = Repository.open(case["location"])
    manifest = repo.load_manifest(case["snapshot"])
    _damage(case, (manifest.artifact(MIGRATIONS) or manifest.artifact(EXTENSIONS))[0])  # the last step fails: database and storage are written by then
    target_db = databases.create(engine, create_database=False)
    outside = tmp_path / "outside-uploads"  # a storage root outside the project dir, new too
    before = tree(tmp_path)
    with target_db.flow_url() as database_url, pytest.raises(IntegrityError) as failed:
        restore(repo=case["repo"], project_dir=str(tmp_path / "target"), snapshot_id=case["snapshot"],
                database_url=database_url, storage={"local": str(outside)})
    message = str(failed.value)
    assert "\n" not in message and "restore of snapshot" in message, message
    assert "removed what it created" in message and "the target is as it was" in message, message
    assert tree(tmp_path) == before  # no project dir, no storage root, no database file
    assert not (tmp_path / "target").exists() and not outside.exists()
    if engine == "pg":
        import psycopg

        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (target_db.name,)).fetchone() is None
    else:
        assert not target_db.filename.exists()


def test_a_failed_restore_into_a_new_s3_prefix_removes_what_it_uploaded(tmp_path, databases, s3, prefect_server):
    from flows.restore import restore

    from harness import write_env

    url = str(tmp_path / "repo")
    case = make_backup((url, RepositoryLocation(url), {}), tmp_path, databases, "sqlite3")
    repo = Repository.open(case["location"])
    manifest = repo.load_manifest(case["snapshot"])
    _damage(case, (manifest.artifact(MIGRATIONS) or manifest.artifact(EXTENSIONS))[0])
    bucket = s3.create_bucket()
    client = s3.client()
    client.put_object(Bucket=bucket, Key="other/keep.txt", Body=b"someone else's")  # outside the target prefix
    target_db = databases.create("sqlite3")
    config = tmp_path / "target.env"  # the target's own config: its storage is a new prefix of an S3 bucket
    write_env(config, {**target_db.env(), "KEY": "k", "SECRET": "s", "STORAGE_LOCATIONS": "local",
                       "STORAGE_LOCAL_DRIVER": "s3", "STORAGE_LOCAL_ROOT": "restored", "STORAGE_LOCAL_BUCKET": bucket,
                       "STORAGE_LOCAL_KEY": s3.key_id, "STORAGE_LOCAL_SECRET": s3.secret,
                       "STORAGE_LOCAL_ENDPOINT": s3.endpoint, "STORAGE_LOCAL_REGION": S3_REGION,
                       "STORAGE_LOCAL_FORCE_PATH_STYLE": "true"})
    before = tree(tmp_path)
    with pytest.raises(IntegrityError) as failed:
        restore(repo=url, project_dir=str(tmp_path / "target"), snapshot_id=case["snapshot"], config_path=str(config))
    message = str(failed.value)
    assert "\n" not in message and f"the files written to storage location 'local' (s3://{bucket}/restored)" in message, message
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert [o["Key"] for o in listed] == ["other/keep.txt"]
    assert tree(tmp_path) == before and not target_db.filename.exists()

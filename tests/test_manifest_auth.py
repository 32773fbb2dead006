"""Authenticated manifests (repository format 3), against a local and an S3 (moto) repository.

A repository holds two genuine snapshots of a small project (one plain, one ``--encrypt``ed). Each attack
puts a manifest there that was not written with the repository's key as it stands: forged by someone without
the passphrase, a genuine one tampered with (one byte, truncated, re-ordered, a field edited), a genuine one
copied under another snapshot id or into the other form. Every one must be refused by ``snapshots`` (left
out, with a warning naming the file), ``verify`` (a problem of that snapshot), ``restore`` (nothing written)
and ``forget`` (left out of the decision; prune stops, naming the file) while the genuine snapshots stay
usable. Then: format-2 repositories (a clear error, the upgrade, restore afterwards), a damaged neighbour
during a backup (issue 13 item 7), and a fuzzed manifest reader.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import CLI, S3_REGION, Databases, free_project_slot, rows, small_project

from directus_ops import codec, keys, verify
from directus_ops.database import DatabaseSettings
from directus_ops.errors import ManifestRejected, RepositoryError, RepositoryLocked
from directus_ops.manifest import DatabaseInfo, Entry, Manifest, ManifestHeader, ProjectInfo
from directus_ops.repository import MANIFEST_MAGIC, Repository, RepositoryLocation
from directus_ops.repository_upgrade import upgrade_repository

OTHER_ID = "20991231T235959Z-0f0f0f"  # an id no backup made


# -- a repository with genuine snapshots -------------------------------------------------------------------------
@dataclass
class Genuine:
    url: str
    location: RepositoryLocation
    endpoint: str | None
    region: str | None
    project: Path
    settings: DatabaseSettings
    databases: Databases
    plain: str  # a plain snapshot's id
    encrypted: str  # an --encrypt snapshot's id
    s3: object | None

    def repo(self) -> Repository:
        return Repository.open(self.location)

    def raw(self) -> Repository:
        """The repository for reading and writing its files as they are (whatever its format)."""
        return Repository.open(self.location, upgrading=True)

    def path(self, name: str) -> str:
        return self.raw()._path("snapshots", name)

    def read(self, name: str) -> bytes:
        return self.raw().fs.cat_file(self.path(name))

    def write(self, name: str, data: bytes) -> None:
        self.raw().fs.pipe_file(self.path(name), data)

    def remove(self, name: str) -> None:
        self.raw().fs.rm(self.path(name))

    def listing(self) -> dict[str, bytes]:
        """Every file of the repository but the locks, with its bytes: "nothing changed" is equality."""
        repo = self.raw()
        return {p: repo.fs.cat_file(p) for p in sorted(repo.fs.find(repo.base)) if "/locks/" not in p}

    def flow_options(self) -> dict[str, dict[str, str | None]]:
        return {"repo": {"url": self.url, "endpoint": self.endpoint, "region": self.region}}

    def cli_options(self) -> list[str]:
        extra = ["--repo-endpoint", self.endpoint, "--repo-region", self.region] if self.endpoint else []
        return ["--repo", self.url, *extra]

    def copy(self, suffix: str) -> Genuine:
        """The same repository (locks left out) at another local directory or S3 prefix."""
        source = self.raw()
        url = f"{self.url}-{suffix}"
        location = RepositoryLocation(url, endpoint=self.endpoint, region=self.region)
        target_base = location.filesystem()[1]
        for path in source.fs.find(source.base):
            if "/locks/" not in path:
                target = target_base + path[len(source.base):]
                if not source.is_local:
                    source.fs.pipe_file(target, source.fs.cat_file(path))
                else:
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    Path(target).write_bytes(Path(path).read_bytes())
        return Genuine(url, location, self.endpoint, self.region, self.project, self.settings, self.databases,
                       self.plain, self.encrypted, self.s3)


@pytest.fixture(scope="module", params=["local", "s3"])
def genuine(request, tmp_path_factory, prefect_server) -> Iterator[Genuine]:
    from flows.backup import backup

    root = tmp_path_factory.mktemp(f"auth-{request.param}")
    databases = Databases(root / "sqlite")
    with pytest.MonkeyPatch.context() as patch:
        if request.param == "local":
            url, endpoint, region, s3 = str(root / "repo"), None, None, None
        else:
            s3 = request.getfixturevalue("s3")
            url, endpoint, region = f"s3://{s3.create_bucket()}/repo", s3.endpoint, S3_REGION
            patch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
            patch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
        project, settings = small_project(root, databases.create("sqlite3"))
        repo = {"url": url, "endpoint": endpoint, "region": region}
        plain = backup(project_dir=str(project), repo=repo)
        encrypted = backup(project_dir=str(project), repo=repo, encrypt=True)
        free_project_slot(project)
        yield Genuine(url, RepositoryLocation(url, endpoint=endpoint, region=region), endpoint, region, project, settings,
                      databases, plain, encrypted, s3)
    databases.drop_all()


@pytest.fixture
def repo_state(genuine, monkeypatch) -> Iterator[Genuine]:
    """The module's repository, put back as it was after the test (manifests only are ever changed)."""
    if genuine.s3 is not None:
        monkeypatch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", genuine.s3.key_id)  # type: ignore[attr-defined]
        monkeypatch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", genuine.s3.secret)  # type: ignore[attr-defined]
    repo = genuine.repo()
    root = repo._path("snapshots")
    before = {p: repo.fs.cat_file(p) for p in repo.fs.find(root)}
    yield genuine
    for path in repo.fs.find(root):
        if path not in before:
            repo.fs.rm(path)
    for path, data in before.items():
        repo.fs.pipe_file(path, data)


def split(data: bytes) -> tuple[bytes, bytes]:
    line, _, body = data.partition(b"\n")
    assert line.startswith(MANIFEST_MAGIC)
    return line + b"\n", body


def json_bytes(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


# -- the attacks: each returns the id of the snapshot that must be refused ---------------------------------------
def forged_plain(g: Genuine) -> str:
    """Someone without the passphrase writes a manifest that parses (what format 2 accepted)."""
    manifest = g.repo().load_manifest(g.plain)
    g.write(f"{OTHER_ID}.json", manifest.model_copy(update={"id": OTHER_ID}).model_dump_json().encode())
    return OTHER_ID


def forged_with_a_made_up_mac(g: Genuine) -> str:
    manifest = g.repo().load_manifest(g.plain)
    body = manifest.model_copy(update={"id": OTHER_ID}).model_dump_json().encode()
    g.write(f"{OTHER_ID}.json", b"directus-ops manifest 3 " + os.urandom(32).hex().encode() + b"\n" + body)
    return OTHER_ID


def one_byte_changed(g: Genuine) -> str:
    data = bytearray(g.read(f"{g.plain}.json"))
    at = data.index(b'"sha256":"') + len(b'"sha256":"') + 5  # a hex digit of an object's sha256: still parses
    data[at] = ord("a") if data[at] != ord("a") else ord("b")
    g.write(f"{g.plain}.json", bytes(data))
    return g.plain


def truncated(g: Genuine) -> str:
    data = g.read(f"{g.plain}.json")
    g.write(f"{g.plain}.json", data[: len(data) // 2])
    return g.plain


def entries_reordered(g: Genuine) -> str:
    line, body = split(g.read(f"{g.plain}.json"))
    document = json.loads(body)
    assert len(document["artifacts"]) > 1
    document["artifacts"].reverse()
    g.write(f"{g.plain}.json", line + json_bytes(document))
    return g.plain


def field_edited(g: Genuine) -> str:
    line, body = split(g.read(f"{g.plain}.json"))
    document = json.loads(body)
    document["project"]["config_file"] = "../outside.env"
    g.write(f"{g.plain}.json", line + json_bytes(document))
    return g.plain


def copied_under_another_id(g: Genuine) -> str:
    g.write(f"{OTHER_ID}.json", g.read(f"{g.plain}.json"))
    return OTHER_ID


def copied_and_id_rewritten(g: Genuine) -> str:
    """A genuine manifest under another id, its ``id`` field changed to match the file name."""
    line, body = split(g.read(f"{g.plain}.json"))
    g.write(f"{OTHER_ID}.json", line + body.replace(g.plain.encode(), OTHER_ID.encode()))
    return OTHER_ID


def encrypted_copied_under_another_id(g: Genuine) -> str:
    g.write(f"{OTHER_ID}.json.enc", g.read(f"{g.encrypted}.json.enc"))
    return OTHER_ID


def encrypted_byte_changed(g: Genuine) -> str:
    data = bytearray(g.read(f"{g.encrypted}.json.enc"))
    data[-40] ^= 0x01  # inside the ciphertext
    g.write(f"{g.encrypted}.json.enc", bytes(data))
    return g.encrypted


def plain_renamed_to_encrypted(g: Genuine) -> str:
    data = g.read(f"{g.plain}.json")
    g.remove(f"{g.plain}.json")
    g.write(f"{g.plain}.json.enc", data)
    return g.plain


ATTACKS = [forged_plain, forged_with_a_made_up_mac, one_byte_changed, truncated, entries_reordered, field_edited,
           copied_under_another_id, copied_and_id_rewritten, encrypted_copied_under_another_id, encrypted_byte_changed,
           plain_renamed_to_encrypted]


@pytest.mark.parametrize("attack", ATTACKS, ids=[a.__name__ for a in ATTACKS])
def test_a_manifest_not_written_with_the_key_is_refused_everywhere(attack: Callable[[Genuine], str], repo_state,
                                                                   tmp_path):
    from flows.forget import forget
    from flows.restore import restore

    g = repo_state
    bad = attack(g)
    good = [i for i in (g.plain, g.encrypted) if i != bad]
    before = g.listing()

    # snapshots: left out, with a warning naming the file
    rejected: dict[str, str] = {}
    listed = [h.id for h in g.repo().headers(on_rejected=lambda i, e: rejected.__setitem__(i, str(e)))]
    assert bad not in listed and set(good) <= set(listed)
    assert list(rejected) == [bad]
    assert f"snapshots/{bad}.json" in rejected[bad] and "remove that file" in rejected[bad]

    # verify: a problem of that snapshot (all, and by its id), nothing else
    report = verify.check(g.repo(), "all")
    assert {(p.snapshot, p.location) for p in report.problems} == {(bad, "manifest")}, report.problems
    assert [p.snapshot for p in verify.check(g.repo(), bad).problems] == [bad]
    for snapshot_id in good:
        assert verify.check(g.repo(), snapshot_id, read_data_percent=100).ok

    # restore: refused before anything is written
    target_db = g.databases.create("sqlite3")
    target = tmp_path / "restored"
    with pytest.raises(ManifestRejected, match="remove that file"):
        restore(project_dir=str(target), snapshot_id=bad, database_url=target_db.url, **g.flow_options())
    assert not target.exists()
    assert not target_db.filename.exists() or target_db.tables() == []

    # forget: left out of the decision, never deleted; prune stops naming the file
    decided = forget(keep_last=10, **g.flow_options())
    assert bad in decided.left_out and bad not in decided.keep and bad not in decided.forget
    assert set(good) <= set(decided.keep)
    with pytest.raises(RepositoryError, match=r"prune stopped, nothing deleted: .*snapshots/.*remove that file"):
        forget(keep_last=10, prune=True, **g.flow_options())
    assert g.listing() == before


def test_the_cli_refuses_a_forged_manifest_in_one_line(repo_state, cli_env, tmp_path):
    g = repo_state
    env = {**cli_env, **({"DIRECTUS_OPS_REPO_ACCESS_KEY_ID": g.s3.key_id,  # type: ignore[attr-defined]
                          "DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY": g.s3.secret} if g.s3 else {})}  # type: ignore[attr-defined]
    bad = forged_plain(g)
    before = g.listing()

    def run(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*CLI, *args], env={**env, **extra}, capture_output=True, text=True, timeout=300)

    listed = run("snapshots", *g.cli_options(), "--json")
    assert listed.returncode == 0, listed.stderr
    assert {s["id"] for s in json.loads(listed.stdout)} == {g.plain, g.encrypted}
    assert listed.stderr.count("directus-ops: warning:") == 1 and f"snapshots/{bad}.json" in listed.stderr

    checked = run("verify", *g.cli_options())
    assert checked.returncode == 9 and f"snapshot {bad}: manifest: snapshots/{bad}.json" in checked.stdout

    target = tmp_path / "restored"
    restored = run("restore", *g.cli_options(), "--snapshot", bad, "--project-dir", str(target),
                   "--database-url", f"sqlite:///{tmp_path / 'new.db'}")
    assert restored.returncode == 7, restored.stderr
    assert len(restored.stderr.strip().splitlines()) == 1 and f"snapshot {bad} refused" in restored.stderr
    assert not target.exists() and not (tmp_path / "new.db").exists()

    pruned = run("forget", *g.cli_options(), "--keep-last", "10", "--prune")
    assert pruned.returncode == 7 and "prune stopped, nothing deleted" in pruned.stderr.splitlines()[-1]
    kept = run("forget", *g.cli_options(), "--keep-last", "10")
    assert kept.returncode == 0 and f"warning: left out of the retention decision (neither kept nor forgotten): snapshot {bad} refused" in kept.stderr

    # Listing needs the passphrase now: without it, the existing clear error (exit 12), nothing else.
    no_passphrase = {k: v for k, v in env.items() if not k.startswith("DIRECTUS_OPS_PASSPHRASE")}
    missing = subprocess.run([*CLI, "snapshots", *g.cli_options()], env=no_passphrase, capture_output=True, text=True,
                             timeout=300)
    assert missing.returncode == 12 and missing.stderr.strip().splitlines() == [
        f"directus-ops: error: the repository {g.url} needs a passphrase (the config artifact is always encrypted): set "
        "DIRECTUS_OPS_PASSPHRASE or DIRECTUS_OPS_PASSPHRASE_FILE, or name a Prefect Secret block with --passphrase-secret-block"]
    wrong = run("snapshots", *g.cli_options(), DIRECTUS_OPS_PASSPHRASE="not the passphrase")
    assert wrong.returncode == 12 and "wrong passphrase" in wrong.stderr
    assert g.listing() == before


# -- format 2 ----------------------------------------------------------------------------------------------------
def make_format_2(g: Genuine) -> None:
    """Write the repository as directus-ops wrote format 2: manifests without a MAC line (``format`` 2;
    encrypted ones under the master key), config.json saying 2."""
    repo = g.repo()
    for snapshot_id, name in repo.manifest_files().items():
        body = repo.load_manifest(snapshot_id).model_copy(update={"format": 2}).model_dump_json().encode()
        if name.endswith(".json.enc"):
            body = codec.encode_bytes(body, True, repo.master_key())
        repo.fs.pipe_file(repo._path("snapshots", name), body)
    set_format(g, 2)


def set_format(g: Genuine, number: int) -> None:
    repo = g.raw()
    repo.fs.pipe_file(repo._path("config.json"), json.dumps({"format": number, "created": "2026-01-01T00:00:00+00:00"}).encode())


def test_a_format_2_repository_is_refused_then_upgraded(genuine, repo_state, cli_env, tmp_path, monkeypatch):
    from flows.backup import check_backup
    from flows.restore import restore

    g = genuine.copy("format2")
    make_format_2(g)
    half = g.read(f"{g.plain}.json")
    truncated_id = "20200101T000000Z-dddddd"
    g.write(f"{truncated_id}.json", half[: len(half) // 2])  # unreadable: reported, left unsigned
    before = g.listing()
    env = {**cli_env, **({"DIRECTUS_OPS_REPO_ACCESS_KEY_ID": g.s3.key_id,  # type: ignore[attr-defined]
                          "DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY": g.s3.secret} if g.s3 else {})}  # type: ignore[attr-defined]

    fix = f"run `directus-ops repository upgrade --repo {g.url}`"
    with pytest.raises(RepositoryError, match="has format 2, whose manifests are not authenticated") as refused:
        Repository.open(g.location)
    assert fix in str(refused.value)
    listed = subprocess.run([*CLI, "snapshots", *g.cli_options()], env=env, capture_output=True, text=True, timeout=300)
    assert listed.returncode == 7 and listed.stderr.strip().splitlines() == [f"directus-ops: error: {refused.value}"]
    with pytest.raises(RepositoryError, match="has format 2"):  # no format-3 manifest into a format-2 repository
        check_backup(str(g.project), g.location)
    assert g.listing() == before

    upgraded = subprocess.run([*CLI, "repository", "upgrade", *g.cli_options()], env=env, capture_output=True,
                              text=True, timeout=300)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "upgraded to format 3: 2 manifests signed, 1 left unsigned" in upgraded.stdout
    assert f"snapshot {truncated_id} left unsigned" in upgraded.stderr
    assert json.loads(g.repo().fs.cat_file(g.repo()._path("config.json")))["format"] == 3

    rejected: dict[str, str] = {}
    assert [h.id for h in g.repo().headers(on_rejected=lambda i, e: rejected.__setitem__(i, str(e)))] == [g.plain, g.encrypted]
    assert list(rejected) == [truncated_id]
    report = verify.check(g.repo(), "all", read_data_percent=100)
    assert {p.snapshot for p in report.problems} == {truncated_id}
    target_db = g.databases.create("sqlite3")
    result = restore(project_dir=str(tmp_path / "restored"), snapshot_id=g.encrypted, database_url=target_db.url,
                     **g.flow_options())
    assert result.snapshot == g.encrypted
    assert rows(DatabaseSettings.from_url(target_db.url)) == rows(g.settings)
    assert (tmp_path / "restored" / "uploads" / "photo.jpg").read_bytes() == (g.project / "uploads" / "photo.jpg").read_bytes()
    again = upgrade_repository(g.location)
    assert again.already and again.format == 3

    # config.json is not trusted: set back to 2 with a forged manifest added, the upgrade signs only what it
    # recorded when it began.
    g.write(f"{OTHER_ID}.json", g.repo().load_manifest(g.plain).model_copy(update={"id": OTHER_ID}).model_dump_json().encode())
    set_format(g, 2)
    result2 = upgrade_repository(g.location)
    assert set(result2.signed) == {g.plain, g.encrypted}
    assert "appeared after this upgrade began" in result2.unreadable[OTHER_ID]
    assert [h.id for h in g.repo().headers(on_rejected=lambda i, e: None)] == [g.plain, g.encrypted]


def test_a_format_3_repository_set_back_to_2_is_not_signed_again(genuine, repo_state):
    g = genuine.copy("rollback")
    g.write(f"{OTHER_ID}.json", g.repo().load_manifest(g.plain).model_copy(update={"id": OTHER_ID}).model_dump_json().encode())
    set_format(g, 2)
    before = g.listing()
    with pytest.raises(RepositoryError, match=r'already signed .* config.json was changed; put "format": 3 back'):
        upgrade_repository(g.location)
    assert g.listing() == before


# -- issue 13 item 7: a damaged neighbour does not fail a good backup -------------------------------------------
def test_a_backup_succeeds_and_prints_its_id_beside_a_damaged_manifest(genuine, repo_state, cli_env):
    g = genuine.copy("neighbour")
    data = g.read(f"{g.plain}.json")
    damaged = "20991230T000000Z-eeeeee"  # sorts last: it is among the snapshots the backup's report reads
    g.write(f"{damaged}.json", data[: len(data) // 2])
    forged_plain(g)
    env = {**cli_env, **({"DIRECTUS_OPS_REPO_ACCESS_KEY_ID": g.s3.key_id,  # type: ignore[attr-defined]
                          "DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY": g.s3.secret} if g.s3 else {})}  # type: ignore[attr-defined]
    done = subprocess.run([*CLI, "backup", str(g.project), *g.cli_options()], env=env, capture_output=True, text=True,
                          timeout=600)
    free_project_slot(g.project)
    assert done.returncode == 0, done.stderr
    new_id = done.stdout.strip()
    repo = g.repo()
    assert new_id in repo.snapshot_ids() and repo.load_manifest(new_id).id == new_id
    assert verify.check(repo, new_id, read_data_percent=100).ok
    assert {p.snapshot for p in verify.check(repo, "all").problems} == {damaged, OTHER_ID}  # verify: errors


# -- the reader, fuzzed ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fuzz_repo(tmp_path_factory) -> tuple[Repository, dict[str, bytes]]:
    """A local repository with one plain and one encrypted genuine manifest (with many entries)."""
    repo = Repository.open(RepositoryLocation(str(tmp_path_factory.mktemp("fuzz") / "repo")), create=True)
    put = repo.put(io.BytesIO(b"content"))
    entries = [Entry(location="local", key=f"dir/file-{i}.txt", size=put.size, sha256=put.sha256, mtime=1.5 + i,
                     stored_size=put.stored_size) for i in range(30)]
    genuine = {}
    for snapshot_id, encrypt in (("20260101T000000Z-aaaaaa", False), ("20260102T000000Z-bbbbbb", True)):
        repo.save_manifest(Manifest(
            id=snapshot_id, time=datetime(2026, 1, 1, tzinfo=timezone.utc), encrypted=encrypt,
            project=ProjectInfo(name="p", dir="/srv/p", host="h", config_file=".env", directus_version="10.13.4", migrations=["a"]),
            database=DatabaseInfo(engine="sqlite", client="sqlite3", name="d", server_version="3", dump_tool="t",
                                  dump_format="sqlite-file", row_counts={"t": 1}),
            storage=[], artifacts=entries[:3], objects=entries[3:]), encrypt=encrypt)
        name = snapshot_id + (".json.enc" if encrypt else ".json")
        genuine[name] = repo.fs.cat_file(repo._path("snapshots", name))
    return repo, genuine


def only_the_clear_error(repo: Repository, name: str, data: bytes) -> None:
    """Reading ``data`` as ``snapshots/<name>`` gives the reader's one error, never another, never a manifest."""
    snapshot_id = name.split(".", 1)[0]
    for model in (Manifest, ManifestHeader):
        with pytest.raises(RepositoryError) as refused:
            repo.parse_manifest(snapshot_id, name, data, model)
        assert isinstance(refused.value, ManifestRejected)
        assert len(str(refused.value).splitlines()) == 1 and f"snapshots/{name}" in str(refused.value)


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


@FUZZ
@given(data=st.binary(max_size=4096), encrypted=st.booleans())
def test_fuzz_arbitrary_bytes_are_refused(fuzz_repo, data, encrypted):
    repo, _ = fuzz_repo
    only_the_clear_error(repo, "20260101T000000Z-aaaaaa" + (".json.enc" if encrypted else ".json"), data)


@FUZZ
@given(data=st.binary(max_size=256), encrypted=st.booleans())
def test_fuzz_arbitrary_bytes_behind_a_well_formed_mac_line_are_refused(fuzz_repo, data, encrypted):
    repo, _ = fuzz_repo
    only_the_clear_error(repo, "20260101T000000Z-aaaaaa" + (".json.enc" if encrypted else ".json"),
                         b"directus-ops manifest 3 " + b"0" * 64 + b"\n" + data)


mutations = st.one_of(
    st.tuples(st.just("flip"), st.integers(min_value=0), st.integers(min_value=1, max_value=255)),
    st.tuples(st.just("truncate"), st.integers(min_value=0), st.just(0)),
    st.tuples(st.just("delete"), st.integers(min_value=0), st.integers(min_value=1, max_value=64)),
    st.tuples(st.just("insert"), st.integers(min_value=0), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("swap"), st.integers(min_value=0), st.integers(min_value=0)),
)


def mutate(data: bytes, mutation: tuple) -> bytes:
    kind, at, arg = mutation
    at %= len(data)
    if kind == "flip":
        return data[:at] + bytes([data[at] ^ arg]) + data[at + 1:]
    if kind == "truncate":
        return data[:at]
    if kind == "delete":
        return data[:at] + data[at + arg:]
    if kind == "insert":
        return data[:at] + arg + data[at:]
    other = arg % len(data)  # swap two slices of 8 bytes: reordered content
    first, second = sorted((at, other))
    if second - first < 8:
        return data[:first] + data[first:second][::-1] + data[second:]
    return data[:first] + data[second:second + 8] + data[first + 8:second] + data[first:first + 8] + data[second + 8:]


@FUZZ
@given(which=st.booleans(), steps=st.lists(mutations, min_size=1, max_size=4))
def test_fuzz_mutated_genuine_manifests_are_refused(fuzz_repo, which, steps):
    repo, genuine = fuzz_repo
    name = sorted(genuine)[int(which)]
    data = genuine[name]
    for step in steps:
        data = mutate(data, step) if data else data
    if data == genuine[name]:
        return  # a mutation that changed nothing (a swap of equal bytes): still genuine
    only_the_clear_error(repo, name, data)


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
                           max_leaves=20)


@FUZZ
@given(replacement=json_values, field=st.sampled_from(["id", "time", "project", "database", "storage", "artifacts",
                                                      "objects", "stats", "format", "encrypted"]))
def test_fuzz_authentic_but_malformed_content_gives_the_clear_error(fuzz_repo, replacement, field):
    """Content signed with the key (a key holder's bug, not an attacker) that does not parse as a manifest of
    this snapshot: still only the reader's error."""
    repo, genuine = fuzz_repo
    name = "20260101T000000Z-aaaaaa.json"
    document = json.loads(genuine[name].partition(b"\n")[2])
    document[field] = replacement
    body = json_bytes(document)
    data = b"directus-ops manifest 3 " + keys.manifest_mac(repo.manifest_key(), "20260101T000000Z-aaaaaa", "plain", body).encode() + b"\n" + body
    try:
        manifest = repo.parse_manifest("20260101T000000Z-aaaaaa", name, data, Manifest)
    except ManifestRejected as exc:
        assert len(str(exc).splitlines()) == 1
    else:
        assert manifest.id == "20260101T000000Z-aaaaaa"  # pydantic coerced it into a valid manifest of this snapshot


def test_genuine_manifests_read_back(fuzz_repo):
    repo, genuine = fuzz_repo
    for name, data in genuine.items():
        snapshot_id = name.split(".", 1)[0]
        assert repo.parse_manifest(snapshot_id, name, data, Manifest).id == snapshot_id
        assert repo.load_header(snapshot_id).id == snapshot_id


# -- the upgrade's lock and its resumption (a synthetic local repository: no backup needed) ----------------------
def synthetic_format_2(path: Path, count: int = 3) -> tuple[RepositoryLocation, list[str]]:
    """A format-2 repository as directus-ops wrote it: manifests without a MAC line, config.json saying 2."""
    location = RepositoryLocation(str(path))
    repo = Repository.open(location, create=True)
    put = repo.put(io.BytesIO(b"dump"))
    ids = []
    for index in range(count):
        snapshot_id = f"2026010{index + 1}T000000Z-{index:06d}"
        repo.save_manifest(Manifest(
            id=snapshot_id, time=datetime(2026, 1, index + 1, tzinfo=timezone.utc), format=2,
            project=ProjectInfo(name="p", dir="/srv/p", host="h", config_file=".env", directus_version="10.13.4", migrations=[]),
            database=None, storage=[], artifacts=[Entry(location="@database", key="d.sqlite", size=put.size,
                                                        sha256=put.sha256, stored_size=put.stored_size)], objects=[]),
            encrypt=index == 0)
        name = repo.manifest_files()[snapshot_id]
        stored = repo.fs.cat_file(repo._path("snapshots", name))
        repo.fs.pipe_file(repo._path("snapshots", name), stored.partition(b"\n")[2])
        ids.append(snapshot_id)
    repo.fs.pipe_file(repo._path("config.json"), json.dumps({"format": 2, "created": "2026-01-01T00:00:00+00:00"}).encode())
    return location, ids


def tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file() and "locks" not in p.parts}


def test_the_upgrade_waits_for_no_backup_and_resumes_after_a_kill(tmp_path, cli_env_no_server):
    from directus_ops import locks

    location, ids = synthetic_format_2(tmp_path / "repo")
    before = tree(tmp_path / "repo")
    with locks.hold(Repository.open(location, upgrading=True), "backup", exclusive=False):  # a backup is running
        with pytest.raises(RepositoryLocked, match="is locked"):
            upgrade_repository(location)
    assert tree(tmp_path / "repo") == before

    # Killed (SIGKILL) after it recorded its plan and signed one manifest: the lock, the record and the first
    # manifest went through write_file, the second was still under its temporary name.
    killed = subprocess.run([*CLI, "repository", "upgrade", "--repo", str(tmp_path / "repo")],
                            env={**cli_env_no_server, "DIRECTUS_OPS_TEST_KILL_AT": "file-tmp:4"}, capture_output=True,
                            text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    with pytest.raises(RepositoryError, match="has format 2"):
        Repository.open(location)
    signed_before = [p.name for p in (tmp_path / "repo" / "snapshots").iterdir() if not p.name.startswith(".")
                     and p.read_bytes().startswith(MANIFEST_MAGIC)]
    assert (tmp_path / "repo" / "upgrade-3.json").exists() and len(signed_before) == 1  # half done
    result = upgrade_repository(location)
    assert sorted(result.signed) == ids and not result.unreadable
    assert [h.id for h in Repository.open(location).headers(on_rejected=lambda i, e: pytest.fail(str(e)))] == ids

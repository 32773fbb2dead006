"""The snapshot repository, one suite run against both backends: a local directory and S3 (moto)."""

from __future__ import annotations

import hashlib
import io
import os
import time
from datetime import datetime, timedelta, timezone

import pytest
from harness import s3_repository

from directus_ops.errors import IntegrityError, RepositoryError, SnapshotNotFound
from directus_ops.manifest import DatabaseInfo, Entry, Manifest, ProjectInfo
from directus_ops.repository import CHUNK_SIZE, SMALL_OBJECT, Repository, RepositoryLocation
from directus_ops.storage import StorageLocation


@pytest.fixture(params=["local", "s3"])
def location(request, tmp_path, monkeypatch) -> RepositoryLocation:
    if request.param == "local":
        return RepositoryLocation(url=str(tmp_path / "repo"))
    return s3_repository(request.getfixturevalue("s3"), monkeypatch)


class CountingReader(io.BytesIO):
    largest_read = 0

    def read(self, size: int | None = -1) -> bytes:
        data = super().read(size)
        self.largest_read = max(self.largest_read, len(data))
        return data


def entry_of(put, location: str = "local", key: str = "f") -> Entry:
    return Entry(location=location, key=key, size=put.size, sha256=put.sha256, stored_size=put.stored_size,
                 compressed=put.compressed, encrypted=put.encrypted)


def manifest(snapshot_id: str, when: datetime, entries: list[Entry]) -> Manifest:
    return Manifest(id=snapshot_id, time=when,
                    project=ProjectInfo(name="p", dir="/p", host="h", config_file=".env", directus_version="10.13.4", migrations=[]),
                    database=DatabaseInfo(engine="sqlite", client="sqlite3", name="d", server_version="3", dump_tool="t",
                                          dump_format="sqlite-file", row_counts={}),
                    storage=[], artifacts=entries[:1], objects=entries[1:])


def test_objects_are_stored_once_under_their_sha256(location):
    repo = Repository.open(location, create=True)
    data = os.urandom(SMALL_OBJECT + 3 * CHUNK_SIZE + 17)  # above the in-memory size: the streaming path
    reader = CountingReader(data)
    first = repo.put(reader)
    assert first.sha256 == hashlib.sha256(data).hexdigest() and first.size == len(data)
    assert first.written == first.stored_size and not first.compressed  # random bytes do not compress
    assert reader.largest_read <= CHUNK_SIZE  # streamed in chunks, never read whole
    again = repo.put(io.BytesIO(data))
    assert again.sha256 == first.sha256 and again.written == 0
    out = io.BytesIO()
    repo.copy_object_to(entry_of(first), out)
    assert out.getvalue() == data
    small = repo.put(io.BytesIO(b"small file"))  # the in-memory path: one write, straight to its name
    assert repo.fs.exists(repo.object_path(small.sha256)) and small.written == small.stored_size
    assert repo.fs.find(repo.base + "/tmp") == []  # nothing left in flight
    assert Repository.open(location).known_objects() == {first.sha256: first.stored_size,
                                                          small.sha256: small.stored_size}


def test_a_failed_upload_leaves_no_object(location):
    repo = Repository.open(location, create=True)

    class Broken(io.BytesIO):
        def read(self, size=-1):
            if self.tell() >= SMALL_OBJECT + CHUNK_SIZE:
                raise OSError("disk went away")
            return super().read(size)

    with pytest.raises(OSError):
        repo.put(Broken(os.urandom(SMALL_OBJECT + 2 * CHUNK_SIZE)))
    assert Repository.open(location).known_objects() == {}
    assert repo.fs.find(repo.base + "/tmp") == []


def test_only_snapshots_with_a_manifest_exist(location):
    repo = Repository.open(location, create=True)
    entry = entry_of(repo.put(io.BytesIO(b"dump")), "@database", "database.sqlite")
    assert repo.manifests() == []
    with pytest.raises(SnapshotNotFound, match="no snapshot of project p"):
        Repository.open(location).resolve("latest", project="p")
    now = datetime.now(timezone.utc)
    repo.save_manifest(manifest("20260101T000000Z-aaaaaa", now - timedelta(days=1), [entry]))
    repo.save_manifest(manifest("20260102T000000Z-bbbbbb", now, [entry]))
    reopened = Repository.open(location)
    assert [m.id for m in reopened.manifests()] == ["20260101T000000Z-aaaaaa", "20260102T000000Z-bbbbbb"]
    assert reopened.resolve("latest").id == "20260102T000000Z-bbbbbb"
    assert reopened.resolve("20260101").id == "20260101T000000Z-aaaaaa"
    assert reopened.resolve("aaaaaa").id == "20260101T000000Z-aaaaaa"
    with pytest.raises(SnapshotNotFound, match="ambiguous"):
        reopened.resolve("2026")
    with pytest.raises(SnapshotNotFound, match="no snapshot nope"):
        reopened.resolve("nope")


def test_damaged_bytes_are_refused(location):
    repo = Repository.open(location, create=True)
    data = os.urandom(100_000)
    put = repo.put(io.BytesIO(data))
    stored = bytearray(repo.fs.cat_file(repo.object_path(put.sha256)))
    stored[5000] ^= 0xFF
    repo.fs.pipe_file(repo.object_path(put.sha256), bytes(stored))
    with pytest.raises(IntegrityError, match="do not match"):
        repo.copy_object_to(entry_of(put), io.BytesIO())


def test_opening_a_missing_repository_for_reading_fails_clearly(location):
    with pytest.raises(RepositoryError, match="no snapshot repository at .*run a backup into it first"):
        Repository.open(location)


@pytest.mark.parametrize("compressible", [True, False])
def test_encrypted_and_compressed_objects_round_trip(location, compressible):
    repo = Repository.open(location, create=True)
    data = (b"DB_PASSWORD=hunter2-in-the-config\n" * 40_000) if compressible else os.urandom(200_000)
    put = repo.put(io.BytesIO(data), encrypt=True)
    assert put.encrypted and put.compressed == compressible
    stored = repo.fs.cat_file(repo.object_path(put.sha256 + ".enc"))
    assert b"hunter2" not in stored and data[:64] not in stored
    assert (len(stored) < len(data) // 10) if compressible else (len(stored) > len(data))
    out = io.BytesIO()
    Repository.open(location).copy_object_to(entry_of(put), out)  # a new handle unlocks the key from its file
    assert out.getvalue() == data
    # The same content stored plain is another object: an encrypted snapshot never points at plaintext.
    plain = repo.put(io.BytesIO(data))
    assert plain.written > 0 and not plain.encrypted


def test_a_wrong_passphrase_fails_clearly(location):
    from dataclasses import replace

    from directus_ops.errors import PassphraseMissing, WrongPassphrase

    repo = Repository.open(location, create=True)
    put = repo.put(io.BytesIO(b"secret config"), encrypt=True)
    wrong = Repository.open(replace(location, passphrase="not the passphrase"))
    with pytest.raises(WrongPassphrase, match="wrong passphrase for the repository"):
        wrong.copy_object_to(entry_of(put), io.BytesIO())
    nobody = Repository.open(location)
    nobody.passphrase = None
    with pytest.raises(PassphraseMissing, match="needs a passphrase .*DIRECTUS_OPS_PASSPHRASE"):
        nobody.copy_object_to(entry_of(put), io.BytesIO())


@pytest.fixture(params=["local", "s3"])
def storage_location(request, tmp_path) -> StorageLocation:
    if request.param == "local":
        return StorageLocation(name="local", driver="local", root=str(tmp_path / "uploads"))
    s3 = request.getfixturevalue("s3")
    return StorageLocation(name="media", driver="s3", root="assets", bucket=s3.create_bucket(), region="eu-west-1",
                           endpoint=s3.endpoint, key_id=s3.key_id, secret=s3.secret, force_path_style=True)


def test_storage_lists_objects_by_key_with_a_change_fingerprint(storage_location):
    assert list(storage_location.list_objects()) == []  # a root that does not exist yet is empty
    storage_location.check_writable()
    for key, data in {"a.jpg": b"aaa", "nested/b.bin": b"bbbb"}.items():
        with storage_location.open(key, "wb") as handle:
            handle.write(data)
    objects = {o.key: o for o in storage_location.list_objects()}
    assert set(objects) == {"a.jpg", "nested/b.bin"}
    assert objects["nested/b.bin"].size == 4
    assert all(o.fingerprint not in ("", "None") for o in objects.values())
    time.sleep(0.05)  # past the filesystem's timestamp granularity
    with storage_location.open("a.jpg", "wb") as handle:
        handle.write(b"AAA")  # same size, other bytes: only the fingerprint can tell
    assert {o.key: o for o in storage_location.list_objects()}["a.jpg"].fingerprint != objects["a.jpg"].fingerprint

"""Pack files (repository format 4): small objects packed on S3 (moto), and the same code forced on a local
repository. What a user checks: bytes read back equal bytes stored, few files for many objects, a damaged or
forged pack or index is noticed and healed, prune frees space and keeps what snapshots need."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import posixpath
from datetime import datetime, timedelta, timezone

import pytest
from harness import s3_repository, save_snapshot

from directus_ops import packs, retention, verify
from directus_ops.errors import IntegrityError
from directus_ops.manifest import Entry
from directus_ops.repository import PACKED_FORMAT, SMALL_OBJECT, Repository, RepositoryLocation

START = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


@pytest.fixture(params=["s3", "local"])
def location(request, tmp_path, monkeypatch) -> RepositoryLocation:
    monkeypatch.setenv("DIRECTUS_OPS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("DIRECTUS_OPS_PASSPHRASE", "pack test passphrase")
    if request.param == "local":
        return RepositoryLocation(url=str(tmp_path / "repo"))
    return s3_repository(request.getfixturevalue("s3"), monkeypatch)


def open_packing(location: RepositoryLocation) -> Repository:
    repo = Repository.open(location, create=True)
    repo.packs_small_objects = True  # S3's default; forced on the local repository to run the same code
    return repo


def contents(count: int, seed: int = 0) -> list[bytes]:
    """Small files, half random, half text (both codec paths), each distinct."""
    out = []
    for index in range(count):
        size = 2_000 + (index * 7919 + seed) % 60_000
        if index % 2:
            out.append(os.urandom(size))
        else:
            out.append((f"line {seed}-{index} of a text file\n".encode() * (size // 20 + 1))[:size])
    return out


def store(repo: Repository, blobs: list[bytes], encrypt: bool = False) -> list[Entry]:
    entries = []
    prefix = os.urandom(3).hex()  # keys unique across calls: one snapshot may hold several calls' entries
    with repo.packing():
        for index, blob in enumerate(blobs):
            put = repo.put(io.BytesIO(blob), encrypt=encrypt)
            entries.append(Entry(location="local", key=f"{prefix}/f{index}", size=put.size, sha256=put.sha256,
                                 stored_size=put.stored_size, compressed=put.compressed, encrypted=put.encrypted))
    repo.flush()
    return entries


def read_back(repo: Repository, entry: Entry) -> bytes:
    out = io.BytesIO()
    repo.copy_object_to(entry, out)
    return out.getvalue()


def files_under(repo: Repository, folder: str) -> list[str]:
    root = repo._path(folder)
    return sorted(repo.fs.find(root)) if repo.fs.exists(root) else []


def test_small_objects_go_into_few_packs_and_read_back_exactly(location):
    repo = open_packing(location)
    blobs = contents(400)
    large = os.urandom(SMALL_OBJECT + 1000)  # streamed: a loose object as before
    entries = store(repo, blobs + [blobs[3], large], encrypt=False)
    assert entries[400].sha256 == entries[3].sha256 and entries[400].stored_size == entries[3].stored_size
    pack_files, index_files = files_under(repo, "packs"), files_under(repo, "index")
    assert 1 <= len(pack_files) == len(index_files) <= 2  # 400 objects, about 12 MB: one or two packs
    assert [posixpath.basename(p) for p in files_under(repo, "objects")] == [entries[-1].object_name]
    assert sum(repo.fs.size(p) for p in pack_files) == sum(e.stored_size for e in entries[:400])
    for pack in pack_files:  # a pack is named by its bytes' sha256
        assert posixpath.basename(pack) == hashlib.sha256(repo.fs.cat_file(pack)).hexdigest()

    fresh = Repository.open(location)  # another process: finds them through the index
    assert fresh.format == PACKED_FORMAT
    known = fresh.known_objects()
    for entry, blob in zip(entries, blobs + [blobs[3], large]):
        assert known[entry.object_name] == entry.stored_size
        assert read_back(fresh, entry) == blob
    # Stored again: found, nothing written.
    again = open_packing(location)
    with again.packing():
        put = again.put(io.BytesIO(blobs[10]))
    assert put.written == 0 and put.stored_size == entries[10].stored_size and put.compressed == entries[10].compressed
    assert files_under(again, "packs") == pack_files


def test_encrypted_objects_are_packed_encrypted(location):
    repo = open_packing(location)
    blobs = contents(30, seed=5)
    entries = store(repo, blobs, encrypt=True)
    assert all(e.object_name.endswith(".enc") for e in entries)
    pack = b"".join(repo.fs.cat_file(p) for p in files_under(repo, "packs"))
    assert blobs[0][:40] not in pack  # text content is not readable in the pack
    fresh = Repository.open(location)
    assert [read_back(fresh, e) for e in entries] == blobs


def test_a_forged_index_is_not_trusted_and_its_objects_are_stored_again(location, caplog):
    repo = open_packing(location)
    blobs = contents(50, seed=9)
    entries = store(repo, blobs)
    snapshot = save_snapshot(repo, START, entries)
    [index_path] = files_under(repo, "index")
    sealed = repo.fs.cat_file(index_path)
    body = json.loads(sealed.split(b"\n", 1)[1])
    body["objects"][0][2] += 1  # an entry's length changed, the MAC line kept
    repo.fs.pipe_file(index_path, sealed.split(b"\n", 1)[0] + b"\n" + json.dumps(body).encode())
    for cached in (location_cache := list((packs.cache_root() / "pack-index").glob("*/*"))):
        cached.unlink()  # the machine's copy too: this is another machine reading the repository
    assert location_cache

    caplog.set_level(logging.WARNING)
    fresh = Repository.open(location)
    assert not any(e.object_name in fresh.known_objects() for e in entries)
    assert "its MAC does not match" in caplog.text
    report = verify.check(fresh, snapshot)
    assert {p.key for p in report.problems} == {e.key for e in entries}  # every packed object counts missing
    with pytest.raises(IntegrityError, match="missing"):
        read_back(fresh, entries[0])

    healed = open_packing(location)  # the next backup stores them again, in a new pack
    store(healed, blobs)
    final = Repository.open(location)
    assert [read_back(final, e) for e in entries] == blobs
    assert not verify.check(final, snapshot).problems


def test_a_damaged_pack_is_found_by_verify_and_healed_by_the_next_backup(location):
    repo = open_packing(location)
    blobs = contents(20, seed=3)
    entries = store(repo, blobs)
    snapshot = save_snapshot(repo, START, entries)
    [pack_path] = files_under(repo, "packs")
    data = bytearray(repo.fs.cat_file(pack_path))
    victim = entries[7]
    place = Repository.open(location).pack_index()[victim.object_name]
    data[place.offset + place.length // 2] ^= 0xFF
    repo.fs.pipe_file(pack_path, bytes(data))

    fresh = Repository.open(location)
    with pytest.raises(IntegrityError):
        read_back(fresh, victim)
    report = verify.check(fresh, snapshot, read_data_percent=100)
    assert [p.key for p in report.problems] == [victim.key] and report.noted_for_repair == 1
    assert read_back(fresh, entries[6]) == blobs[6]  # its neighbours are intact

    healing = open_packing(location)
    assert victim.object_name in healing.repairs()
    store(healing, [blobs[7]])  # the backup meets the content again: written loose, which wins
    assert victim.object_name in {posixpath.basename(p) for p in files_under(healing, "objects")}
    final = Repository.open(location)
    assert not final.repairs()
    assert not verify.check(final, snapshot, read_data_percent=100).problems
    assert read_back(final, victim) == blobs[7]


def test_prune_deletes_unreferenced_packs_and_rewrites_mostly_unreferenced_ones(location):
    repo = open_packing(location)
    old_blobs, new_blobs = contents(40, seed=1), contents(40, seed=2)
    old_entries = store(repo, old_blobs)  # pack A
    new_entries = store(repo, new_blobs)  # pack B
    mixed_blobs = contents(10, seed=4)
    mixed_entries = store(repo, mixed_blobs)  # pack C: 10 objects
    assert len(files_under(repo, "packs")) == 3
    old = save_snapshot(repo, START, old_entries + mixed_entries[:2])  # 2 of C's 10 still used after the forget
    new = save_snapshot(repo, START + timedelta(days=1), new_entries + mixed_entries[:2])
    orphan = repo._path("packs", "ab", "ab" * 32)  # what a backup killed between a pack and its index leaves
    repo.fs.pipe_file(orphan, b"a pack nobody indexed")

    dry = retention.prune(Repository.open(location), dry_run=True)
    assert (dry.packs_deleted, dry.packs_repacked, dry.objects_deleted) == (2, 1, 8)  # the orphan, C
    assert repo.fs.exists(orphan) and len(files_under(repo, "packs")) == 4  # a dry run changes nothing
    retention.forget(repo, [old])
    before = {p: repo.fs.size(p) for p in files_under(repo, "packs")}
    result = retention.prune(Repository.open(location))
    after = files_under(repo, "packs")
    assert result.packs_deleted == 3 and result.packs_repacked == 1  # A gone, C rewritten, the orphan gone
    assert result.objects_deleted == 40 + 8
    assert not repo.fs.exists(orphan) and len(after) == 2 and len(files_under(repo, "index")) == 2
    assert result.bytes_freed == sum(before.values()) - sum(repo.fs.size(p) for p in after)

    fresh = Repository.open(location)
    assert [read_back(fresh, e) for e in new_entries] == new_blobs
    assert [read_back(fresh, e) for e in mixed_entries[:2]] == mixed_blobs[:2]
    assert not any(e.object_name in fresh.known_objects() for e in old_entries + mixed_entries[2:])
    assert not verify.check(fresh, new, read_data_percent=100).problems
    assert fresh.snapshot_ids() == [new]


def test_a_pack_cut_short_or_missing_counts_its_objects_missing(location, caplog):
    repo = open_packing(location)
    entries = store(repo, contents(8, seed=6))
    snapshot = save_snapshot(repo, START, entries)
    [pack_path] = files_under(repo, "packs")
    repo.fs.pipe_file(pack_path, repo.fs.cat_file(pack_path)[:100])
    caplog.set_level(logging.WARNING)
    report = verify.check(Repository.open(location), snapshot)
    assert len(report.problems) == 8 and all("missing" in p.problem for p in report.problems)
    assert "too short" in caplog.text
    repo.fs.rm(pack_path)
    assert len(verify.check(Repository.open(location), snapshot).problems) == 8


def test_a_new_repository_is_format_3_until_it_packs(tmp_path, monkeypatch):
    monkeypatch.setenv("DIRECTUS_OPS_PASSPHRASE", "pack test passphrase")
    monkeypatch.setenv("DIRECTUS_OPS_CACHE", str(tmp_path / "cache"))
    location = RepositoryLocation(url=str(tmp_path / "repo"))
    repo = Repository.open(location, create=True)
    store(repo, contents(3))  # local: loose objects, format unchanged
    assert json.loads((tmp_path / "repo" / "config.json").read_bytes())["format"] == 3
    store(open_packing(location), contents(3, seed=8))
    assert json.loads((tmp_path / "repo" / "config.json").read_bytes())["format"] == PACKED_FORMAT
    (tmp_path / "repo" / "config.json").write_text(json.dumps({"format": PACKED_FORMAT + 1}))
    with pytest.raises(Exception, match="newer than this directus-ops reads"):
        Repository.open(location)

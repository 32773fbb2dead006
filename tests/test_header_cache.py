"""The header cache (directus_ops/header_cache.py): a listing answers from it only what the repository's
manifests said, sealed so that it reveals nothing and cannot be edited into saying something else."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
from harness import CLI, small_project

from directus_ops.header_cache import HeaderCache, cache_dir
from directus_ops.manifest import ManifestHeader
from directus_ops.repository import Repository, RepositoryLocation


@pytest.fixture
def repository(tmp_path, databases, cli_env_no_server, monkeypatch) -> tuple[Path, list[str]]:
    """A local repository with two snapshots of an --encrypt'ed project, and this test's own cache folder."""
    monkeypatch.setenv("DIRECTUS_OPS_CACHE", str(tmp_path / "cache"))
    project, _ = small_project(tmp_path, databases.create("sqlite"))
    repo = tmp_path / "repo"
    ids = []
    for _ in range(2):
        done = subprocess.run([*CLI, "backup", str(project), "--repo", str(repo), "--encrypt"],
                              env={**cli_env_no_server, "DIRECTUS_OPS_CACHE": str(tmp_path / "cache")},
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.strip())
    return repo, ids


def _cache_files() -> list[Path]:
    return sorted(cache_dir().glob("*.json")) if cache_dir().is_dir() else []


def test_a_listing_is_kept_sealed_and_answers_as_the_manifests_do(repository):
    repo, ids = repository
    for path in _cache_files():
        path.unlink()  # what the backups' own listings kept: this test makes its own
    first = Repository.open(RepositoryLocation(url=str(repo))).headers()
    assert [h.id for h in first] == ids
    [cached] = _cache_files()
    assert stat.S_IMODE(cached.stat().st_mode) == 0o600
    raw = cached.read_bytes()
    for header in first:  # nothing of an encrypted repository's snapshots is readable in the cache
        assert header.project.name.encode() not in raw
    again = Repository.open(RepositoryLocation(url=str(repo))).headers()
    assert [h.model_dump() for h in again] == [h.model_dump() for h in first]


def test_an_edited_or_foreign_cache_entry_is_ignored_and_the_manifest_read_again(repository):
    repo, ids = repository
    Repository.open(RepositoryLocation(url=str(repo))).headers()
    [cached] = _cache_files()
    entries = json.loads(cached.read_text())
    genuine = Repository.open(RepositoryLocation(url=str(repo))).headers()
    # Swap the two entries' sealed headers: each now claims to be the other snapshot's.
    names = sorted(entries)
    entries[names[0]][1], entries[names[1]][1] = entries[names[1]][1], entries[names[0]][1]
    cached.write_text(json.dumps(entries))
    assert [h.model_dump() for h in Repository.open(RepositoryLocation(url=str(repo))).headers()] == \
        [h.model_dump() for h in genuine]
    # An entry sealed under another key (another repository's, or a guess) does not open either.
    other = HeaderCache(os.urandom(32), str(repo))
    forged = genuine[0].model_copy(update={"time": datetime(1999, 1, 1, tzinfo=timezone.utc)}).model_dump_json().encode()
    version = entries[names[0]][0]
    other.put(names[0], version, forged)
    entries[names[0]][1] = other._entries[names[0]][1]
    cached.write_text(json.dumps(entries))
    assert [h.time for h in Repository.open(RepositoryLocation(url=str(repo))).headers()] == [h.time for h in genuine]


def test_a_changed_or_forgotten_manifest_is_not_answered_from_the_cache(repository):
    repo, ids = repository
    Repository.open(RepositoryLocation(url=str(repo))).headers()
    manifest = next((repo / "snapshots").glob(f"{ids[0]}*"))
    data = bytearray(manifest.read_bytes())
    data[-2] ^= 1  # one bit of the body: the MAC no longer matches, and the file's version changed
    manifest.write_bytes(bytes(data))
    rejected = []
    listed = Repository.open(RepositoryLocation(url=str(repo))).headers(on_rejected=lambda i, e: rejected.append(i))
    assert [h.id for h in listed] == ids[1:] and rejected == [ids[0]]
    manifest.unlink()
    assert [h.id for h in Repository.open(RepositoryLocation(url=str(repo))).headers()] == ids[1:]
    assert len(json.loads(_cache_files()[0].read_text())) == 1  # the forgotten snapshot's entry is gone


def test_a_backup_puts_only_its_header_into_the_cache(repository):
    """The header of the snapshot just written, not its entry lists: the cache is read by every later run."""
    repo, ids = repository
    repository_ = Repository.open(RepositoryLocation(url=str(repo)))
    name, version = repository_.manifest_listing()[ids[-1]]
    cached = repository_._header_cache().get(name, version)
    assert cached is not None
    assert set(json.loads(cached)) == set(ManifestHeader.model_fields)
    assert ManifestHeader.model_validate_json(cached) == repository_.load_header(ids[-1])

"""Retention (forget) on a synthetic calendar in a real repository, prune, and the repository lock."""

from __future__ import annotations

import io
import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone

import pytest
from harness import CLI, save_snapshot

from directus_ops import locks, retention
from directus_ops.errors import ConfigError, RepositoryLocked
from directus_ops.manifest import Entry
from directus_ops.repository import Repository, RepositoryLocation

START = datetime(2026, 3, 1, 1, 0, tzinfo=timezone.utc)


def put(repo: Repository, data: bytes, key: str) -> Entry:
    result = repo.put(io.BytesIO(data))
    return Entry(location="local", key=key, size=result.size, sha256=result.sha256, stored_size=result.stored_size,
                 compressed=result.compressed)


def oracle(times: dict[str, datetime], policy: retention.Policy) -> set[str]:
    """What the policy keeps, computed another way: per rule, the newest snapshot of each bucket, newest N buckets."""
    keep = {max(times, key=lambda i: (times[i], i))}
    for _, count, bucket in policy.rules():
        newest_per_bucket: dict[object, str] = {}
        for snapshot_id, when in times.items():
            key = bucket(when)
            if key not in newest_per_bucket or (when, snapshot_id) > (times[newest_per_bucket[key]], newest_per_bucket[key]):
                newest_per_bucket[key] = snapshot_id
        ranked = sorted(newest_per_bucket.values(), key=lambda i: (times[i], i), reverse=True)
        keep.update(ranked[:count])
    return keep


def test_a_calendar_of_snapshots_keeps_exactly_what_the_policy_says(tmp_path):
    repo = Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True)
    shared = put(repo, b"shared bytes", "logo.png")
    times = {}
    when = START
    while when < START + timedelta(days=120):  # every 7 hours for four months: crosses days, weeks, months
        times[save_snapshot(repo, when, [shared])] = when
        when += timedelta(hours=7)
    policy = retention.Policy(keep_last=3, keep_daily=7, keep_weekly=5, keep_monthly=4)
    decision = retention.decide(repo.manifests(), policy)
    assert set(decision.keep) == oracle(times, policy)
    assert set(decision.forget) == set(times) - set(decision.keep)
    newest = max(times, key=times.get)
    assert "last" in decision.keep[newest] and "daily" in decision.keep[newest]
    # By hand, for the last rule: exactly the three newest.
    three_newest = sorted(times, key=times.get)[-3:]
    assert {i for i, r in decision.keep.items() if "last" in r} == set(three_newest)
    # Monthly: the newest of each of the last four months (June, May, April, March 2026).
    monthly = {i for i, r in decision.keep.items() if "monthly" in r}
    assert sorted((times[i].year, times[i].month) for i in monthly) == [(2026, 3), (2026, 4), (2026, 5), (2026, 6)]
    for snapshot_id in monthly:
        month = (times[snapshot_id].year, times[snapshot_id].month)
        assert times[snapshot_id] == max(t for t in times.values() if (t.year, t.month) == month)


def test_forget_never_removes_the_newest_and_keeps_projects_apart(tmp_path):
    repo = Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True)
    a = [save_snapshot(repo, START + timedelta(days=d), [], project="a") for d in range(5)]
    b = [save_snapshot(repo, START + timedelta(days=d, hours=1), [], project="b") for d in range(3)]
    decision = retention.decide(repo.manifests(), retention.Policy(keep_last=1))
    assert set(decision.keep) == {a[-1], b[-1]}
    with pytest.raises(ConfigError, match="no retention rule given"):
        retention.Policy()
    with pytest.raises(ConfigError, match="--keep-daily -1"):
        retention.Policy(keep_daily=-1)


def test_prune_frees_forgotten_unique_data_and_keeps_shared(tmp_path):
    repo = Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True)
    shared = put(repo, os.urandom(50_000), "shared.bin")
    old_unique = put(repo, os.urandom(300_000), "old.bin")
    new_unique = put(repo, os.urandom(70_000), "new.bin")
    old = save_snapshot(repo, START, [shared, old_unique])
    new = save_snapshot(repo, START + timedelta(days=1), [shared, new_unique])
    leftover = tmp_path / "repo" / "tmp" / "interrupted-upload"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_bytes(b"half an object")

    dry = retention.prune(repo, dry_run=True)
    assert dry.objects_deleted == 0 and leftover.exists()  # nothing referenced is unreferenced yet
    retention.forget(repo, [old])
    result = retention.prune(repo)
    assert result.objects_deleted == 1 and result.bytes_freed == old_unique.stored_size
    assert result.leftovers_deleted == 1 and not leftover.exists()
    remaining = Repository.open(RepositoryLocation(str(tmp_path / "repo"))).known_objects()
    assert set(remaining) == {shared.sha256, new_unique.sha256}
    assert repo.snapshot_ids() == [new]


def test_prune_waits_for_no_backup_and_ignores_stale_locks(tmp_path, cli_env):
    location = RepositoryLocation(str(tmp_path / "repo"))
    repo = Repository.open(location, create=True)
    save_snapshot(repo, START, [put(repo, b"x" * 1000, "x")])
    with locks.hold(repo, "backup", exclusive=False):
        with pytest.raises(RepositoryLocked, match="locked: a backup lock by pid"):
            retention.prune(repo)
        done = subprocess.run([*CLI, "forget", "--repo", str(tmp_path / "repo"), "--keep-last", "1", "--prune"],
                              env=cli_env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 13 and "is locked" in done.stderr, done.stderr
        # Backups share the lock: a second one is not held up.
        with locks.hold(repo, "backup", exclusive=False):
            pass
    # A lock left by a killed process on this host is stale at once; one not refreshed for 30 minutes too.
    finished = subprocess.Popen(["true"])
    finished.wait()
    dead = finished.pid
    lock_dir = tmp_path / "repo" / "locks"
    (lock_dir / "dead.json").write_text(json.dumps({"kind": "backup", "exclusive": False, "host": os.uname().nodename,
                                                    "pid": dead, "created": time.time(), "refreshed": time.time()}))
    (lock_dir / "old.json").write_text(json.dumps({"kind": "backup", "exclusive": False, "host": "elsewhere",
                                                   "pid": 1, "created": time.time() - 7200, "refreshed": time.time() - 3600}))
    result = retention.prune(repo)
    assert result.stale_locks_removed == 2 and list(lock_dir.iterdir()) == []


def test_forget_cli_dry_run_changes_nothing(tmp_path, cli_env):
    repo = Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True)
    ids = [save_snapshot(repo, START + timedelta(days=d), [put(repo, os.urandom(100), f"{d}")]) for d in range(4)]
    args = [*CLI, "forget", "--repo", str(tmp_path / "repo"), "--keep-last", "2", "--prune"]
    done = subprocess.run([*args, "--dry-run"], env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"would forget  {ids[0]}" in done.stdout and "prune: would delete 0 objects" in done.stdout
    assert repo.snapshot_ids() == ids
    done = subprocess.run(args, env=cli_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert repo.snapshot_ids() == ids[2:] and "prune: deleted 2 objects" in done.stdout

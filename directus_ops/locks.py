"""Repository locks: a backup holds a shared lock, prune an exclusive one, so prune never deletes objects a
running backup is about to reference. Each lock is a file in ``locks/``, refreshed while held.

Both sides write their lock first and look for the other's after, so of two that start together at least
one sees the other. A lock is stale (ignored, and removed by ``unlock``/prune) when it was not refreshed for
``STALE_AFTER`` seconds, or when it was taken on this host by a process that no longer runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import posixpath
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from . import faults
from .process import process_runs
from .errors import RepositoryLocked
from .repository import Repository, config_reused

log = logging.getLogger("directus_ops.locks")

REFRESH_EVERY = 60.0
STALE_AFTER = 30 * 60.0


@dataclass(frozen=True)
class LockInfo:
    path: str
    kind: str
    exclusive: bool
    host: str
    pid: int
    created: float
    refreshed: float

    def stale(self, now: float | None = None) -> bool:
        now = time.time() if now is None else now
        if now - self.refreshed > STALE_AFTER:
            return True
        return self.host == socket.gethostname() and not process_runs(self.pid)

    def describe(self) -> str:
        age = int(time.time() - self.created)
        return f"{'an exclusive' if self.exclusive else 'a'} {self.kind} lock by pid {self.pid} on {self.host}, {age} s old"


def list_locks(repo: Repository) -> list[LockInfo]:
    root = posixpath.join(repo.base, "locks")
    try:
        listed = repo.fs.find(root)
    except FileNotFoundError:
        return []
    found = []
    for path in listed:
        try:
            data = json.loads(repo.fs.cat_file(path))
            found.append(LockInfo(path=path, kind=data["kind"], exclusive=data["exclusive"], host=data["host"],
                                  pid=int(data["pid"]), created=float(data["created"]), refreshed=float(data["refreshed"])))
        except (FileNotFoundError, ValueError, KeyError):
            continue  # removed meanwhile, or half-written by a killed run: not a lock
    return found


def remove_stale(repo: Repository) -> int:
    removed = 0
    for lock in list_locks(repo):
        if lock.stale():
            with contextlib.suppress(FileNotFoundError):
                repo.fs.rm(lock.path)
            removed += 1
    return removed


@contextlib.contextmanager
def hold(repo: Repository, kind: str, exclusive: bool, wait: float = 0.0) -> Iterator[None]:
    """Hold a lock for the block; a conflicting live lock makes this wait up to ``wait`` seconds, then fail."""
    path = posixpath.join(repo.base, "locks", f"{uuid.uuid4().hex}.json")
    deadline = time.monotonic() + wait
    while True:
        _write(repo, path, kind, exclusive, created=time.time())
        conflicts = [l for l in list_locks(repo) if l.path != path and not l.stale() and (exclusive or l.exclusive)]
        if not conflicts:
            break
        with contextlib.suppress(FileNotFoundError):
            repo.fs.rm(path)
        if time.monotonic() >= deadline:
            raise RepositoryLocked(f"the repository {repo.location.url} is locked: {conflicts[0].describe()}; wait for it "
                                   "to finish (a lock of a killed run goes stale after 30 minutes, or at once on its host)")
        time.sleep(min(5.0, max(0.1, deadline - time.monotonic())))
    stop = threading.Event()
    created = time.time()

    def refresh() -> None:
        while not stop.wait(REFRESH_EVERY):
            with contextlib.suppress(Exception):  # a missed refresh only brings staleness closer
                _write(repo, path, kind, exclusive, created=created)

    refresher = threading.Thread(target=refresh, name="lock-refresh", daemon=True)
    refresher.start()
    faults.checkpoint("lock-taken")
    try:
        with config_reused(repo):
            yield
    finally:
        stop.set()
        refresher.join(timeout=5)
        with contextlib.suppress(Exception):
            repo.fs.rm(path)


def _write(repo: Repository, path: str, kind: str, exclusive: bool, created: float) -> None:
    document = {"kind": kind, "exclusive": exclusive, "host": socket.gethostname(), "pid": os.getpid(),
                "created": created, "refreshed": time.time()}
    # Not fsynced: a lock only has to be visible to other runs, and a crash ends the run that held it.
    repo.write_file(path, json.dumps(document).encode(), sync=False)

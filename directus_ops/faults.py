"""Crash points for the tests of what a killed run leaves behind.

With ``DIRECTUS_OPS_TEST_KILL_AT=<point>:<n>`` the process sends itself SIGKILL (the real signal: no
cleanup, no ``finally``) when ``checkpoint(point)`` has been reached ``n`` times (or, for byte points, when
``n`` bytes have passed). Unset, a checkpoint costs one dictionary lookup.

Points: ``lock-taken``, ``repo-bytes`` (bytes written to repository files), ``upload-tmp`` (a large object
uploaded to tmp/, not yet moved), ``object-stored``, ``pack-stored`` (a pack file written, its index not yet), ``pack-indexed`` (its index written too), ``file-tmp`` (a manifest/lock/key written to its
temporary name, not yet renamed), ``before-manifest``, ``v8-items-batch`` (a batch of v8 items committed),
``v8-file-copied`` (a v8 file's bytes copied), ``v8-table-created`` (a v8 collection's table created, its
schema step not committed), ``v8-roles-written`` (Directus 11: roles written, their
policies not yet), ``dump-bytes`` (bytes of a database dump read from its tool, which runs meanwhile),
``restore-planned`` (the restore flow's checks passed), ``database-fetched`` (the dump decoded into the work
directory), ``database-loading`` (the database client loading the dump is running), ``object-restored`` (a
storage object written to the target), ``config-written`` (the snapshot's config written into the target).
"""

from __future__ import annotations

import os
import signal
import threading

ENV = "DIRECTUS_OPS_TEST_KILL_AT"

_lock = threading.Lock()


def reload() -> None:
    """Read the kill point from the environment (again: a warm runner's child gets its command's environment)."""
    global _point, _threshold, _count
    point, _, limit = os.environ.get(ENV, "").partition(":")
    _point, _threshold, _count = point, int(limit) if limit.isdigit() else 1, 0


_point, _threshold, _count = "", 1, 0
reload()


def checkpoint(point: str, amount: int = 1) -> None:
    global _count
    if point != _point:
        return
    with _lock:
        _count += amount
        if _count >= _threshold:
            os.kill(os.getpid(), signal.SIGKILL)

"""What a snapshot is, and the few pieces its backup (``snapshot_backup``) and restore (``snapshot_restore``) share.

A snapshot is one manifest (``manifest.Manifest``) in a repository (``repository``; its files and bytes are
specified in ``docs/repository-format.md``). The manifest names each file of the snapshot by location and key,
with its size and sha256, under which the repository stores its content once:

- ``artifacts``, the project's own files, each under a pseudo-location:
  - ``@database``: one dump of the database, key ``database.pgdump`` (``pg_dump-custom``), ``database.sql``
    (``mysql-sql``) or ``database.sqlite`` (``sqlite-file``, a copy by SQLite's online backup API); of all its
    tables, or only of the ``directus_*`` ones or only of the others (``DatabaseInfo.scope``: ``delete``'s
    backups; the foreign keys that leave such a dump are recorded, and a restore leaves them out). None in a
    snapshot taken without its database (``--backup-database none``): a restore leaves the database alone;
  - ``@config``: the Directus config file under its own name, encrypted always (it holds the project's
    secrets); a restore into a new project directory writes it there;
  - ``@project``: ``package.json`` and ``package-lock.json``;
  - ``@extensions`` and ``@migrations``: every file of those folders, keyed by its path in the folder (Directus
    9's migrations folder, inside the extensions folder, is stored once, as extensions).
- ``objects``: every object of every storage location, keyed by its path under the location's root (for
  Directus files, ``filename_disk``), so a location can be restored under another root or bucket; a symbolic
  link is stored as a link (its content is the link's target). An object whose size and mtime (S3: ETag)
  equal the project's previous snapshot's reuses that entry unread.
- ``project``, ``database`` and ``storage``: the facts a restore checks against (the migrations applied, the
  engine, dump tool and each table's row count, the locations by name) and ``stats``.

A backup stores each part as its own step (the database, each storage location, the project files), each
streaming bytes between its source and the repository and writing its entries (``<part>.entries.json``, and
``<part>.info.json``) into a staging directory, so flows pass paths, not data; the manifest is written last,
once every object it names is stored and flushed: a snapshot exists only once its manifest does. A restore
checks everything before it changes anything (``plan_restore``), then writes each part, every object checked
against its size and sha256 before it takes its place.
"""

from __future__ import annotations

import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from . import workdir

DEFAULT_WORKERS = 8


def run_parallel(function: Any, items: list[Any], workers: int) -> None:
    """Apply ``function`` to items on a bounded pool; the first failure stops the rest and is raised.

    Each worker takes the next item from a shared iterator (one future per worker, not per item: 10,000
    futures and contexts cost more than the small files they copy)."""
    if not items:
        return
    if workers <= 1 or len(items) == 1:
        for item in items:
            function(item)
        return
    pending = iter(items)
    stop = threading.Event()

    def work() -> None:
        for item in pending:  # next() on a shared list iterator is atomic
            if stop.is_set():
                return
            try:
                function(item)
            except BaseException:
                stop.set()
                raise

    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="copy") as pool:
        # Each worker runs in a copy of the caller's context, so its logs belong to the caller's run.
        futures = [pool.submit(contextvars.copy_context().run, work) for _ in range(min(workers, len(items)))]
        try:
            for future in futures:
                future.result()
        except BaseException:
            stop.set()
            raise


def make_staging_dir() -> Path:
    """A fresh directory for one flow's working files, inside the run's private (0700) work directory, which
    the next run removes if this one is killed (workdir)."""
    return workdir.make_dir("staging-")

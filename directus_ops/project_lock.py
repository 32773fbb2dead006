"""One mutating procedure per project at a time (backup, restore, upgrade, downgrade, move, delete): the plain lock.

A file lock (``flock``) keyed by the project's resolved directory, under the state directory
(``DIRECTUS_OPS_STATE_DIR``, default ``$XDG_STATE_HOME/directus-ops`` or ``~/.local/state/directus-ops``).
It needs no server. The file records who holds it (procedure, pid, host, start time) for the busy message.
Stale rule: the kernel drops an flock when its process ends, however it ends, so a holder whose pid is dead
never blocks; the recorded pid is only information.

A procedure that calls another on the same project (upgrade runs backup as a subflow) does not wait for
itself: a held key is re-entered within the same run's context.

Flows take it through ``flows/exclusive.py``, which adds a second layer where runs on other hosts share a
Prefect server: its global concurrency limit per project (``limit_name``).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import hashlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from .errors import ProjectBusy
from .workdir import state_dir

log = logging.getLogger("directus_ops.project_lock")

WAIT_PARAMETER = "project_wait_seconds"
DEFAULT_WAIT = 1800.0  # a nightly backup waits out an upgrade in progress rather than failing
WAIT_ENV = "DIRECTUS_OPS_PROJECT_WAIT"  # the wait of runs that do not pass project_wait_seconds (the CLI's)
POLL_SECONDS = 0.5
_WAIT_TITLE = "Wait for the project (s)"
_WAIT_DESCRIPTION = ("How long this run waits for another procedure on the same project to end before failing "
                     f"(0: fail at once; empty: {WAIT_ENV} on the worker, else {DEFAULT_WAIT:g}).")
# The parameter's type (see flows/parameters.py: json_schema_extra is what the Prefect form shows).
WaitSeconds = Annotated[float | None, Field(ge=0, le=7 * 86_400, title=_WAIT_TITLE, description=_WAIT_DESCRIPTION,
                                            json_schema_extra={"title": _WAIT_TITLE, "description": _WAIT_DESCRIPTION})]

_held: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar("directus_ops_project_locks", default=frozenset())


def project_key(project_dir: str | os.PathLike[str]) -> str:
    return str(Path(project_dir).expanduser().resolve())


def limit_name(key: str) -> str:
    """The Prefect global concurrency limit of a project: readable, and unique per resolved directory."""
    name = re.sub(r"[^a-z0-9-]+", "-", Path(key).name.lower()).strip("-")[:40] or "root"
    return f"directus-project-{name}-{hashlib.sha256(key.encode()).hexdigest()[:8]}"


def lock_path(key: str) -> Path:
    return state_dir() / "project-locks" / (limit_name(key).removeprefix("directus-project-") + ".lock")


def holder(key: str) -> dict[str, Any] | None:
    """What the lock file of a project says about its holder (None if there is none or it is unreadable)."""
    try:
        return json.loads(lock_path(key).read_text() or "null")
    except (OSError, ValueError):
        return None


def _describe(info: dict[str, Any] | None) -> str:
    if not info:
        return "another procedure"
    since = datetime.fromtimestamp(float(info.get("started", 0)), timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"{info.get('procedure', 'a procedure')} (pid {info.get('pid')} on {info.get('host')}, since {since})"


def busy(key: str, by: str, wait: float) -> ProjectBusy:
    waited = f"(waited {wait:g} s)" if wait > 0 else "(no wait asked)"
    return ProjectBusy(f"project {key} is busy: {by} is running {waited}; let it finish, or wait longer "
                       f"({WAIT_PARAMETER}, or {WAIT_ENV}=SECONDS for the CLI)")


@contextlib.contextmanager
def _file_lock(key: str, procedure: str, wait: float) -> Iterator[None]:
    path = lock_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by subprocesses (PEP 446)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise busy(key, _describe(holder(key)), wait) from None
                time.sleep(min(POLL_SECONDS, max(0.01, deadline - time.monotonic())))
        record = {"procedure": procedure, "pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # an empty file is a free lock; the file stays (removing it would race a waiter)
    finally:
        os.close(fd)  # releases the flock


@contextlib.contextmanager
def hold(project_dirs: str | os.PathLike[str] | list[Any], procedure: str, wait: float = DEFAULT_WAIT,
         also_hold: Callable[[str, float], AbstractContextManager[None]] | None = None) -> Iterator[None]:
    """Hold the projects for the block, waiting up to ``wait`` seconds for another procedure to end; raises
    ProjectBusy when it does not. Several projects (a move's source and target) are taken in sorted order.
    ``also_hold(key, seconds left)``, if given, is entered after each project's file lock (the flows: the
    Prefect server's concurrency limit)."""
    dirs = project_dirs if isinstance(project_dirs, list) else [project_dirs]
    keys = sorted({project_key(d) for d in dirs if d} - _held.get())
    if not keys:
        yield
        return
    deadline = time.monotonic() + max(wait, 0.0)
    with contextlib.ExitStack() as stack:
        for key in keys:
            remaining = max(0.0, deadline - time.monotonic()) if wait > 0 else 0.0
            stack.enter_context(_file_lock(key, procedure, remaining))
            if also_hold is not None:
                remaining = max(0.0, deadline - time.monotonic()) if wait > 0 else 0.0
                stack.enter_context(also_hold(key, remaining))
            log.info("project %s held for %s", key, procedure)
        token = _held.set(_held.get() | set(keys))
        try:
            yield
        finally:
            _held.reset(token)

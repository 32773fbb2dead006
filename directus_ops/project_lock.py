"""One mutating procedure per project at a time (backup, restore, upgrade, downgrade, move, delete).

Two layers, taken in this order:

- a file lock (``flock``) keyed by the project's resolved directory, under the state directory
  (``DIRECTUS_OPS_STATE_DIR``, default ``$XDG_STATE_HOME/directus-ops`` or ``~/.local/state/directus-ops``).
  It needs no server. The file records who holds it (procedure, pid, host, start time) for the busy message.
  Stale rule: the kernel drops an flock when its process ends, however it ends, so a holder whose pid is dead
  never blocks; the recorded pid is only information.
- when a Prefect API is configured (not the local server of ad-hoc runs: that is this host's alone), a global
  concurrency limit ``directus-project-<name>-<hash>`` (limit 1,
  created on first use), so runs on other hosts (workers of one pool) exclude each other too. A holder killed
  without cleanup frees its slot when its lease expires (``LEASE_SECONDS``).

A procedure that calls another on the same project (upgrade runs backup as a subflow) does not wait for
itself: a held key is re-entered within the same run's context.
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import functools
import hashlib
import inspect
import json
import logging
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import Field

from .errors import ProjectBusy
from .workdir import state_dir

log = logging.getLogger("directus_ops.project_lock")

WAIT_PARAMETER = "project_wait_seconds"
DEFAULT_WAIT = 1800.0  # a nightly backup waits out an upgrade in progress rather than failing
WAIT_ENV = "DIRECTUS_OPS_PROJECT_WAIT"  # the wait of runs that do not pass project_wait_seconds (the CLI's)
LEASE_SECONDS = 60.0  # renewed while held; a holder killed without cleanup frees its slot this long after
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


def _busy(key: str, by: str, wait: float) -> ProjectBusy:
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
                    raise _busy(key, _describe(holder(key)), wait) from None
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


def server_configured() -> bool:
    """A Prefect server other runs may share (workers on other hosts): its concurrency limit is the project's
    lock there too. The local server of ad-hoc runs (``local_server``) is this host's alone: the lock file is
    enough, and spares each run two API calls (0.15 s)."""
    from prefect.settings import PREFECT_API_URL

    from . import local_server

    url = PREFECT_API_URL.value()
    return bool(url) and not local_server.serves(url)


def ensure_limit(name: str, client: Any = None) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with contextlib.nullcontext(client) if client is not None else get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run created it meanwhile
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))


@contextlib.contextmanager
def _server_limit(key: str, wait: float) -> Iterator[None]:
    """The project's slot of its Prefect concurrency limit, under a lease renewed while held: one client, three
    calls (Prefect's ``concurrency()`` manager cost 0.15-0.2 s a run in its lease-maintenance machinery)."""
    import httpx
    from prefect.client.orchestration import get_client

    name = limit_name(key)
    deadline = time.monotonic() + max(wait, 0.0)
    with get_client(sync_client=True) as client:
        ensure_limit(name, client)
        while True:
            try:
                response = client.increment_concurrency_slots_with_lease(
                    names=[name], slots=1, mode="concurrency", lease_duration=LEASE_SECONDS)
                break
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code != 423:  # 423 Locked: the slot is taken
                    raise
                pause = float(exc.response.headers.get("Retry-After") or 1.0)
                if time.monotonic() + min(pause, 1.0) > deadline:
                    raise _busy(key, f"another run holding the Prefect concurrency limit {name}", wait) from None
                time.sleep(max(0.1, min(pause, deadline - time.monotonic())))
        lease_id = response.json()["lease_id"]
        stop = threading.Event()

        def renew() -> None:
            while not stop.wait(LEASE_SECONDS / 3):
                with contextlib.suppress(Exception):  # a missed renewal only brings the lease's end closer
                    client.renew_concurrency_lease(lease_id, LEASE_SECONDS)

        renewer = threading.Thread(target=renew, name="project-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join(timeout=5)
            with contextlib.suppress(Exception):  # not released: the lease ends by itself
                client.release_concurrency_slots_with_lease(lease_id)


@contextlib.contextmanager
def hold(project_dirs: str | os.PathLike[str] | list[Any], procedure: str, wait: float = DEFAULT_WAIT) -> Iterator[None]:
    """Hold the projects for the block, waiting up to ``wait`` seconds for another procedure to end; raises
    ProjectBusy when it does not. Several projects (a move's source and target) are taken in sorted order."""
    dirs = project_dirs if isinstance(project_dirs, list) else [project_dirs]
    keys = sorted({project_key(d) for d in dirs if d} - _held.get())
    if not keys:
        yield
        return
    deadline = time.monotonic() + max(wait, 0.0)
    use_server = server_configured()
    with contextlib.ExitStack() as stack:
        for key in keys:
            remaining = max(0.0, deadline - time.monotonic()) if wait > 0 else 0.0
            stack.enter_context(_file_lock(key, procedure, remaining))
            if use_server:
                remaining = max(0.0, deadline - time.monotonic()) if wait > 0 else 0.0
                stack.enter_context(_server_limit(key, remaining))
            log.info("project %s held for %s", key, procedure)
        token = _held.set(_held.get() | set(keys))
        try:
            yield
        finally:
            _held.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def exclusive(procedure: str, *parameters: str) -> Callable[[F], F]:
    """Decorate a flow function (under ``@flow``) so a run holds its project(s) — named by ``parameters``,
    default ``project_dir`` — for its whole length. Adds the keyword parameter ``project_wait_seconds``
    (0 fails at once; when not passed, ``DIRECTUS_OPS_PROJECT_WAIT`` or ``DEFAULT_WAIT``) to the flow's
    signature, so deployments and the UI show it."""
    names = parameters or ("project_dir",)

    def decorate(fn: F) -> F:
        # Annotations evaluated (the flow modules use `from __future__ import annotations`): Prefect builds the
        # parameter schema from this signature as it is.
        signature = inspect.signature(fn, eval_str=True)
        missing = [n for n in names if n not in signature.parameters]
        if missing:
            raise TypeError(f"{fn.__name__} has no parameter {missing[0]} to lock by")

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            wait = kwargs.pop(WAIT_PARAMETER, None)
            wait = float(os.environ.get(WAIT_ENV, DEFAULT_WAIT) if wait is None else wait)
            bound = signature.bind_partial(*args, **kwargs)
            with hold([bound.arguments.get(n) for n in names], procedure, wait):
                return fn(*args, **kwargs)

        extra = inspect.Parameter(WAIT_PARAMETER, inspect.Parameter.KEYWORD_ONLY, default=None,
                                  annotation=WaitSeconds)
        wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])  # type: ignore[attr-defined]
        wrapper.__annotations__ = {**{n: p.annotation for n, p in signature.parameters.items()
                                      if p.annotation is not inspect.Parameter.empty}, WAIT_PARAMETER: WaitSeconds}
        return wrapper  # type: ignore[return-value]

    return decorate

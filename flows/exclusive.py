"""A flow run holds its project(s) for its whole length (``exclusive``), in two layers taken in this order:

- the plain file lock of ``directus_ops.project_lock`` (per host; re-entered by a subflow on the same project);
- when a Prefect API is configured (not the local server of ad-hoc runs: that is this host's alone), a global
  concurrency limit ``directus-project-<name>-<hash>`` (limit 1, created on first use), so runs on other hosts
  (workers of one pool) exclude each other too. A holder killed without cleanup frees its slot when its lease
  expires (``LEASE_SECONDS``).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from directus_ops import project_lock
from directus_ops.project_lock import DEFAULT_WAIT, WAIT_ENV, WAIT_PARAMETER, WaitSeconds, busy, limit_name

LEASE_SECONDS = 60.0  # renewed while held; a holder killed without cleanup frees its slot this long after


def server_configured() -> bool:
    """A Prefect server other runs may share (workers on other hosts): its concurrency limit is the project's
    lock there too. The local server of ad-hoc runs (``local_server``) is this host's alone: the lock file is
    enough, and spares each run two API calls (0.15 s)."""
    from prefect.settings import PREFECT_API_URL

    from directus_ops import local_server

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
                    raise busy(key, f"another run holding the Prefect concurrency limit {name}", wait) from None
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
    """``project_lock.hold``, and where a server is configured the projects' slots of its concurrency limit."""
    with project_lock.hold(project_dirs, procedure, wait, _server_limit if server_configured() else None):
        yield


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

"""A database reached through its own Compose service's container.

The docs' Compose example gives the database no published port: only the stack's own network reaches it. So the
native tools (``pg_dump``, ``pg_restore``, ``mariadb-dump``, ``mariadb``) run inside the database's container
(``docker exec``), the server's own client: its version always matches the server's. The SQL the procedures
run (SQLAlchemy) goes through a relay: a listener on this host's loopback whose every connection is carried by a
``docker exec -i`` into that container to the server's port there (``nc``, ``socat`` or bash's ``/dev/tcp``,
whichever the image has). Secrets travel in the exec's environment (``-e NAME``: the value comes from this
process's child environment), never in its arguments.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import socket
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from . import process
from .errors import DatabaseUnreachable

log = logging.getLogger("directus_ops.container_database")

_LOOKUP_TIMEOUT = 60
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class DatabaseContainer:
    """The Compose service that runs the database: found by Compose's labels when it is needed (a container
    recreated since is still found)."""

    project: str  # the Compose project name
    service: str
    port: int  # the server's port inside that container

    def describe(self) -> str:
        return f"through the container of Compose service '{self.service}'"

    def container_id(self) -> str:
        from .compose import docker_cli

        out = process.output([docker_cli(), "ps", "-q", "--no-trunc",
                              "--filter", f"label=com.docker.compose.project={self.project}",
                              "--filter", f"label=com.docker.compose.service={self.service}"],
                             timeout=_LOOKUP_TIMEOUT).split()
        if not out:
            raise DatabaseUnreachable(f"the database service '{self.service}' of Compose project {self.project} is not "
                                      f"running; start it (`docker compose up -d {self.service}`) and run this again")
        return out[0]

    def exec_argv(self, *args: str, env: Mapping[str, str] = {}, stdin: bool = False) -> list[str]:
        """``docker exec`` of ``args`` in the database's container; ``env``'s names are passed (their values
        must be in the child's environment: see ``spawn``)."""
        from .compose import docker_cli

        argv = [docker_cli(), "exec"]
        if stdin:
            argv.append("-i")
        for name in env:
            argv += ["-e", name]
        return [*argv, self.container_id(), *args]

    def tool_version(self, tool: str) -> str:
        with contextlib.suppress(Exception):
            return process.run(self.exec_argv(tool, "--version"), timeout=_LOOKUP_TIMEOUT, quiet=True).strip().splitlines()[0]
        return tool


# -- the relay ----------------------------------------------------------------------------------------------------
_RELAY_SCRIPT = (
    'if command -v nc >/dev/null 2>&1; then exec nc 127.0.0.1 {port}; fi; '
    'if command -v socat >/dev/null 2>&1; then exec socat - TCP:127.0.0.1:{port}; fi; '
    "exec bash -c 'exec 3<>/dev/tcp/127.0.0.1/{port} || exit 1; cat <&3 & cat >&3; kill $! 2>/dev/null; wait'"
)

_relays: dict[DatabaseContainer, tuple[str, int]] = {}
_relays_lock = threading.Lock()


def relay_address(container: DatabaseContainer) -> tuple[str, int]:
    """A loopback address that reaches the database inside ``container`` (one listener per process)."""
    with _relays_lock:
        if container not in _relays:
            container.container_id()  # not running: say so now, not as a connection that hangs up
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(16)
            threading.Thread(target=_accept, args=(listener, container), daemon=True,
                             name=f"db-relay-{container.service}").start()
            _relays[container] = listener.getsockname()
        return _relays[container]


def _accept(listener: socket.socket, container: DatabaseContainer) -> None:
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, container), daemon=True).start()


def _carry(client: socket.socket, container: DatabaseContainer) -> None:
    script = _RELAY_SCRIPT.format(port=int(container.port))
    try:
        argv = container.exec_argv("sh", "-c", script, stdin=True)
        with process.spawn(argv, stdin=subprocess.PIPE, stdout_pipe=True, check=False, quiet=True) as proc:
            assert proc.stdin is not None and proc.stdout is not None
            upstream = threading.Thread(target=_pump_socket_to_pipe, args=(client, proc.stdin), daemon=True)
            upstream.start()
            _pump_pipe_to_socket(proc.stdout, client)
            upstream.join(timeout=5)
    except Exception as exc:
        log.debug("database relay connection ended: %s", exc)
    finally:
        with contextlib.suppress(OSError):
            client.close()


def _pump_socket_to_pipe(client: socket.socket, pipe: object) -> None:
    try:
        while True:
            data = client.recv(_CHUNK)
            if not data:
                break
            pipe.write(data)  # type: ignore[attr-defined]
            pipe.flush()  # type: ignore[attr-defined]
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            pipe.close()  # type: ignore[attr-defined]


def _pump_pipe_to_socket(pipe: object, client: socket.socket) -> None:
    read = pipe.read1 if hasattr(pipe, "read1") else pipe.read  # type: ignore[attr-defined]
    try:
        while True:
            data = read(_CHUNK)
            if not data:
                break
            client.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            client.shutdown(socket.SHUT_RDWR)


@contextlib.contextmanager
def copied_in(container: DatabaseContainer, *paths: str) -> Iterator[list[str]]:
    """Copy host files into a fresh directory in the container (``docker cp``); yield their paths there; remove
    the directory afterwards."""
    from .compose import docker_cli

    cid = container.container_id()
    folder = f"/tmp/directus-ops-{secrets.token_hex(8)}"  # named here: the tool's output is redacted, not data
    process.run([docker_cli(), "exec", "-u", "0", cid, "mkdir", "-m", "700", folder], timeout=_LOOKUP_TIMEOUT, quiet=True)
    try:
        inside = []
        for path in paths:
            name = path.rsplit("/", 1)[-1]
            process.run([docker_cli(), "cp", path, f"{cid}:{folder}/{name}"], timeout=3600, quiet=True)
            inside.append(f"{folder}/{name}")
        # The tools run as the image's user, which may not be root: let them read what was copied.
        process.run([docker_cli(), "exec", "-u", "0", cid, "chmod", "-R", "a+rX", folder], timeout=_LOOKUP_TIMEOUT, quiet=True)
        yield inside
    finally:
        with contextlib.suppress(Exception):
            process.run([docker_cli(), "exec", "-u", "0", cid, "rm", "-rf", folder], timeout=_LOOKUP_TIMEOUT,
                        quiet=True)

"""A project's running Directus, stopped, started and health-checked one way: the operator's stop and start
commands (shell lines, through the one subprocess helper), waiting until the app no longer answers
``/server/ping`` after a stop, and the health check of ``directus_api.check_health`` with the admin token in
DIRECTUS_OPS_TOKEN. Without a start command, a check runs on Directus started here from the project, on a free
local port, with a private copy of its config (``check_server``). Move's cutover and upgrade's and downgrade's
checks and rollbacks use these.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from . import directus_api, directus_cli, process
from .config import render_dotenv, write_private_text
from .errors import AppStillRunning
from .node import NodeRuntime
from .project import Project
from .redact import register_secret

log = logging.getLogger("directus_ops.app")

APP_TIMEOUT = 120.0  # seconds the app gets to stop answering after --stop-command, and to answer after --start-command
TOKEN_ENV = "DIRECTUS_OPS_TOKEN"  # an admin token, to read the running version (a secret: never a parameter)


def run_command(command: str, cwd: str, purpose: str) -> None:
    """An operator's stop/start command (a shell line), through the one subprocess helper."""
    log.info("%s: %s", purpose, command)
    process.run(["/bin/sh", "-c", command], cwd=cwd, timeout=600)


def wait_until_stopped(url: str, timeout: float = APP_TIMEOUT) -> None:
    """Poll ``/server/ping`` until the app no longer answers ``pong`` (a stop command may return before the
    app is down, or not stop it at all: the final copy must not race a live app)."""
    deadline = time.monotonic() + timeout
    while True:
        answering, _ = directus_api.ping(url)
        if not answering:
            return
        if time.monotonic() >= deadline:
            raise AppStillRunning(f"the app still answers at {url} {timeout:.0f} s after --stop-command; nothing was "
                                  "switched: make the stop command stop it (or check --url)")
        time.sleep(0.5)


def health(url: str, expect_version: str | None = None, timeout: float = APP_TIMEOUT) -> dict:
    """The app's health and version (see directus_api.check_health), with the admin token in DIRECTUS_OPS_TOKEN
    when one is set (a secret: never a parameter)."""
    token = os.environ.get(TOKEN_ENV)
    if token:
        register_secret(token)
    return directus_api.check_health(url, token, expect_version, timeout)


@contextlib.contextmanager
def check_server(project: Project, runtime: NodeRuntime | None = None) -> Iterator[str]:
    """Directus started from ``project`` (on ``runtime``'s Node) on a free local port with the project's config,
    for a check; yields its URL once it answers, stops it after. The project's own app is not touched."""
    with temporary_config(project, {"PORT": free_port(), "HOST": "127.0.0.1"}) as config:
        base = f"http://127.0.0.1:{config.port}"
        with directus_cli.running_server(project.root, base, config.path, runtime=runtime):
            yield base


@dataclass
class TemporaryConfig:
    path: Path
    port: int


class temporary_config:
    """The project's config file values with ``updates``, as a private dotenv used through ``CONFIG_PATH``."""

    def __init__(self, project: Project, updates: dict, directory: Path | None = None) -> None:
        self.project, self.updates, self.directory = project, updates, directory

    def __enter__(self) -> TemporaryConfig:
        values = {k: v for k, v in self.project.config.values.items() if k in self.project.config.file_keys}
        values.update(self.updates)
        directory = self.directory or self.project.root / ".directus-ops"
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / f"config-{uuid.uuid4().hex[:8]}.env"
        write_private_text(self.path, render_dotenv(values))  # it holds the project's secrets
        return TemporaryConfig(self.path, int(values.get("PORT") or 8055))

    def __exit__(self, *exc: object) -> None:
        self.path.unlink(missing_ok=True)
        parent = self.path.parent
        if parent.name == ".directus-ops" and parent.exists() and not any(parent.iterdir()):
            parent.rmdir()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])

"""Directus under Docker Compose for tests: project directories as users write them (the docs' Compose example),
brought up with the machine's Compose and removed with everything they made.

Layouts (:data:`LAYOUTS`):
- ``pg-in-stack``: services ``database`` (directus-ops-test/postgres:15, data in ``./data/database``) and
  ``directus`` (``DB_HOST: database``, the name resolving inside the containers only, through ``extra_hosts``).
- ``pg-external``: only ``directus``, on a database of its own on the machine's PostgreSQL (127.0.0.1:5432),
  created with the stack and dropped by :meth:`ComposeStack.down`.
- ``mariadb-in-stack``: like ``pg-in-stack`` on directus-ops-test/mariadb:10.11 (``DB_CLIENT: mysql``).
- ``sqlite-volume``: only ``directus``, its SQLite file in the named volume ``database`` (``/directus/database``).
Every layout mounts ``./uploads`` and ``./extensions`` (owned by uid 1000, as a user's own directories on a desktop
are). Options: ``tag_in_env`` (``image: directus/directus:${DIRECTUS_VERSION}`` with the tag in ``.env``, as an
upgrade then edits it) and ``env_file`` (Directus's settings in ``directus.env`` through ``env_file:`` instead of
``environment:``).

Every service has ``network_mode: host`` (dockerd has no bridge, and Compose v1 then makes no network) and listens
on 127.0.0.1 only, on ports free when the stack is made: Directus's ``PORT`` and the in-stack database's port.
Each stack's directory has a name of its own, so its Compose project (named after the directory) is too.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import harness
from docker_images import directus_image, docker_env, mariadb_image, postgres_image

LAYOUTS = ("pg-in-stack", "pg-external", "mariadb-in-stack", "sqlite-volume")
NODE_UID = 1000  # the image's user ``node``
READY_TIMEOUT = 180
PROJECT_LABEL = "com.docker.compose.project"


class StackError(RuntimeError):
    pass


def compose_command() -> list[str]:
    """Compose v1 (``/usr/bin/docker-compose``, Debian's) when installed, else Compose v2 (``docker compose``)
    when the docker client has it; ``DIRECTUS_OPS_TEST_COMPOSE`` (e.g. "docker compose") chooses."""
    chosen = os.environ.get("DIRECTUS_OPS_TEST_COMPOSE")
    if chosen:
        return chosen.split()
    if Path("/usr/bin/docker-compose").exists():
        return ["/usr/bin/docker-compose"]
    if subprocess.run(["docker", "compose", "version"], env=docker_env(), capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise StackError("no Docker Compose here: run ./scripts/docker-engine (installs Debian's docker-compose)")


def project_name(directory: Path) -> str:
    """The Compose project of a directory, as both Compose versions derive it from its name."""
    return "".join(c for c in directory.name.lower() if c.isalnum() or c in "-_")


def _quote(value: str) -> str:
    return json.dumps(value)  # a YAML double-quoted scalar


@dataclass
class ComposeStack:
    directory: Path
    layout: str
    version: str
    port: int  # Directus's PORT, on 127.0.0.1
    db_port: int | None = None  # the in-stack database's port, on 127.0.0.1
    environment: dict[str, str] = field(default_factory=dict)  # Directus's settings as written
    external_database: harness.Database | None = None  # pg-external's database on the machine's PostgreSQL
    compose: list[str] = field(default_factory=compose_command)
    _databases: harness.Databases | None = None

    @property
    def project(self) -> str:
        return project_name(self.directory)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def compose_file(self) -> Path:
        return self.directory / "docker-compose.yml"

    @property
    def uploads(self) -> Path:
        return self.directory / "uploads"

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
        """``docker-compose ARGS`` in the stack's directory (its project, its .env), Debian's docker first on PATH."""
        result = subprocess.run([*self.compose, *args], cwd=self.directory, env=docker_env(), capture_output=True,
                                text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise StackError(f"{' '.join([*self.compose, *args])} failed (exit {result.returncode}) in "
                             f"{self.directory}:\n{result.stdout}{result.stderr}")
        return result

    def up(self, timeout: float = READY_TIMEOUT) -> None:
        self.run("up", "-d", timeout=timeout)
        self.wait_ready(timeout)

    def container(self, service: str = "directus") -> str | None:
        """The id of the service's container, None when it has none."""
        return self.run("ps", "-q", service, check=False, timeout=60).stdout.strip() or None

    def image_in_use(self, service: str = "directus") -> str | None:
        """The image (as named in the Compose file, resolved) the service's container was created from."""
        container = self.container(service)
        if container is None:
            return None
        return subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", container], env=docker_env(),
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip()

    def logs(self) -> str:
        result = self.run("logs", "--no-color", check=False, timeout=120)
        return result.stdout + result.stderr

    def ping(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/server/ping", timeout=5) as response:
                return response.read().decode().strip() == "pong"
        except (OSError, urllib.error.URLError):
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Until Directus answers /server/ping with "pong"; on timeout the error carries ``docker-compose logs``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ping():
                return
            time.sleep(1)
        logs = self.logs()
        print(logs)
        raise StackError(f"Directus of {self.directory} did not answer {self.url}/server/ping within {timeout:.0f} s; "
                         f"docker-compose logs:\n{logs[-20000:]}")

    def _docker_ids(self, kind: str) -> list[str]:
        cmd = {"containers": ["docker", "ps", "-aq"], "volumes": ["docker", "volume", "ls", "-q"],
               "networks": ["docker", "network", "ls", "-q"]}[kind]
        result = subprocess.run([*cmd, "--filter", f"label={PROJECT_LABEL}={self.project}"], env=docker_env(),
                                capture_output=True, text=True, check=True, timeout=60)
        return result.stdout.split()

    def leftovers(self) -> dict[str, list[str]]:
        """The project's containers, volumes and networks that exist (none after :meth:`down`)."""
        return {kind: ids for kind in ("containers", "volumes", "networks") if (ids := self._docker_ids(kind))}

    def down(self) -> None:
        """Removes the containers, the volumes (named and anonymous), the directory, and pg-external's database."""
        try:
            if self.compose_file.exists():
                self.run("down", "-v", "--remove-orphans", "-t", "10", timeout=300)
            left = self.leftovers()
            if left:
                raise StackError(f"docker-compose down left {left} of project {self.project}")
        finally:
            if self._databases is not None:
                self._databases.drop_all()
                self._databases = None
            # The containers' files (uid 1000, the database's user) are root's to remove.
            shutil.rmtree(self.directory, ignore_errors=True)


def _service_block(name: str, lines: list[str]) -> list[str]:
    return [f"  {name}:", *(f"    {line}" for line in lines)]


def make_stack(root: Path, layout: str, version: str = harness.DIRECTUS_VERSION, *, tag_in_env: bool = False,
               env_file: bool = False, start: bool = True, extra_env: dict[str, str] | None = None) -> ComposeStack:
    """A Compose project of ``layout`` in a new directory under ``root`` running ``directus/directus:<version>``,
    up and answering /server/ping unless ``start`` is False. The images are built first when missing
    (tests/docker_images.py). ``extra_env``: more Directus settings."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}: one of {', '.join(LAYOUTS)}")
    directory = root / f"dops-{layout}-{secrets.token_hex(3)}"
    directory.mkdir(parents=True)
    image = directus_image(version)
    port = harness.free_port()
    stack = ComposeStack(directory, layout, version, port)

    env: dict[str, str] = {"SECRET": secrets.token_hex(16)}
    database_lines: list[str] | None = None
    if layout in ("pg-in-stack", "mariadb-in-stack"):
        stack.db_port = harness.free_port()
        if layout == "pg-in-stack":
            db_image = postgres_image()
            db_env = {"POSTGRES_USER": "directus", "POSTGRES_PASSWORD": "directus", "POSTGRES_DB": "directus",
                      "PGPORT": str(stack.db_port)}
            data_path = "/var/lib/postgresql/data"
            health = '["CMD", "pg_isready", "--host=localhost", "--username=directus"]'
            env |= {"DB_CLIENT": "pg"}
        else:
            db_image = mariadb_image()
            db_env = {"MARIADB_ROOT_PASSWORD": "directus-root", "MARIADB_DATABASE": "directus",
                      "MARIADB_USER": "directus", "MARIADB_PASSWORD": "directus", "MARIADB_PORT": str(stack.db_port)}
            data_path = "/var/lib/mysql"
            health = '["CMD", "mariadb-admin", "ping", "--silent"]'
            env |= {"DB_CLIENT": "mysql"}
        env |= {"DB_HOST": "database", "DB_PORT": str(stack.db_port), "DB_DATABASE": "directus", "DB_USER": "directus",
                "DB_PASSWORD": "directus"}
        database_lines = [f"image: {db_image}", "network_mode: host", "volumes:",
                          f"  - ./data/database:{data_path}", "environment:",
                          *(f"  {key}: {_quote(value)}" for key, value in db_env.items()),
                          "healthcheck:", f"  test: {health}", "  interval: 2s", "  timeout: 5s", "  retries: 60"]
    elif layout == "pg-external":
        stack._databases = harness.Databases(directory)
        stack.external_database = database = stack._databases.create("pg")
        env |= database.env()
    else:  # sqlite-volume
        env |= {"DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/data.db"}
    env |= {"ADMIN_EMAIL": harness.ADMIN_EMAIL, "ADMIN_PASSWORD": harness.ADMIN_PASSWORD,
            "PUBLIC_URL": stack.url, "PORT": str(port), "HOST": "127.0.0.1", "TELEMETRY": "false",
            # A 2-core machine running tests lags; Directus would answer 503 (as in harness.make_project).
            "PRESSURE_LIMITER_ENABLED": "false", **(extra_env or {})}
    stack.environment = env

    directus_lines = [f"image: directus/directus:{'${DIRECTUS_VERSION}' if tag_in_env else version}",
                      "network_mode: host", "volumes:", "  - ./uploads:/directus/uploads",
                      "  - ./extensions:/directus/extensions"]
    if layout == "sqlite-volume":
        directus_lines.append("  - database:/directus/database")
    if database_lines is not None:
        directus_lines += ["extra_hosts:", '  - "database:127.0.0.1"', "depends_on:", "  database:",
                           "    condition: service_healthy"]
    if env_file:
        directus_lines += ["env_file: directus.env"]
        (directory / "directus.env").write_text("".join(f"{key}={value}\n" for key, value in env.items()))
    else:
        directus_lines += ["environment:", *(f"  {key}: {_quote(value)}" for key, value in env.items())]

    lines = ["services:"]
    if database_lines is not None:
        lines += _service_block("database", database_lines)
    lines += _service_block("directus", directus_lines)
    if layout == "sqlite-volume":
        lines += ["", "volumes:", "  database: {}"]
    stack.compose_file.write_text("\n".join(lines) + "\n")
    if tag_in_env:
        (directory / ".env").write_text(f"DIRECTUS_VERSION={version}\n")
    assert image == f"directus/directus:{version}"

    for name in ("uploads", "extensions"):
        (directory / name).mkdir()
        if os.geteuid() == 0:
            os.chown(directory / name, NODE_UID, NODE_UID)
        else:  # a user other than root cannot give them away: the container's user may write them all the same
            (directory / name).chmod(0o777)
    if start:
        try:
            stack.up()
        except BaseException:
            stack.down()
            raise
    return stack

"""A Directus project deployed with Docker Compose: the one module that reads a Compose project.

What the Directus container gets is asked of Compose itself (``config``): its ``environment``, ``env_file``
and the project's ``.env`` interpolated, override files merged, bind paths made absolute, exactly as the
container will see them. From that this module answers: which service is Directus (an image
``directus/directus:<version>``, or one built ``FROM`` it; ``--service`` when there are several), its environment,
its mounts (container path -> host path, bind mounts and named volumes), the Directus version it runs, and how to
reach a service's running container. The Directus config rules (directus_ops.config) apply to that environment.

Compose v2 (``docker compose``) and v1 (``docker-compose``) both work: whichever is installed.
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from . import process
from .errors import ConfigError, ProjectError, ToolMissing

log = logging.getLogger("directus_ops.compose")

# The names Compose looks for, in its order of preference.
COMPOSE_FILE_NAMES = ("compose.yaml", "compose.yml", "docker-compose.yml", "docker-compose.yaml")
OVERRIDE_FILE_NAMES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yml",
                       "docker-compose.override.yaml")
DIRECTUS_IMAGE = "directus/directus"
WORKDIR = PurePosixPath("/directus")  # the official image's working directory: relative config paths start here
# What the official image's own ENV sets that the config rules read (its Dockerfile).
IMAGE_DEFAULTS = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "/directus/database/database.sqlite"}
_VERSION_TAG = re.compile(r"^v?(\d+\.\d+\.\d+)(?:$|[-_])")
TIMEOUT = 120


def find_compose_file(directory: Path) -> Path | None:
    for name in COMPOSE_FILE_NAMES:
        if (directory / name).is_file():
            return directory / name
    return None


@lru_cache(maxsize=1)
def compose_command() -> tuple[str, ...]:
    """``docker compose`` (v2) when the docker CLI has it, else ``docker-compose`` (v1)."""
    docker = docker_cli()
    try:
        process.run([docker, "compose", "version"], timeout=30, quiet=True)
        return (docker, "compose")
    except Exception:
        pass
    v1 = process.find_tool("docker-compose", purpose="run a Docker Compose project",
                           install_hint="install Docker Compose (the `docker compose` plugin, or `docker-compose`)")
    return (v1,)


def docker_cli() -> str:
    return process.find_tool("docker", purpose="reach a Docker Compose project",
                             install_hint="install the Docker CLI and run directus-ops on the Docker host")


def _image_name_and_tag(image: str) -> tuple[str, str | None]:
    """``registry/directus/directus:12.4.0@sha256:…`` -> ("registry/directus/directus", "12.4.0")."""
    image = image.split("@", 1)[0]
    last = image.rsplit("/", 1)[-1]
    if ":" in last:
        name, tag = image.rsplit(":", 1)
        return name, tag
    return image, None


def is_directus_image(image: str) -> bool:
    name, _ = _image_name_and_tag(image)
    return name == DIRECTUS_IMAGE or name.endswith("/" + DIRECTUS_IMAGE)


def version_of_tag(tag: str | None) -> str | None:
    match = _VERSION_TAG.match(tag or "")
    return match.group(1) if match else None


@dataclass(frozen=True)
class Mount:
    target: PurePosixPath  # inside the container
    source: str  # bind: an absolute host path; volume: the volume's key in the Compose file
    kind: str  # "bind" | "volume"
    read_only: bool = False


@dataclass(frozen=True)
class ComposeProject:
    """A Compose project and its Directus service, as Compose resolves it."""

    directory: Path
    file: Path  # the Compose file (its overrides, if any, are merged by Compose)
    name: str  # the Compose project name (container and volume names start with it)
    service: str  # the Directus service
    services: Mapping[str, Any] = field(repr=False)  # every service, resolved by Compose
    volumes: Mapping[str, Any] = field(repr=False)
    command: tuple[str, ...] = field(default=())  # docker compose / docker-compose, with the project's options

    # -- what Compose says --------------------------------------------------------------------------------------
    def definition(self, service: str | None = None) -> Mapping[str, Any]:
        return self.services[service or self.service]

    def image(self, service: str | None = None) -> str:
        return str(self.definition(service).get("image") or "")

    def environment(self, service: str | None = None) -> dict[str, str]:
        """The service's environment as the container gets it (a variable listed without a value is taken
        from this process's environment, as Compose does; unset, it is absent)."""
        raw = self.definition(service).get("environment") or {}
        if isinstance(raw, list):
            raw = dict(item.split("=", 1) if "=" in item else (item, None) for item in raw)
        values: dict[str, str] = {}
        for key, value in raw.items():
            if value is None:
                if key in os.environ:
                    values[key] = os.environ[key]
                continue
            # Compose prints its output ready to be read again: a literal "$" stays doubled.
            values[key] = _unescape(_scalar(value))
        return values

    def mounts(self, service: str | None = None) -> list[Mount]:
        mounts = []
        for item in self.definition(service).get("volumes") or []:
            mounts.append(_mount(item, self.directory))
        return mounts

    def volume_name(self, key: str) -> str:
        """The Docker volume behind a Compose volume key (``name:``, external, or ``<project>_<key>``)."""
        spec = self.volumes.get(key) or {}
        if isinstance(spec, dict):
            if spec.get("name"):
                return str(spec["name"])
            external = spec.get("external")
            if isinstance(external, dict) and external.get("name"):
                return str(external["name"])
            if external:
                return key
        return f"{self.name}_{key}"

    def host_path(self, container_path: str | PurePosixPath, what: str) -> Path:
        """The host path of a path inside the Directus container, through the service's mounts (the deepest
        mount that holds it). A path no mount holds lives only in the container: that is an error naming the
        missing mount (``what`` says what the path is, e.g. ``STORAGE_LOCAL_ROOT``)."""
        path = PurePosixPath(posixpath.normpath(str(WORKDIR / str(container_path))))
        best: Mount | None = None
        for mount in self.mounts():
            if path == mount.target or mount.target in path.parents:
                if best is None or len(mount.target.parts) > len(best.target.parts):
                    best = mount
        if best is None:
            folder = path.parent if "FILE" in what or what == "CONFIG_PATH" else path  # a file: mount its folder
            raise ConfigError(f"{what} is {path} in the container of service '{self.service}', which no volume of "
                              f"{self.file.name} mounts; add a mount for it (e.g. `- ./{folder.name}:{folder}` under "
                              f"volumes:) so its data lives outside the container")
        relative = path.relative_to(best.target)
        if best.kind == "bind":
            return Path(best.source) / relative
        return self.volume_mountpoint(best.source) / relative

    def container_path(self, host_path: str | Path, what: str) -> PurePosixPath:
        """Where a host path is inside the Directus container: under one of its bind mounts, else an error
        naming the mount to add (a new folder for the app must be mounted into its container)."""
        path = Path(host_path).resolve()
        best: Mount | None = None
        for mount in self.mounts():
            if mount.kind == "bind" and (path == Path(mount.source) or Path(mount.source) in path.parents):
                if best is None or len(Path(mount.source).parts) > len(Path(best.source).parts):
                    best = mount
        if best is None:
            raise ConfigError(f"{what} {path} is not inside a folder mounted into service '{self.service}'; add a "
                              f"mount for it in {self.file.name} (e.g. `- {path}:/directus/{path.name}`) and run "
                              "again with the path as the container sees it or as the host does")
        return best.target / path.relative_to(best.source)

    def app_url(self, environment: Mapping[str, str]) -> str:
        """Where this host reaches the app: PUBLIC_URL when it is this host's loopback, else the port Docker
        publishes for the app's PORT, else (host networking) that port on 127.0.0.1."""
        public = (environment.get("PUBLIC_URL") or "").rstrip("/")
        if re.match(r"^https?://(127\.0\.0\.1|localhost)(:\d+)?(/|$)", public):
            return public
        port = str(environment.get("PORT") or "8055")
        for item in self.definition().get("ports") or []:
            if isinstance(item, dict):
                target, published = str(item.get("target") or ""), str(item.get("published") or "")
            else:
                parts = str(item).split("/", 1)[0].split(":")
                target, published = parts[-1], (parts[-2] if len(parts) > 1 else "")
            if target == port and published:
                return f"http://127.0.0.1:{published}"
        return f"http://127.0.0.1:{port}"

    def volume_mountpoint(self, key: str) -> Path:
        name = self.volume_name(key)
        try:
            out = process.output([docker_cli(), "volume", "inspect", "--format", "{{.Mountpoint}}", name],
                                 timeout=TIMEOUT)
        except Exception:
            raise ConfigError(f"the Docker volume {name} (volume '{key}' of {self.file.name}) does not exist; start the "
                              f"project once with `docker compose up -d` so Docker creates it") from None
        return Path(out.strip().splitlines()[-1])

    def config_files(self) -> list[Path]:
        """The files Compose reads the service's configuration from: the Compose file(s), the ``.env`` of
        the project directory, and the service's ``env_file`` entries (as written in the Compose file)."""
        files = [self.file, *(self.directory / n for n in OVERRIDE_FILE_NAMES if (self.directory / n).is_file())]
        files.append(self.directory / ".env")
        for compose_file in list(files[:-1]):
            try:
                raw = yaml.safe_load(compose_file.read_text(encoding="utf-8")) or {}
            except (OSError, yaml.YAMLError):
                continue
            spec = (raw.get("services") or {}).get(self.service) or {}
            entries = spec.get("env_file") or []
            for entry in [entries] if isinstance(entries, (str, dict)) else entries:
                path = entry.get("path") if isinstance(entry, dict) else entry
                if isinstance(path, str) and "$" not in path:
                    files.append((self.directory / path).resolve())
        return [path for path in files if path.is_file()]

    # -- the running project ------------------------------------------------------------------------------------
    def argv(self, *args: str) -> list[str]:
        return [*self.command, *args]

    def container_id(self, service: str | None = None, running: bool = True) -> str | None:
        """The container of ``service`` (running, unless ``running`` is False), found by Compose's labels."""
        args = [docker_cli(), "ps", "-q", "--no-trunc",
                "--filter", f"label=com.docker.compose.project={self.name}",
                "--filter", f"label=com.docker.compose.service={service or self.service}"]
        if not running:
            args.insert(3, "-a")
        out = process.output(args, timeout=TIMEOUT).split()
        return out[0] if out else None

    def stop(self, service: str | None = None) -> None:
        """``compose stop <service>``: its container stays (and its volumes); nothing else of the stack stops."""
        process.run(self.argv("stop", service or self.service), cwd=self.directory, timeout=TIMEOUT * 3)

    def node_argv(self, *args: str, env: Sequence[str] = ()) -> list[str]:
        """``node ARGS`` in a throwaway container of the Directus image (no network, in /directus): for what
        only Directus's own packages can do (argon2 hashes, its license constants). ``env``: names passed."""
        argv = [docker_cli(), "run", "--rm", "-i", "--network", "none", "-w", str(WORKDIR), "--entrypoint", "node"]
        for name in env:
            argv += ["-e", name]
        return [*argv, self.image(), *args]

    def hand_over(self, roots: Iterable[Path]) -> None:
        """Files written into the service's mounts get the uid and gid its container runs as (the official
        image: node, 1000), so the app can read and write them: uploads, a SQLite database. Only root can
        give files away; anyone else leaves them as written, with a warning."""
        ids = self.user_ids()
        if ids is None or ids == (os.geteuid(), os.getegid()):
            return
        if os.geteuid() != 0:
            log.warning("files written into %s belong to uid %d, not to the container's user %d:%d; run `chown -R "
                        "%d:%d` on the mounted folders", self.directory, os.geteuid(), *ids, *ids)
            return
        for root in roots:
            _chown_tree(root, *ids)

    def image_id(self, image: str | None = None) -> str | None:
        try:
            out = process.output([docker_cli(), "image", "inspect", "--format", "{{.Id}}", image or self.image()],
                                 timeout=TIMEOUT)
        except Exception:
            return None
        return out.strip().splitlines()[-1] if out.strip() else None

    def directus_version(self) -> str | None:
        """The Directus version the service runs: its image's tag, or (an image built from directus/directus,
        or a tag such as ``latest``) what the image holds."""
        image = self.image()
        if is_directus_image(image):
            version = version_of_tag(_image_name_and_tag(image)[1])
            if version:
                return version
        return _version_in_image(self.image_id(image) or "") if image else None

    def user_ids(self) -> tuple[int, int] | None:
        """The uid and gid the Directus container runs as (files restored into its mounts get them): the
        service's ``user:``, else the image's USER (the official image: node, 1000:1000)."""
        user = str(self.definition().get("user") or "")
        if not user:
            image_id = self.image_id()
            if not image_id:
                return None
            user = _image_user(image_id)
        if not user:
            return (0, 0)
        name, _, group = user.partition(":")
        if name.isdigit() and (not group or group.isdigit()):
            return int(name), int(group or name)
        image_id = self.image_id()
        return _resolve_user(image_id, user) if image_id else None


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    """``chown -R`` without following symbolic links (a link is changed, never its target)."""
    if not root.is_dir():
        return
    os.chown(root, uid, gid, follow_symlinks=False)
    for directory, subdirs, files in os.walk(root):
        for name in [*subdirs, *files]:
            os.chown(os.path.join(directory, name), uid, gid, follow_symlinks=False)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _unescape(text: str) -> str:
    return text.replace("$$", "$")


def _mount(item: Any, directory: Path) -> Mount:
    if isinstance(item, dict):
        kind = str(item.get("type") or "volume")
        source = str(item.get("source") or "")
        target = str(item.get("target") or "")
        read_only = bool(item.get("read_only"))
    else:
        parts = str(item).split(":")
        if len(parts) == 1:
            return Mount(PurePosixPath(parts[0]), "", "anonymous")
        source, target = parts[0], parts[1]
        read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        kind = "bind" if source.startswith(("/", ".", "~")) else "volume"
    if kind == "bind":
        source = str((directory / os.path.expanduser(source)).resolve())
    elif kind != "volume":
        kind = "other"  # tmpfs, npipe: nothing outside the container
    return Mount(PurePosixPath(target), source, kind, read_only)


@lru_cache(maxsize=32)
def _version_in_image(image_id: str) -> str | None:
    if not image_id:
        return None
    script = "console.log(JSON.parse(require('fs').readFileSync('/directus/node_modules/directus/package.json')).version)"
    try:
        out = process.output([docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", "node", image_id, "-e",
                              script], timeout=TIMEOUT)
    except Exception:
        return None
    return version_of_tag(out.strip().splitlines()[-1] if out.strip() else "")


@lru_cache(maxsize=32)
def _image_user(image_id: str) -> str:
    out = process.output([docker_cli(), "image", "inspect", "--format", "{{.Config.User}}", image_id], timeout=TIMEOUT)
    return out.strip()


@lru_cache(maxsize=32)
def _resolve_user(image_id: str, user: str) -> tuple[int, int] | None:
    name, _, group = user.partition(":")
    try:
        uid = process.output([docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", "id", image_id, "-u", name],
                             timeout=TIMEOUT).split()[-1]
        gid = group if group.isdigit() else process.output(
            [docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", "id", image_id, "-g", name],
            timeout=TIMEOUT).split()[-1]
        return int(uid), int(gid)
    except Exception:
        return None


def _project_name(directory: Path, resolved: Mapping[str, Any], file_env: Mapping[str, str]) -> str:
    """Compose's project name: ``name:`` (v2 prints it), COMPOSE_PROJECT_NAME (environment, then .env), else the
    directory's name made lower-case and stripped of what Compose does not allow."""
    name = resolved.get("name") or os.environ.get("COMPOSE_PROJECT_NAME") or file_env.get("COMPOSE_PROJECT_NAME")
    if name:
        return str(name)
    return re.sub(r"[^-_a-z0-9]", "", directory.name.lower())


def _read_dotenv(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def is_compose_project(directory: Path) -> bool:
    return find_compose_file(directory) is not None


def load_compose(directory: str | Path, service: str | None = None, file: Path | None = None) -> ComposeProject:
    """Read the Compose project in ``directory`` as Compose resolves it and find its Directus service
    (``file``: another Compose file for it, e.g. one written for a move, read in its stead)."""
    directory = Path(directory).expanduser().resolve()
    file = file or find_compose_file(directory)
    if file is None:
        raise ProjectError(f"{directory} holds no Compose file ({', '.join(COMPOSE_FILE_NAMES)}); pass the directory "
                           "of a Directus project")
    command = compose_command()
    base = (*command, "--project-directory", str(directory), "-f", str(file))
    override = next((directory / n for n in OVERRIDE_FILE_NAMES if (directory / n).is_file()), None)
    if override is not None:
        base = (*base, "-f", str(override))
    chunks: list[bytes] = []
    try:
        # Read here, never logged: the resolved environment holds the project's secrets.
        process.stream_stdout([*base, "config"], lambda stream: chunks.append(stream.read()), cwd=directory,
                              timeout=TIMEOUT)
    except ToolMissing:
        raise
    except Exception as exc:
        reason = str(exc).split(": ", 1)[-1]
        raise ConfigError(f"Compose cannot read {file}: {reason}; fix the file (`docker compose config` shows the "
                          "problem)") from None
    try:
        resolved = yaml.safe_load(b"".join(chunks)) or {}
    except yaml.YAMLError:
        raise ConfigError(f"Compose printed a configuration for {file} that is not YAML; check its version") from None
    services = resolved.get("services") or {}
    if service is not None:
        if service not in services:
            raise ConfigError(f"{file.name} has no service '{service}' (it has: {', '.join(services) or 'none'}); "
                              "pass --service with one of those")
        chosen = service
    else:
        candidates = [name for name, spec in services.items() if _runs_directus(spec, directory)]
        if not candidates:
            raise ProjectError(f"{file.name} has no Directus service (one whose image is {DIRECTUS_IMAGE}:<version> or "
                               "built from it); pass --service NAME to name it")
        if len(candidates) > 1:
            raise ConfigError(f"{file.name} has {len(candidates)} Directus services ({', '.join(candidates)}); pass "
                              "--service NAME to pick one")
        chosen = candidates[0]
    name = _project_name(directory, resolved, _read_dotenv(directory / ".env"))
    return ComposeProject(directory=directory, file=file, name=name, service=chosen, services=services,
                          volumes=resolved.get("volumes") or {}, command=(*base, "-p", name))


def _runs_directus(spec: Mapping[str, Any], directory: Path) -> bool:
    if is_directus_image(str(spec.get("image") or "")):
        return True
    build = spec.get("build")
    if not build:
        return False
    context = build if isinstance(build, str) else str(build.get("context") or ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else str(build.get("dockerfile") or "Dockerfile")
    path = (directory / context / dockerfile)
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(is_directus_image(line.split()[1]) for line in text.splitlines()
               if line.strip().upper().startswith("FROM ") and len(line.split()) > 1)

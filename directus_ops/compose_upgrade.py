"""The upgrade of a Directus deployed with Docker Compose: the plan checked before anything changes, and the steps
the upgrade flow runs (stop the service, change the image tag, run the new image's migrations in a one-off
container, start, check) and the ones its rollback runs (the old bytes of the edited file put back, the service
started on its old image and checked). The database is backed up and restored by the same code as for any project
(through its service's container when it lives in the stack).

Under Docker the image *is* the installed Directus: the current version is the service's image's, the target is the
same repository with the new tag, and both images' built-in migration lists are read from the images themselves.
The tag is changed where it is written: in the Compose file (or its override), or in the ``.env`` variable the tag
is interpolated from (``image: directus/directus:${DIRECTUS_VERSION}``); only the tag's characters change, so the
file keeps its formatting and comments, and its old bytes are what the rollback writes back.

Why the pending custom migrations are refused: the image's command runs ``bootstrap`` at every start, which
applies them; one that fails stops the old version from starting too, so the rollback could not bring it back.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import semantic_version as semver
import yaml

from . import compose, directus_api, directus_cli, licensing, process, releases
from . import database as db
from .compose import ComposeProject
from .errors import ConfigError, DirectusApiError, ProcedureFailed, ProjectError, VersionError
from .project import Project, load_project

if TYPE_CHECKING:
    from .upgrade import VersionPlan

log = logging.getLogger("directus_ops.compose_upgrade")

MIGRATE_TIMEOUT = 3600
SERVICE_TIMEOUT = 600  # compose stop / up
HEALTH_TIMEOUT = 180.0  # the container's bootstrap (migrations already applied) and start
_VARIABLE = re.compile(r"^\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?P<op>:?[-?])?(?P<default>[^}]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))$")

# The built-in migrations folder in an image, found with node (every Directus image has it, the distroless ones
# have no shell): npm's layout, the directus package's own node_modules, Directus 9's, or pnpm's store.
_MIGRATIONS_SCRIPT = r"""
const fs = require('fs'), path = require('path');
const tail = 'node_modules/@directus/api/dist/database/migrations';
const candidates = ['/directus/' + tail, '/directus/node_modules/directus/' + tail,
                    '/directus/node_modules/directus/dist/database/migrations'];
try {
  for (const entry of fs.readdirSync('/directus/node_modules/.pnpm'))
    if (entry.startsWith('@directus+api@')) candidates.push(path.join('/directus/node_modules/.pnpm', entry, tail));
} catch (e) {}
const found = candidates.find((d) => { try { return fs.statSync(d).isDirectory(); } catch (e) { return false; } });
if (!found) { console.error('no @directus/api migrations folder under /directus/node_modules'); process.exit(3); }
console.log(JSON.stringify({folder: found, files: fs.readdirSync(found)}));
"""


@dataclass(frozen=True)
class TagSource:
    """Where the service's image tag is written: ``path``'s text from ``start`` to ``end`` (characters) is the tag."""

    path: str
    start: int
    end: int
    variable: str | None = None  # the .env variable (or the default of the Compose file's ${VARIABLE:-default})
    original: bytes = field(default=b"", repr=False)  # the file as it was planned on: the rollback writes it back

    def describe(self) -> str:
        where = Path(self.path).name
        return f"{self.variable} in {where}" if self.variable else f"the image tag in {where}"


@dataclass(frozen=True)
class ComposeTarget:
    """What a Compose project's upgrade changes: its Directus service's image, through ``tag``."""

    directory: str
    service: str
    current_image: str
    target_image: str
    tag: TagSource
    url: str | None = None  # where the service answers (None: found after the start, or given with --url)


# -- the plan ---------------------------------------------------------------------------------------------------
def plan(project: Project, to: str | None) -> VersionPlan:
    """Everything checked before anything changes; a refusal is one line."""
    from .upgrade import VersionPlan, custom_migrations

    deployment = project.compose
    assert deployment is not None
    if not to:
        raise VersionError(f"pass --to VERSION: the version of {deployment.service}'s image "
                           f"({deployment.image() or 'built from directus/directus'}) to upgrade to")
    target = str(releases.parse_version(to))
    current_image = deployment.image()
    if not current_image:
        raise ProjectError(f"service '{deployment.service}' builds its own image (build:); change the FROM line of its "
                           "Dockerfile and rebuild it to upgrade Directus")
    current = deployment.directus_version()
    if current is None:
        raise ProjectError(f"cannot tell which Directus {current_image} holds; pull or build it first "
                           f"(`docker compose pull {deployment.service}`)")
    name, _ = compose._image_name_and_tag(current_image)
    target_image = f"{name}:{target}"
    if semver.Version(target) < semver.Version(current):
        raise VersionError(f"{target_image} is older than the running {current}; to go back restore a snapshot taken "
                           f"on {target} (`directus-ops restore --snapshot ID --replace`)")
    tag = find_tag(deployment)
    if current == target:
        return VersionPlan(str(project.root), str(deployment.file), current, target, [], [], [],
                           compose=ComposeTarget(str(deployment.directory), deployment.service, current_image,
                                                 target_image, tag))
    ensure_image(target_image)
    current_id = deployment.image_id(current_image)
    if current_id is None:
        raise ProjectError(f"{current_image} (service '{deployment.service}') is not on this host; pull it first "
                           f"(`docker compose pull {deployment.service}`)")
    applied = _history(project)
    custom = custom_migrations(project)
    builtin = image_migrations(current_id)
    check_consistent(project, current, applied, custom, builtin)
    pending = sorted(set(custom) - set(applied))
    if pending:
        raise ProjectError(f"{len(pending)} custom migration(s) in {project.migrations_path} are not applied yet (first "
                           f"{pending[0]}): the container applies them at its next start, and one that fails would "
                           f"keep Directus {current} from starting again after a rollback; apply them first "
                           f"with Directus {current} (`docker compose restart {deployment.service}`) and check the service "
                           "starts, then upgrade")
    expected = sorted(set(image_migrations(_image_id(target_image))) | set(custom))
    return VersionPlan(str(project.root), str(deployment.file), current, target, applied, custom, expected,
                       license_notice=licensing.notice_for_upgrade(project, current, target),
                       compose=ComposeTarget(str(deployment.directory), deployment.service, current_image,
                                             target_image, tag))


def load(plan: VersionPlan) -> Project:
    """The Compose project of a plan, as it is now (the tag it holds at this moment)."""
    assert plan.compose is not None
    return load_project(plan.compose.directory, service=plan.compose.service)


def _history(project: Project) -> list[str]:
    with db.connect(project.database) as conn:
        return db.migration_history(conn)


def check_consistent(project: Project, current: str, applied: list[str], custom: list[str],
                     builtin: list[str]) -> None:
    """The database must be where the current image left it (as upgrade._check_consistent for npm projects)."""
    service = project.compose.service if project.compose else "directus"
    missing = sorted(set(builtin) - set(applied))
    if missing:
        raise ProjectError(f"{len(missing)} of Directus {current}'s migrations are not applied to "
                           f"{project.database.describe()} (first {missing[0]}): an earlier upgrade may have stopped "
                           f"half-way; restore a backup, or start the service once (`docker compose up -d {service}` "
                           "applies them), then try again")
    unknown = sorted(set(applied) - set(builtin) - set(custom))
    if unknown:
        raise ProjectError(f"{project.database.describe()} has migrations Directus {current} does not know "
                           f"({', '.join(unknown[:3])}): it was migrated by another Directus version; run that "
                           "version's image, or restore a backup made with this one")


# -- images -----------------------------------------------------------------------------------------------------
def _image_id(image: str) -> str:
    out = process.output([compose.docker_cli(), "image", "inspect", "--format", "{{.Id}}", image],
                         timeout=compose.TIMEOUT)
    return out.strip().splitlines()[-1]


def ensure_image(image: str) -> None:
    """The image is on this host, or is pulled; else a one-line refusal (nothing has changed yet)."""
    docker = compose.docker_cli()
    try:
        process.run([docker, "image", "inspect", "--format", "{{.Id}}", image], timeout=compose.TIMEOUT, quiet=True)
        return
    except process.ProcessFailed:
        pass
    log.info("%s is not on this host: pulling it", image)
    try:
        process.run([docker, "pull", image], timeout=1800, quiet=True)
    except process.ProcessFailed as exc:
        reason = process.failure_cause(exc.output_tail) or str(exc)
        raise VersionError(f"{image} is not on this host and cannot be pulled ({reason}); pull or build it "
                           "first") from None


@lru_cache(maxsize=16)
def image_migrations(image_id: str) -> list[str]:
    """The keys of the built-in migrations an image holds (its @directus/api package), read in a throw-away
    container without network."""
    try:
        out = process.output([compose.docker_cli(), "run", "--rm", "--network", "none", "--entrypoint", "node",
                              image_id, "-e", _MIGRATIONS_SCRIPT], timeout=compose.TIMEOUT)
    except process.ProcessFailed as exc:
        raise ProjectError(f"cannot list the migrations in image {image_id[:19]}: "
                           f"{process.failure_cause(exc.output_tail) or exc}; is it a Directus image?") from None
    listing = json.loads(out.strip().splitlines()[-1])
    keys = [m.group(1) for name in listing["files"] if (m := releases.MIGRATION_FILE.match(name))
            and not name.endswith(".d.ts")]
    if not keys:
        raise ProjectError(f"image {image_id[:19]} holds no migrations in {listing['folder']}; is it a Directus image?")
    return sorted(set(keys))


# -- the tag ----------------------------------------------------------------------------------------------------
def find_tag(deployment: ComposeProject) -> TagSource:
    """Where the service's image tag is written, as Compose reads it: the last Compose file that sets the
    service's ``image:`` (overrides win), or the ``.env`` variable the tag is interpolated from."""
    image = deployment.image()
    _, tag = compose._image_name_and_tag(image)
    if not tag:
        raise ProjectError(f"service '{deployment.service}' runs {image} without a tag; write the tag it runs "
                           f"(e.g. {image}:{deployment.directus_version() or 'X.Y.Z'}) in {deployment.file.name} first")
    files = [deployment.file, *(deployment.directory / n for n in compose.OVERRIDE_FILE_NAMES
                                if (deployment.directory / n).is_file())]
    for path in reversed(files):
        found = _image_node(path, deployment.service)
        if found is None:
            continue
        text, node = found
        return _tag_in_value(deployment, path, text, node, tag)
    raise ProjectError(f"no Compose file of {deployment.directory} sets the image of service '{deployment.service}'; "
                       "write its image: with a tag there")


def _image_node(path: Path, service: str) -> tuple[str, yaml.ScalarNode] | None:
    text = path.read_bytes().decode("utf-8")
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return None
    services = _child(root, "services")
    spec = _child(services, service) if services is not None else None
    node = _child(spec, "image") if spec is not None else None
    return (text, node) if isinstance(node, yaml.ScalarNode) else None


def _child(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if not isinstance(node, yaml.MappingNode):
        return None
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _tag_in_value(deployment: ComposeProject, path: Path, text: str, node: yaml.ScalarNode, tag: str) -> TagSource:
    raw = node.value
    start, end = node.start_mark.index, node.end_mark.index
    written = text[start:end]
    raw_tag = _written_tag(raw)
    if raw_tag is None:
        raise ProjectError(f"the image of service '{deployment.service}' in {path.name} has no tag ({raw}); write one")
    if "$" not in raw_tag:
        if raw_tag != tag:
            raise ProjectError(f"{path.name} gives service '{deployment.service}' the tag {raw_tag}, Compose says {tag}; "
                               "check the Compose files")
        at = written.rfind(":" + tag) + 1
        if at <= 0 or node.style not in (None, "'", '"'):
            raise ProjectError(f"cannot find the tag {tag} in the image line of {path.name}; write the image on one "
                               f"line (image: {raw})")
        return TagSource(str(path), start + at, start + at + len(tag), None, text.encode("utf-8"))
    match = _VARIABLE.match(raw_tag)
    if match is None:
        raise ProjectError(f"the image tag of service '{deployment.service}' is {raw_tag} in {path.name}: only a whole "
                           "tag or one ${VARIABLE} can be changed; write the tag or one variable")
    variable = match.group("braced") or match.group("bare")
    if variable in os.environ:
        raise ConfigError(f"the image tag comes from {variable}, which this shell's environment sets (it wins over "
                          f"{deployment.directory / '.env'}); unset it and set it in .env, then try again")
    env_path = deployment.directory / ".env"
    if env_path.is_file():
        env_text = env_path.read_bytes().decode("utf-8")
        found = None
        for line in re.finditer(rf"^[ \t]*(?:export[ \t]+)?{variable}[ \t]*=[ \t]*(?P<q>[\"']?)(?P<value>[^\"'\s#]*)(?P=q)",
                                env_text, re.MULTILINE):
            found = line  # the last assignment wins
        if found is not None:
            if found.group("value") != tag:
                raise ProjectError(f"{variable} is {found.group('value')!r} in {env_path}, but Compose says the tag is "
                                   f"{tag}; check the files")
            return TagSource(str(env_path), found.start("value"), found.end("value"), variable,
                             env_text.encode("utf-8"))
    default = match.group("default") if match.group("op") in (":-", "-") else None
    if default == tag:
        at = written.rfind(default + "}") if default else -1
        if at >= 0:
            return TagSource(str(path), start + at, start + at + len(default), variable, text.encode("utf-8"))
    raise ProjectError(f"the image tag comes from {variable}, which {env_path} does not set; set it there "
                       f"({variable}={tag}) so the upgrade can change it")


def _written_tag(raw: str) -> str | None:
    """The tag of an image as written, variables uninterpolated (a ":" inside ``${...}`` is not the tag's)."""
    depth, slash, colon = 0, -1, None
    for index, char in enumerate(raw):
        if raw.startswith("${", index):
            depth += 1
        elif char == "}" and depth:
            depth -= 1
        elif depth == 0 and char == "/":
            slash, colon = index, None
        elif depth == 0 and char == ":" and colon is None and index > slash:
            colon = index
        elif depth == 0 and char == "@":
            return raw[colon + 1:index] if colon is not None else None
    return raw[colon + 1:] if colon is not None else None


def _edited(source: TagSource, version: str) -> bytes:
    text = source.original.decode("utf-8")
    return (text[:source.start] + version + text[source.end:]).encode("utf-8")


def set_tag(plan: VersionPlan, version: str) -> str:
    """Write ``version`` in place of the tag (only those characters change); Compose must then resolve the
    service's image to the target image. Returns the file changed."""
    assert plan.compose is not None
    source = plan.compose.tag
    path = Path(source.path)
    if path.read_bytes() != source.original:
        raise ProcedureFailed(f"{path} changed since the upgrade was planned; nothing was edited")
    _atomic_write(path, _edited(source, version))
    image = load(plan).compose.image()  # type: ignore[union-attr]
    if image != plan.compose.target_image:
        raise ProcedureFailed(f"after changing {source.describe()} Compose gives service '{plan.compose.service}' the "
                              f"image {image}, not {plan.compose.target_image}")
    return str(path)


def put_back_tag(plan: VersionPlan) -> str:
    """The edited file's bytes as they were before the upgrade (a file someone else changed meanwhile is left
    alone: that is an error naming it)."""
    assert plan.compose is not None
    source = plan.compose.tag
    path = Path(source.path)
    now = path.read_bytes()
    if now == _edited(source, plan.target):
        _atomic_write(path, source.original)
    elif now != source.original:
        raise ProcedureFailed(f"{path} was changed by someone else during the upgrade; put the tag "
                              f"{plan.current} back in it by hand")
    return str(path)


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.directus-ops")
    temporary.write_bytes(data)
    os.chmod(temporary, path.stat().st_mode & 0o7777)
    os.replace(temporary, path)


# -- the service ------------------------------------------------------------------------------------------------
def stop_service(plan: VersionPlan) -> None:
    deployment = _deployment(plan)
    process.run(deployment.argv("stop", deployment.service), cwd=deployment.directory, timeout=SERVICE_TIMEOUT)


def start_service(plan: VersionPlan) -> None:
    """``up -d --no-deps``: the service's container recreated when its image changed, else started."""
    deployment = _deployment(plan)
    process.run(deployment.argv("up", "-d", "--no-deps", deployment.service), cwd=deployment.directory,
                timeout=SERVICE_TIMEOUT)


def _deployment(plan: VersionPlan) -> ComposeProject:
    assert plan.compose is not None
    return compose.load_compose(plan.compose.directory, plan.compose.service)


def migrate(plan: VersionPlan) -> list[str]:
    """The target image's ``migrate:latest`` in a one-off container of the service (its environment and mounts,
    the edited tag); on failure the error names the migration. The applied set must then be the expected one."""
    from .upgrade import _error_line, check_applied

    deployment = _deployment(plan)
    args = deployment.argv("run", "--rm", "--no-deps", "-T", "--entrypoint", "node", deployment.service,
                           "/directus/cli.js", "database", "migrate:latest")
    try:
        process.run(args, cwd=deployment.directory, timeout=MIGRATE_TIMEOUT)
    except process.ProcessFailed as exc:
        applied = set(_history(load(plan)))
        pending = [k for k in plan.expected_after if k not in applied]
        where = f"migration {pending[0]}" if pending else "a migration"
        name = directus_cli.failing_migration(exc.output_tail)
        detail = _error_line(exc.output_tail) or str(exc)
        raise ProcedureFailed(f"{where}{f' ({name})' if name else ''} failed: {detail}") from None
    return check_applied(plan, _history(load(plan)))


# -- health -----------------------------------------------------------------------------------------------------
def service_url(project: Project) -> str:
    """Where the Directus service answers from this host (compose.ComposeProject.app_url: PUBLIC_URL on this host's
    loopback, else the published port of its PORT, else 127.0.0.1:PORT); --url overrides it."""
    assert project.compose is not None
    return project.compose.app_url({k: v for k in ("PUBLIC_URL", "PORT") if (v := project.config.text(k))})


def check_running(plan: VersionPlan, image: str, url: str | None, timeout: float = HEALTH_TIMEOUT) -> dict:
    """The service's running container runs ``image`` and answers ``/server/ping`` with pong."""
    project = load(plan)
    deployment = project.compose
    assert deployment is not None
    base = url or service_url(project)
    wanted = _image_id(image)
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        container = deployment.container_id(running=False)
        if container is not None:
            state, running = process.output([compose.docker_cli(), "inspect", "--format",
                                             "{{.State.Status}} {{.Image}}", container],
                                            timeout=compose.TIMEOUT).split()[-2:]
            if running != wanted:
                raise ProcedureFailed(f"service '{deployment.service}' runs image {running[:19]}, not {image}")
            if state in ("exited", "dead"):
                raise ProcedureFailed(f"service '{deployment.service}' ({image}) exited while starting: "
                                      f"{_last_error(deployment, container)}")
            answering, last = directus_api.ping(base)
            if answering:
                version = compose.version_of_tag(compose._image_name_and_tag(image)[1])
                return {"status": "pong", "version": version, "url": base, "image": image}
        else:
            last = "it has no container"
        if time.monotonic() >= deadline:
            raise DirectusApiError(f"service '{deployment.service}' ({image}) did not answer {base}/server/ping within "
                                   f"{timeout:.0f} s ({last}); see `docker compose logs {deployment.service}`")
        time.sleep(1)


def _last_error(deployment: ComposeProject, container: str) -> str:
    from .upgrade import _error_line

    try:
        out = process.run([compose.docker_cli(), "logs", "--tail", "60", container], timeout=compose.TIMEOUT, quiet=True)
    except process.ProcessFailed as exc:
        out = exc.output_tail
    return _error_line(out) or process.failure_cause(out) or f"see `docker compose logs {deployment.service}`"

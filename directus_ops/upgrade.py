"""Upgrade and downgrade of a project's Directus, as plain steps the flows compose: preflight plans (checked
before anything changes), package files kept and put back, migrations run and checked, the app started and
health-checked afterwards (through ``app``), and the scratch copy a rehearsal runs in.

Why the order matters (``docs``/the Directus sources): migrations are not transactional, so only a restore of
the database from a snapshot taken just before is a clean way back; ``migrate:down`` loads the reverted
migration from the *installed* package, so a downgrade reverts while the newer package is still installed.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import semantic_version as semver

from . import app, directus_cli, licensing, process, releases
from . import database as db
from . import node as node_runtime
from .app import TOKEN_ENV
from .config import render_dotenv, write_private_text
from .database import DatabaseSettings
from .errors import DatabaseError, NeedsConfirmation, ProcedureFailed, ProjectError, TargetNotEmpty, VersionError
from .manifest import Manifest
from .node import SYSTEM_NODE, NodeRuntime
from .project import PACKAGE_FILES, Project, installed_directus_version, load_project
from .repository import Repository

if TYPE_CHECKING:
    from .compose_upgrade import ComposeTarget

log = logging.getLogger("directus_ops.upgrade")

CUSTOM_MIGRATION = re.compile(r"^[^.]*-.*\.(c|m)?js$")  # how Directus picks files in MIGRATIONS_PATH


@dataclass
class VersionPlan:
    """What an upgrade or downgrade will do, decided before anything changes."""

    project_dir: str
    config_path: str
    current: str
    target: str
    applied: list[str]  # in the order Directus applied them
    custom: list[str]  # keys of the project's own migrations (MIGRATIONS_PATH)
    expected_after: list[str]  # the applied set once done: the target's built-in ones + the custom ones
    to_revert: list[str] = field(default_factory=list)  # downgrade: newest first
    warnings: list[str] = field(default_factory=list)
    node_dir: str | None = None  # the Node the target runs on (None: the machine's)
    current_node_dir: str | None = None  # the Node the installed version runs on: the rollback's
    license_notice: str | None = None  # into Directus 12's licensing: what the project gets without a license
    compose: ComposeTarget | None = None  # a Docker Compose project: its service's image changes (compose_upgrade)

    @property
    def runtime(self) -> NodeRuntime:
        return NodeRuntime(Path(self.node_dir)) if self.node_dir else SYSTEM_NODE

    @property
    def current_runtime(self) -> NodeRuntime:
        return NodeRuntime(Path(self.current_node_dir)) if self.current_node_dir else SYSTEM_NODE

    def as_installed(self) -> VersionPlan:
        """This plan as the installed version runs: for the rollback's reinstall and health check."""
        return replace(self, node_dir=self.current_node_dir)

    @property
    def nothing_to_do(self) -> bool:
        return self.current == self.target


def custom_migrations(project: Project) -> list[str]:
    folder = project.migrations_path
    if not folder.is_dir():
        return []
    return sorted(p.name.split("-")[0] for p in folder.iterdir() if p.is_file() and CUSTOM_MIGRATION.match(p.name))


def installed_version(project: Project) -> str:
    version = installed_directus_version(project.root)
    if version is None:
        raise ProjectError(f"Directus is not installed in {project.root} (node_modules/directus is missing); "
                           "run `npm install` there first")
    return version


def _runtime_for(target: str, install_node: bool, current: NodeRuntime) -> NodeRuntime:
    """The Node the target needs: the machine's if it satisfies engines.node, else the one the project runs on
    now if that does, else (with ``install_node``) fetched from the npm registry, else a clear refusal."""
    return node_runtime.for_version(target, fetch=install_node, known=current)


def _history(project: Project) -> list[str]:
    with db.connect(project.database) as conn:
        return db.migration_history(conn)


def _check_consistent(project: Project, current: str, applied: list[str], custom: list[str]) -> None:
    """The database must be where its installed Directus left it: nothing half-done from an earlier attempt."""
    builtin = [m.key for m in releases.installed_migrations(project.root)]
    interrupted = sorted((project.root / ".directus-ops").glob("packages-*"))
    hint = ""
    if interrupted:  # an upgrade/downgrade killed before its rollback could run left its kept package files
        snapshot_id = interrupted[-1].name.removeprefix("packages-")
        hint = (f" (an interrupted run left {interrupted[-1]}: put its package files back, run `npm install`, and "
                f"`directus-ops restore --snapshot {snapshot_id} --replace` restores the database from before it)")
    missing = sorted(set(builtin) - set(applied))
    if missing:
        raise ProjectError(f"{len(missing)} of Directus {current}'s migrations are not applied to "
                           f"{project.database.describe()} (first {missing[0]}): an earlier upgrade may have stopped "
                           "half-way; restore a backup, or run `npx directus database migrate:latest` deliberately, "
                           f"then try again{hint}")
    unknown = sorted(set(applied) - set(builtin) - set(custom))
    if unknown:
        raise ProjectError(f"{project.database.describe()} has migrations Directus {current} does not know "
                           f"({', '.join(unknown[:3])}): it was migrated by another Directus version; install that "
                           f"version, or restore a backup made with this one{hint}")


def plan_upgrade(project_dir: str, to: str | None = None, config_path: str | None = None,
                 install_node: bool = False, service: str | None = None) -> VersionPlan:
    project = load_project(project_dir, config_path, service=service)
    if project.compose is not None:  # Docker Compose: the service's image is the installed Directus
        from . import compose_upgrade

        return compose_upgrade.plan(project, to)
    current = installed_version(project)
    if to:
        target = releases.check_published(str(releases.parse_version(to)))
    else:
        wanted = json.loads((project.root / "package.json").read_text()).get("dependencies", {}).get("directus")
        if not wanted:
            raise ProjectError(f"{project.root}/package.json does not depend on directus; pass --to VERSION")
        in_range = releases.version_in_range(wanted)
        if in_range is None:
            raise VersionError(f"no published directus matches {wanted!r} (package.json); pass --to VERSION")
        target = in_range
    if semver.Version(target) < semver.Version(current):
        raise VersionError(f"directus@{target} is older than the installed {current}; to go back use "
                           f"`directus-ops downgrade {project.root} --to {target}`")
    current_runtime = node_runtime.for_project(project.root)
    runtime = _runtime_for(target, install_node, current_runtime) if target != current else current_runtime
    applied = _history(project)
    custom = custom_migrations(project)
    _check_consistent(project, current, applied, custom)
    expected = sorted({m.key for m in releases.release_migrations(target)} | set(custom))
    return VersionPlan(str(project.root), str(project.config_path), current, target, applied, custom, expected,
                       node_dir=_dir(runtime), current_node_dir=_dir(current_runtime),
                       license_notice=licensing.notice_for_upgrade(project, current, target))


def confirm_license_change(plan: VersionPlan, accepted: bool) -> None:
    """An upgrade into Directus 12's licensing goes ahead only once its notice is accepted (nothing changed yet)."""
    if plan.license_notice and not accepted:
        raise NeedsConfirmation(f"{plan.license_notice}. Re-run with --yes (a deployment: accept_license_change) "
                                "to accept this")


def plan_downgrade(project_dir: str, to: str, config_path: str | None = None, accept_data_loss: bool = False,
                   install_node: bool = False) -> VersionPlan:
    project = load_project(project_dir, config_path)
    if project.compose is not None:
        raise ProjectError(f"{project.root} is a Docker Compose project, which directus-ops cannot downgrade yet; "
                           f"restore a snapshot taken on {to} (`directus-ops restore --snapshot ID --replace`) and set "
                           f"the image tag back to {to} yourself")
    current = installed_version(project)
    target = releases.check_published(str(releases.parse_version(to)))
    if semver.Version(target) > semver.Version(current):
        raise VersionError(f"directus@{target} is newer than the installed {current}; to go forward use "
                           f"`directus-ops upgrade {project.root} --to {target}`")
    if target == current:
        raise VersionError(f"directus {current} is already installed in {project.root}; nothing to downgrade")
    current_runtime = node_runtime.for_project(project.root)
    runtime = _runtime_for(target, install_node, current_runtime)
    applied = _history(project)
    custom = custom_migrations(project)
    _check_consistent(project, current, applied, custom)
    target_keys = {m.key for m in releases.release_migrations(target)}
    newer = [k for k in reversed(applied) if k not in target_keys and k not in custom]
    # migrate:down reverts the last applied migration: the newer ones must be the last applied, in a block.
    last = list(reversed(applied))[: len(newer)]
    if last != newer:
        blocking = next(k for k in last if k not in newer)
        raise ProjectError(f"migration {blocking} was applied after Directus {current}'s own newer migrations; "
                           f"reverting down to {target} would revert it too; revert it yourself first")
    _check_revertible(project.root, current, target, newer)
    files = {m.key: m for m in releases.installed_migrations(project.root)}
    warnings = releases.down_warnings([files[k] for k in newer if k in files])
    if warnings and not accept_data_loss:
        raise NeedsConfirmation(f"downgrading to {target} reverts migrations that lose data or do nothing: "
                                + "; ".join(warnings) + ". Re-run with --yes (a deployment: accept_data_loss) to accept this")
    expected = sorted(target_keys | (set(custom) & set(applied)))
    return VersionPlan(str(project.root), str(project.config_path), current, target, applied, custom, expected,
                       to_revert=newer, warnings=warnings, node_dir=_dir(runtime),
                       current_node_dir=_dir(current_runtime))


def _check_revertible(root: Path, current: str, target: str, to_revert: list[str]) -> None:
    """Refuse, before anything changes, a downgrade whose migrate:down chain the installed package cannot finish
    (releases.blocked_revert); name the release that can, for a downgrade in two steps."""
    blocked = releases.blocked_revert(root, to_revert)
    if blocked is None:
        return
    key = blocked.migration.split("-", 1)[0]
    via = releases.oldest_release_with(key, target, current)
    steps = (f"downgrade in two steps, `--to {via}` first (directus@{via} reverts {key} with its own code), then "
             f"`--to {target}`, or " if via else "")
    raise VersionError(f"directus@{current} cannot revert {blocked.migration} on the way to {target}: its down() "
                       f"reads {blocked.reads}, which reverting {blocked.after} removes before it (a limit of "
                       f"Directus's own down-migrations); {steps}restore a snapshot taken on {target} "
                       f"(`directus-ops restore --snapshot ID --replace`, then `npm install directus@{target}`)")


def _dir(runtime: NodeRuntime) -> str | None:
    return str(runtime.node_dir) if runtime.node_dir else None


# -- package files --------------------------------------------------------------------------------------------------
def keep_package_files(project_dir: str, run_id: str) -> str:
    """Copy package.json and package-lock.json aside (inside the project: they survive a crash of this run)."""
    root = Path(project_dir)
    kept = root / ".directus-ops" / f"packages-{run_id}"
    kept.mkdir(parents=True, exist_ok=True)
    for name in PACKAGE_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, kept / name)
    return str(kept)


def put_back_package_files(project_dir: str, kept: str, runtime: NodeRuntime) -> str | None:
    """Restore the kept package files and reinstall node_modules from them; the installed version after."""
    root = Path(project_dir)
    for name in PACKAGE_FILES:
        if (Path(kept) / name).is_file():
            shutil.copy2(Path(kept) / name, root / name)
        elif (root / name).exists():
            (root / name).unlink()  # it did not exist before
    directus_cli.npm_reinstall(root, runtime)
    return installed_directus_version(root)


def drop_kept_package_files(kept: str) -> None:
    shutil.rmtree(kept, ignore_errors=True)
    with_parent = Path(kept).parent
    if with_parent.name == ".directus-ops" and not any(with_parent.iterdir()):
        with_parent.rmdir()


# -- migrations -----------------------------------------------------------------------------------------------------
def migrate_latest(plan: VersionPlan, project_dir: str | None = None, config_path: str | None = None) -> list[str]:
    """``migrate:latest`` with the project's own config (``CONFIG_PATH``: its .env would override anything
    else); on failure the error names the migration that failed."""
    root = Path(project_dir or plan.project_dir)
    config = Path(config_path or plan.config_path)
    try:
        directus_cli.migrate(root, "migrate:latest", config, plan.runtime)
    except process.ProcessFailed as exc:
        project = load_project(root, config)
        applied = set(_history(project))
        pending = [k for k in plan.expected_after if k not in applied]
        where = f"migration {pending[0]}" if pending else "a migration"
        name = directus_cli.failing_migration(exc.output_tail)
        detail = _error_line(exc.output_tail) or str(exc)
        raise ProcedureFailed(f"{where}{f' ({name})' if name else ''} failed: {detail}") from None
    return check_migrations(plan, root, config)


def check_migrations(plan: VersionPlan, project_dir: Path | None = None, config_path: Path | None = None) -> list[str]:
    project = load_project(project_dir or plan.project_dir, config_path or plan.config_path)
    return check_applied(plan, _history(project))


def check_applied(plan: VersionPlan, history: list[str]) -> list[str]:
    applied = sorted(history)
    if applied != plan.expected_after:
        missing = sorted(set(plan.expected_after) - set(applied))
        extra = sorted(set(applied) - set(plan.expected_after))
        raise ProcedureFailed(f"applied migrations differ from directus@{plan.target}'s: missing {missing or 'none'}, "
                              f"unexpected {extra or 'none'}")
    return applied


def revert_one(plan: VersionPlan, key: str) -> None:
    """One ``migrate:down`` (newer package still installed), checked to have reverted exactly ``key``."""
    project = load_project(plan.project_dir, plan.config_path)
    before = _history(project)
    if not before or before[-1] != key:
        raise ProcedureFailed(f"expected {key} to be the last applied migration, found {before[-1] if before else 'none'}")
    try:  # on the installed (newer) package's Node: its native modules are built for that one
        directus_cli.migrate(project.root, "migrate:down", project.config_path, plan.current_runtime)
    except process.ProcessFailed as exc:
        raise ProcedureFailed(f"migrate:down of {key} failed: {_error_line(exc.output_tail) or exc}") from None
    after = _history(project)
    if after != before[:-1]:
        raise ProcedureFailed(f"migrate:down was to revert {key} but the applied set changed otherwise "
                              f"({len(before)} -> {len(after)} migrations)")


def _error_line(output: str) -> str | None:
    """The error Directus printed: the first line of its stack ("Error: ..."), else its "message" field."""
    lines = output.splitlines()
    for line in lines:
        match = re.match(r"^\s*(?:\[[^\]]*\]\s*)?([A-Za-z]*Error): (.+)$", line)
        if match:
            return _shortened(f"{match.group(1)}: {match.group(2).strip()}")
    for line in reversed(lines):
        match = re.search(r'"message":\s*"((?:[^"\\]|\\.)+)"', line)  # one JSON string
        if match:
            try:
                message = json.loads(f'"{match.group(1)}"')  # a JSON log line: its escapes undone
            except ValueError:
                message = match.group(1)
            return _shortened(message)
    return None


def _shortened(message: str, limit: int = 300) -> str:
    """At most ``limit`` characters. A database error as knex words it, "<statement> - <reason>", keeps its
    reason (relation "x" already exists, column "y" does not exist): the statement is what gets cut."""
    if len(message) <= limit:
        return message
    statement, separator, reason = message.rpartition(" - ")
    if separator and len(reason) < limit // 2:
        return f"{statement[:limit - len(reason) - 6]}… - {reason}"
    return message[:limit]


# -- the app after the change ----------------------------------------------------------------------------------------
def check_started(plan: VersionPlan, version: str, start_command: str | None, url: str | None) -> dict:
    """Start the app with the operator's command and check it at ``url``; without a command, start Directus
    on a free port with the project's config and check that (the project itself is left stopped)."""
    installed = installed_directus_version(Path(plan.project_dir))
    if installed != version:
        raise ProcedureFailed(f"node_modules holds directus {installed}, expected {version}")
    if start_command:
        app.run_command(start_command, plan.project_dir, "starting the app")
        if not url:
            return {"status": "started (no --url to check)", "version": installed}
        result = app.health(url, version)
    else:
        with app.check_server(load_project(plan.project_dir, plan.config_path), plan.runtime) as base:
            result = app.health(base, version)
    if result["version"] is None:
        log.info("Directus answers health %s; version %s (from the installed package: set %s to an admin token "
                 "to have the server report its own)", result["status"], installed, TOKEN_ENV)
        result["version"] = installed
    return result


# -- rehearsal -------------------------------------------------------------------------------------------------------
def scratch_database_for(project: Project, scratch_url: str | None, work_dir: Path) -> DatabaseSettings:
    """The rehearsal's database: the given URL, or a new database next to the project's (same server)."""
    if scratch_url:
        return DatabaseSettings.from_url(scratch_url)
    settings = project.database
    if settings.engine == "sqlite":
        return DatabaseSettings.from_url(f"sqlite:///{work_dir / 'rehearsal.db'}")
    return replace(settings, database=f"{settings.database}_rehearsal_{uuid.uuid4().hex[:8]}")


def copy_project(project: Project, destination: Path) -> Path:
    """The project tree without its local storage (migrations never read files), node_modules dereferenced
    when it is a link (an install there must not write into what the link points at)."""
    skip = {Path(l.root).resolve() for l in project.storage if l.driver == "local"}
    skip.add((project.root / ".directus-ops").resolve())
    if project.database.filename is not None:  # the SQLite file: the rehearsal has its own database
        skip.add(Path(project.database.filename).resolve())

    def ignore(directory: str, names: list[str]) -> set[str]:
        return {n for n in names if (Path(directory) / n).resolve() in skip
                or (Path(directory) == project.root and n == "node_modules")}

    shutil.copytree(project.root, destination, symlinks=True, ignore=ignore)
    modules = project.root / "node_modules"
    if modules.exists():
        # cp -a keeps the install's own symlinks (node_modules/.bin) and is several times faster than Python.
        process.run(["cp", "-a", f"{modules.resolve()}/.", str(destination / "node_modules")], timeout=1800)
    return destination


@dataclass
class Rehearsal:
    work_dir: str
    project_dir: str  # the scratch copy
    config_path: str  # its config: the scratch database, through CONFIG_PATH
    database: DatabaseSettings
    created_database: bool


def prepare_rehearsal(plan: VersionPlan, repo: Repository, manifest: Manifest, scratch_url: str | None,
                      work_dir: Path) -> Rehearsal:
    """A scratch copy of the project whose config points at a scratch database holding the snapshot's data."""
    project = load_project(plan.project_dir, plan.config_path)
    scratch = scratch_database_for(project, scratch_url, work_dir)
    if scratch.describe() == project.database.describe():
        raise ProjectError(f"the scratch database {scratch.describe()} is the project's own; name another")
    if db.database_exists(scratch) and db.table_count(scratch):
        raise TargetNotEmpty(f"scratch database {scratch.describe()} is not empty; name one that does not exist "
                                "(the rehearsal creates it and drops it afterwards)")
    from .snapshot_restore import require_database

    info = require_database(manifest)  # a snapshot taken without its database cannot be rehearsed on
    created = not db.database_exists(scratch)
    rehearsal = Rehearsal(str(work_dir), str(work_dir / "project"), "", scratch, created)
    if created:
        try:
            db.ensure_database(scratch, info.charset, info.collation)
        except DatabaseError as exc:
            if scratch_url:
                raise
            raise DatabaseError(f"{exc}; or pass --scratch-database URL (a database the rehearsal may fill and "
                                "drop, on a server where it may be created)") from None
    try:
        _fill_rehearsal(plan, project, rehearsal, repo, manifest)
    except BaseException:
        clean_up_rehearsal(rehearsal)  # nothing of a half-prepared rehearsal stays behind
        raise
    return rehearsal


def _fill_rehearsal(plan: VersionPlan, project: Project, rehearsal: Rehearsal, repo: Repository,
                    manifest: Manifest) -> None:
    from .snapshot_restore import load_database

    work_dir = Path(rehearsal.work_dir)
    scratch = rehearsal.database
    copy_project(project, Path(rehearsal.project_dir))
    staging = work_dir / "staging"
    staging.mkdir(exist_ok=True)
    load_database(repo, manifest, scratch, replace=False, staging_dir=staging)
    config = work_dir / "rehearsal.env"
    source = Path(plan.config_path)
    if source.is_relative_to(project.root):  # the copy's own config file, so relative paths stay the copy's
        source = Path(rehearsal.project_dir) / source.relative_to(project.root)
    copy = load_project(rehearsal.project_dir, source)
    values = {k: v for k, v in copy.config.values.items() if k in copy.config.file_keys and k not in db.DB_CONFIG_KEYS}
    values.update(scratch.config_values())
    write_private_text(config, render_dotenv(values))  # it holds the project's secrets
    rehearsal.config_path = str(config)
    if load_project(rehearsal.project_dir, config).database.describe() != scratch.describe():
        raise ProjectError("the rehearsal config does not point at the scratch database; refusing to migrate")


def clean_up_rehearsal(rehearsal: Rehearsal) -> None:
    try:
        if rehearsal.created_database:
            db.drop_database(rehearsal.database)
        else:
            db.clear_database(rehearsal.database)
    finally:
        shutil.rmtree(rehearsal.work_dir, ignore_errors=True)

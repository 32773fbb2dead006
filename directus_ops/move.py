"""Moving a project to a new database (same engine or another), new storage, or both: the plain steps the
move flow composes. A plan is checked before anything changes; copies are verified (per-table row counts and
content checksums here, every file's sha256 read back in ``storage_copy``); the new config is written beside
the old one; a cutover stops the app, copies what changed, switches the config atomically and starts the app
(``app``), putting the old config back on any failure.

The source is never written, except ``directus_files.storage`` when a location is renamed in the database the
project keeps (only during a cutover, with the app stopped, and put back on failure).
"""

from __future__ import annotations

import logging
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qs

import sqlalchemy as sa

from . import database as db
from . import compose_edit, licensing, progress
from .config import update_dotenv, write_private_text
from .database import DatabaseSettings
from .errors import ConfigError, IntegrityError, TargetNotEmpty
from .compose import ComposeProject, load_compose
from .project import Project, load_compose_project, load_project, reached_from_host
from .redact import redact, register_secret
from . import content_digest, snapshot_restore, transfer
from .repository import Repository
from .storage import StorageLocation
from .storage_copy import StorageMove

log = logging.getLogger("directus_ops.move")

# Credentials of a new S3 location that the project has none for (secrets: never options or flow parameters).
STORAGE_KEY_ENV = "DIRECTUS_OPS_STORAGE_ACCESS_KEY_ID"
STORAGE_SECRET_ENV = "DIRECTUS_OPS_STORAGE_SECRET_ACCESS_KEY"
BEFORE_MOVE_SUFFIX = ".before-move"
LOCATION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")  # STORAGE_<NAME>_* must be a variable name
NOT_DOTENV_SUFFIXES = (".js", ".mjs", ".cjs", ".json", ".yaml", ".yml")  # the config kinds update_dotenv cannot edit

Method = Literal["native", "transfer"]


# -- the --to-storage syntax -------------------------------------------------------------------------------------
def parse_storage_moves(values: list[str] | None) -> dict[str, str]:
    """``LOCATION=URL`` or ``LOCATION=NEW_NAME:URL`` (repeatable) -> {LOCATION: "[NEW_NAME:]URL"}."""
    parsed: dict[str, str] = {}
    for value in values or []:
        name, sep, spec = value.partition("=")
        if not sep or not name or not spec:
            raise ConfigError(f"--to-storage {value!r}: write it as LOCATION=PATH_OR_S3_URL or "
                              "LOCATION=NEW_NAME:PATH_OR_S3_URL (e.g. local=s3files:s3://bucket/uploads)")
        new_name, url = split_target(spec)
        if not url or (new_name is not None and not LOCATION_NAME.match(new_name)):
            raise ConfigError(f"--to-storage {value!r}: the new location name must be letters, digits and _ "
                              "(starting with a letter), then ':' and the path or s3:// URL")
        if name in parsed:
            raise ConfigError(f"--to-storage names location '{name}' twice; move each location once")
        parsed[name] = spec
    return parsed


def split_target(spec: str) -> tuple[str | None, str]:
    """``s3new:s3://b/p`` -> ("s3new", "s3://b/p"); ``s3://b/p`` and ``/srv/files`` -> (None, spec).

    A name is what comes before the first ':' unless that ':' starts a URL scheme's ``://``."""
    head, sep, rest = spec.partition(":")
    if not sep or rest.startswith("//") or "/" in head:
        return None, spec
    return head, rest


# -- plan --------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MovePlan:
    """What a move will do, decided (and every input checked) before anything changes."""

    project_dir: str
    config_path: str
    source: DatabaseSettings
    target: DatabaseSettings | None  # None: the project keeps its database
    method: Method | None  # native (dump/restore through a snapshot) or transfer (across engines)
    storage: tuple[StorageMove, ...]
    config_out: str | None  # where the new config goes (staged beside the config for a cutover without it)
    cutover: bool = False
    stop_command: str | None = None
    start_command: str | None = None
    url: str | None = None
    storage_names: tuple[str, ...] = ()  # STORAGE_LOCATIONS after the move
    config_staged: bool = False  # config_out is this move's own file beside the config (a cutover without --config-out)
    # A Docker Compose project whose settings live in its Compose file: the new ones go into the environment
    # of this service there (config_path is the Compose file), and the cutover stops and recreates it.
    compose_service: str | None = None
    target_existed: bool = False  # the target database was there (empty) before the move: emptied, not dropped, on failure
    warnings: tuple[str, ...] = field(default_factory=tuple)

    @property
    def database(self) -> DatabaseSettings:
        """The database the project uses after the move."""
        return self.target or self.source

    @property
    def renames(self) -> dict[str, str]:
        return {m.source.name: m.target.name for m in self.storage if m.renamed}

    @property
    def needs_repo(self) -> bool:
        return self.method == "native"


def storage_target(source: StorageLocation, spec: str, environ: Mapping[str, str] | None = None) -> StorageLocation:
    """The new location for ``source`` from ``[NEW_NAME:]URL``. An ``s3://bucket/prefix`` URL may carry
    ``?endpoint=…&region=…``; its keys come from DIRECTUS_OPS_STORAGE_ACCESS_KEY_ID/_SECRET_ACCESS_KEY, else
    from the source location when it is on S3 (bucket to bucket), else from the AWS environment."""
    environ = os.environ if environ is None else environ
    new_name, url = split_target(spec)
    url, _, query = url.partition("?")
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    unknown = set(options) - {"endpoint", "region"}
    if unknown:
        raise ConfigError(f"--to-storage {spec!r}: unknown URL option {sorted(unknown)[0]!r}; only endpoint and region")
    location = StorageLocation.from_url(new_name or source.name, url, source)
    if location.driver == "s3":
        if not location.bucket:
            raise ConfigError(f"--to-storage {spec!r}: the s3:// URL needs a bucket (s3://BUCKET/PREFIX)")
        key, secret = environ.get(STORAGE_KEY_ENV), environ.get(STORAGE_SECRET_ENV)
        register_secret(secret)
        location = replace(location, endpoint=options.get("endpoint", location.endpoint),
                           region=options.get("region", location.region),
                           key_id=key or location.key_id, secret=secret or location.secret)
    elif options:
        raise ConfigError(f"--to-storage {spec!r}: endpoint and region are options of s3:// URLs only")
    return location


def _same_place(a: StorageLocation, b: StorageLocation) -> bool:
    if a.driver != b.driver:
        return False
    if a.driver == "local":
        return Path(a.root).resolve() == Path(b.root).resolve()
    return (a.bucket, a.root.strip("/"), a.endpoint or "") == (b.bucket, b.root.strip("/"), b.endpoint or "")


def check_target_database(source: DatabaseSettings, target: DatabaseSettings) -> Method:
    """Reachable, empty (a missing PostgreSQL/MySQL database is fine: the copy creates it), and a pair the
    copy supports. Returns how the database will be copied (the plan records whether it exists)."""
    if db.same_database(source, target):
        raise ConfigError(f"--to-database is the project's own database ({target.describe()}); name a new one")
    own_tools = target.container is None  # else the server's own tools, in its container
    exists = db.database_exists(target)  # connects: DatabaseUnreachable names the server and the fix
    if exists:
        tables = db.table_count(target)
        if tables:
            raise TargetNotEmpty(f"{target.describe()} is not empty ({tables} tables); move into an empty database "
                                 "(drop and recreate it, or name a new one: a missing PostgreSQL/MySQL database is created)")
    if target.engine == source.engine:
        if source.engine == "postgresql" and own_tools:
            db.pg_tool("pg_restore")
        elif source.engine == "mysql" and own_tools:
            db.mysql_tool("client", db.server_version(target) if exists else "")
        return "native"
    supported = transfer.SUPPORTED_ENGINES
    if source.engine not in supported or target.engine not in supported:
        raise ConfigError(f"moving from {source.engine} to {target.engine} is not supported; supported engines: "
                          f"{', '.join(supported)}")
    transfer.check_transfer(source, target)  # the pair, both sides reachable, a SQLite target's folder writable
    return "transfer"


def default_url(project: Project) -> str:
    """Where the app answers by its own config: PUBLIC_URL, else localhost on PORT."""
    public = project.config.text("PUBLIC_URL")
    if public and public.startswith(("http://", "https://")):
        return public.rstrip("/")
    return f"http://127.0.0.1:{project.config.text('PORT') or 8055}"


def plan_move(project_dir: str, config_path: str | None = None, to_database: str | None = None,
              to_storage: Mapping[str, str] | None = None, config_out: str | None = None, cutover: bool = False,
              stop_command: str | None = None, start_command: str | None = None, url: str | None = None,
              repo_given: bool = False, environ: Mapping[str, str] | None = None,
              service: str | None = None) -> MovePlan:
    """Check everything a move needs before anything changes; raise the first problem as a one-line OpsError.

    A Docker Compose project: the target database's URL is as the Directus container reaches it (a service of
    the stack, e.g. ``postgresql://directus@database:5432/directus``, is reached through that service's
    container); the new settings go into the service's environment in the Compose file (or into its CONFIG_PATH
    file, when it has one); a cutover stops the service and recreates it with Compose."""
    to_storage = dict(to_storage or {})
    if not to_database and not to_storage:
        raise ConfigError("nothing to move: pass --to-database URL and/or --to-storage LOCATION=URL")
    project = load_project(project_dir, config_path, service=service)
    deployment = project.compose
    compose_env = deployment is not None and project.config_path == deployment.file
    if deployment is not None and cutover:
        stop_command = stop_command or shlex.join(deployment.argv("stop", deployment.service))
        start_command = start_command or shlex.join(deployment.argv("up", "-d", "--no-deps", deployment.service))
        url = url or deployment.app_url({k: project.config.text(k) or "" for k in ("PUBLIC_URL", "PORT")})
    if cutover and not (stop_command and start_command):
        raise ConfigError("--cutover stops and starts the app: pass --stop-command CMD and --start-command CMD")
    config_file = project.config_path.resolve()
    if (config_out or cutover) and config_file.suffix.lower() in NOT_DOTENV_SUFFIXES and not compose_env:
        raise ConfigError(f"the new config is written into a copy of the dotenv config, and {config_file.name} is not "
                          "dotenv; convert it to a .env file first")
    out = None
    if config_out:
        out = Path(config_out).expanduser().resolve()
        if out == config_file and not cutover:
            raise ConfigError(f"--config-out {out} is the project's current config; write the new one elsewhere, or "
                              "pass --cutover to switch to it")
        if out.is_dir():
            raise ConfigError(f"--config-out {out} is a directory; name the file to write (e.g. {out / '.env'})")
        if not out.parent.is_dir():
            raise ConfigError(f"--config-out {out}: folder {out.parent} does not exist; create it first")
    db.server_version(project.database)  # the source answers
    target = method = None
    target_existed = False
    if to_database:
        target = DatabaseSettings.from_url(to_database)
        if deployment is not None:
            target = reached_from_host(deployment, target)
        method = check_target_database(project.database, target)
        target_existed = db.database_exists(target)
        if method == "native" and not repo_given:
            # The dump travels as a backup snapshot: in the project's own repository it is incremental (files
            # already there are not copied again) and stays as the safety net; a throwaway one would copy
            # every storage object once more only to delete it.
            raise ConfigError(f"a move to another {target.engine} database goes through a backup snapshot: pass "
                              "--repo REPO (your backup repository; the snapshot stays there as the safety net)")
    moves = []
    names = [l.name for l in project.storage]
    for name, spec in to_storage.items():
        source = project.location(name)
        destination = storage_target(source, spec, environ)
        if _same_place(source, destination):
            raise ConfigError(f"--to-storage {name}=…: that is where {source.describe()} is now; name a new place")
        if destination.name != name:
            # Any current name, even one being renamed itself: directus_files.storage is renamed one location
            # at a time, so a swap (a=b, b=a) would end with every file in one location.
            if destination.name.lower() in {n.lower() for n in names if n != name}:
                raise ConfigError(f"--to-storage {name}={spec}: the project already has a location "
                                  f"'{destination.name}'; pick a name no location has now")
            if not to_database and not cutover:
                raise ConfigError(f"renaming location '{name}' rewrites directus_files.storage in the database the app "
                                  "uses now: pass --cutover (the app is stopped meanwhile) or --to-database URL")
        if deployment is not None and destination.driver == "local":
            deployment.container_path(destination.root, f"--to-storage {name}=…:")  # mounted, or refused now
        moves.append(StorageMove(source, destination))
    renamed = {m.source.name: m.target.name for m in moves}
    new_names = [renamed.get(n, n) for n in names]
    if len({n.lower() for n in new_names}) != len(new_names):
        raise ConfigError("--to-storage gives two locations the same name; each location needs its own")
    for storage_move in moves:  # last: proving a local root writable creates it
        storage_move.target.check_writable()
    staged = cutover and (not out or out == config_file)
    if staged:
        out = config_file.with_name(config_file.name + ".after-move")  # staged: the switch is one rename
    # A database copy takes an activated license with it (Directus 12: bound to project id and PUBLIC_URL).
    license_note = licensing.move_notice(licensing.activated_license(project)) if target else None
    return MovePlan(project_dir=str(project.root), config_path=str(config_file), source=project.database,
                    target=target, method=method, storage=tuple(moves), config_out=str(out) if out else None,
                    cutover=cutover, stop_command=stop_command, start_command=start_command,
                    url=(url.rstrip("/") if url else default_url(project)) if cutover else url,
                    storage_names=tuple(new_names), config_staged=staged, target_existed=target_existed,
                    warnings=(license_note,) if license_note else (),
                    compose_service=deployment.service if compose_env and deployment else None)


# -- database ----------------------------------------------------------------------------------------------------
def prepare_target(plan: MovePlan, final: bool) -> None:
    """Before a copy: the first pass checks again that the target is empty (the plan checked it, but anything
    may have written there since) and never clears it; only a cutover's final pass empties it, as it then
    holds this move's own first copy."""
    assert plan.target is not None
    if final:
        if db.table_count(plan.target):
            db.clear_database(plan.target)
    else:
        db.check_restorable(plan.target, False)  # TargetNotEmpty


def remove_partial_copy(plan: MovePlan) -> str:
    """After a failed first copy: what this move put into the target removed (a database the move created
    dropped, one that was there emptied). Returns what to tell the user."""
    target = plan.target
    assert target is not None
    try:
        if plan.target_existed:
            db.clear_database(target)
            if target.engine == "sqlite" and target.filename:
                target.filename.touch()  # it was there (empty): leave it there
            return f"the partial copy in {target.describe()} was removed (it is empty again)"
        db.drop_database(target)
        return f"{target.describe()}, created by this move, was dropped again"
    except Exception as exc:  # the copy's own failure is what the user must see first; this is its footnote
        return (f"the target {target.describe()} holds this partial copy ({redact(str(exc)) or type(exc).__name__}): "
                "drop it before moving again")


def copy_native(plan: MovePlan, repo: Repository, snapshot_id: str, staging_dir: Path,
                final: bool = False) -> dict[str, int]:
    """Same engine: the snapshot's native dump restored into the target (emptied first for a cutover's
    ``final`` copy, which replaces this move's own first one). Row counts are checked against the snapshot's."""
    assert plan.target is not None
    prepare_target(plan, final)
    return snapshot_restore.load_database(repo, repo.load_manifest(snapshot_id), plan.target, replace=False,
                                  staging_dir=staging_dir)


def copy_across(plan: MovePlan, batch_rows: int = 10_000, final: bool = False) -> dict[str, Any]:
    """The cross-engine copy: Directus's own tables created on the target by the project's Directus install
    (exactly its DDL on that engine), user tables by their Directus types, rows streamed, foreign keys and
    indexes added, sequences reset. The target is emptied first only for a cutover's ``final`` copy (it then
    holds this move's own first copy)."""
    assert plan.target is not None
    prepare_target(plan, final)
    seen: dict[str, int] = {}
    with progress.track(f"copy {plan.source.describe()} to {plan.target.describe()} (rows)") as tracker:
        def on_progress(table: str, copied: int) -> None:  # rows of ``table`` copied so far
            tracker.advance(copied - seen.get(table, 0))
            seen[table] = copied

        directus_dir = Path(plan.project_dir) if (Path(plan.project_dir) / "node_modules" / "directus").exists() else None
        report = transfer.copy_database(plan.source, plan.target, batch_rows=batch_rows, on_progress=on_progress,
                                        directus_dir=directus_dir)
    return _as_dict(report)


def _as_dict(value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if hasattr(value, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(value)
    if hasattr(value, "model_dump"):
        return value.model_dump()
    return {"result": str(value)}


@dataclass
class TableCheck:
    table: str
    source_rows: int | None
    target_rows: int | None
    source_checksum: str | None
    target_checksum: str | None

    @property
    def ok(self) -> bool:
        return self.source_rows == self.target_rows and self.source_checksum == self.target_checksum \
            and self.source_rows is not None


def _digest_fields(digest: Any) -> tuple[int, str]:
    if isinstance(digest, dict):
        return int(digest["rows"]), str(digest["checksum"])
    return int(digest.rows), str(digest.checksum)


def compare_databases(source: DatabaseSettings, target: DatabaseSettings) -> list[TableCheck]:
    """Every table's row count and content checksum on both sides (engine-independent checksums)."""
    with progress.track("checksums of every table, both sides"):
        left = content_digest.table_digests(source)
        right = content_digest.table_digests(target)
    checks = []
    for table in sorted(set(left) | set(right)):
        a = _digest_fields(left[table]) if table in left else (None, None)
        b = _digest_fields(right[table]) if table in right else (None, None)
        checks.append(TableCheck(table, a[0], b[0], a[1], b[1]))
    return checks


def raise_on_mismatch(checks: list[TableCheck], where: str) -> None:
    bad = [c for c in checks if not c.ok]
    if bad:
        first = bad[0]
        raise IntegrityError(
            f"{where}: {len(bad)} of {len(checks)} tables differ (first: {first.table}, {first.source_rows} rows on the "
            f"source, {first.target_rows} on the target); was the app writing during the copy? stop it or use --cutover")


def rename_location_rows(settings: DatabaseSettings, old: str, new: str) -> int:
    """``directus_files.storage``: every file of location ``old`` now lives in ``new``."""
    with db.connect(settings) as conn, conn.begin():
        result = conn.execute(sa.text("UPDATE directus_files SET storage = :new WHERE storage = :old"),
                              {"new": new, "old": old})
        return int(result.rowcount or 0)


def files_per_location(settings: DatabaseSettings) -> dict[str, int]:
    with db.connect(settings) as conn:
        if "directus_files" not in db.list_tables(conn):
            return {}
        return {str(k): int(n) for k, n in conn.execute(sa.text(
            "SELECT storage, count(*) FROM directus_files GROUP BY storage"))}


# -- config ------------------------------------------------------------------------------------------------------
def new_config_text(plan: MovePlan) -> str:
    """The project's config with the new DB_* and STORAGE_* settings; every other line kept as it was."""
    values: dict[str, Any] = {}
    remove: set[str] = set()
    project = load_project(plan.project_dir, service=plan.compose_service) if plan.compose_service else None
    deployment = project.compose if project else None
    if plan.target is not None:
        values.update(plan.target.config_values())
        remove |= db.DB_CONFIG_KEYS - set(values)
        if deployment is not None and plan.target.filename is not None:  # as the container sees the file
            values["DB_FILENAME"] = str(deployment.container_path(plan.target.filename, "the SQLite file"))
    for move in plan.storage:
        values.update(move.target.config_values())
        if deployment is not None and move.target.driver == "local":
            values[f"STORAGE_{move.target.name.upper()}_ROOT"] = str(deployment.container_path(move.target.root, "the root"))
        if move.renamed:
            old_prefix = f"STORAGE_{move.source.name.upper()}_"
            keys = deployment.environment() if deployment else _dotenv_keys(Path(plan.config_path))
            remove |= {k for k in keys if k.startswith(old_prefix)}
        else:  # a local target has no bucket, key or endpoint any more (and back)
            stale = {"BUCKET", "REGION", "ENDPOINT", "KEY", "SECRET", "FORCE_PATH_STYLE"} if move.target.driver == "local" else set()
            remove |= {f"STORAGE_{move.source.name.upper()}_{s}" for s in stale}
    if plan.renames:
        values["STORAGE_LOCATIONS"] = ",".join(plan.storage_names)
    if deployment is not None:
        return _compose_config_text(plan, deployment, values, remove - set(values))
    return update_dotenv(Path(plan.config_path), values, remove=frozenset(remove - set(values)))


def _compose_config_text(plan: MovePlan, deployment: ComposeProject, values: dict[str, Any], remove: set[str]) -> str:
    """The Compose file with the Directus service's environment changed. A variable to remove that an env file
    sets is set empty instead (the environment wins over env files; Directus reads empty as unset)."""
    written = _environment_keys(deployment)
    for key in remove - written:
        if key in deployment.environment():
            values[key] = ""
    return compose_edit.set_environment(Path(plan.config_path).read_text(encoding="utf-8"), deployment.service, values,
                                        frozenset(remove & written), deployment.file.name)


def _environment_keys(deployment: ComposeProject) -> set[str]:
    """The variables the Compose file itself sets in the service's ``environment:`` (not its env files)."""
    import yaml

    raw = yaml.safe_load(deployment.file.read_text(encoding="utf-8")) or {}
    env = ((raw.get("services") or {}).get(deployment.service) or {}).get("environment") or {}
    if isinstance(env, list):
        return {str(item).split("=", 1)[0] for item in env}
    return {str(key) for key in env}


def _dotenv_keys(path: Path) -> list[str]:
    keys = []
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        if match:
            keys.append(match.group(1))
    return keys


def write_config(plan: MovePlan) -> str:
    assert plan.config_out
    out = Path(plan.config_out)
    write_private_text(out, new_config_text(plan))
    # Read back through Directus's rules: the new config names the target database and locations.
    if plan.compose_service:
        moved = load_compose_project(load_compose(plan.project_dir, plan.compose_service, file=out))
    else:
        moved = load_project(plan.project_dir, out, environ={})
    if plan.target is not None and not db.same_database(moved.database, plan.target):
        raise ConfigError(f"the written config {out} does not name {plan.target.describe()}; check its DB_* lines")
    return str(out)


def switch_config(plan: MovePlan) -> str:
    """The project's config replaced by the new one (atomic rename); the old one kept as ``<config>.before-move``."""
    assert plan.config_out
    config = Path(plan.config_path)
    before = config.with_name(config.name + BEFORE_MOVE_SUFFIX)
    write_private_text(before, config.read_text(encoding="utf-8"))
    if Path(plan.config_out) != config:
        write_private_text(config, Path(plan.config_out).read_text(encoding="utf-8"))
    return str(before)


def drop_staged_config(plan: MovePlan) -> None:
    if plan.config_staged and plan.config_out:
        Path(plan.config_out).unlink(missing_ok=True)


def put_back_config(plan: MovePlan, before: str) -> None:
    """The config as it was before ``switch_config`` (which returned ``before``)."""
    config = Path(plan.config_path)
    write_private_text(config, Path(before).read_text(encoding="utf-8"))
    Path(before).unlink()



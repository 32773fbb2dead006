"""Flow parameters with titles, descriptions and validation: what the Prefect UI renders as each deployment's
form, and what the server checks (``enforce_parameter_schema``) before a run is created.

Each field type is an ``Annotated`` pydantic type, used two ways:
- directly in a flow's signature (verify and forget today): the flow keeps flat parameters, so the CLI,
  prefect.yaml, serve.py and inventories pass them unchanged, and the schema carries the checks;
- gathered into one model per flow (``BackupParameters``, ...), for validating a whole parameter set at once
  (``check_parameters``) and for the flows that will take a model after the merge.

Secrets are never parameters: S3 keys and the passphrase come from Secret blocks named by
``repo_secret_block``/``passphrase_secret_block``, database passwords from the environment; a database URL
with a password in it is refused.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.fields import FieldInfo

from directus_ops.errors import ConfigError

# An s3:// URL with a valid bucket name, or a path (no ':', so no other scheme:// slips through). No
# look-ahead: pydantic-core's regex engine has none.
_REPO_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|[^:\s][^:]*)$"
# A database URL without a password (it would be stored with the run): user@ at most.
_DATABASE_URL_PATTERN = r"^((postgresql|postgres|mysql|mariadb)(\+[a-z0-9]+)?://([^:@/]+@)?[^@/]+(/[^@]*)?|sqlite:///[^@]+)$"
_BLOCK_PATTERN = r"^[a-z0-9][a-z0-9-]*$"

RepoUrl = Annotated[str, Field(
    title="Repository", pattern=_REPO_PATTERN, min_length=1,
    description="Where the snapshots are: a directory on the worker's host (/backups/site) or s3://bucket/prefix.")]
ProjectDir = Annotated[str, Field(
    title="Project directory", min_length=1,
    description="The Directus project directory on the worker's host (holding its .env).")]
ConfigPath = Annotated[str | None, Field(
    title="Config file", description="The project's config file if not <project>/.env (Directus's CONFIG_PATH).")]
SnapshotRef = Annotated[str, Field(
    title="Snapshot", pattern=r"^(all|latest|[0-9A-Za-z-]{4,64})$",
    description="A snapshot id (or a unique part of one), 'latest', or 'all'.")]
def _keep(what: str) -> Any:
    return Annotated[int, Field(ge=0, le=100_000, title=f"Keep {what}",
                                description=f"Keep the newest snapshot of each of the last N {what} (0: no such rule).")]


KeepCount = Annotated[int, Field(ge=0, le=100_000, description="How many to keep (0: no such rule).")]
KeepLast = Annotated[int, Field(ge=0, le=100_000, title="Keep last",
                                description="Keep the N newest snapshots (the newest is always kept).")]
KeepHourly, KeepDaily, KeepWeekly, KeepMonthly, KeepYearly = (_keep(w) for w in ("hours", "days", "weeks", "months", "years"))
ReadDataPercent = Annotated[float | None, Field(
    title="Re-read data (%)", gt=0, le=100,
    description="Also re-read and re-hash this percentage of the stored bytes (empty: check sizes only).")]
ScratchDatabaseUrl = Annotated[str | None, Field(
    title="Scratch database URL", pattern=_DATABASE_URL_PATTERN,
    description="A database that does not exist yet, created and dropped by the restore drill "
                "(postgresql://user@host/db, mysql://, sqlite:///path). No password here: set "
                "DIRECTUS_OPS_DATABASE_PASSWORD on the worker.")]
DatabaseUrl = Annotated[str | None, Field(
    title="Target database URL", pattern=_DATABASE_URL_PATTERN,
    description="Restore into this database instead of the one the target config names; password from "
                "DIRECTUS_OPS_DATABASE_PASSWORD.")]
Endpoint = Annotated[str | None, Field(
    title="S3 endpoint", pattern=r"^https?://\S+$", description="The S3 endpoint URL (other than AWS).")]
Region = Annotated[str | None, Field(title="S3 region", pattern=r"^[a-z0-9-]+$", description="e.g. eu-west-1.")]
RepoSecretBlock = Annotated[str | None, Field(
    title="S3 credentials block", pattern=_BLOCK_PATTERN,
    description="Name of a Prefect Secret block holding the repository's S3 keys (JSON: aws_access_key_id, "
                "aws_secret_access_key, optional endpoint_url, region_name).")]
PassphraseSecretBlock = Annotated[str | None, Field(
    title="Passphrase block", pattern=_BLOCK_PATTERN,
    description="Name of a Prefect Secret block holding the repository passphrase (else DIRECTUS_OPS_PASSPHRASE).")]
Workers = Annotated[int, Field(title="Parallel copies", ge=1, le=64,
                               description="How many objects are copied or checked at once.")]
LockWaitSeconds = Annotated[float, Field(
    title="Repository lock wait (s)", ge=0, le=86_400,
    description="How long to wait for a conflicting repository lock (a backup during prune) before failing.")]
DirectusVersion = Annotated[str | None, Field(
    title="Directus version", pattern=r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$", description="An exact version, e.g. 11.1.0.")]


F = TypeVar("F", bound=Callable[..., Any])


def described(fn: F) -> F:
    """Put the descriptions of a function's Annotated parameters into its docstring's ``Args:`` section,
    where Prefect reads a parameter's description for the UI form (it ignores Annotated descriptions).
    Goes under ``@flow``."""
    hints = typing.get_type_hints(fn, include_extras=True)
    lines = []
    for name in inspect.signature(fn).parameters:
        metadata = getattr(hints.get(name), "__metadata__", ())
        text = " ".join(m.description for m in metadata if isinstance(m, FieldInfo) and m.description)
        if text:
            lines.append(f"    {name}: {text}")
    if lines:  # griffe needs a summary line before the Args: section
        summary = inspect.cleandoc(fn.__doc__ or "") or f"The {fn.__name__} flow."
        fn.__doc__ = summary + "\n\nArgs:\n" + "\n".join(lines)
    return fn


class _Parameters(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RepositoryOptions(_Parameters):
    repo: RepoUrl
    repo_endpoint: Endpoint = None
    repo_region: Region = None
    repo_secret_block: RepoSecretBlock = None
    passphrase_secret_block: PassphraseSecretBlock = None


class BackupParameters(RepositoryOptions):
    project_dir: ProjectDir
    config_path: ConfigPath = None
    encrypt: Annotated[bool, Field(title="Encrypt everything",
                                   description="Encrypt the dump, files and manifest too (the config always is).")] = False
    workers: Workers = 8
    lock_wait_seconds: LockWaitSeconds = 600.0
    database_scope: Annotated[Literal["entire", "system", "project", "none"], Field(
        title="Database", description="Which tables the dump holds: entire, system (directus_* only), project "
                                      "(the others) or none.")] = "entire"
    include_storage: Annotated[bool, Field(title="Storage", description="Store every storage location's objects.")] = True
    include_extensions: Annotated[bool, Field(
        title="Extensions", description="Store the extensions and migrations folders and package files.")] = True


class RestoreParameters(RepositoryOptions):
    project_dir: ProjectDir
    snapshot_id: SnapshotRef = "latest"
    config_path: ConfigPath = None
    database_url: DatabaseUrl = None
    replace: Annotated[bool, Field(title="Replace what is there",
                                   description="Empty the target database and overwrite files (after re-reading the snapshot).")] = False
    storage: Annotated[dict[str, str] | None, Field(
        title="Storage targets", description="Per storage location, a directory or s3:// URL to restore into.")] = None
    workers: Workers = 8


class VerifyParameters(RepositoryOptions):
    snapshot: SnapshotRef = "all"
    read_data_percent: ReadDataPercent = None
    restore_drill: Annotated[bool, Field(title="Restore drill",
                                         description="Restore the database into the scratch database and compare row counts.")] = False
    scratch_database_url: ScratchDatabaseUrl = None
    workers: Workers = 8


class ForgetParameters(RepositoryOptions):
    keep_last: KeepLast = 0
    keep_hourly: KeepHourly = 0
    keep_daily: KeepDaily = 0
    keep_weekly: KeepWeekly = 0
    keep_monthly: KeepMonthly = 0
    keep_yearly: KeepYearly = 0
    project: Annotated[str | None, Field(title="Project", description="Apply the policy to this project's snapshots only.")] = None
    dry_run: Annotated[bool, Field(title="Dry run", description="Only report what would be forgotten.")] = False
    prune: Annotated[bool, Field(title="Prune", description="Delete data no snapshot references any more.")] = False
    lock_wait_seconds: LockWaitSeconds = 0.0


class UpgradeParameters(RepositoryOptions):
    project_dir: ProjectDir
    to: DirectusVersion = None
    rehearse: bool = False
    scratch_database_url: ScratchDatabaseUrl = None
    config_path: ConfigPath = None
    stop_command: str | None = None
    start_command: str | None = None
    url: Annotated[str | None, Field(pattern=r"^https?://\S+$", title="Directus URL")] = None
    install_node: bool = False


class DowngradeParameters(RepositoryOptions):
    project_dir: ProjectDir
    to: Annotated[str, Field(pattern=r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$", title="Directus version")]
    accept_data_loss: Annotated[bool, Field(
        title="Accept data loss", description="Needed when a reverted migration loses data (listed before anything starts).")] = False
    config_path: ConfigPath = None
    stop_command: str | None = None
    start_command: str | None = None
    url: Annotated[str | None, Field(pattern=r"^https?://\S+$", title="Directus URL")] = None
    install_node: bool = False


MODELS: dict[str, type[_Parameters]] = {
    "backup": BackupParameters, "restore": RestoreParameters, "verify": VerifyParameters,
    "forget": ForgetParameters, "upgrade": UpgradeParameters, "downgrade": DowngradeParameters,
}


def first_problem(exc: ValidationError) -> str:
    """One line for the first problem of a validation error: the parameter and what is wrong."""
    error = exc.errors()[0]
    name = ".".join(str(p) for p in error.get("loc", ())) or "parameters"
    message = error["msg"]
    if error["type"] == "string_pattern_mismatch":
        message = f"{error.get('input')!r} is not valid here"
    elif error["type"] == "extra_forbidden":
        message = "is not a parameter of this flow"
    return f"{name}: {message}"


def check_parameters(flow_name: str, parameters: dict[str, Any]) -> _Parameters:
    """Validate a whole parameter set of a flow; a problem raises one ConfigError naming the parameter."""
    try:
        return MODELS[flow_name].model_validate(parameters)
    except ValidationError as exc:
        raise ConfigError(f"{flow_name}: parameter {first_problem(exc)}; see the field's description") from None

"""Flow parameters with titles, descriptions and validation: what the Prefect UI renders as each deployment's
form, and what the server checks (``enforce_parameter_schema``) before a run is created.

Each field type is an ``Annotated`` pydantic type used in the flows' signatures, and a flow's signature is the
one declaration of its parameters: Prefect derives the deployment's schema (the UI form) from it, a direct call
is validated against it, ``check_parameters`` validates a whole parameter set against it, and the CLI
(directus_ops/cli_binding.py) derives its options, help texts and defaults from it. A snapshot repository is
one parameter, ``RepositoryOptions`` (url, endpoint, region, secret blocks).

Secrets are never parameters: S3 keys and the passphrase come from Secret blocks named by
the repository's ``secret_block``/``passphrase_secret_block``, database passwords from the environment
(DIRECTUS_OPS_DATABASE_PASSWORD); a database URL with a password in it is refused.
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator
from pydantic.fields import FieldInfo

from directus_ops.errors import ConfigError
from directus_ops.project_lock import WaitSeconds

# An s3:// URL with a valid bucket name, or a path (no ':', so no other scheme:// slips through). No
# look-ahead: pydantic-core's regex engine has none.
_S3_URL = r"s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]"
_REPO_PATTERN = rf"^({_S3_URL}(/.*)?|[^:\s][^:]*)$"
# A storage target: the same, and an s3:// URL may carry ?endpoint=...&region=... .
_STORAGE_TARGET = rf"({_S3_URL}([/?].*)?|[^:\s][^:]*)"
# A database URL without a password (it would be stored with the run): user@ at most.
_DATABASE_URL_PATTERN = r"^((postgresql|postgres|mysql|mariadb)(\+[a-z0-9]+)?://([^:@/]+@)?[^@/]+(/[^@]*)?|sqlite:///[^@]+)$"
_V8_DATABASE_URL_PATTERN = r"^(mysql|mariadb)(\+[a-z0-9]+)?://([^:@/]+@)?[^@/]+(/[^@]*)?$"
_BLOCK_PATTERN = r"^[a-z0-9][a-z0-9-]*$"
# A path on the worker's host: anything but empty or a line break/NUL (a paste mistake).
_PATH_PATTERN = r"^[^\r\n\x00]+$"
_VERSION_PATTERN = r"^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$"
_HTTP_URL_PATTERN = r"^https?://\S+$"


def _field(title: str, description: str, **constraints: Any) -> FieldInfo:
    """A parameter's title, description and constraints. Prefect titles each parameter by its name and
    describes it from the docstring, over an Annotated title/description; ``json_schema_extra`` is merged
    last, so the schema (the UI form) shows ours."""
    return Field(title=title, description=description, json_schema_extra={"title": title, "description": description},
                 **constraints)


# -- the project, the repository -----------------------------------------------------------------------------------
ProjectDir = Annotated[str, _field(
    "Project directory", "The Directus project directory on the worker's host: an npm install (holding its .env) or a "
    "Docker Compose project (holding its compose.yaml).",
    min_length=1, pattern=_PATH_PATTERN)]
ComposeService = Annotated[str | None, _field(
    "Compose service", "A Docker Compose project's Directus service, when its Compose file has more than one.",
    min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
ConfigPath = Annotated[str | None, _field(
    "Config file", "The project's config file if not <project>/.env (Directus's CONFIG_PATH).",
    min_length=1, pattern=_PATH_PATTERN)]
RepoUrl = Annotated[str, _field(
    "Repository", "Where the snapshots are: a directory on the worker's host (/backups/site) or s3://bucket/prefix.",
    pattern=_REPO_PATTERN, min_length=1)]
OptionalRepoUrl = Annotated[str | None, _field(
    "Repository", "Where the snapshot taken first goes: a directory on the worker's host (/backups/site) or "
                  "s3://bucket/prefix (empty: no backup).",
    pattern=_REPO_PATTERN, min_length=1)]
Endpoint = Annotated[str | None, _field(
    "S3 endpoint", "The repository's S3 endpoint URL (other than AWS), e.g. https://s3.example.com.",
    pattern=_HTTP_URL_PATTERN)]
Region = Annotated[str | None, _field("S3 region", "The repository's S3 region, e.g. eu-west-1.",
                                      pattern=r"^[a-z0-9-]+$")]
RepoSecretBlock = Annotated[str | None, _field(
    "S3 credentials block", "Name of a Prefect Secret block holding the repository's S3 keys (JSON: "
                            "aws_access_key_id, aws_secret_access_key, optional endpoint_url, region_name).",
    pattern=_BLOCK_PATTERN)]
PassphraseSecretBlock = Annotated[str | None, _field(
    "Passphrase block", "Name of a Prefect Secret block holding the repository passphrase (else "
                        "DIRECTUS_OPS_PASSPHRASE on the worker).",
    pattern=_BLOCK_PATTERN)]
class RepositoryOptions(BaseModel):
    """A snapshot repository and how to reach it: one parameter of every flow that uses one (a group in the UI
    form; the CLI's --repo, --repo-endpoint, --repo-region, --repo-secret-block, --passphrase-secret-block).
    A plain string is its URL."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: RepoUrl
    endpoint: Endpoint = None
    region: Region = None
    secret_block: RepoSecretBlock = None
    passphrase_secret_block: PassphraseSecretBlock = None

    @model_validator(mode="before")
    @classmethod
    def _from_url(cls, value: Any) -> Any:
        return {"url": value} if isinstance(value, str) else value

    def __str__(self) -> str:
        return self.url


Repo = Annotated[RepositoryOptions, _field(
    "Repository", "Where the snapshots are: url, a directory on the worker's host (/backups/site) or "
                  "s3://bucket/prefix; for S3 optionally endpoint, region and secret_block; passphrase_secret_block.")]
OptionalRepo = Annotated[RepositoryOptions | None, _field(
    "Repository", "Where the snapshot taken first goes (empty: no backup): url, a directory on the worker's host "
                  "(/backups/site) or s3://bucket/prefix; for S3 optionally endpoint, region and secret_block; "
                  "passphrase_secret_block.")]

SnapshotRef = Annotated[str, _field(
    "Snapshot", "A snapshot id (or a unique part of one), 'latest', or 'all'.",
    pattern=r"^(all|latest|[0-9A-Za-z-]{4,64})$")]
RestoreSnapshot = Annotated[str, _field(
    "Snapshot", "The snapshot to restore: its id (or a unique part of one) or 'latest'.",
    pattern=r"^(latest|[0-9A-Za-z-]{4,64})$")]
Workers = Annotated[int, _field("Parallel copies", "How many objects are copied or checked at once.", ge=1, le=64)]
LockWaitSeconds = Annotated[float, _field(
    "Repository lock wait (s)", "How long to wait for a conflicting repository lock (a backup during prune) "
                                "before failing.", ge=0, le=86_400)]
ProjectWaitSeconds = WaitSeconds  # added to every mutating flow by flows/exclusive.py

# -- databases -----------------------------------------------------------------------------------------------------
_NO_PASSWORD = "No password here: set DIRECTUS_OPS_DATABASE_PASSWORD on the worker."
ScratchDatabaseUrl = Annotated[str | None, _field(
    "Scratch database URL", "A database that does not exist yet, created and dropped by the restore drill or the "
                            "upgrade rehearsal (postgresql://user@host/db, mysql://user@host/db, sqlite:///path). "
                            + _NO_PASSWORD,
    pattern=_DATABASE_URL_PATTERN)]
DatabaseUrl = Annotated[str | None, _field(
    "Target database URL", "Restore into this database instead of the one the target config names "
                           "(postgresql://user@host/db, mysql://user@host/db, sqlite:///path). " + _NO_PASSWORD,
    pattern=_DATABASE_URL_PATTERN)]
ToDatabaseUrl = Annotated[str | None, _field(
    "New database URL", "Move the database here, same or another engine (postgresql://user@host/db, "
                        "mysql://user@host/db, sqlite:///path); empty: the database stays. " + _NO_PASSWORD,
    pattern=_DATABASE_URL_PATTERN)]
DatabaseScope = Annotated[Literal["entire", "system", "project", "none"], _field(
    "Database", "Which tables the dump holds: entire, system (directus_* only), project (the others) or none.")]

# -- retention -----------------------------------------------------------------------------------------------------
_KEEP_MAX = 100_000


def _keep(what: str) -> FieldInfo:
    return _field(f"Keep {what}", f"Keep the newest snapshot of each of the last N {what} (0: no such rule).",
                  ge=0, le=_KEEP_MAX)


KeepLast = Annotated[int, _field("Keep last", "Keep the N newest snapshots (the newest is always kept).",
                                 ge=0, le=_KEEP_MAX)]
# Spelled out: mypy takes only a literal Annotated[...] as a type alias.
KeepHourly = Annotated[int, _keep("hours")]
KeepDaily = Annotated[int, _keep("days")]
KeepWeekly = Annotated[int, _keep("weeks")]
KeepMonthly = Annotated[int, _keep("months")]
KeepYearly = Annotated[int, _keep("years")]
ForgetProject = Annotated[str | None, _field(
    "Project", "Apply the policy to this project's snapshots only (its directory's name; empty: all).",
    min_length=1, pattern=r"^[^/\r\n\x00]+$")]

# -- verify --------------------------------------------------------------------------------------------------------
ReadDataPercent = Annotated[float | None, _field(
    "Re-read data (%)", "Also re-read and re-hash this percentage of the stored bytes (empty: check sizes only).",
    gt=0, le=100)]
RestoreDrill = Annotated[bool, _field(
    "Restore drill", "Restore the snapshot's database into the scratch database, compare row counts, drop it.")]

# -- upgrade, downgrade, the app -----------------------------------------------------------------------------------
UpgradeVersion = Annotated[str | None, _field(
    "Directus version", "The exact version to upgrade to, e.g. 11.1.0 (empty: the newest the package range allows).",
    pattern=_VERSION_PATTERN)]
DowngradeVersion = Annotated[str, _field(
    "Directus version", "The exact older version to go back to, e.g. 10.13.4.", pattern=_VERSION_PATTERN)]
Rehearse = Annotated[bool, _field(
    "Rehearse first", "Play the upgrade on a scratch copy of the latest snapshot first; a failed rehearsal stops "
                      "before production is touched.")]
RaiseOnFailure = Annotated[bool, _field(
    "Fail the run on a failed rehearsal", "Mark the run failed when the rehearsal fails (else it completes and "
                                          "reports the failure).")]
InstallNode = Annotated[bool, _field(
    "Install Node.js", "Install the Node.js version the target Directus needs, if the host's is too old.")]
StopCommand = Annotated[str | None, _field(
    "Stop command", "Shell command stopping the app first (e.g. systemctl stop directus; empty: not stopped).",
    min_length=1, max_length=2000)]
StartCommand = Annotated[str | None, _field(
    "Start command", "Shell command starting the app afterwards (e.g. systemctl start directus).",
    min_length=1, max_length=2000)]
AppUrl = Annotated[str | None, _field(
    "Directus URL", "Where the running app answers (e.g. http://127.0.0.1:8055), to check its health.",
    pattern=_HTTP_URL_PATTERN)]
AcceptDataLoss = Annotated[bool, _field(
    "Accept data loss", "Needed when a reverted migration loses data (listed before anything starts).")]
AcceptLicenseChange = Annotated[bool, _field(
    "Accept Directus 12's licensing", "Needed to upgrade from before 12 to 12 or later: without a license the "
                                      "project runs on the Core tier (what it loses and when is stated before "
                                      "anything starts).")]

# -- backup, restore -----------------------------------------------------------------------------------------------
Encrypt = Annotated[bool, _field("Encrypt everything",
                                 "Encrypt the dump, files and manifest too (the config always is).")]
IncludeStorage = Annotated[bool, _field("Storage", "Store every storage location's objects.")]
IncludeExtensions = Annotated[bool, _field("Extensions",
                                           "Store the extensions and migrations folders and package files.")]
Replace = Annotated[bool, _field(
    "Replace what is there", "Empty the target database and overwrite files (after re-reading the snapshot).")]
_LocationName = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_]*$")]
StorageTargets = Annotated[dict[_LocationName, Annotated[str, Field(pattern=f"^{_STORAGE_TARGET}$")]] | None, _field(
    "Storage targets", "Per storage location (its name in the config, e.g. local), a directory or s3:// URL to "
                       "restore into.")]

# -- move ----------------------------------------------------------------------------------------------------------
_MoveTarget = Annotated[str, Field(pattern=rf"^([A-Za-z][A-Za-z0-9_]*:)?{_STORAGE_TARGET}$")]  # [NEW_NAME:]URL
ToStorage = Annotated[dict[_LocationName, _MoveTarget] | None, _field(
    "New storage", "Per storage location, the directory or s3://bucket/prefix[?endpoint=URL&region=R] to move it "
                   "to, optionally renamed: NEW_NAME:URL. Keys from DIRECTUS_OPS_STORAGE_ACCESS_KEY_ID/"
                   "_SECRET_ACCESS_KEY on the worker or the source location.")]
ConfigOut = Annotated[str | None, _field(
    "New config file", "Write the new config here (the current one with the new DB_*/STORAGE_* settings, mode 0600).",
    min_length=1, pattern=_PATH_PATTERN)]
Cutover = Annotated[bool, _field(
    "Cut over", "Stop the app, copy what changed since, switch the config and start the app (the old config is "
                "put back on any failure).")]
AppTimeout = Annotated[float, _field(
    "App timeout (s)", "With cutover: how long the app gets to stop answering after the stop command, and to "
                       "answer healthy after the start command.", gt=0, le=3600)]

# -- delete --------------------------------------------------------------------------------------------------------
DeleteConfirmation = Annotated[str, _field(
    "Confirm: the project's name", "Type the project's name (its directory's name, e.g. shop for /srv/shop): "
                                   "nothing is deleted unless it matches. Asked for a dry run too.",
    min_length=1, max_length=255, pattern=r"^[^/\r\n\x00]+$")]
BackupDatabase = Annotated[Literal["entire", "system", "project", "none"], _field(
    "Back up the database", "Back up the database first: entire, system (only directus_* tables), project (only "
                            "the others) or none.")]
BackupFiles = Annotated[bool, _field("Back up files", "Back up every storage location's objects first.")]
BackupExtensions = Annotated[bool, _field(
    "Back up extensions", "Back up the custom code first: extensions and migrations folders, package.json and lock.")]
KeepRoot = Annotated[bool, _field("Keep the project directory", "Only drop the system tables; keep the directory.")]
DeleteDryRun = Annotated[bool, _field(
    "Dry run", "Only report the plan (tables, foreign keys, paths, backups); change nothing.")]
ForgetDryRun = Annotated[bool, _field("Dry run", "Only report what would be forgotten.")]
Prune = Annotated[bool, _field("Prune", "Delete data no snapshot references any more.")]

# -- v8 migration --------------------------------------------------------------------------------------------------
V8DatabaseUrl = Annotated[str, _field(
    "v8 database URL", "The v8 project's MySQL/MariaDB database: mysql://user@host:3306/db. " + _NO_PASSWORD,
    pattern=_V8_DATABASE_URL_PATTERN)]
V8Storage = Annotated[str, _field(
    "v8 upload folder", "The v8 upload folder holding originals/ (e.g. /srv/v8/public/uploads/_), or "
                        "s3://bucket/prefix.", min_length=1, pattern=_REPO_PATTERN)]
V8TargetDir = Annotated[str, _field(
    "Target project directory", "The Directus 10, 11 or 12 project directory (installed and bootstrapped, on "
                                "PostgreSQL, MySQL/MariaDB or SQLite); in api mode a local directory for the plan, "
                                "id map and report.",
    min_length=1, pattern=_PATH_PATTERN)]
V8Mode = Annotated[str, _field(
    "Mode", "How the target is written: database (straight into the target's database) or api (through the "
            "target's REST API: url, and a token from DIRECTUS_OPS_TOKEN or token_secret_block).",
    pattern=r"^(database|api)$")]
SkipCollections = Annotated[list[Annotated[str, Field(min_length=1, pattern=r"^[^,\s]+$")]] | None, _field(
    "Skip collections", "v8 collections to leave out.")]
V8DryRun = Annotated[bool, _field(
    "Dry run", "Run every check and write the plan and id map; change nothing in the target.")]
TemporaryPasswordEnv = Annotated[str | None, _field(
    "Temporary password variable", "Name of an environment variable on the worker holding a temporary password "
                                   "for the migrated users (v8's bcrypt hashes cannot carry over); never the "
                                   "password itself.", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
V8Timezone = Annotated[str, _field(
    "v8 time zone", "The time zone v8's API wrote user-collection datetimes in (its config's timezone), e.g. UTC "
                    "or Europe/Berlin.", pattern=r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")]
WorkDir = Annotated[str | None, _field(
    "Work directory", "Where the plan, id map and report go (empty: <project>/v8-migration).",
    min_length=1, pattern=_PATH_PATTERN)]
V8TargetUrl = Annotated[str | None, _field(
    "Target URL", "Api mode: the target Directus's URL (https://cms.example.com).", pattern=_HTTP_URL_PATTERN)]
TokenSecretBlock = Annotated[str | None, _field(
    "Token block", "Api mode: name of a Prefect Secret block holding an admin user's static token (else "
                   "DIRECTUS_OPS_TOKEN on the worker); never the token itself.", pattern=_BLOCK_PATTERN)]
MaxPayloadSize = Annotated[str, _field(
    "Max payload size", "Api mode: the target's MAX_PAYLOAD_SIZE (1mb, 512kb, 1048576); no request body is larger.",
    pattern=r"^\s*\d+(\.\d+)?\s*([kKmMgG]?[bB])?\s*$")]
V8StorageEndpoint = Annotated[str | None, _field(
    "v8 S3 endpoint", "S3 endpoint URL of an s3:// upload folder (keys from the worker's AWS_ACCESS_KEY_ID/"
                      "AWS_SECRET_ACCESS_KEY).", pattern=_HTTP_URL_PATTERN)]
V8StorageRegion = Annotated[str | None, _field("v8 S3 region", "S3 region of an s3:// upload folder.",
                                               pattern=r"^[a-z0-9-]+$")]
AcceptLicenseLimits = Annotated[bool, _field(
    "Accept the license's limits", "A Directus 12 target whose license lacks custom permission rules (Core): migrate "
                                   "anyway. Database mode writes v8's permissions that need them (Directus ignores "
                                   "them until a license includes the rules); api mode leaves them out (listed in "
                                   "the report).")]


_PASSWORD_IN_URL = re.compile(r"^[a-z0-9+]+://[^/@]*:[^/@]*@")


def first_problem(exc: ValidationError) -> str:
    """One line for the first problem of a validation error: the parameter and what is wrong."""
    error = exc.errors()[0]
    name = ".".join(str(p) for p in error.get("loc", ())) or "parameters"
    message = error["msg"]
    given = error.get("input")
    if error["type"] == "string_pattern_mismatch" and isinstance(given, str) and _PASSWORD_IN_URL.search(given):
        message = ("the URL has a password in it (parameters are stored with the run): give it without the "
                   "password and set DIRECTUS_OPS_DATABASE_PASSWORD on the worker")
    elif error["type"] == "string_pattern_mismatch":
        message = f"{given!r} is not valid here"
    elif error["type"] == "extra_forbidden":
        message = "is not a parameter of this flow"
    return f"{name}: {message}"


def check_parameters(flow: Any, parameters: dict[str, Any]) -> dict[str, Any]:
    """Validate a whole parameter set against the flow's own signature (the one declaration of its parameters;
    the same types Prefect's schema, the UI form and a direct call check); a problem raises one ConfigError
    naming the parameter. Returns the values as the flow receives them."""
    model = _signature_model(flow)
    try:
        validated = model.model_validate(parameters)
    except ValidationError as exc:
        raise ConfigError(f"{flow.name}: parameter {first_problem(exc)}; see the field's description") from None
    return {name: getattr(validated, name) for name in validated.model_fields_set}


@functools.cache
def _signature_model(flow: Any) -> type[BaseModel]:
    """A pydantic model of a flow function's signature (annotations and defaults as they are), refusing
    parameters the flow does not have."""
    signature = inspect.signature(flow.fn, eval_str=True)
    fields: dict[str, Any] = {
        name: (parameter.annotation, ... if parameter.default is inspect.Parameter.empty else parameter.default)
        for name, parameter in signature.parameters.items()}
    return create_model(f"{flow.name}_parameters", __config__=ConfigDict(extra="forbid"), **fields)

"""Many projects, one setup: an inventory file lists the projects; each gets a backup, a verify and a forget
deployment (named after the project) on the process work pool, with its own schedules and retention, and with
``scratch_database_url`` a weekly restore drill (``verify/<name>-drill``).

    directus-ops deploy-inventory inventory.yaml        # or: python deployments/inventory.py inventory.yaml

See inventory.example.yaml. Re-applying updates the deployments in place (same flow and name).
Entrypoints are module paths (``flows.backup.backup``), so a worker needs only this package installed —
on the host, or in the image of a Docker or Kubernetes work pool.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from directus_ops.errors import ConfigError  # noqa: E402
from flows import parameters as p  # noqa: E402

DEFAULT_POOL = "directus-ops"


def _check_cron(value: str | None) -> str | None:
    if value is None:
        return None
    from prefect.schedules import Cron

    try:
        Cron(value, timezone="UTC")
    except Exception:
        raise ValueError(f"{value!r} is not a cron expression (five fields, e.g. '17 2 * * *')") from None
    return value


class Retention(BaseModel):
    """The forget flow's keep_* parameters (their types: the same checks as a run's)."""

    model_config = ConfigDict(extra="forbid")
    keep_last: p.KeepLast = 0
    keep_hourly: p.KeepHourly = 0
    keep_daily: p.KeepDaily = 0
    keep_weekly: p.KeepWeekly = 0
    keep_monthly: p.KeepMonthly = 0
    keep_yearly: p.KeepYearly = 0

    @model_validator(mode="after")
    def keeps_something(self) -> Retention:
        if not any(self.model_dump().values()):
            raise ValueError("every keep_* is 0: give at least one (the newest snapshot is kept anyway)")
        return self


class InventoryProject(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    dir: p.ProjectDir
    repo: p.RepoUrl
    backup_cron: str = "17 2 * * *"
    forget_cron: str = "47 4 * * *"
    verify_cron: str | None = None  # no schedule: verify on demand only
    verify_read_data_percent: p.ReadDataPercent = 10
    # The weekly restore drill: only with a scratch database (no password in it: the worker's
    # DIRECTUS_OPS_DATABASE_PASSWORD).
    scratch_database_url: p.ScratchDatabaseUrl = None
    drill_cron: str = "30 6 * * 0"
    timezone: str = "UTC"
    # Given, it replaces the default policy as a whole (a keep_* not named is 0).
    retention: Retention = Field(default_factory=lambda: Retention(keep_last=7, keep_daily=14, keep_weekly=8,
                                                                   keep_monthly=12))
    tags: list[str] = Field(default_factory=list)

    @field_validator("backup_cron", "forget_cron", "verify_cron", "drill_cron")
    @classmethod
    def cron(cls, value: str | None) -> str | None:
        return _check_cron(value)

    @field_validator("timezone")
    @classmethod
    def known_timezone(cls, value: str) -> str:
        import zoneinfo

        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name (e.g. UTC, Europe/Berlin)") from None
        return value

    @field_validator("dir")
    @classmethod
    def absolute(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"{value!r} is relative: give the project's absolute path on the worker's host")
        return value


class Inventory(BaseModel):
    model_config = ConfigDict(extra="forbid")
    work_pool: str = DEFAULT_POOL
    work_queue: str | None = None
    projects: list[InventoryProject] = Field(min_length=1)

    @model_validator(mode="after")
    def unique_names(self) -> Inventory:
        seen: set[str] = set()
        for project in self.projects:
            if project.name in seen:
                raise ValueError(f"project name {project.name!r} appears twice: names name the deployments")
            seen.add(project.name)
        return self


def _location(error: ErrorDetails, raw: Any) -> str:
    path = list(error.get("loc", ()))
    where = ""
    if len(path) >= 2 and path[0] == "projects" and isinstance(path[1], int):
        index = path[1]
        name = ""
        if isinstance(raw, dict) and isinstance(raw.get("projects"), list) and index < len(raw["projects"]):
            entry = raw["projects"][index]
            name = f" ({entry.get('name')})" if isinstance(entry, dict) and entry.get("name") else ""
        where = f"project #{index + 1}{name}"
        path = path[2:]
    field = ".".join(str(p) for p in path)
    return ", ".join(p for p in (where, field) if p) or "top level"


def load_inventory(path: str | Path) -> Inventory:
    """Read and check an inventory; a bad entry raises one ConfigError naming the file, the project and the fix."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"inventory {path}: cannot be read ({exc.strerror}); give the path of an inventory YAML file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"inventory {path}: not valid YAML{line}; fix the syntax (see inventory.example.yaml)") from None
    try:
        return Inventory.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        message = re.sub(r"^(Value error|Assertion failed), ", "", first["msg"])
        if first["type"] == "missing":
            message = "is missing"
        elif first["type"] == "extra_forbidden":
            message = "is not a known key (see inventory.example.yaml)"
        elif first["type"] == "string_pattern_mismatch":  # the value (or that it holds a password), not the regex
            message = p.first_problem(exc).split(": ", 1)[1] + " (see inventory.example.yaml)"
        raise ConfigError(f"inventory {path}: {_location(first, raw)}: {message}") from None


def project_deployments(project: InventoryProject, inventory: Inventory) -> list[Any]:
    """The backup, verify and forget deployments of one project, and its drill if it names a scratch database
    (not yet applied). Each one's parameters are checked against its flow's own signature, as a run's are."""
    from prefect.deployments.runner import EntrypointType
    from prefect.schedules import Cron

    from flows.backup import backup
    from flows.forget import forget
    from flows.verify import verify

    def checked(flow: Any, parameters: dict[str, Any]) -> dict[str, Any]:
        try:
            p.check_parameters(flow, parameters)
        except ConfigError as exc:
            raise ConfigError(f"project {project.name}: {exc}") from None
        return parameters

    tags = ["directus", f"project:{project.name}", *project.tags]
    common: dict[str, Any] = {"entrypoint_type": EntrypointType.MODULE_PATH, "enforce_parameter_schema": True,
                              "work_queue_name": inventory.work_queue}
    repo = {"url": project.repo}  # the flows' repository parameter (the inventory names only its URL)
    verify_parameters: dict[str, Any] = {"repo": repo, "snapshot": "all"}
    if project.verify_read_data_percent:
        verify_parameters["read_data_percent"] = project.verify_read_data_percent
    result = [
        backup.to_deployment(name=project.name, parameters=checked(backup, {"project_dir": project.dir, "repo": repo}),
                             schedules=[Cron(project.backup_cron, timezone=project.timezone)], tags=[*tags, "backup"],
                             description=f"Back up {project.name} ({project.dir}) into {project.repo}.", **common),
        verify.to_deployment(name=project.name, parameters=checked(verify, verify_parameters),
                             schedules=[Cron(project.verify_cron, timezone=project.timezone)] if project.verify_cron else [],
                             tags=[*tags, "verify"], description=f"Verify {project.name}'s snapshots in {project.repo}.",
                             **common),
        forget.to_deployment(name=project.name,
                             parameters=checked(forget, {"repo": repo, **project.retention.model_dump(),
                                                         "prune": True, "lock_wait_seconds": 3600}),
                             schedules=[Cron(project.forget_cron, timezone=project.timezone)],
                             tags=[*tags, "retention"],
                             description=f"Apply {project.name}'s retention to {project.repo} and prune.", **common),
    ]
    if project.scratch_database_url:
        result.append(verify.to_deployment(
            name=f"{project.name}-drill",
            parameters=checked(verify, {"repo": repo, "snapshot": "latest", "restore_drill": True,
                                        "scratch_database_url": project.scratch_database_url}),
            schedules=[Cron(project.drill_cron, timezone=project.timezone)], tags=[*tags, "verify", "drill"],
            description=f"Restore drill of {project.name}: its latest snapshot's database restored into "
                        f"{project.scratch_database_url}, row counts compared, dropped.", **common))
    return result


def apply_inventory(path: str | Path) -> list[str]:
    """Create or update every project's deployments; returns their names (``flow/deployment``). Every one is
    built and checked before any is applied: a bad entry deploys nothing."""
    inventory = load_inventory(path)
    try:
        deployments = [d for project in inventory.projects for d in project_deployments(project, inventory)]
    except ConfigError as exc:
        raise ConfigError(f"inventory {path}: {exc}") from None
    names = []
    for deployment in deployments:
        deployment.apply(work_pool_name=inventory.work_pool)
        names.append(f"{deployment.flow_name}/{deployment.name}")
    return names


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        raise SystemExit("usage: python deployments/inventory.py INVENTORY.yaml")
    try:
        for name in apply_inventory(args[0]):
            print(name)
    except ConfigError as exc:
        raise SystemExit(f"directus-ops: {exc}") from None


if __name__ == "__main__":
    main()

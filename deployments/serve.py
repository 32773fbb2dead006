"""Serve the flows from one process, no work pool needed: the simplest way to run nightly backups on the
host that runs Directus.

    DIRECTUS_PROJECT_DIR=/srv/directus DIRECTUS_OPS_REPO=/backups/directus python deployments/serve.py
    (or: directus-ops serve)

Every flow defined in a module of ``flows/`` is served (a new procedure joins by existing), as a deployment
named like the flow, with ``project_dir`` and ``repo`` (its ``url``) filled in where the flow takes them, and the
schedule and defaults of ``SCHEDULED`` / ``DEFAULTS`` below. With DIRECTUS_OPS_SCRATCH_DATABASE_URL (a database
that does not exist yet, no password in the URL: DIRECTUS_OPS_DATABASE_PASSWORD), a ``verify-drill`` deployment
also restores the latest snapshot's database into it weekly (the restore drill). Schedules pause while this
process is stopped.
"""

from __future__ import annotations

import importlib
import os
import pkgutil
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: `python deployments/serve.py`
    sys.path.insert(0, str(ROOT))

from prefect import Flow, serve  # noqa: E402
from prefect.schedules import Cron  # noqa: E402

# Cron schedules (UTC) of the flows that run on their own; each can be overridden by an environment variable.
SCHEDULED: dict[str, tuple[str, str]] = {
    "backup": ("DIRECTUS_OPS_BACKUP_CRON", "17 2 * * *"),
    "forget": ("DIRECTUS_OPS_FORGET_CRON", "47 4 * * *"),
    "verify": ("DIRECTUS_OPS_VERIFY_CRON", "30 5 * * 0"),
}
# The weekly restore drill (verify's latest snapshot restored into a scratch database, compared, dropped).
DRILL_NAME, DRILL_CRON = "verify-drill", ("DIRECTUS_OPS_DRILL_CRON", "30 6 * * 0")
SCRATCH_DATABASE_ENV = "DIRECTUS_OPS_SCRATCH_DATABASE_URL"
# Parameter defaults beyond project_dir and repo, per flow name (the same as prefect.yaml's).
DEFAULTS: dict[str, dict[str, Any]] = {
    "verify": {"snapshot": "all", "read_data_percent": 10},
    "forget": {"keep_last": 7, "keep_daily": 14, "keep_weekly": 8, "keep_monthly": 12, "prune": True,
               "lock_wait_seconds": 3600},
    "upgrade": {"rehearse": True},
    # On demand only; a run without confirm (the project's name) is refused, and dry_run shows the plan.
    "delete": {"dry_run": True},
}
TAGS: dict[str, list[str]] = {"forget": ["retention"], "rehearse-upgrade": ["upgrade"], "v8_migrate": ["v8"]}


def flows() -> list[Flow]:
    """Every flow defined (not just imported) in a module of the ``flows`` package, in module order."""
    import flows as package

    found: list[Flow] = []
    for module_info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"flows.{module_info.name}")
        for value in vars(module).values():
            if isinstance(value, Flow) and value.fn.__module__ == module.__name__ and value not in found:
                found.append(value)
    return found


def deployment_parameters(flow: Flow, project_dir: str, repo: str) -> dict[str, Any]:
    """The project, the repository (its url: the flows' ``repo`` is a RepositoryOptions object) and the flow's
    DEFAULTS, each where the flow takes it."""
    accepted = flow.parameters.properties
    given = {"project_dir": project_dir, "repo": {"url": repo}, **DEFAULTS.get(flow.name, {})}
    return {k: v for k, v in given.items() if k in accepted}


def deployments(project_dir: str, repo: str, scratch_database_url: str | None = None) -> list[Any]:
    result = []
    for flow in flows():
        options: dict[str, Any] = {}
        if flow.name in SCHEDULED:
            variable, default = SCHEDULED[flow.name]
            options["schedules"] = [Cron(os.environ.get(variable, default), timezone="UTC")]
        result.append(flow.to_deployment(name=flow.name, parameters=deployment_parameters(flow, project_dir, repo),
                                         tags=["directus", *TAGS.get(flow.name, [flow.name])],
                                         description=flow.description, enforce_parameter_schema=True, **options))
    if scratch_database_url:
        from flows.verify import verify

        variable, default = DRILL_CRON
        result.append(verify.to_deployment(
            name=DRILL_NAME, parameters={"repo": {"url": repo}, "snapshot": "latest", "restore_drill": True,
                                         "scratch_database_url": scratch_database_url},
            schedules=[Cron(os.environ.get(variable, default), timezone="UTC")], tags=["directus", "verify", "drill"],
            description="Restore drill: the latest snapshot's database restored into a scratch database, its row "
                        "counts compared with the snapshot's, the scratch database dropped.",
            enforce_parameter_schema=True))
    return result


def main() -> None:
    missing = [v for v in ("DIRECTUS_PROJECT_DIR", "DIRECTUS_OPS_REPO") if not os.environ.get(v)]
    if missing:
        raise SystemExit(f"set {' and '.join(missing)} (the project directory and the snapshot repository to serve)")
    serve(*deployments(os.environ["DIRECTUS_PROJECT_DIR"], os.environ["DIRECTUS_OPS_REPO"],
                       os.environ.get(SCRATCH_DATABASE_ENV) or None))


if __name__ == "__main__":
    main()

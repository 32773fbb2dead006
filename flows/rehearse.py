"""rehearse-upgrade: the upgrade played on a scratch copy (the project's latest snapshot restored into a scratch
database, the project tree copied, the target installed and migrated there). Production is not touched."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE

from directus_ops import upgrade, workdir
from directus_ops.errors import ProcedureFailed
from directus_ops.redact import redact
from directus_ops.repository import Repository, RepositoryLocation
from directus_ops.results import RehearsalResult
from tasks.directus import migrate_latest_task, npm_install_task, plan_upgrade_task
from tasks.repository import repository_location

from . import parameters as p
from .report import artifact_key, publish
from directus_ops.database_password import with_password


@task(name="prepare-rehearsal", cache_policy=NO_CACHE)
def prepare_rehearsal_task(plan: upgrade.VersionPlan, repo: RepositoryLocation, snapshot_id: str,
                           scratch_database_url: str | None, work_dir: str) -> upgrade.Rehearsal:
    repository = Repository.open(repo)
    manifest = repository.resolve(snapshot_id, project=Path(plan.project_dir).name)
    return upgrade.prepare_rehearsal(plan, repository, manifest, with_password(scratch_database_url), Path(work_dir))


@task(name="clean-up-rehearsal", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def clean_up_rehearsal_task(rehearsal: upgrade.Rehearsal) -> None:
    upgrade.clean_up_rehearsal(rehearsal)


@flow(name="rehearse-upgrade", description="Rehearse a Directus upgrade on a scratch copy of the project and its latest snapshot; production is not touched.")
def rehearse_upgrade(
    project_dir: p.ProjectDir,
    repo: p.Repo,
    to: p.UpgradeVersion = None,
    snapshot_id: p.RestoreSnapshot = "latest",
    config_path: p.ConfigPath = None,
    scratch_database_url: p.ScratchDatabaseUrl = None,
    install_node: p.InstallNode = False,
    raise_on_failure: p.RaiseOnFailure = False,
) -> RehearsalResult:
    """Returns the result (``result``: "ok" or "failed", with the ``error``); with ``raise_on_failure`` a failed
    rehearsal raises (what ``upgrade --rehearse`` and the CLI use to stop before touching production). The plan
    is the first step and the only check."""
    logger = get_run_logger()
    started = time.monotonic()
    plan = plan_upgrade_task(project_dir, to, config_path, install_node)
    name = Path(plan.project_dir).name
    if plan.license_notice:  # the rehearsal needs no acceptance (production is not touched); the upgrade will
        logger.warning("%s", plan.license_notice)
    location = repository_location(repo)
    work = tempfile.mkdtemp(prefix="rehearsal-", dir=workdir.run_dir())  # the copy holds the config's secrets
    rehearsal = None
    error = None
    try:
        rehearsal = prepare_rehearsal_task(plan, location, snapshot_id, scratch_database_url, work)
        npm_install_task(rehearsal.project_dir, plan.target, plan)
        applied = migrate_latest_task(plan, rehearsal.project_dir, rehearsal.config_path)
        logger.info("rehearsal of %s → %s passed: %d migrations applied on the scratch copy", plan.current,
                    plan.target, len(applied))
    except ProcedureFailed as exc:
        error = redact(str(exc))
        logger.error("rehearsal of %s → %s failed: %s", plan.current, plan.target, error)
    finally:
        if rehearsal is not None:
            clean_up_rehearsal_task(rehearsal)
        else:
            shutil.rmtree(work, ignore_errors=True)
    publish(artifact_key("rehearsal", name), f"Upgrade rehearsal of {name}: Directus {plan.current} → {plan.target}",
            [("Result", "ok" if error is None else "FAILED"), ("Error", error or "none"),
             ("Production", "not touched"),
             *([("Licensing", plan.license_notice)] if plan.license_notice else []),
             ("Duration", f"{time.monotonic() - started:.1f} s")])
    if error is not None and raise_on_failure:
        raise ProcedureFailed(f"upgrade rehearsal to {plan.target} failed: {error}; production was not touched")
    return RehearsalResult(plan.current, plan.target, "ok" if error is None else "failed", error, plan.license_notice)

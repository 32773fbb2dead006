"""upgrade: back up, install a newer Directus, run its migrations, check it; on any failure after the backup,
put everything back (database restored from the snapshot, package files and node_modules as they were).

A Docker Compose project (directus_ops.compose_upgrade): back up, stop its Directus service, change its image tag
(in the Compose file or the .env variable it comes from), run the new image's migrations in a one-off container,
start the service and check it; on any failure after the backup, the database restored from the snapshot, the
edited file's old bytes put back, the service started on its old image and checked."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger

from directus_ops import upgrade
from directus_ops.errors import ConfigError, ProcedureFailed
from directus_ops.redact import redact
from directus_ops.results import UpgradeResult
from tasks.app import app_command_task
from tasks.directus import (check_started_task, compose_check_task, compose_migrate_task, compose_put_back_tag_task,
                            compose_set_tag_task, compose_start_task, compose_stop_task, keep_package_files_task,
                            migrate_latest_task, npm_install_task, plan_upgrade_task, put_back_package_files_task,
                            restore_project_database_task)
from tasks.repository import repository_location

from . import parameters as p
from .backup import backup
from .exclusive import exclusive
from .rehearse import rehearse_upgrade
from .report import artifact_key, publish


def guarded(plan: upgrade.VersionPlan, procedure: str, repo: p.RepositoryOptions, snapshot_id: str,
            steps: Callable[[list[str]], Any], start_command: str | None, url: str | None) -> tuple[list[str], Any]:
    """Run ``steps`` (everything after the backup); if any raises, roll back and raise ProcedureFailed naming
    both the failure and what the rollback did. Returns the log of what was done and the steps' result."""
    logger = get_run_logger()
    done: list[str] = []
    kept = keep_package_files_task(plan.project_dir, snapshot_id)
    try:
        result = steps(done)
    except BaseException as exc:
        failure = redact(str(exc)) or type(exc).__name__
        logger.error("%s to %s failed: %s; rolling back to %s from snapshot %s", procedure, plan.target, failure,
                     plan.current, snapshot_id)
        rollback = roll_back(plan, repo, snapshot_id, kept, start_command, url)
        publish(artifact_key(procedure, plan.project_dir.rsplit("/", 1)[-1]),
                f"{procedure.capitalize()} {plan.current} → {plan.target} failed and was rolled back",
                [("Failure", failure), ("Snapshot", f"`{snapshot_id}`"), *[("Done", d) for d in done],
                 *[("Rollback", r) for r in rollback]])
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ProcedureFailed(f"{procedure} to {plan.target} failed: {failure}; rolled back: " + "; ".join(rollback)) from None
    upgrade.drop_kept_package_files(kept)
    return done, result


def run_rollback(steps: list[tuple[str, Callable[[], object]]], failed_as: Callable[[str], str],
                 by_hand: str) -> list[str]:
    """Each rollback step, even if an earlier one failed (a later step may still be possible); one report line
    each: its label, or FAILED (``failed_as`` of the label), why, and the command that restores by hand."""
    report: list[str] = []
    for label, step in steps:
        try:
            step()
            report.append(label)
        except Exception as exc:  # keep going: reported either way
            report.append(f"FAILED: {failed_as(label)} ({redact(str(exc))}); restore by hand with {by_hand}")
    return report


def roll_back(plan: upgrade.VersionPlan, repo: p.RepositoryOptions, snapshot_id: str, kept: str,
              start_command: str | None, url: str | None) -> list[str]:
    """Database from the snapshot, package files put back and reinstalled, app started and checked. Each step
    runs even if an earlier one failed (each failure is reported)."""
    location = repository_location(repo)
    old = plan.as_installed()  # the old version runs on its own Node, as it did before
    report = run_rollback([
        ("database restored from the snapshot", lambda: restore_project_database_task(plan, location, snapshot_id)),
        ("package.json and lock file put back, node_modules reinstalled",
         lambda: put_back_package_files_task(plan, kept)),
        ("app started and healthy", lambda: check_started_task(old, plan.current, start_command, url)),
    ], lambda label: label.split(" ", 1)[0], f"`directus-ops restore --repo {repo} --snapshot {snapshot_id} --replace`")
    if all(not r.startswith("FAILED") for r in report):
        upgrade.drop_kept_package_files(kept)
    return report


@flow(name="upgrade", description="Upgrade a Directus project's package and database, with a backup first and automatic rollback.")
@exclusive("upgrade")
def upgrade_directus(
    project_dir: p.ProjectDir,
    repo: p.Repo,
    to: p.UpgradeVersion = None,
    rehearse: p.Rehearse = False,
    accept_license_change: p.AcceptLicenseChange = False,
    stop_command: p.StopCommand = None,
    start_command: p.StartCommand = None,
    url: p.AppUrl = None,
    config_path: p.ConfigPath = None,
    scratch_database_url: p.ScratchDatabaseUrl = None,
    install_node: p.InstallNode = False,
    service: p.ComposeService = None,
) -> UpgradeResult:
    """The plan is the first step and the only check (the target published and newer, its Node, the database
    consistent, the licensing accepted): a refusal changes nothing, not even a backup is taken."""
    logger = get_run_logger()
    started = time.monotonic()
    plan = plan_upgrade_task(project_dir, to, config_path, install_node, service, compose=True)
    name = plan.project_dir.rsplit("/", 1)[-1]
    if plan.nothing_to_do:
        logger.info("Directus %s is installed and is the newest the range allows; nothing to upgrade", plan.current)
        return UpgradeResult(plan.current, plan.target, upgraded=False)
    if plan.compose is not None:
        return upgrade_compose(plan, repo, rehearse, accept_license_change, stop_command, start_command, url, started)
    upgrade.confirm_license_change(plan, accept_license_change)  # before the backup: nothing changed if refused
    if plan.license_notice:
        logger.warning("accepted (accept_license_change / --yes): %s", plan.license_notice)
    logger.info("upgrading %s from Directus %s to %s (%d migrations expected after)", plan.project_dir, plan.current,
                plan.target, len(plan.expected_after))
    snapshot_id = backup(project_dir=plan.project_dir, repo=repo, config_path=config_path)
    if rehearse:
        rehearsal = rehearse_upgrade(project_dir=plan.project_dir, repo=repo, to=plan.target, snapshot_id=snapshot_id,
                                     config_path=config_path, scratch_database_url=scratch_database_url,
                                     install_node=install_node, raise_on_failure=True)
        logger.info("rehearsal passed: %s", rehearsal.result)

    def steps(done: list[str]) -> dict:
        if stop_command:
            app_command_task(stop_command, plan.project_dir, "stopping the app")
            done.append("app stopped")
        installed = npm_install_task(plan.project_dir, plan.target, plan)
        done.append(f"directus@{installed} installed")
        applied = migrate_latest_task(plan)
        done.append(f"migrations applied: {len(applied)} (equal to directus@{plan.target}'s)")
        health = check_started_task(plan, plan.target, start_command, url)
        done.append(f"health {health['status']}, version {health['version'] or 'not reported'}")
        return health

    done, health = guarded(plan, "upgrade", repo, snapshot_id, steps, start_command, url)
    publish(artifact_key("upgrade", name), f"Upgrade of {name}: Directus {plan.current} → {plan.target}",
            [("Snapshot before", f"`{snapshot_id}`"), *[("Done", d) for d in done],
             ("Rehearsal", "passed" if rehearse else "not asked"),
             *([("Licensing accepted", plan.license_notice)] if plan.license_notice else []),
             ("Duration", f"{time.monotonic() - started:.1f} s")])
    return UpgradeResult(plan.current, plan.target, upgraded=True, snapshot=snapshot_id, health=health,
                         rehearsed=rehearse, license_notice=plan.license_notice)


# -- Docker Compose projects ----------------------------------------------------------------------------------------
def upgrade_compose(plan: upgrade.VersionPlan, repo: p.RepositoryOptions, rehearse: bool, accept_license_change: bool,
                    stop_command: str | None, start_command: str | None, url: str | None,
                    started: float) -> UpgradeResult:
    logger = get_run_logger()
    target = plan.compose
    assert target is not None
    name = plan.project_dir.rsplit("/", 1)[-1]
    if stop_command or start_command:
        raise ConfigError("--stop-command/--start-command: a Docker Compose project's service is stopped and started "
                          "with Compose; leave them out")
    if rehearse:
        raise ConfigError("--rehearse is not supported for Docker Compose projects yet; leave it out (the upgrade "
                          "backs up first and rolls back on failure)")
    upgrade.confirm_license_change(plan, accept_license_change)  # before the backup: nothing changed if refused
    if plan.license_notice:
        logger.warning("accepted (accept_license_change / --yes): %s", plan.license_notice)
    logger.info("upgrading %s (service %s) from %s to %s (%d migrations expected after)", plan.project_dir,
                target.service, target.current_image, target.target_image, len(plan.expected_after))
    snapshot_id = backup(project_dir=plan.project_dir, repo=repo, service=target.service)

    def steps(done: list[str]) -> dict:
        compose_stop_task(plan)
        done.append(f"service '{target.service}' stopped")
        compose_set_tag_task(plan, plan.target)
        done.append(f"{target.tag.describe()} set to {plan.target}")
        applied = compose_migrate_task(plan)
        done.append(f"migrations applied: {len(applied)} (equal to {target.target_image}'s)")
        compose_start_task(plan)
        done.append(f"service '{target.service}' started on {target.target_image}")
        health = compose_check_task(plan, target.target_image, url)
        done.append(f"{health['url']}/server/ping answers pong")
        return health

    done: list[str] = []
    try:
        health = steps(done)
    except BaseException as exc:
        failure = redact(str(exc)) or type(exc).__name__
        logger.error("upgrade to %s failed: %s; rolling back to %s from snapshot %s", plan.target, failure,
                     plan.current, snapshot_id)
        rollback = roll_back_compose(plan, repo, snapshot_id, url)
        publish(artifact_key("upgrade", name), f"Upgrade {plan.current} → {plan.target} failed and was rolled back",
                [("Failure", failure), ("Snapshot", f"`{snapshot_id}`"), *[("Done", d) for d in done],
                 *[("Rollback", r) for r in rollback]])
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ProcedureFailed(f"upgrade to {plan.target} failed: {failure}; rolled back: " + "; ".join(rollback)) from None
    publish(artifact_key("upgrade", name), f"Upgrade of {name}: Directus {plan.current} → {plan.target}",
            [("Snapshot before", f"`{snapshot_id}`"), *[("Done", d) for d in done],
             *([("Licensing accepted", plan.license_notice)] if plan.license_notice else []),
             ("Duration", f"{time.monotonic() - started:.1f} s")])
    return UpgradeResult(plan.current, plan.target, upgraded=True, snapshot=snapshot_id, health=health,
                         rehearsed=False, license_notice=plan.license_notice)


def roll_back_compose(plan: upgrade.VersionPlan, repo: p.RepositoryOptions, snapshot_id: str,
                      url: str | None) -> list[str]:
    """Service stopped (nothing writes while the database is replaced), database from the snapshot, the edited
    file's bytes put back, the service started on its old image and checked. Each step runs even if an earlier
    one failed (each failure is reported)."""
    target = plan.compose
    assert target is not None
    location = repository_location(repo)

    def start_old() -> None:
        compose_start_task(plan)
        compose_check_task(plan, target.current_image, url)

    return run_rollback([
        (f"service '{target.service}' stopped", lambda: compose_stop_task(plan)),
        ("database restored from the snapshot", lambda: restore_project_database_task(plan, location, snapshot_id)),
        (f"{target.tag.describe()} put back as it was", lambda: compose_put_back_tag_task(plan)),
        (f"service started on {target.current_image} and answering", start_old),
    ], lambda label: label, f"`directus-ops restore --repo {repo} --snapshot {snapshot_id} --replace --service "
                            f"{target.service}`")

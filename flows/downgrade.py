"""downgrade: back up; revert the migrations the older version does not have, one ``migrate:down`` each while
the newer package is still installed (it holds their down code); then install the older package exactly and
check. On any failure after the backup, everything is put back as for an upgrade."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger

from directus_ops.results import DowngradeResult
from tasks.app import app_command_task
from tasks.directus import (check_migrations_task, check_started_task, npm_install_task,
                            plan_downgrade_task, revert_migration_task)

from . import parameters as p
from .backup import backup
from .exclusive import exclusive
from .report import artifact_key, publish
from .upgrade import guarded


@flow(name="downgrade", description="Downgrade a Directus project to an older version: backup, migrate:down per newer migration, older package, checks, rollback on failure.")
@exclusive("downgrade")
def downgrade_directus(
    project_dir: p.ProjectDir,
    to: p.DowngradeVersion,
    repo: p.Repo,
    accept_data_loss: p.AcceptDataLoss = False,
    stop_command: p.StopCommand = None,
    start_command: p.StartCommand = None,
    url: p.AppUrl = None,
    config_path: p.ConfigPath = None,
    install_node: p.InstallNode = False,
) -> DowngradeResult:
    """The plan is the first step and the only check (the target published and older, its Node, the database
    consistent, every reverted migration revertible, data loss accepted): a refusal changes nothing."""
    logger = get_run_logger()
    started = time.monotonic()
    plan = plan_downgrade_task(project_dir, to, config_path, accept_data_loss, install_node)
    name = plan.project_dir.rsplit("/", 1)[-1]
    for warning in plan.warnings:
        logger.warning("accepted (accept_data_loss / --yes): %s", warning)
    logger.info("downgrading %s from Directus %s to %s: reverting %s", plan.project_dir, plan.current, plan.target,
                ", ".join(plan.to_revert) or "no migrations")
    snapshot_id = backup(project_dir=plan.project_dir, repo=repo, config_path=config_path)

    def steps(done: list[str]) -> dict:
        if stop_command:
            app_command_task(stop_command, plan.project_dir, "stopping the app")
            done.append("app stopped")
        for key in plan.to_revert:  # newest first, as migrate:down takes them
            revert_migration_task(plan, key)
            done.append(f"migration {key} reverted")
        installed = npm_install_task(plan.project_dir, plan.target, plan)
        done.append(f"directus@{installed} installed")
        applied = check_migrations_task(plan)
        done.append(f"migrations applied: {len(applied)} (equal to directus@{plan.target}'s)")
        health = check_started_task(plan, plan.target, start_command, url)
        done.append(f"health {health['status']}, version {health['version'] or 'not reported'}")
        return health

    done, health = guarded(plan, "downgrade", repo, snapshot_id, steps, start_command, url)
    publish(artifact_key("downgrade", name), f"Downgrade of {name}: Directus {plan.current} → {plan.target}",
            [("Snapshot before", f"`{snapshot_id}`"), *[("Done", d) for d in done],
             *[("Warning accepted", w) for w in plan.warnings],
             ("Duration", f"{time.monotonic() - started:.1f} s")])
    return DowngradeResult(plan.current, plan.target, plan.to_revert, snapshot_id, health, data_loss=plan.warnings)

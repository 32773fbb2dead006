"""Tasks on a project's Directus installation: plans, npm installs, migrations, the app started and checked
after the change (the operator's commands alone: tasks.app), and the rollback that puts a failed upgrade or
downgrade back. Migrations are never retried (they are not transactional: a second attempt fails on the
half-made change); npm and health checks are."""

from __future__ import annotations

import shutil
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import compose_upgrade, directus_cli, snapshot, snapshot_restore, upgrade
from directus_ops.errors import ProjectError
from directus_ops.project import load_project
from directus_ops.repository import Repository, RepositoryLocation

from .retry import RETRY_DELAYS, is_transient


@task(name="plan-upgrade", cache_policy=NO_CACHE)
def plan_upgrade_task(project_dir: str, to: str | None, config_path: str | None,
                      install_node: bool, service: str | None = None, compose: bool = False) -> upgrade.VersionPlan:
    """``compose``: the caller can upgrade a Docker Compose project (the upgrade flow; not the rehearsal yet)."""
    plan = upgrade.plan_upgrade(project_dir, to, config_path, install_node, service)
    if plan.compose is not None and not compose:
        raise ProjectError(f"{plan.project_dir} is a Docker Compose project: rehearsing its upgrade is not supported "
                           "yet; `directus-ops upgrade` backs it up first and rolls back on failure")
    return plan


@task(name="plan-downgrade", cache_policy=NO_CACHE)
def plan_downgrade_task(project_dir: str, to: str, config_path: str | None, accept_data_loss: bool,
                        install_node: bool) -> upgrade.VersionPlan:
    return upgrade.plan_downgrade(project_dir, to, config_path, accept_data_loss, install_node)


@task(name="keep-package-files", cache_policy=NO_CACHE)
def keep_package_files_task(project_dir: str, run_id: str) -> str:
    return upgrade.keep_package_files(project_dir, run_id)


@task(name="npm-install-directus", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 30],
      task_run_name="npm-install-directus@{version}")
def npm_install_task(project_dir: str, version: str, plan: upgrade.VersionPlan) -> str | None:
    directus_cli.npm_install_directus(Path(project_dir), version, plan.runtime)
    return upgrade.installed_directus_version(Path(project_dir))


@task(name="migrate-latest", cache_policy=NO_CACHE)
def migrate_latest_task(plan: upgrade.VersionPlan, project_dir: str | None = None,
                        config_path: str | None = None) -> list[str]:
    return upgrade.migrate_latest(plan, project_dir, config_path)


@task(name="migrate-down", cache_policy=NO_CACHE, task_run_name="migrate-down-{key}")
def revert_migration_task(plan: upgrade.VersionPlan, key: str) -> None:
    upgrade.revert_one(plan, key)


@task(name="check-migrations", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def check_migrations_task(plan: upgrade.VersionPlan) -> list[str]:
    return upgrade.check_migrations(plan)


@task(name="start-and-check-health", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def check_started_task(plan: upgrade.VersionPlan, version: str, start_command: str | None, url: str | None) -> dict:
    return upgrade.check_started(plan, version, start_command, url)


@task(name="restore-database-from-snapshot", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS),
      retry_delay_seconds=RETRY_DELAYS, retry_condition_fn=is_transient)
def restore_project_database_task(plan: upgrade.VersionPlan, repo: RepositoryLocation, snapshot_id: str) -> int:
    """The project's database replaced by the snapshot's (the clean way back from half-applied migrations)."""
    project = (compose_upgrade.load(plan) if plan.compose is not None  # through its container when in the stack
               else load_project(plan.project_dir, plan.config_path))
    repository = Repository.open(repo)
    staging = snapshot.make_staging_dir()
    try:
        counts = snapshot_restore.load_database(repository, repository.load_manifest(snapshot_id), project.database,
                                        replace=True, staging_dir=staging)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return sum(counts.values())


@task(name="put-back-package-files", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=[10, 30])
def put_back_package_files_task(plan: upgrade.VersionPlan, kept: str) -> str | None:
    # Rebuilt for the Node the old version ran on (its native modules are built for that Node's major).
    return upgrade.put_back_package_files(plan.project_dir, kept, plan.current_runtime)


# -- Docker Compose projects (directus_ops.compose_upgrade) ------------------------------------------------------
@task(name="compose-stop-service", cache_policy=NO_CACHE)
def compose_stop_task(plan: upgrade.VersionPlan) -> None:
    compose_upgrade.stop_service(plan)


@task(name="compose-set-image-tag", cache_policy=NO_CACHE, task_run_name="compose-set-image-tag-{version}")
def compose_set_tag_task(plan: upgrade.VersionPlan, version: str) -> str:
    return compose_upgrade.set_tag(plan, version)


@task(name="compose-put-back-image-tag", cache_policy=NO_CACHE)
def compose_put_back_tag_task(plan: upgrade.VersionPlan) -> str:
    return compose_upgrade.put_back_tag(plan)


@task(name="compose-migrate-latest", cache_policy=NO_CACHE)
def compose_migrate_task(plan: upgrade.VersionPlan) -> list[str]:
    return compose_upgrade.migrate(plan)


@task(name="compose-start-service", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def compose_start_task(plan: upgrade.VersionPlan) -> None:
    compose_upgrade.start_service(plan)


@task(name="compose-check-service", cache_policy=NO_CACHE, task_run_name="compose-check-service-{image}")
def compose_check_task(plan: upgrade.VersionPlan, image: str, url: str | None) -> dict:
    return compose_upgrade.check_running(plan, image, url)

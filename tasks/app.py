"""Tasks on a project's running app: the operator's stop/start command, waiting until it no longer answers,
its health check (directus_ops.app)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import app
from directus_ops.compose import load_compose


@task(name="app-command", cache_policy=NO_CACHE, task_run_name="{purpose}")
def app_command_task(command: str, project_dir: str, purpose: str) -> None:
    app.run_command(command, project_dir, purpose)


@task(name="stop-compose-service", cache_policy=NO_CACHE, task_run_name="stop Compose service {service}")
def stop_compose_service_task(project_dir: str, service: str) -> None:
    load_compose(project_dir, service).stop()


@task(name="wait-until-app-stopped", cache_policy=NO_CACHE)
def wait_until_stopped_task(url: str, timeout: float = app.APP_TIMEOUT) -> None:
    app.wait_until_stopped(url, timeout)


@task(name="check-health", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=10)
def health_task(url: str, timeout: float = app.APP_TIMEOUT) -> dict:
    return app.health(url, timeout=timeout)

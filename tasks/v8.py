"""Tasks of the v8 migration: thin wrappers over directus_ops.v8.migrate's steps, each a batch step over the work
directory (paths in, small summaries out) that writes through the target's writer: its database (database mode)
or its REST API (api mode, directus_ops.v8.api_target)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable
from typing import Any, TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy

from directus_ops.project import load_project
from directus_ops.storage import StorageLocation
from directus_ops.v8 import api_target, migrate
from directus_ops.v8.target import DatabaseTarget
from directus_ops.v8.target_writer import TargetWriter

from .repository import _secret  # the tasks' one reader of Prefect Secret blocks
from .retry import RETRY_DELAYS, is_transient


class _TaskOptions(TypedDict):
    """The options every I/O step shares, typed so that ``@task(**_IO)`` is checked against task()'s own."""

    cache_policy: CachePolicy
    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: Callable[[Any, Any, Any], bool]


_IO: _TaskOptions = {"cache_policy": NO_CACHE, "retries": len(RETRY_DELAYS), "retry_delay_seconds": RETRY_DELAYS,
                      "retry_condition_fn": is_transient}


@dataclass(frozen=True)
class TargetAccess:
    """How the tasks reach the target, without a secret: in api mode the token is read in each task, from the
    environment or the named Secret block, so it is never a task's input."""

    mode: str  # "database" or "api"
    url: str | None = None  # api mode: the target's address
    token_block: str | None = None  # api mode: a Prefect Secret block holding an admin token
    limit: int = 0  # api mode: the target's MAX_PAYLOAD_SIZE in bytes


def api_token(secret_block: str | None) -> str:
    """The admin token: from a Prefect Secret block if named, else from ``DIRECTUS_OPS_TOKEN``."""
    value = str(_secret(secret_block, "--token-secret-block")) if secret_block else None
    return api_target.admin_token(value)


def _writer(work_dir: str, access: TargetAccess) -> TargetWriter:
    """The writer of the target the work directory's plan was made for."""
    plan = migrate.load_plan(Path(work_dir))
    token = api_token(access.token_block) if access.mode == "api" else None
    return migrate.open_target(plan, token, access.limit or None)


@task(name="v8-check-and-read", cache_policy=NO_CACHE)  # not retried: a failed check names a fix for the user
def prepare_task(v8_url: str, v8_storage: str, project_dir: str, work_dir: str, access: TargetAccess,
                 skip: list[str], v8_timezone: str, storage_like: StorageLocation | None = None,
                 accept_license_limits: bool = False) -> migrate.Plan:
    if access.mode == "api":
        assert access.url
        target: TargetWriter = api_target.ApiTarget(access.url, api_token(access.token_block), access.limit)
    else:
        target = DatabaseTarget(load_project(project_dir))
    with target:
        return migrate.prepare(v8_url, v8_storage, project_dir, Path(work_dir), target, skip, v8_timezone,
                               storage_like, accept_license_limits)


@task(name="v8-roles-users-folders", **_IO)
def people_task(work_dir: str, access: TargetAccess, password_env: str | None) -> dict[str, Any]:
    password = os.environ.get(password_env) if password_env else None  # read here: never a task's input
    with _writer(work_dir, access) as target:
        return migrate.write_people(Path(work_dir), target, password)


@task(name="v8-files", **_IO)
def files_task(work_dir: str, access: TargetAccess, storage_like: StorageLocation | None = None) -> dict[str, Any]:
    with _writer(work_dir, access) as target:
        return migrate.write_files(Path(work_dir), target, storage_like)


@task(name="v8-schema", **_IO)
def schema_task(work_dir: str, access: TargetAccess) -> dict[str, Any]:
    with _writer(work_dir, access) as target:
        return migrate.write_schema(Path(work_dir), target)


@task(name="v8-items", **_IO)
def items_task(work_dir: str, access: TargetAccess, v8_url: str) -> dict[str, Any]:
    with _writer(work_dir, access) as target:
        return migrate.write_items(Path(work_dir), target, v8_url)


@task(name="v8-permissions", **_IO)
def permissions_task(work_dir: str, access: TargetAccess) -> dict[str, Any]:
    with _writer(work_dir, access) as target:
        return migrate.write_permissions(Path(work_dir), target)


@task(name="v8-comments", **_IO)
def comments_task(work_dir: str, access: TargetAccess) -> dict[str, Any]:
    with _writer(work_dir, access) as target:
        return migrate.write_comments(Path(work_dir), target)


@task(name="v8-finish", **_IO)
def finish_task(work_dir: str, access: TargetAccess) -> dict[str, Any]:
    """Database mode: the auto-increment counters past the ids written; api mode: what it cannot keep."""
    with _writer(work_dir, access) as target:
        return migrate.finish(Path(work_dir), target)

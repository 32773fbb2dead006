"""Tasks of the v8 migration: thin wrappers over directus_ops.v8.migrate (database mode) and
directus_ops.v8.api_target (api mode), each a batch step over the work directory (paths in, small summaries out)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypedDict

from prefect import task
from prefect.cache_policies import NO_CACHE, CachePolicy

from directus_ops.storage import StorageLocation
from directus_ops.v8 import api_target, migrate

from .retry import RETRY_DELAYS, is_transient


class _TaskOptions(TypedDict):
    """The options every I/O step shares, typed so that ``@task(**_IO)`` is checked against task()'s own."""

    cache_policy: CachePolicy
    retries: int
    retry_delay_seconds: list[float]
    retry_condition_fn: Callable[[Any, Any, Any], bool]


_IO: _TaskOptions = {"cache_policy": NO_CACHE, "retries": len(RETRY_DELAYS), "retry_delay_seconds": RETRY_DELAYS,
                      "retry_condition_fn": is_transient}


@task(name="v8-check-and-read", cache_policy=NO_CACHE)  # not retried: a failed check names a fix for the user
def prepare_task(v8_url: str, v8_storage: str, project_dir: str, work_dir: str, skip: list[str],
                 v8_timezone: str, storage_like: StorageLocation | None = None,
                 accept_license_limits: bool = False) -> migrate.Plan:
    return migrate.prepare(v8_url, v8_storage, project_dir, Path(work_dir), skip, v8_timezone, storage_like,
                           accept_license_limits)


@task(name="v8-roles-users-folders", **_IO)
def people_task(work_dir: str, password_hash: str | None) -> dict[str, Any]:
    return migrate.write_people(Path(work_dir), password_hash)


@task(name="v8-files", **_IO)
def files_task(work_dir: str, storage_like: StorageLocation | None = None) -> dict[str, Any]:
    return migrate.write_files(Path(work_dir), storage_like)


@task(name="v8-schema", **_IO)
def schema_task(work_dir: str) -> dict[str, Any]:
    return migrate.write_schema(Path(work_dir))


@task(name="v8-items", **_IO)
def items_task(work_dir: str, v8_url: str) -> dict[str, Any]:
    return migrate.write_items(Path(work_dir), v8_url)


@task(name="v8-permissions", **_IO)
def permissions_task(work_dir: str) -> dict[str, Any]:
    return migrate.write_permissions(Path(work_dir))


@task(name="v8-comments", **_IO)
def comments_task(work_dir: str) -> dict[str, Any]:
    return migrate.write_comments(Path(work_dir))


@task(name="v8-reset-sequences", **_IO)
def sequences_task(work_dir: str) -> int:
    return migrate.reset_sequences(Path(work_dir))


# -- api mode: the same steps through the target's REST API. The token is read here, from the environment or a
# Secret block (only the block's name is a parameter), so it is never a task's input.
@task(name="v8-api-check-and-read", cache_policy=NO_CACHE)
def api_prepare_task(v8_url: str, v8_storage: str, project_dir: str, work_dir: str, url: str,
                     token_block: str | None, skip: list[str], v8_timezone: str,
                     storage_like: StorageLocation | None = None, accept_license_limits: bool = False) -> migrate.Plan:
    return api_target.prepare(v8_url, v8_storage, project_dir, Path(work_dir), url, api_target.api_token(token_block),
                              skip, v8_timezone, storage_like, accept_license_limits)


@task(name="v8-api-roles-users-folders", **_IO)
def api_people_task(work_dir: str, token_block: str | None, password_env: str | None, limit: int) -> dict[str, Any]:
    password = os.environ.get(password_env) if password_env else None
    return api_target.migrate_people(Path(work_dir), api_target.api_token(token_block), password, limit)


@task(name="v8-api-files", **_IO)
def api_files_task(work_dir: str, token_block: str | None,
                   storage_like: StorageLocation | None = None) -> dict[str, Any]:
    return api_target.migrate_files(Path(work_dir), api_target.api_token(token_block), storage_like)


@task(name="v8-api-schema", **_IO)
def api_schema_task(work_dir: str, token_block: str | None, limit: int) -> dict[str, Any]:
    return api_target.migrate_schema(Path(work_dir), api_target.api_token(token_block), limit)


@task(name="v8-api-items", **_IO)
def api_items_task(work_dir: str, token_block: str | None, v8_url: str, limit: int) -> dict[str, Any]:
    return api_target.migrate_items(Path(work_dir), api_target.api_token(token_block), v8_url, limit)


@task(name="v8-api-permissions", **_IO)
def api_permissions_task(work_dir: str, token_block: str | None, limit: int) -> dict[str, Any]:
    return api_target.migrate_permissions(Path(work_dir), api_target.api_token(token_block), limit)


@task(name="v8-api-comments", **_IO)
def api_comments_task(work_dir: str, token_block: str | None, limit: int) -> dict[str, Any]:
    return api_target.migrate_comments(Path(work_dir), api_target.api_token(token_block), limit)

"""Tasks on the snapshot repository: resolve where it is (with credentials from a Secret block), find
snapshots, and write a manifest last."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import snapshot_backup
from directus_ops.errors import ConfigError
from directus_ops.manifest import Manifest
from directus_ops.project import Project
from directus_ops.repository import Repository, RepositoryLocation

from .retry import RETRY_DELAYS, is_transient

if TYPE_CHECKING:
    from flows.parameters import RepositoryOptions


def repository_location(options: RepositoryOptions) -> RepositoryLocation:
    """Where the repository is and how to open it. S3 credentials from the named Prefect Secret block (a JSON
    object with ``aws_access_key_id``, ``aws_secret_access_key`` and optionally ``endpoint_url``,
    ``region_name``), else from the environment; the passphrase from its Secret block, else from
    ``DIRECTUS_OPS_PASSPHRASE``/``_FILE``."""
    location = RepositoryLocation(url=options.url, endpoint=options.endpoint, region=options.region)
    secret_block, passphrase_block = options.secret_block, options.passphrase_secret_block
    if secret_block:
        value = _secret(secret_block, "--repo-secret-block")
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                value = None
        if not isinstance(value, dict):
            raise ConfigError(f"Secret block {secret_block!r} must hold a JSON object of S3 credentials")
        location = location.with_credentials(value)
    if passphrase_block:
        location = location.with_passphrase(str(_secret(passphrase_block, "--passphrase-secret-block")))
    return location


def _secret(name: str, option: str) -> object:
    from prefect.blocks.system import Secret

    try:
        block = Secret.load(name)
        assert isinstance(block, Secret)  # load() returns a coroutine only when called from async code
        return block.get()
    except ValueError:
        raise ConfigError(f"no Prefect Secret block named {name!r}; create it or fix {option}") from None


@task(name="open-repository", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def open_repository_task(repo: RepositoryLocation, create: bool = False) -> str:
    return Repository.open(repo, create=create).describe()


@task(name="write-manifest", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def write_manifest_task(project: Project, repo: RepositoryLocation, snapshot_id: str, started: datetime,
                        database_part: snapshot_backup.PartResult | None, location_parts: list[snapshot_backup.PartResult],
                        files_part: snapshot_backup.PartResult, encrypt: bool = False) -> snapshot_backup.SnapshotSummary:
    return snapshot_backup.save_snapshot(project, Repository.open(repo, create=True), snapshot_id, started, database_part,
                                  location_parts, files_part, encrypt)


@task(name="resolve-snapshot", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def resolve_snapshot_task(repo: RepositoryLocation, snapshot_id: str) -> str:
    """The id of ``snapshot_id`` (an id, a unique prefix, or ``latest``)."""
    return Repository.open(repo).resolve(snapshot_id).id


def opened_snapshot(repo: RepositoryLocation, snapshot_id: str) -> tuple[Repository, Manifest]:
    """Open the repository and load one manifest: what every restore task starts from."""
    repository = Repository.open(repo)
    return repository, repository.load_manifest(snapshot_id)

"""Tasks of the retention procedure: decide and forget snapshots, prune unreferenced objects."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from directus_ops import retention
from directus_ops.repository import Repository, RepositoryLocation

from .retry import RETRY_DELAYS, is_transient


@task(name="decide-retention", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def decide_task(repo: RepositoryLocation, policy: retention.Policy, project: str | None) -> retention.Decision:
    return retention.decide_for(Repository.open(repo), policy, project)


@task(name="forget-snapshots", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def forget_task(repo: RepositoryLocation, snapshot_ids: list[str]) -> int:
    retention.forget(Repository.open(repo), snapshot_ids)
    return len(snapshot_ids)


@task(name="prune", cache_policy=NO_CACHE, retries=len(RETRY_DELAYS), retry_delay_seconds=RETRY_DELAYS,
      retry_condition_fn=is_transient)
def prune_task(repo: RepositoryLocation, dry_run: bool, wait: float) -> retention.PruneResult:
    return retention.prune(Repository.open(repo), dry_run=dry_run, wait=wait)

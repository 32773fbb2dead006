"""forget: apply a retention policy (keep last/daily/weekly/monthly/yearly), then optionally prune what no
snapshot references any more."""

from __future__ import annotations

from prefect import flow, get_run_logger

from directus_ops.results import ForgetResult
from directus_ops.retention import Policy
from tasks.repository import repository_location
from tasks.retention import decide_task, forget_task, prune_task

from . import parameters as p
from .report import artifact_key, human_bytes, publish, publish_snapshot_table


@flow(name="forget", description="Apply a retention policy to a snapshot repository, and prune unreferenced data.")
def forget(
    repo: p.Repo,
    keep_last: p.KeepLast = 0,
    keep_hourly: p.KeepHourly = 0,
    keep_daily: p.KeepDaily = 0,
    keep_weekly: p.KeepWeekly = 0,
    keep_monthly: p.KeepMonthly = 0,
    keep_yearly: p.KeepYearly = 0,
    project: p.ForgetProject = None,
    dry_run: p.ForgetDryRun = False,
    prune: p.Prune = False,
    lock_wait_seconds: p.LockWaitSeconds = 0.0,
) -> ForgetResult:
    logger = get_run_logger()
    policy = Policy(keep_last=keep_last, keep_hourly=keep_hourly, keep_daily=keep_daily, keep_weekly=keep_weekly,
                    keep_monthly=keep_monthly, keep_yearly=keep_yearly)
    location = repository_location(repo)
    decision = decide_task(location, policy, project)
    for snapshot_id, reasons in decision.keep.items():
        logger.info("keep %s (%s)", snapshot_id, ", ".join(reasons))
    for snapshot_id in decision.forget:
        logger.info("%s %s", "would forget" if dry_run else "forget", snapshot_id)
    for snapshot_id, problem in decision.left_out.items():
        logger.warning("left out (neither kept nor forgotten): %s", problem)
    if not dry_run and decision.forget:
        forget_task(location, decision.forget)
    pruned = prune_task(location, dry_run, lock_wait_seconds) if prune else None
    rows: list[tuple[str, object]] = [
        ("Repository", repo.url),
        ("Policy", ", ".join(f"{k.replace('_', '-')} {v}" for k, v in policy.__dict__.items() if v)),
        ("Kept", len(decision.keep)),
        ("Forgotten" if not dry_run else "Would forget", len(decision.forget)),
    ]
    if pruned:
        rows += [("Objects deleted" if not dry_run else "Objects that would be deleted", pruned.objects_deleted),
                 ("Space freed" if not dry_run else "Space that would be freed", human_bytes(pruned.bytes_freed)),
                 ("Leftovers of interrupted runs", pruned.leftovers_deleted)]
    publish(artifact_key("forget", repo.url.rsplit("/", 1)[-1] or "repository"), f"Retention on {repo.url}", rows,
            [f"keep `{i}`: {', '.join(r)}" for i, r in decision.keep.items()] + [f"forget `{i}`" for i in decision.forget]
            + [f"left out `{i}`: {problem}" for i, problem in decision.left_out.items()])
    publish_snapshot_table(location)
    return ForgetResult(keep=decision.keep, forget=decision.forget, left_out=decision.left_out, dry_run=dry_run,
                        prune=pruned)

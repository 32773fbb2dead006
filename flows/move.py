"""move: a project to a new database (same engine: native dump/restore through a backup snapshot; another
engine: the Directus-aware transfer) and/or new storage, verified on both sides, with the new config written;
``cutover`` then stops the app, copies what changed, switches the config and starts the app, putting the old
config back on any failure."""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger

from directus_ops import app, move, snapshot, storage_copy
from directus_ops.errors import AppStillRunning, IntegrityError, OpsError, ProcedureFailed, TargetNotEmpty
from directus_ops.redact import redact
from directus_ops.results import MoveResult
from tasks.app import app_command_task, health_task, wait_until_stopped_task
from tasks.move import (check_location_task, compare_databases_task, copy_across_task, copy_location_task,
                        copy_native_task, files_per_location_task, plan_move_task, put_back_config_task,
                        remove_partial_copy_task,
                        rename_location_task, switch_config_task, write_config_task)
from tasks.repository import repository_location

from . import parameters as p
from .backup import backup
from .exclusive import exclusive
from .report import artifact_key, human_bytes, publish_with_tables
from directus_ops.database_password import with_password


@dataclass
class Pass:
    """What one copy pass did and found."""

    snapshot_id: str | None = None
    database: dict[str, Any] = field(default_factory=dict)
    tables: list[move.TableCheck] = field(default_factory=list)
    copies: dict[str, storage_copy.LocationCopy] = field(default_factory=dict)
    checks: dict[str, storage_copy.LocationCheck] = field(default_factory=dict)
    renamed_rows: dict[str, int] = field(default_factory=dict)


def copy_pass(plan: move.MovePlan, backup_options: dict[str, Any] | None, repo_location: Any, staging: str,
              workers: int, previous: Pass | None = None, strict: bool = True) -> Pass:
    """Database and storage copied and checked once. ``previous``: a cutover's final pass, copying only the
    files new or changed since then. ``strict``: differing tables fail the pass (a first pass before a
    cutover only reports them: the app was still writing, and the final pass is checked strictly)."""
    logger = get_run_logger()
    done = Pass()
    if plan.method == "native":
        assert backup_options is not None
        done.snapshot_id = backup(**backup_options)  # the safety net, and the native dump the copy restores
    try:
        _copy_and_check(plan, repo_location, staging, workers, previous, strict, done, logger)
    except Exception as exc:
        # A first copy that failed part-way or differs is not left behind looking like a move: this move's own
        # writes are removed (never a target found not empty: TargetNotEmpty is raised before any write). A
        # failed final pass is the cutover's to report, with the app stopped.
        if previous is not None or plan.target is None or isinstance(exc, TargetNotEmpty):
            raise
        note = remove_partial_copy_task(plan)
        if isinstance(exc, OpsError):
            raise type(exc)(f"{exc}; {note}") from None
        raise ProcedureFailed(f"the copy failed: {redact(str(exc)) or type(exc).__name__}; {note}") from None
    return done


def _copy_and_check(plan: move.MovePlan, repo_location: Any, staging: str, workers: int, previous: Pass | None,
                    strict: bool, done: Pass, logger: Any) -> None:
    if plan.method == "native":
        assert done.snapshot_id is not None  # copy_pass made the native copy's snapshot first
        done.database = copy_native_task(plan, repo_location, done.snapshot_id, final=previous is not None)
    elif plan.method == "transfer":
        done.database = copy_across_task(plan, final=previous is not None)
    for storage_move in plan.storage:
        earlier = previous.copies[storage_move.source.name].records_path if previous else None
        done.copies[storage_move.source.name] = copy_location_task(storage_move, staging, earlier, workers)
    if plan.target is not None:
        done.tables = compare_databases_task(plan.source, plan.target)
        bad = [c.table for c in done.tables if not c.ok]
        if bad and strict:
            move.raise_on_mismatch(done.tables, "the copied database differs from the source")
        elif bad:
            logger.warning("first copy: %d tables differ from the live source (%s); the final copy after the stop "
                           "is checked strictly", len(bad), ", ".join(bad[:5]))
    for storage_move in plan.storage:
        check = check_location_task(storage_move, done.copies[storage_move.source.name])
        if not check.ok:
            raise IntegrityError(f"{check.target}: {len(check.problems)} objects differ from the source (first: "
                                 f"{check.problems[0]}); run the move again")
        done.checks[storage_move.source.name] = check
    if plan.target is not None and plan.renames:  # in the copy only: the source keeps its names
        done.renamed_rows = rename_renames(plan, plan.target)


def rename_renames(plan: move.MovePlan, settings: Any) -> dict[str, int]:
    """``directus_files.storage`` of every renamed location, checked: as many rows under the new name as the
    source has under the old one."""
    before = files_per_location_task(plan.source)
    renamed = {old: rename_location_task(settings, old, new) for old, new in plan.renames.items()}
    after = files_per_location_task(settings)
    for old, new in plan.renames.items():
        if after.get(new, 0) != before.get(old, 0) or after.get(old, 0):
            raise IntegrityError(f"after renaming '{old}' to '{new}', directus_files has {after.get(new, 0)} rows "
                                 f"in '{new}' and {after.get(old, 0)} in '{old}'; the source had {before.get(old, 0)}")
    return renamed


def cutover_steps(plan: move.MovePlan, backup_options: dict[str, Any] | None, repo_location: Any, staging: str,
                  workers: int, first: Pass, done: list[str], app_timeout: float = app.APP_TIMEOUT) -> tuple[Pass, dict]:
    """Stop (and check the app no longer answers), final copy, switch, start, check. On any failure: the app
    stopped again if it was started on the new config (Directus reads its config only when it starts, and a
    start command is typically a no-op while the app runs), config put back, in-place renames undone, app
    started on the old config and checked; ProcedureFailed says what failed and what was put back."""
    logger = get_run_logger()
    assert plan.url and plan.stop_command and plan.start_command  # plan_move requires them for a cutover
    url, stop_command, start_command = plan.url, plan.stop_command, plan.start_command  # as str, for the lambdas
    before: str | None = None
    renamed_in_place = False
    started = False
    try:
        app_command_task(plan.stop_command, plan.project_dir, "stopping the app")
        wait_until_stopped_task(plan.url, app_timeout)
        done.append("app stopped")
        final = copy_pass(plan, backup_options, repo_location, staging, workers, previous=first, strict=True)
        done.append("final copy made and verified")
        if plan.target is None and plan.renames:
            renamed_in_place = True
            final.renamed_rows = rename_renames(plan, plan.source)
            done.append("directus_files.storage renamed: " + ", ".join(f"{o} → {n}" for o, n in plan.renames.items()))
        before = switch_config_task(plan)
        done.append(f"config switched (the old one kept as {before})")
        started = True  # from here the app may be running on the new config, even if the start command fails
        app_command_task(plan.start_command, plan.project_dir, "starting the app")
        health = health_task(plan.url, app_timeout)
        done.append(f"app started, health {health['status']} at {plan.url}")
        move.drop_staged_config(plan)
        return final, health
    except AppStillRunning as exc:  # nothing copied or switched: the app runs on, on the old config
        move.drop_staged_config(plan)
        raise ProcedureFailed(str(exc)) from None
    except BaseException as exc:
        failure = redact(str(exc)) or type(exc).__name__
        logger.error("move cutover failed: %s; putting the old config back", failure)
        rollback: list[str] = []
        steps: list[tuple[str, Callable[[], object]]] = []
        if started:
            steps.append(("app on the new config stopped", lambda: (
                app_command_task(stop_command, plan.project_dir, "stopping the app on the new config"),
                wait_until_stopped_task(url, app_timeout))))
        if renamed_in_place:
            steps.append(("directus_files.storage names put back",
                          lambda: [rename_location_task(plan.source, n, o) for o, n in plan.renames.items()]))
        if before:
            steps.append(("old config put back", lambda: put_back_config_task(plan, before)))
        steps.append(("app started on the old config and healthy", lambda: (
            app_command_task(start_command, plan.project_dir, "starting the app on the old config"),
            health_task(url, app_timeout))))
        for label, step in steps:
            try:
                step()
                rollback.append(label)
            except Exception as undo:  # keep going: each later step is still worth trying, and reported
                rollback.append(f"FAILED: {label} ({redact(str(undo))})")
        move.drop_staged_config(plan)
        name = plan.project_dir.rstrip("/").rsplit("/", 1)[-1]
        publish_with_tables(artifact_key("move", name), f"Move of {name}: cutover failed, old config put back",
                            [("Failure", failure), *[("Done", d) for d in done], *[("Put back", r) for r in rollback]], [])
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise ProcedureFailed(f"move cutover failed: {failure}; " + "; ".join(rollback)
                              + (f"; the target {plan.target.describe()} keeps the copy: empty it before moving again"
                                 if plan.target else "")) from None


@flow(name="move", description="Move a Directus project to a new database (same or another engine) and/or new storage, verified; optional cutover.")
@exclusive("move")
def move_project(
    project_dir: p.ProjectDir,
    to_database: p.ToDatabaseUrl = None,
    to_storage: p.ToStorage = None,
    config_out: p.ConfigOut = None,
    cutover: p.Cutover = False,
    stop_command: p.StopCommand = None,
    start_command: p.StartCommand = None,
    url: p.AppUrl = None,
    repo: p.OptionalRepo = None,
    config_path: p.ConfigPath = None,
    service: p.ComposeService = None,
    workers: p.Workers = snapshot.DEFAULT_WORKERS,
    app_timeout: p.AppTimeout = app.APP_TIMEOUT,
) -> MoveResult:
    """``to_storage``: {LOCATION: "[NEW_NAME:]PATH_OR_S3_URL"}. The target's password comes from
    DIRECTUS_OPS_DATABASE_PASSWORD, new S3 keys from DIRECTUS_OPS_STORAGE_ACCESS_KEY_ID/_SECRET_ACCESS_KEY.
    ``app_timeout``: seconds the app gets to stop answering after the stop command, and to answer after the
    start command. The plan is the first step and the only check (the backup subflow checks its repository
    before it writes): a refusal changes nothing."""
    logger = get_run_logger()
    started = time.monotonic()
    plan = plan_move_task(project_dir, config_path, with_password(to_database), to_storage, config_out, cutover,
                          stop_command, start_command, url, bool(repo), service)
    name = plan.project_dir.rstrip("/").rsplit("/", 1)[-1]
    for warning in plan.warnings:
        logger.warning("%s", warning)
    backup_options: dict[str, Any] | None = None
    if repo:
        backup_options = {"project_dir": plan.project_dir, "repo": repo, "config_path": config_path, "service": service}
    logger.info("moving %s: database %s, storage %s", plan.project_dir,
                plan.target.describe() if plan.target else "kept",
                ", ".join(f"{m.source.name} → {m.target.describe()}" for m in plan.storage) or "kept")
    staging = snapshot.make_staging_dir()
    done: list[str] = []
    health = None
    try:
        safety_net = None
        if backup_options and plan.method != "native":
            safety_net = backup(**backup_options)  # a native copy's own snapshot is the safety net otherwise
        location = repository_location(repo) if repo else None
        first = copy_pass(plan, backup_options, location, str(staging), workers, strict=not cutover)
        done.append("copied and verified" + (" (first pass, app running)" if cutover else ""))
        written = write_config_task(plan) if plan.config_out else None
        if written:
            done.append(f"new config written to {written}")
        final = first
        if cutover:
            final, health = cutover_steps(plan, backup_options, location, str(staging), workers, first, done,
                                          app_timeout)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result = _result(plan, first, final, safety_net or final.snapshot_id or first.snapshot_id, done, health, started)
    _report(plan, name, result, final)
    return result


def _result(plan: move.MovePlan, first: Pass, final: Pass, snapshot_id: str | None, done: list[str],
            health: dict | None, started: float) -> MoveResult:
    return MoveResult(
        project_dir=plan.project_dir,
        database=plan.target.describe() if plan.target else None,
        method=plan.method,
        snapshot=snapshot_id,
        tables=len(final.tables),
        rows=sum(c.target_rows or 0 for c in final.tables),
        tables_equal=all(c.ok for c in final.tables),
        storage={n: {"target": c.target, "objects": c.objects, "bytes": c.bytes,
                     "copied": first.copies[n].copied + (final.copies[n].copied if final is not first else 0),
                     "checksums_equal": c.checksums_equal} for n, c in final.checks.items()},
        renamed=plan.renames,
        config_out=plan.config_out,
        config_path=plan.config_path,
        cutover=bool(health),
        health=health,
        done=done,
        license_notes=list(plan.warnings),
        seconds=round(time.monotonic() - started, 1),
    )


def _report(plan: move.MovePlan, name: str, result: MoveResult, final: Pass) -> None:
    rows: list[tuple[str, object]] = [
        ("Project", plan.project_dir),
        ("Database", f"{plan.source.describe()} → {plan.target.describe()} ({plan.method})" if plan.target else "kept"),
        ("Snapshot", f"`{result.snapshot}`" if result.snapshot else "none (no --repo)"),
    ]
    if plan.target:
        rows.append(("Tables", f"{result.tables} tables, {result.rows} rows: "
                               + ("row counts and checksums equal" if result.tables_equal else "DIFFERENCES below")))
    for location, info in result.storage.items():
        rows.append((f"Storage '{location}'", f"→ {info['target']}: {info['objects']} objects "
                                              f"({human_bytes(info['bytes'])}), {info['copied']} copied, "
                                              f"{info['checksums_equal']} sha256 equal on both sides"))
    for old, new in plan.renames.items():
        rows.append(("Location renamed", f"'{old}' → '{new}' ({final.renamed_rows.get(old, 0)} directus_files rows)"))
    rows += [("New config", result.config_out or "not written (no --config-out)"),
             *[("Done", d) for d in result.done], *[("Note", w) for w in plan.warnings],
             ("Duration", f"{result.seconds} s")]
    tables = []
    if final.tables:
        tables.append(("Tables", ["table", "rows (source)", "rows (target)", "checksum equal"],
                       [[c.table, c.source_rows, c.target_rows, "yes" if c.ok else "**no**"] for c in final.tables]))
    notes = [] if result.cutover else ["Point Directus at the new config (or run again with --cutover) and restart it."]
    publish_with_tables(artifact_key("move", name), f"Move of {name}", rows, tables, notes)

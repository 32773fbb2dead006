"""What a failed restore leaves: the parts of the target that were new (a project directory, a database, a
storage location that held nothing) are removed again, as ``move`` does; for the rest the error says which
parts were written and how to finish."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, NoReturn

from . import database as db
from . import paths
from .database import DatabaseSettings
from .errors import OpsError, ProcedureFailed
from .redact import redact

log = logging.getLogger("directus_ops.restore_cleanup")


@dataclass
class NewParts:
    """The target before the restore wrote anything."""

    project_dir: str | None = None  # "absent" or "empty" (no entries): removed / emptied on failure
    database: str | None = None  # "absent" or "empty": dropped / emptied on failure
    # Storage locations that held no object, name -> the entries (folders, links) that were there (local; None:
    # the root did not exist; S3: ()).
    locations: dict[str, tuple[str, ...] | None] = field(default_factory=dict)


def observe(project_dir: Path, database: DatabaseSettings | None, locations: dict[str, Any]) -> NewParts:
    """Which parts of the target are new (``database`` None: the restore does not touch it)."""
    parts = NewParts()
    if not project_dir.exists():
        parts.project_dir = "absent"
    elif project_dir.is_dir() and not any(project_dir.iterdir()):
        parts.project_dir = "empty"
    if database is not None:
        if not db.database_exists(database):
            parts.database = "absent"
        elif not db.table_count(database):
            parts.database = "empty"
    for name, location in locations.items():
        try:
            if location.driver == "local":
                if not os.path.lexists(location.root):
                    parts.locations[name] = None
                elif os.path.isdir(location.root) and not any(True for _ in location.list_objects()):
                    parts.locations[name] = tuple(paths.entries_under(location.root))
            elif not any(True for _ in location.list_objects()):
                parts.locations[name] = ()
        except OpsError:
            continue  # cannot tell: treated as holding data, never removed
    return parts


def undo(target: Any, started: list[str]) -> tuple[list[str], list[str]]:
    """Remove what the restore put into the new parts of the target among those it ``started`` (``database``,
    ``storage:NAME``, ``files``). Returns (what was removed, what could not be)."""
    new: NewParts = target.new_parts or NewParts()
    removed: list[str] = []
    failed: list[str] = []

    def attempt(label: str, step: Callable[[], object]) -> None:
        try:
            step()
            removed.append(label)
        except Exception as exc:  # keep going: each later step is still worth trying, and reported
            failed.append(f"{label} ({redact(str(exc)) or type(exc).__name__})")

    if "database" in started and new.database:
        if new.database == "absent":
            attempt(f"the created database {target.database.describe()}", lambda: db.drop_database(target.database))
        else:
            attempt(f"the restored contents of {target.database.describe()}", lambda: _empty_database(target.database))
    for name, location in target.locations.items():
        if f"storage:{name}" not in started or name not in new.locations:
            continue
        folders = new.locations[name]
        if location.driver == "local" and _inside(location.root, target.project_dir) and new.project_dir:
            continue  # removed with the project directory
        step: Callable[[], object]
        if location.driver == "local":
            step = partial(shutil.rmtree, location.root) if folders is None else \
                partial(paths.remove_created, location.root, folders)
        else:
            step = partial(_remove_s3_objects, location)
        attempt(f"the files written to {location.describe()}", step)
    if new.project_dir:
        def remove_project_dir() -> None:
            if new.project_dir == "absent":
                shutil.rmtree(target.project_dir)
            else:
                paths.remove_created(str(target.project_dir))
        if target.project_dir.exists():
            attempt(f"the project directory {target.project_dir}" + (" (emptied)" if new.project_dir == "empty" else ""),
                    remove_project_dir)
    elif "files" in started and target.write_config:
        attempt(f"the written config {target.config_path}", lambda: target.config_path.unlink(missing_ok=True))
    return removed, failed


def _inside(path: str, folder: Path) -> bool:
    return Path(path).resolve().is_relative_to(folder)


def _empty_database(settings: DatabaseSettings) -> None:
    db.clear_database(settings)
    if settings.engine == "sqlite" and settings.filename:
        settings.filename.touch()  # it was there (empty): leave it there


def _remove_s3_objects(location: Any) -> None:
    fs = location.filesystem()
    found = [location.path_of(o.key) for o in location.list_objects(fs)]
    if found:
        fs.rm(found)


def failure_message(exc: BaseException, target: Any, snapshot_id: str, replace: bool, started: list[str],
                    finished: list[str]) -> str:
    """The restore's error with what became of the target: what was removed again, what is left partly
    restored, and how to finish."""
    failure = redact(str(exc)) or type(exc).__name__
    removed, failed = undo(target, started)
    new = target.new_parts or NewParts()
    labels = {"database": f"database {target.database.describe()}", "files": "project files (config, extensions, migrations)",
              **{f"storage:{n}": l.describe() for n, l in target.locations.items()}}
    left = [p for p in started if not _is_new(p, new, target)]
    message = f"restore of snapshot {snapshot_id} failed: {failure}"
    if removed:
        message += "; removed what it created: " + ", ".join(removed)
    if failed:
        message += "; could NOT remove: " + ", ".join(failed) + " (remove it by hand)"
    if left:
        done = [labels[p] for p in left if p in finished]
        partial = [labels[p] for p in left if p not in finished]
        untouched = [labels[p] for p in labels if p not in started]
        message += "; the target is partly restored: " + "; ".join(
            part for part in (f"replaced: {', '.join(done)}" if done else "",
                              f"partly written: {', '.join(partial)}" if partial else "",
                              f"not yet written: {', '.join(untouched)}" if untouched else "") if part)
        message += f"; fix the cause and run the same restore again{' (with --replace)' if replace else ''} to finish"
    elif not failed:
        message += "; the target is as it was: fix the cause and restore again"
    return message


def _is_new(part: str, new: NewParts, target: Any) -> bool:
    """Whether a part was new before the restore (so ``undo`` removed it)."""
    if part == "database":
        return bool(new.database)
    if part == "files":
        return bool(new.project_dir)
    return part.split(":", 1)[1] in new.locations


def raise_failed(exc: BaseException, target: Any, snapshot_id: str, replace: bool, started: list[str],
                 finished: list[str]) -> NoReturn:
    """Clean up after a restore that failed once it had started writing, and raise its error with what became
    of the target (the same error class, so the exit code still names the cause)."""
    message = failure_message(exc, target, snapshot_id, replace, started, finished)
    log.error("%s", message)
    if isinstance(exc, KeyboardInterrupt):
        raise exc
    if isinstance(exc, OpsError):
        exc.message = message
        exc.args = (message,)
        raise exc.with_traceback(None) from None
    raise ProcedureFailed(message) from None

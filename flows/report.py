"""Markdown run reports, published as Prefect artifacts."""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
import threading
import time
from collections.abc import Sequence
from typing import Any

from prefect.artifacts import (create_markdown_artifact, create_progress_artifact, create_table_artifact,
                               update_progress_artifact)

from directus_ops import progress
from directus_ops.progress import human_bytes
from directus_ops.redact import redact


def artifact_key(*parts: str) -> str:
    """Prefect artifact keys allow lowercase letters, digits and dashes only."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-")[:120]


def publish(key: str, title: str, rows: list[tuple[str, object]], notes: list[str] | None = None) -> None:
    lines = [f"# {title}", "", "| | |", "|---|---|"]
    for name, value in rows:
        lines.append(f"| {name} | {value} |")
    for note in notes or []:
        lines.append(f"\n- {note}")
    create_markdown_artifact(key=key, markdown=redact("\n".join(lines)), description=title)


def publish_with_tables(key: str, title: str, rows: list[tuple[str, object]],
                        tables: Sequence[tuple[str, Sequence[str], Sequence[Sequence[object]]]],
                        notes: list[str] | None = None) -> None:
    """Like ``publish``, followed by titled tables (heading, column names, rows)."""
    lines = [f"# {title}", "", "| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    for heading, columns, table_rows in tables:
        lines += ["", f"## {heading}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table_rows]
    for note in notes or []:
        lines.append(f"\n- {note}")
    create_markdown_artifact(key=key, markdown=redact("\n".join(lines)), description=title)


TABLE_DETAILS = 20  # the newest snapshots shown in full in the table artifact


def publish_snapshot_table(location: object) -> list[str]:
    """A table artifact of the repository's snapshots, as they are now. A manifest that cannot be read or
    trusted gets a row saying so (it must not fail the run that reports on it); returns those problems."""
    from directus_ops.errors import ManifestRejected, RepositoryError
    from directus_ops.repository import Repository
    from directus_ops.snapshot_backup import SnapshotSummary

    repository = Repository.open(location)  # type: ignore[arg-type]
    ids = repository.snapshot_ids()
    empty = {"time": "", "project": "", "directus": "", "database": "", "files": "", "size": "", "encrypted": ""}
    rows: list[dict[str, object]] = [{"id": snapshot_id, **empty}
                                     for snapshot_id in ids[:-TABLE_DETAILS]]  # older ones by id only
    problems: list[str] = []
    rejected: dict[str, dict] = {}

    def reject(snapshot_id: str, exc: RepositoryError) -> None:
        problems.append(str(exc))
        rejected[snapshot_id] = {"id": snapshot_id, **empty,
                                 "problem": exc.reason if isinstance(exc, ManifestRejected) else str(exc)}

    details = {m.id: m for m in repository.headers(on_rejected=reject, newest=TABLE_DETAILS)}
    for snapshot_id in ids[-TABLE_DETAILS:]:
        if snapshot_id in rejected:
            rows.append(rejected[snapshot_id])
            continue
        manifest = details.get(snapshot_id)
        if manifest is None:
            continue  # forgotten since it was listed
        summary = SnapshotSummary.of(manifest)
        rows.append({"id": summary.id, "time": summary.time[:19], "project": summary.project,
                     "directus": summary.directus_version or "", "database": summary.database,
                     "files": summary.files, "size": human_bytes(summary.bytes),
                     "encrypted": "yes" if manifest.encrypted else "config only"})
    if problems:
        rows = [{**row, "problem": row.get("problem", "")} for row in rows]  # every row has the same columns
    create_table_artifact(key=artifact_key("snapshots", repository.location.url.rsplit("/", 1)[-1] or "repository"),
                          table=rows, description=f"Snapshots in {redact(repository.location.url)}")
    return problems


# -- progress artifacts of long copies ------------------------------------------------------------------------
PROGRESS_AFTER_ENV = "DIRECTUS_OPS_PROGRESS_ARTIFACT_AFTER"  # seconds a copy runs before it gets an artifact
PROGRESS_AFTER = 2.0
PROGRESS_EVERY = 2.0  # at most one update per this many seconds: an API call each


class _ArtifactTracker:
    """A progress artifact for one tracked copy with a known total, created only once the copy has run
    ``after`` seconds (short copies, such as one small file, get none) and updated at most every
    ``PROGRESS_EVERY`` seconds from whichever thread advances it."""

    def __init__(self, label: str, total: int, after: float) -> None:
        self.label, self.total, self.after = redact(label), total, after
        self.done = 0
        self.started = self._last = time.monotonic()
        self.artifact_id: Any = None
        self._lock = threading.Lock()
        # Copies advance from worker threads that have no run context: the artifact must still name its run.
        self._context = contextvars.copy_context()

    def _percent(self) -> float:
        return round(min(100.0, 100.0 * self.done / max(self.total, 1)), 1)

    def advance(self, amount: int) -> None:
        with self._lock:
            self.done += amount
            now = time.monotonic()
            due = (self.artifact_id is None and now - self.started >= self.after) or \
                  (self.artifact_id is not None and now - self._last >= PROGRESS_EVERY)
            if not due:
                return
            self._last = now
            self._publish()

    def _publish(self) -> None:
        with contextlib.suppress(Exception):  # a report must never fail the copy it reports on
            if self.artifact_id is None:
                self.artifact_id = self._context.run(create_progress_artifact, self._percent(),
                                                     description=self.label)
            else:
                update_progress_artifact(self.artifact_id, self._percent())

    def finish(self) -> None:
        with self._lock:
            if self.artifact_id is None and time.monotonic() - self.started >= self.after:
                self._publish()
            if self.artifact_id is not None:
                with contextlib.suppress(Exception):
                    update_progress_artifact(self.artifact_id, self._percent())


class _Idle:
    def advance(self, amount: int) -> None:
        pass


class ProgressArtifacts:
    """A progress observer (directus_ops.progress) publishing artifacts for copies inside a flow run."""

    def start(self, label: str, total: int | None) -> Any:
        from prefect.context import TaskRunContext, FlowRunContext

        if not total or (FlowRunContext.get() is None and TaskRunContext.get() is None):
            return _Idle()
        return _ArtifactTracker(label, total, float(os.environ.get(PROGRESS_AFTER_ENV, PROGRESS_AFTER)))

    def finish(self, tracker: Any) -> None:
        if isinstance(tracker, _ArtifactTracker):
            tracker.finish()


progress.add_observer(ProgressArtifacts())


__all__ = ["artifact_key", "human_bytes", "publish", "publish_snapshot_table"]

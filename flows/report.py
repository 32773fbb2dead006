"""Markdown run reports, published as Prefect artifacts."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact, create_table_artifact

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
                        tables: list[tuple[str, list[str], list[list[object]]]], notes: list[str] | None = None) -> None:
    """Like ``publish``, followed by titled tables (heading, column names, rows)."""
    lines = [f"# {title}", "", "| | |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows)]
    for heading, columns, table_rows in tables:
        lines += ["", f"## {heading}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
        lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in table_rows]
    for note in notes or []:
        lines.append(f"\n- {note}")
    create_markdown_artifact(key=key, markdown=redact("\n".join(lines)), description=title)


TABLE_DETAILS = 20  # the newest snapshots shown in full in the table artifact


def publish_snapshot_table(location: object) -> None:
    """A table artifact of the repository's snapshots, as they are now."""
    from directus_ops.repository import Repository
    from directus_ops.snapshot import SnapshotSummary

    repository = Repository.open(location)  # type: ignore[arg-type]
    rows = []
    ids = repository.snapshot_ids()
    for snapshot_id in ids[:-TABLE_DETAILS]:  # older ones by id only: their manifests are not read
        rows.append({"id": snapshot_id, "time": "", "project": "", "directus": "", "database": "", "files": "",
                     "size": "", "encrypted": ""})
    for manifest in (repository.load_header(i) for i in ids[-TABLE_DETAILS:]):
        summary = SnapshotSummary.of(manifest)
        rows.append({"id": summary.id, "time": summary.time[:19], "project": summary.project,
                     "directus": summary.directus_version or "", "database": summary.database,
                     "files": summary.files, "size": human_bytes(summary.bytes),
                     "encrypted": "yes" if manifest.encrypted else "config only"})
    create_table_artifact(key=artifact_key("snapshots", repository.location.url.rsplit("/", 1)[-1] or "repository"),
                          table=rows, description=f"Snapshots in {redact(repository.location.url)}")


__all__ = ["artifact_key", "human_bytes", "publish", "publish_snapshot_table"]

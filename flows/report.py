"""Markdown run reports, published as Prefect artifacts."""

from __future__ import annotations

import re

from prefect.artifacts import create_markdown_artifact

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


__all__ = ["artifact_key", "human_bytes", "publish"]

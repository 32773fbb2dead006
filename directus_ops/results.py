"""What each procedure returns: typed results the flows return, the CLI prints (``lines``: the summary on stdout;
``notes``/``warnings``: on stderr) and tests read by attribute."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RestoreResult:
    snapshot: str
    project_dir: str
    database: str
    tables: int
    rows: int
    database_restored: bool  # False: the snapshot holds no database (taken with delete --backup-database none)
    storage: dict[str, dict[str, int]]  # per location: objects, written, skipped, bytes_written
    files: dict[str, int]  # config, extensions, migrations
    license_notice: str | None = None
    seconds: float = 0.0

    def notes(self) -> list[str]:
        notes = [self.license_notice] if self.license_notice else []
        if not self.database_restored:
            notes.append(f"snapshot {self.snapshot} holds no database (taken with --backup-database none); the "
                         "target's database was not touched")
        return notes

    def lines(self) -> list[str]:
        objects = sum(counts["objects"] for counts in self.storage.values())
        return [f"restored snapshot {self.snapshot} into {self.project_dir}: {self.tables} tables, {self.rows} rows, "
                f"{objects} storage objects (all checksums verified)"]




"""What each procedure returns: typed results the flows return, the CLI prints (``lines``: the summary on stdout;
``notes``/``warnings``: on stderr) and tests read by attribute."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .progress import human_bytes
from .redact import redact

if TYPE_CHECKING:
    from .retention import PruneResult
    from .verify import DrillResult


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


@dataclass(frozen=True)
class VerifyResult:
    repo: str
    snapshots: list[str]
    entries: int
    objects_read: int
    bytes_read: int
    read_data_percent: float | None  # None: sizes only, no bytes re-read
    drill: DrillResult | None = None

    def lines(self) -> list[str]:
        line = f"ok: {len(self.snapshots)} snapshots, {self.entries} entries"
        if self.read_data_percent is not None:
            line += f", {self.objects_read} objects re-read ({human_bytes(self.bytes_read)})"
        if self.drill:
            line += (f"; restore drill of {self.drill.snapshot}: {self.drill.tables} tables, {self.drill.rows} rows "
                     "match")
        return [line]


@dataclass(frozen=True)
class ForgetResult:
    keep: dict[str, list[str]]  # snapshot id -> the rules that keep it
    forget: list[str]
    left_out: dict[str, str]  # snapshot id -> why its manifest could not be used (neither kept nor forgotten)
    dry_run: bool
    prune: PruneResult | None = None

    def warnings(self) -> list[str]:
        return [f"left out of the retention decision (neither kept nor forgotten): {redact(problem).splitlines()[0]}"
                for _, problem in sorted(self.left_out.items())]

    def lines(self) -> list[str]:
        lines = [f"keep    {snapshot_id}  ({', '.join(reasons)})" for snapshot_id, reasons in sorted(self.keep.items())]
        lines += [f"{'would forget' if self.dry_run else 'forget'}  {snapshot_id}" for snapshot_id in sorted(self.forget)]
        if self.prune:
            pruned = self.prune
            verb = "would delete" if self.dry_run else "deleted"
            lines.append(f"prune: {verb} {pruned.objects_deleted} objects ({human_bytes(pruned.bytes_freed)}) and "
                         f"{pruned.leftovers_deleted} leftovers; {pruned.objects_kept} objects still referenced"
                         + (f"; {pruned.packs_deleted} pack files removed, {pruned.packs_repacked} of them rewritten"
                            if pruned.packs_deleted else ""))
        return lines

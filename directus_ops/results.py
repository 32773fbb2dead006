"""What each procedure returns: typed results the flows return, the CLI prints (``lines``: the summary on stdout;
``notes``/``warnings``: on stderr) and tests read by attribute."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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


@dataclass(frozen=True)
class UpgradeResult:
    from_version: str
    to_version: str
    upgraded: bool  # False: the target is what is installed (nothing done, no backup)
    snapshot: str | None = None  # taken before the upgrade
    health: dict[str, Any] | None = None  # status, version
    rehearsed: bool = False
    license_notice: str | None = None  # into Directus 12's licensing: accepted (accept_license_change / --yes)

    def notes(self) -> list[str]:
        return [self.license_notice] if self.license_notice else []

    def lines(self) -> list[str]:
        if not self.upgraded:
            return [f"Directus {self.from_version} is installed: nothing to upgrade"]
        return [f"upgraded {self.from_version} -> {self.to_version} (snapshot before: {self.snapshot})"]


@dataclass(frozen=True)
class RehearsalResult:
    from_version: str
    to_version: str
    result: str  # "ok" | "failed"
    error: str | None = None
    license_notice: str | None = None  # the upgrade itself will need it accepted; the rehearsal does not

    @property
    def ok(self) -> bool:
        return self.result == "ok"

    def notes(self) -> list[str]:
        return [self.license_notice] if self.license_notice else []

    def lines(self) -> list[str]:
        return [f"rehearsal {self.from_version} -> {self.to_version}: "
                + ("ok" if self.ok else f"failed: {self.error}; production was not touched")]


@dataclass(frozen=True)
class DowngradeResult:
    from_version: str
    to_version: str
    reverted: list[str]  # migration keys, newest first
    snapshot: str
    health: dict[str, Any]
    data_loss: list[str] = field(default_factory=list)  # reverted migrations that lose data: accepted

    def warnings(self) -> list[str]:
        return list(self.data_loss)

    def lines(self) -> list[str]:
        return [f"downgraded {self.from_version} -> {self.to_version} (snapshot before: {self.snapshot})"]


@dataclass(frozen=True)
class MoveResult:
    project_dir: str
    database: str | None  # the new database, described (None: it stays)
    method: str | None  # native | transfer | None
    snapshot: str | None  # the backup taken first (None: no repository given)
    tables: int
    rows: int
    tables_equal: bool
    storage: dict[str, dict[str, Any]]  # per location: target, objects, bytes, copied, checksums_equal
    renamed: dict[str, str]  # old location name -> new
    config_out: str | None
    config_path: str
    cutover: bool
    health: dict[str, Any] | None = None
    done: list[str] = field(default_factory=list)
    license_notes: list[str] = field(default_factory=list)  # an activated license the copy takes with it
    seconds: float = 0.0

    def notes(self) -> list[str]:
        return list(self.license_notes)

    def lines(self) -> list[str]:
        parts = []
        if self.database:
            parts.append(f"database -> {self.database}: {self.tables} tables, {self.rows} rows "
                         "(row counts and checksums equal)")
        for name, info in self.storage.items():
            parts.append(f"storage '{name}' -> {info['target']}: {info['objects']} objects (sha256 equal)")
        line = "moved " + "; ".join(parts)
        if self.config_out and not self.cutover:
            line += f"; new config: {self.config_out}"
        if self.cutover:
            line += f"; cut over: the project now runs on the new config (old one kept as {self.config_path}.before-move)"
        if self.snapshot:
            line += f"; snapshot before: {self.snapshot}"
        return [line]


@dataclass(frozen=True)
class DeleteResult:
    dry_run: bool
    plan: list[str] = field(default_factory=list)  # a dry run's plan, as printed
    snapshot: str | None = None  # the verified backup taken first
    dropped_tables: list[str] = field(default_factory=list)
    dropped_foreign_keys: list[str] = field(default_factory=list)
    rebuilt_tables: list[str] = field(default_factory=list)  # SQLite: rebuilt without their system references
    project_tables: int = 0
    rows: int = 0
    root_removed: bool = False
    removed_paths: list[str] = field(default_factory=list)
    kept_paths: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    license_notice: str | None = None  # an activated Directus 12 license: deactivate it first
    seconds: float = 0.0
    compose_service: str | None = None  # a Docker Compose project's Directus service: stopped, the stack kept

    def notes(self) -> list[str]:
        if self.dry_run:
            return []  # a dry run's plan says it all, the license included
        stack = self.untouched if self.compose_service else []  # the Compose project: the operator's to remove
        return [*stack, *([self.license_notice] if self.license_notice else [])]

    def lines(self) -> list[str]:
        if self.dry_run:
            return [*self.plan, "dry run: nothing was changed"]
        kept = f"; kept {self.kept_paths[0].split(' ', 1)[0]}" if self.kept_paths else ""
        root = ("project root removed" if self.root_removed else "project root kept") + kept
        if self.compose_service:
            root = f"Compose service '{self.compose_service}' stopped, the Compose project kept"
        backup = f"snapshot before: {self.snapshot}" if self.snapshot else "no backup"
        return [(f"deleted: {len(self.dropped_tables)} system tables and {len(self.dropped_foreign_keys)} foreign keys "
                 f"dropped; {self.project_tables} project tables ({self.rows} rows) verified; {root} ({backup})")]


@dataclass(frozen=True)
class V8MigrateResult:
    """The migration's report (also written to report.json next to the id map); a dry run has only the plan's
    part (``collections``), a run every step's counts."""

    v8_database: str
    target: str  # the target project's directory, or its URL in api mode
    mode: str
    directus: str
    resumed: bool
    dry_run: bool
    id_map: str
    license: dict[str, Any] | None = None
    collections: list[str] | None = None  # dry run: what would be migrated
    people: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None
    items: dict[str, Any] | None = None
    permissions: dict[str, Any] | None = None
    comments: dict[str, Any] | None = None
    sequences: dict[str, Any] | None = None  # database mode
    not_kept: list[str] | None = None  # api mode: what the REST API cannot carry over
    seconds: float = 0.0

    def lines(self) -> list[str]:
        if self.dry_run:
            return [f"dry run: checks passed; would migrate {', '.join(self.collections or [])}; id map {self.id_map}"]
        assert self.items is not None and self.files is not None and self.people is not None
        collections = self.items["collections"]
        read = sum(s["read"] for s in collections.values())
        written = sum(s["written"] for s in collections.values())
        return [(f"migrated {len(collections)} collections ({read} rows read, {written} written), "
                 f"{self.files['copied']} files copied, {len(self.items['dangling'])} dangling references set to "
                 f"NULL, {len(self.people['users_needing_password'])} users need a password; id map {self.id_map}")]

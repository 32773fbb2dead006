"""Checking a repository: every manifest readable, every object it names present with its recorded size,
and (``read_data``) every object's content re-hashed; and the restore drill, which restores a snapshot's
database into a scratch database, compares every table's row count with the manifest, and drops it."""

from __future__ import annotations

import logging
import random
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import database as db
from . import dumps, paths, progress
from .database import DatabaseSettings
from .errors import IntegrityError, ManifestRejected, OpsError, RepositoryError, SnapshotNotFound, TargetNotEmpty
from .manifest import Manifest
from .repository import Repository
from .snapshot import DEFAULT_WORKERS, run_parallel
from .snapshot_restore import fetch_verified, require_database

log = logging.getLogger("directus_ops.verify")


@dataclass(frozen=True)
class Problem:
    snapshot: str
    location: str  # a storage location, or @database/@config/@project/@extensions/@migrations, or "manifest"
    key: str
    problem: str

    def __str__(self) -> str:
        where = f"{self.location}/{self.key}" if self.key else self.location
        return f"snapshot {self.snapshot}: {where}: {self.problem}"


@dataclass
class VerifyReport:
    snapshots: list[str] = field(default_factory=list)
    entries: int = 0
    objects_read: int = 0
    bytes_read: int = 0
    problems: list[Problem] = field(default_factory=list)
    # Objects found missing (None) or damaged (their fingerprint as found): noted in the repository so that
    # the next backup whose source still has the file stores it again (Repository.repairs).
    unhealthy: dict[str, str | None] = field(default_factory=dict)
    noted_for_repair: int = 0

    @property
    def ok(self) -> bool:
        return not self.problems


def select_snapshots(repo: Repository, snapshot: str = "all") -> list[str]:
    """The ids to check. A named snapshot is found by its id alone, so that a manifest that cannot be read
    or trusted is reported as that snapshot's problem rather than stopping verify."""
    if snapshot == "all":
        return repo.snapshot_ids()
    return [repo.resolve(snapshot).id] if snapshot == "latest" else [repo.resolve_id(snapshot)]


def check(repo: Repository, snapshot: str = "all", read_data_percent: float | None = None,
          workers: int = DEFAULT_WORKERS, seed: int | None = None) -> VerifyReport:
    """Check manifests and objects; with ``read_data_percent`` also re-hash that share of the objects."""
    report = VerifyReport()
    selected = select_snapshots(repo, snapshot)
    if selected:
        repo.manifest_key()  # a missing or wrong passphrase is one error, not a problem of every snapshot
    known = repo.known_objects()
    users: dict[str, list[tuple[str, object]]] = defaultdict(list)  # object name -> (snapshot, entry)
    for snapshot_id in selected:
        report.snapshots.append(snapshot_id)
        try:
            manifest = repo.load_manifest(snapshot_id)
        except SnapshotNotFound:
            continue  # forgotten since it was listed
        except RepositoryError as exc:  # damaged or not authentic: nothing it names is looked at
            reason = f"{exc.file}: {exc.reason}" if isinstance(exc, ManifestRejected) else str(exc)
            report.problems.append(Problem(snapshot_id, "manifest", "", reason))
            continue
        if config_problem := paths.config_file_problem(manifest.project.config_file):
            report.problems.append(Problem(snapshot_id, "config_file", repr(paths.display_key(manifest.project.config_file)),
                                           f"unsafe name: {config_problem}"))
        keys = paths.KeyCheck()
        for entry in manifest.all_entries():
            report.entries += 1
            if key_problem := keys.problem(entry.location, entry.key, entry.symlink, entry.size):
                # a restore refuses the whole snapshot for it
                report.problems.append(Problem(snapshot_id, entry.location, repr(paths.display_key(entry.key)),
                                               f"unsafe key: {key_problem}"))
            name = entry.object_name
            if name not in known:
                report.problems.append(Problem(snapshot_id, entry.location, entry.key, f"object {name[:12]}… is missing"))
                report.unhealthy[name] = None
            elif entry.stored_size is not None and known[name] != entry.stored_size:
                report.problems.append(Problem(snapshot_id, entry.location, entry.key,
                                               f"object {name[:12]}… has {known[name]} bytes, the manifest recorded {entry.stored_size}"))
                report.unhealthy[name] = ""  # damaged: its fingerprint is taken when noted
            else:
                users[name].append((snapshot_id, entry))
    if read_data_percent:
        names = sorted(users)
        if read_data_percent < 100:
            count = max(1, round(len(names) * read_data_percent / 100)) if names else 0
            names = sorted(random.Random(seed).sample(names, count))
        _read_objects(repo, names, users, report, workers)
    note_for_repair(repo, report)
    return report


def note_for_repair(repo: Repository, report: VerifyReport) -> None:
    """Write what this check found missing or damaged into ``repairs/`` for the next backup. A repository
    this run cannot write to only loses the self-healing, not the check."""
    if not report.unhealthy:
        return
    objects = {name: (None if seen is None else repo.object_fingerprint(name)) for name, seen in report.unhealthy.items()}
    try:
        repo.note_repairs(objects)
    except Exception as exc:  # the report is what verify is for; the note is a help
        log.warning("could not note %d objects for repair in %s: %s", len(objects), repo.describe(), exc)
        return
    report.noted_for_repair = len(objects)
    log.info("%d missing or damaged objects noted in %s/repairs: the next backup stores them again from the "
             "project's files where it still has them", len(objects), repo.describe())


def _read_objects(repo: Repository, names: list[str], users: dict[str, list[tuple[str, object]]],
                  report: VerifyReport, workers: int) -> None:
    lock = threading.Lock()
    total = sum(users[n][0][1].size for n in names)  # type: ignore[attr-defined]

    class _Sink:
        def write(self, data: bytes) -> int:
            return len(data)

    with progress.track(f"read {len(names)} objects", total) as tracker:
        def read(name: str) -> None:
            snapshot_id, entry = users[name][0]
            try:
                repo.copy_object_to(entry, _Sink(), tracker.advance)  # type: ignore[arg-type]
                failure = None
            except IntegrityError as exc:
                failure = str(exc).split(": ", 1)[-1]
            with lock:
                report.objects_read += 1
                report.bytes_read += entry.size  # type: ignore[attr-defined]
                if failure:
                    report.unhealthy[name] = ""
                    for user_snapshot, user_entry in users[name]:
                        report.problems.append(Problem(user_snapshot, user_entry.location, user_entry.key,  # type: ignore[attr-defined]
                                                       f"content does not match: {failure}"))

        run_parallel(read, names, workers)


# -- restore drill -----------------------------------------------------------------------------------------------
@dataclass
class DrillResult:
    snapshot: str
    database: str
    tables: int
    rows: int
    mismatches: dict[str, tuple[int, int | None]]

    @property
    def ok(self) -> bool:
        return not self.mismatches


def restore_drill(repo: Repository, manifest: Manifest, scratch: DatabaseSettings, staging_dir: Path) -> DrillResult:
    """Restore the snapshot's database into ``scratch`` (which must not hold anything), compare every table's
    row count with the manifest, then drop what the drill made, whatever happened."""
    info = require_database(manifest)
    if scratch.engine != info.engine:
        raise OpsError(f"snapshot {manifest.id} holds a {info.engine} database; the scratch database "
                       f"{scratch.describe()} is {scratch.engine}")
    existed = db.database_exists(scratch)
    if existed and db.table_count(scratch):
        raise TargetNotEmpty(f"scratch database {scratch.describe()} is not empty; name one that does not exist "
                             "(the drill creates it and drops it afterwards)")
    dump_file = fetch_verified(repo, manifest.database_dump, staging_dir / manifest.database_dump.key)
    try:
        db.ensure_database(scratch, info.charset, info.collation)
        dumps.restore(scratch, dump_file, info.dump_format, info.skipped_foreign_keys)
        with db.connect(scratch) as conn:
            counts = db.count_rows(conn)
    finally:
        dump_file.unlink(missing_ok=True)
        if existed:
            db.clear_database(scratch)
        else:
            db.drop_database(scratch)
    mismatches = {t: (n, counts.get(t)) for t, n in info.row_counts.items() if counts.get(t) != n}
    return DrillResult(manifest.id, scratch.describe(), len(counts), sum(counts.values()), mismatches)


def problems_text(problems: Iterable[Problem], limit: int = 50) -> list[str]:
    items = [str(p) for p in problems]
    return items[:limit] + ([f"… and {len(items) - limit} more"] if len(items) > limit else [])

"""Which snapshots to keep (grandfather-father-son, as restic's ``forget``), and ``prune``: deleting what
no snapshot references any more.

Rules, applied to each project's snapshots newest first: ``keep_last`` keeps the N newest; ``keep_daily``
keeps the newest snapshot of each of the last N days that have one (UTC), likewise weekly (ISO weeks),
monthly and yearly. A snapshot kept by any rule is kept. The newest snapshot of a project is always kept.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from . import locks
from .errors import (
    ConfigError,
    ManifestRejected,
    PassphraseMissing,
    RepositoryError,
    SnapshotNotFound,
    WrongPassphrase,
)
from .manifest import ManifestHeader
from .repository import Repository

log = logging.getLogger("directus_ops.retention")


@dataclass(frozen=True)
class Policy:
    keep_last: int = 0
    keep_hourly: int = 0
    keep_daily: int = 0
    keep_weekly: int = 0
    keep_monthly: int = 0
    keep_yearly: int = 0

    def __post_init__(self) -> None:
        for name, value in self.__dict__.items():
            if value < 0:
                raise ConfigError(f"--{name.replace('_', '-')} {value}: give a number of snapshots, 0 or more")
        if not any(self.__dict__.values()):
            raise ConfigError("no retention rule given: pass at least one of --keep-last, --keep-daily, --keep-weekly, "
                              "--keep-monthly (forget never empties a repository by default)")

    def rules(self) -> list[tuple[str, int, Callable[[datetime], object]]]:
        return [
            ("last", self.keep_last, lambda t: t),  # every snapshot is its own bucket
            ("hourly", self.keep_hourly, lambda t: (t.year, t.month, t.day, t.hour)),
            ("daily", self.keep_daily, lambda t: t.date()),
            ("weekly", self.keep_weekly, lambda t: t.isocalendar()[:2]),
            ("monthly", self.keep_monthly, lambda t: (t.year, t.month)),
            ("yearly", self.keep_yearly, lambda t: t.year),
        ]


@dataclass
class Decision:
    keep: dict[str, list[str]] = field(default_factory=dict)  # snapshot id -> reasons
    forget: list[str] = field(default_factory=list)
    # snapshot id -> why its manifest could not be used: neither kept nor forgotten (not trusted, never deleted)
    left_out: dict[str, str] = field(default_factory=dict)


def decide(manifests: list[ManifestHeader], policy: Policy) -> Decision:
    """Apply the policy to each project's snapshots separately."""
    decision = Decision()
    by_project: dict[str, list[ManifestHeader]] = defaultdict(list)
    for manifest in manifests:
        by_project[manifest.project.name].append(manifest)
    for group in by_project.values():
        newest_first = sorted(group, key=lambda m: (m.time, m.id), reverse=True)
        reasons: dict[str, list[str]] = defaultdict(list)
        for name, count, bucket in policy.rules():
            if count <= 0:
                continue
            last_bucket = object()
            kept = 0
            for manifest in newest_first:
                key = bucket(manifest.time)
                if key != last_bucket:
                    last_bucket = key
                    if kept < count:
                        reasons[manifest.id].append(name)
                        kept += 1
        reasons[newest_first[0].id].append("newest")
        for manifest in newest_first:
            if reasons.get(manifest.id):
                decision.keep[manifest.id] = reasons[manifest.id]
            else:
                decision.forget.append(manifest.id)
    return decision


def decide_for(repo: Repository, policy: Policy, project: str | None = None) -> Decision:
    """``decide`` on the repository's snapshots (of one project, if given). A manifest that cannot be read or
    trusted takes no part: it is listed in ``left_out`` and logged as a warning, and stays where it is."""
    left_out: dict[str, str] = {}

    def reject(snapshot_id: str, exc: RepositoryError) -> None:
        left_out[snapshot_id] = str(exc)
        log.warning("snapshot %s left out of the retention decision: %s", snapshot_id, exc)

    manifests = repo.headers(on_rejected=reject)
    if project:
        manifests = [m for m in manifests if m.project.name == project]
    decision = decide(manifests, policy)
    decision.left_out = left_out
    return decision


def forget(repo: Repository, snapshot_ids: list[str]) -> None:
    """Remove the manifests (the snapshots cease to exist; their objects go at the next prune)."""
    files = repo.manifest_files()
    for snapshot_id in snapshot_ids:
        repo.fs.rm(posixpath.join(repo.base, "snapshots", files[snapshot_id]))


@dataclass
class PruneResult:
    objects_deleted: int = 0
    bytes_freed: int = 0
    leftovers_deleted: int = 0
    objects_kept: int = 0
    stale_locks_removed: int = 0
    repair_notes_removed: int = 0
    packs_deleted: int = 0
    packs_repacked: int = 0


def prune(repo: Repository, dry_run: bool = False, wait: float = 0.0) -> PruneResult:
    """Delete every object no snapshot references, and the leftovers of interrupted backups, under an
    exclusive lock (so no backup runs meanwhile)."""
    result = PruneResult()
    with locks.hold(repo, "prune", exclusive=True, wait=wait):
        result.stale_locks_removed = 0 if dry_run else locks.remove_stale(repo)
        referenced: dict[str, int | None] = {}  # object name -> stored size a manifest records
        files = repo.manifest_files()
        for snapshot_id in sorted(files):
            try:
                manifest = repo.load_manifest(snapshot_id)
            except SnapshotNotFound:
                continue  # forgotten since it was listed
            except (PassphraseMissing, WrongPassphrase):
                raise
            except RepositoryError as exc:
                # A manifest prune cannot trust may still name objects someone needs: it deletes nothing.
                reason = exc.reason if isinstance(exc, ManifestRejected) else str(exc)
                raise RepositoryError(
                    f"prune stopped, nothing deleted: cannot use the manifest snapshots/{files[snapshot_id]} "
                    f"({reason}), so prune cannot know which objects are still needed; if that snapshot is "
                    f"not yours or is lost, remove that file from the repository and prune again") from None
            referenced.update((e.object_name, e.stored_size) for e in manifest.all_entries())
        repo.forget_listing()  # list afresh: what is there now
        for name, size in sorted(repo.loose_objects().items()):
            if name in referenced:
                result.objects_kept += 1
                continue
            result.objects_deleted += 1
            result.bytes_freed += size
            if not dry_run:
                repo.fs.rm(repo.object_path(name))
        packed = repo.prune_packs(referenced, dry_run)
        result.objects_deleted += packed.objects_deleted
        result.objects_kept += packed.objects_kept
        result.bytes_freed += packed.bytes_freed
        result.packs_deleted, result.packs_repacked = packed.packs_deleted, packed.packs_repacked
        for path in _healed_notes(repo, referenced):
            result.repair_notes_removed += 1
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    repo.fs.rm(path)
        for path in _leftovers(repo):
            result.leftovers_deleted += 1
            if not dry_run:
                with contextlib.suppress(FileNotFoundError):
                    repo.fs.rm(path)
        repo.forget_listing()
    return result


def _healed_notes(repo: Repository, referenced: dict[str, int | None]) -> list[str]:
    """Repair notes (``verify``'s) none of whose objects is still missing or damaged: each is either no longer
    referenced, or present again, written anew (not the object verify saw) with the size a manifest records."""
    healed = []
    for path, objects in repo.repair_notes().items():
        for name, seen in objects.items():
            if name not in referenced:
                continue
            current = repo.object_fingerprint(name)
            expected = referenced[name]
            if current is None or current == seen or \
                    (expected is not None and current.split(":", 1)[0] != str(expected)):
                break
        else:
            healed.append(path)
    return healed


def _leftovers(repo: Repository) -> list[str]:
    """Files an interrupted run left: uploads in flight (``tmp/``) and half-written manifests, keys, locks."""
    found = []
    tmp = posixpath.join(repo.base, "tmp")
    if repo.fs.exists(tmp):
        found += repo.fs.find(tmp)
    for folder in ("snapshots", "keys", "locks", "repairs", "index", "packs"):
        root = posixpath.join(repo.base, folder)
        if repo.fs.exists(root):
            found += [p for p in repo.fs.find(root) if posixpath.basename(p).startswith(".") and p.endswith(".tmp")]
    return found

"""Copying a storage location's objects to another location (local folder or S3 bucket, either way), for
``move``: streamed and in parallel, each object written under a temporary name (or an uncommitted upload) and
committed only once whole, then read back from the target and its sha256 compared with the source's. Each
pass records every object (size, fingerprint, sha256) in a JSON file, so a cutover's final pass copies only
what changed since the first, and the check counts only objects that were read back and compared."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import progress, verified_copy
from .errors import IntegrityError, StorageError
from .redact import redact
from .snapshot import DEFAULT_WORKERS, run_parallel
from .storage import StorageLocation

log = logging.getLogger("directus_ops.move")


@dataclass(frozen=True)
class StorageMove:
    """One location of a move: where its objects are, and where they go."""

    source: StorageLocation
    target: StorageLocation  # its name is the location's name after the move

    @property
    def renamed(self) -> bool:
        return self.source.name != self.target.name


@dataclass
class LocationCopy:
    """One pass over a storage location; every object's record (size, fingerprint, sha256) is in a JSON file."""

    source: str
    target: str
    records_path: str
    objects: int = 0
    bytes: int = 0
    copied: int = 0
    bytes_copied: int = 0
    unchanged: int = 0  # not read again: equal to the previous pass's record, or already identical in the target


def _read_records(path: str | None) -> dict[str, dict[str, Any]]:
    if not path or not Path(path).exists():
        return {}
    return json.loads(Path(path).read_text())


def copy_location(move: StorageMove, staging_dir: Path, previous_records: str | None = None,
                  workers: int = DEFAULT_WORKERS) -> LocationCopy:
    """Copy every object of ``move.source`` to ``move.target`` (streamed, in parallel). Each copy is checked:
    sha256 of the bytes read from the source == sha256 of what the target returns when read back. With
    ``previous_records`` (a cutover's final pass) only objects new or changed since that pass are copied."""
    source, target = move.source, move.target
    source_fs, target_fs = source.filesystem(), target.filesystem()
    previous = _read_records(previous_records)
    objects = list(source.list_objects(source_fs))
    existing = {o.key: o for o in target.list_objects(target_fs)} if not previous else {}
    records: dict[str, dict[str, Any]] = {}
    to_copy = []
    for obj in objects:
        old = previous.get(obj.key)
        if old and old["size"] == obj.size and old["fingerprint"] == obj.fingerprint:
            records[obj.key] = old
        else:
            to_copy.append(obj)
    lock = threading.Lock()
    result = LocationCopy(source=source.describe(), target=target.describe(), records_path="")
    with progress.track(f"copy storage '{source.name}' to {target.describe()}: {len(to_copy)} files",
                        sum(o.size for o in to_copy)) as tracker:
        def copy(obj: Any) -> None:
            if obj.symlink:  # never followed (it may point outside the root); a bucket cannot hold a link
                raise StorageError(f"{obj.key} in {source.describe()} is a symbolic link; move copies files only: "
                                   "replace the link with the file it points at (or remove it) and run the move again")
            there = existing.get(obj.key)
            if there is not None and there.size == obj.size:
                digest = _sha256(target, obj.key, target_fs)
                if digest == _sha256(source, obj.key, source_fs):  # the same bytes are there already (a move back)
                    tracker.advance(obj.size)
                    with lock:
                        records[obj.key] = {"size": obj.size, "fingerprint": obj.fingerprint, "sha256": digest,
                                            "verified": True}
                        result.unchanged += 1
                    return
            digest = _copy_one(source, target, obj.key, source_fs, target_fs, tracker.advance)
            with lock:  # _copy_one returns only once the target's read-back sha256 equalled the source's
                records[obj.key] = {"size": obj.size, "fingerprint": obj.fingerprint, "sha256": digest,
                                    "verified": True}
                result.copied += 1
                result.bytes_copied += obj.size

        run_parallel(copy, to_copy, workers)
    result.unchanged += len(objects) - len(to_copy)
    result.objects = len(records)
    result.bytes = sum(r["size"] for r in records.values())
    path = staging_dir / f"storage-{source.name}-{'final' if previous else 'first'}.json"
    path.write_text(json.dumps(records))
    result.records_path = str(path)
    log.info("%s -> %s: %d objects, %d copied (%s), %d unchanged", source.describe(), target.describe(),
             result.objects, result.copied, progress.human_bytes(result.bytes_copied), result.unchanged)
    return result


def _copy_one(source: StorageLocation, target: StorageLocation, key: str, source_fs: Any, target_fs: Any,
              advance: Callable[[int], None]) -> str:
    try:
        with source.open(key, "rb", source_fs) as reader:
            expected, _ = verified_copy.write_committed(reader, target.open_uncommitted(key, target_fs), advance)
    except FileNotFoundError:
        raise StorageError(f"{key} vanished from {source.describe()} during the move; run the move again") from None
    except OSError as exc:
        raise StorageError(f"cannot copy {key} from {source.describe()} to {target.describe()}: "
                           f"{redact(str(exc)) or type(exc).__name__}") from None
    verified_copy.check_read_back(
        lambda: target.open(key, "rb", target_fs), expected,
        lambda written: IntegrityError(f"{key} in {target.describe()} reads back with sha256 {written[:12]}…, the "
                                       f"source's is {expected[:12]}…; check the target storage and run the move again"))
    return expected


def _sha256(location: StorageLocation, key: str, fs: Any) -> str:
    with location.open(key, "rb", fs) as reader:
        return verified_copy.digest(reader)


@dataclass
class LocationCheck:
    name: str
    target: str
    objects: int
    bytes: int
    target_objects: int
    target_bytes: int
    checksums_equal: int
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_location(move: StorageMove, copy: LocationCopy) -> LocationCheck:
    """The target holds every source object with its size, and each one's read-back sha256 equalled the
    source's (``verified``, recorded by the copy when it compared them). Objects in the target that the source
    lacks are not counted."""
    records = _read_records(copy.records_path)
    present = {o.key: o.size for o in move.target.list_objects()}
    problems = []
    for key, record in records.items():
        if key not in present:
            problems.append(f"{key} is missing")
        elif present[key] != record["size"]:
            problems.append(f"{key} has {present[key]} bytes, the source {record['size']}")
        elif not record.get("verified"):
            problems.append(f"{key} was not read back and compared with the source")
    return LocationCheck(name=move.source.name, target=move.target.describe(), objects=len(records),
                         bytes=sum(r["size"] for r in records.values()),
                         target_objects=sum(1 for k in records if k in present),
                         target_bytes=sum(present[k] for k in records if k in present),
                         checksums_equal=sum(1 for k, r in records.items() if r.get("verified") and
                                             present.get(k) == r["size"]), problems=problems)

"""Shared by the file benchmarks: a project whose storage holds 10,000 files of mixed sizes, locally or in
S3 (a moto_server on loopback), and timing helpers. Everything is made in a temporary directory and removed."""

from __future__ import annotations

import os
import random
import sqlite3
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client-side telemetry
os.environ.setdefault("DIRECTUS_OPS_PASSPHRASE", "benchmark passphrase")

from harness import S3_REGION, write_env  # noqa: E402


def sizes(count: int, seed: int = 7, total: int | None = None) -> list[int]:
    """Mixed sizes like a Directus upload folder: mostly small images and documents, some large files (10,000
    of them: 1.76 GB). With ``total``, every size is scaled by the same factor so that they add up to it."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.70:
            out.append(rng.randint(2_000, 40_000))
        elif roll < 0.97:
            out.append(rng.randint(40_000, 400_000))
        else:
            out.append(rng.randint(1_000_000, 6_000_000))
    if total:
        factor = total / sum(out)
        out = [max(1, round(size * factor)) for size in out]
    return out


def file_bytes(size: int, index: int) -> bytes:
    # Half random (incompressible like photos), half text-like: both code paths of the codec.
    if index % 2:
        return os.urandom(size)
    line = f"row {index} of a generated export, with some repeated text to compress;\n".encode()
    return (line * (size // len(line) + 1))[:size]


def make_project(root: Path, storage: str, s3: object | None, count: int,
                 total_bytes: int | None = None) -> tuple[Path, list[str]]:
    """A SQLite project whose one storage location (``local``: ``uploads/``; ``s3``: a new bucket) holds
    ``count`` files (``total_bytes`` of them together, else the natural mix); returns it and the files' keys."""
    project = root / "project"
    project.mkdir(parents=True)
    env = {"DB_CLIENT": "sqlite3", "DB_FILENAME": "./data.db", "KEY": "bench-key-1", "SECRET": "bench-secret-1"}
    keys = [f"{index:05}-{os.urandom(4).hex()}.{'bin' if index % 2 else 'csv'}" for index in range(count)]
    # A row per file, as Directus keeps them: the backup checks the listing against directus_files.
    with sqlite3.connect(project / "data.db") as conn:
        conn.execute("CREATE TABLE directus_files (id TEXT PRIMARY KEY, storage TEXT NOT NULL, filename_disk TEXT)")
        conn.executemany("INSERT INTO directus_files VALUES (?, ?, ?)",
                         [(f"file-{index}", storage, key) for index, key in enumerate(keys)])
    if storage == "local":
        uploads = project / "uploads"
        uploads.mkdir()
        for index, (key, size) in enumerate(zip(keys, sizes(count, total=total_bytes))):
            (uploads / key).write_bytes(file_bytes(size, index))
    else:
        bucket = s3.create_bucket()  # type: ignore[attr-defined]
        client = s3.client()  # type: ignore[attr-defined]
        for index, (key, size) in enumerate(zip(keys, sizes(count, total=total_bytes))):
            client.put_object(Bucket=bucket, Key=f"files/{key}", Body=file_bytes(size, index))
        env.update({"STORAGE_LOCATIONS": "s3", "STORAGE_S3_DRIVER": "s3", "STORAGE_S3_BUCKET": bucket,
                    "STORAGE_S3_ROOT": "files", "STORAGE_S3_KEY": s3.key_id, "STORAGE_S3_SECRET": s3.secret,  # type: ignore[attr-defined]
                    "STORAGE_S3_REGION": S3_REGION, "STORAGE_S3_ENDPOINT": s3.endpoint,  # type: ignore[attr-defined]
                    "STORAGE_S3_FORCE_PATH_STYLE": "true"})
    write_env(project / ".env", env)
    return project, keys


def change_files(project: Path, keys: list[str], seed: int) -> int:
    """Rewrite 1% of the files (every hundredth key from ``seed``) with new 50 kB contents; returns how many."""
    from directus_ops.project import load_project

    changed = keys[seed:: 100]
    location = load_project(project).storage[0]
    for index, key in enumerate(changed):
        with location.open(key, "wb") as handle:
            handle.write(file_bytes(50_000, index + seed))
    return len(changed)


def timed(function, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - started, result

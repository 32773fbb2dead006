"""The one verified copy: bytes streamed into a file or object that takes its name only when committed (local:
a temporary file beside it, renamed into place; S3: a multipart upload, completed), hashed on the way, and
committed only once whole; on any failure the uncommitted copy is discarded and what was at the name stays.

Two ways to know the copy is right: the bytes' digest compared with one recorded earlier, before the commit
(a restore: ``Repository.copy_object_to`` against the snapshot's sha256), or the committed copy read back and
its digest compared with the source's (``check_read_back``: move's storage copy, v8's file copy).
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol, TypeVar

from .codec import ByteStream

CHUNK_SIZE = 1024 * 1024  # bytes read and written at a time: memory stays bounded whatever the file's size

ByteCallback = Callable[[int], None]


class Uncommitted(Protocol):
    """What ``storage.StorageLocation.open_uncommitted`` and ``paths.LocalUncommitted`` return."""

    def write(self, data: bytes) -> int: ...

    def commit(self) -> None: ...

    def discard(self) -> None: ...


U = TypeVar("U", bound=Uncommitted)


@contextlib.contextmanager
def committed(out: U) -> Iterator[U]:
    """``out`` committed when the block finishes; discarded if the block (or the commit) raises."""
    try:
        yield out
        out.commit()
    except BaseException:
        with contextlib.suppress(Exception):  # the failure that stopped the copy is what the caller must see
            out.discard()
        raise


def stream(reader: ByteStream, out: Any, on_bytes: ByteCallback | None = None,
           algorithm: str = "sha256") -> tuple[str, int]:
    """Every byte of ``reader`` written to ``out``; returns their hex digest and count."""
    hasher = hashlib.new(algorithm)
    size = 0
    while chunk := reader.read(CHUNK_SIZE):
        hasher.update(chunk)
        out.write(chunk)
        size += len(chunk)
        if on_bytes:
            on_bytes(len(chunk))
    return hasher.hexdigest(), size


def digest(reader: IO[bytes], algorithm: str = "sha256") -> str:
    """The hex digest of everything ``reader`` gives."""
    hasher = hashlib.new(algorithm)
    while chunk := reader.read(CHUNK_SIZE):
        hasher.update(chunk)
    return hasher.hexdigest()


def write_committed(reader: IO[bytes], out: Uncommitted, on_bytes: ByteCallback | None = None,
                    algorithm: str = "sha256") -> tuple[str, int]:
    """``reader``'s bytes streamed into ``out``, committed once whole (discarded on failure); their digest and
    count."""
    with committed(out):
        return stream(reader, out, on_bytes, algorithm)


def check_read_back(open_written: Callable[[], IO[bytes]], expected: str, mismatch: Callable[[str], Exception],
                    algorithm: str = "sha256") -> None:
    """Read the committed copy back (``open_written``) and compare its digest with ``expected``; raise what
    ``mismatch`` makes of the digest read back if they differ."""
    with open_written() as reader:
        written = digest(reader, algorithm)
    if written != expected:
        raise mismatch(written)

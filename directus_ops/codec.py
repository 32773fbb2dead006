"""How an object's bytes are stored: a small header, then the content, optionally zstd-compressed and
optionally encrypted (AES-256-GCM in chunks), always streamed.

Format (``docs/repository-format.md``)::

    "DOPS" | version=2 (1 byte) | flags (1 byte: 1 = zstd, 2 = encrypted) | [nonce prefix, 8 bytes, if encrypted]
    then, plain:      the (compressed) bytes
          encrypted:  frames of  last-flag (1 byte) | length (4 bytes, big-endian) | AES-GCM ciphertext+tag
                      nonce = prefix || frame counter (4 bytes); associated data = header || last-flag

Every frame is authenticated, frames cannot be reordered (the counter is in the nonce) and a truncated
object is detected (the last frame says it is last).
"""

from __future__ import annotations

import io
import os
import struct
import threading
from collections.abc import Callable
from typing import IO, Protocol

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .errors import IntegrityError

MAGIC = b"DOPS"
VERSION = 2
FLAG_ZSTD = 1
FLAG_ENCRYPTED = 2
NONCE_PREFIX = 8
FRAME_PLAINTEXT = 1024 * 1024
ZSTD_LEVEL = 1  # fast: most of the gain at a fraction of the CPU (backups run in a window)
# Compress only when a trial of the first MiB saves at least this share (jpg, mp4, zip, pg_dump -Fc do not).
MIN_SAVING = 0.10
COMPRESSION_SAMPLE = 64 * 1024  # the bytes a compression trial looks at
_FRAME_HEAD = struct.Struct(">BI")


class ByteStream(Protocol):
    """What a stream stage pulls from: a file, another stage (an io.RawIOBase, which typeshed keeps apart from
    IO[bytes]) or a zstd reader; only ``read`` is used."""

    def read(self, size: int = -1, /) -> bytes: ...


def header(compressed: bool, encrypted: bool) -> bytes:
    flags = (FLAG_ZSTD if compressed else 0) | (FLAG_ENCRYPTED if encrypted else 0)
    head = MAGIC + bytes([VERSION, flags])
    if encrypted:
        head += os.urandom(NONCE_PREFIX)
    return head


# Formats that are compressed already: no trial needed (most of a Directus upload folder).
INCOMPRESSIBLE_SUFFIXES = frozenset({
    "jpg", "jpeg", "png", "gif", "webp", "avif", "heic", "heif", "jxl", "mp4", "m4v", "mov", "webm", "mkv", "avi",
    "mp3", "m4a", "aac", "ogg", "opus", "flac", "zip", "gz", "tgz", "bz2", "xz", "zst", "7z", "rar", "br", "woff",
    "woff2", "pdf", "docx", "xlsx", "pptx", "odt", "ods", "epub", "jar", "apk",
})


def compressible_name(name: str) -> bool | None:
    """False for a name whose format is compressed already; None when only a trial can tell."""
    suffix = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return False if suffix in INCOMPRESSIBLE_SUFFIXES else None


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    """This thread's compressor for whole buffers: making one costs more than compressing a small file."""
    compressor = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = _local.compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return compressor


def worth_compressing(sample: bytes | memoryview) -> bool:
    if len(sample) < 512:
        return False
    return len(_compressor().compress(sample)) < (1 - MIN_SAVING) * len(sample)


class _Reader(io.RawIOBase):
    """Base for pull-based stream stages: subclasses fill ``_next()`` chunks; ``read(n)`` serves them.

    ``read`` hands a chunk on as it is when it fits (RawIOBase's own read would copy it twice, through a new
    bytearray and then into bytes: for a 1 GB dump, two copies and a page fault per 4 KiB, a CPU-second)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0
        self._done = False

    def readable(self) -> bool:
        return True

    def _next(self) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def _fill(self) -> int:
        """Bytes left in the current chunk, after fetching the next one if it was used up (0: end of stream)."""
        while self._offset >= len(self._buffer) and not self._done:
            chunk = self._next()
            if chunk:
                self._buffer, self._offset = chunk, 0
            else:
                self._buffer, self._offset, self._done = b"", 0, True
        return len(self._buffer) - self._offset

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        left = self._fill()
        if not left or not size:
            return b""
        if self._offset == 0 and size >= left:
            chunk, self._buffer = self._buffer, b""
            return bytes(chunk) if not isinstance(chunk, bytes) else chunk
        size = min(size, left)
        chunk = bytes(memoryview(self._buffer)[self._offset : self._offset + size])
        self._offset += size
        return chunk

    def readinto(self, target: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self._fill()
        size = min(len(target), left)
        target[:size] = memoryview(self._buffer)[self._offset : self._offset + size]
        self._offset += size
        return size


class _Encrypter(_Reader):
    def __init__(self, source: ByteStream, key: bytes, head: bytes) -> None:
        super().__init__()
        self.source, self.aead, self.head = source, AESGCM(key), head
        self.prefix = head[6 : 6 + NONCE_PREFIX]
        self.counter = 0
        self.pending = read_full(source, FRAME_PLAINTEXT)
        self.finished = False

    def _next(self) -> bytes:
        if self.finished:
            return b""
        current = self.pending
        self.pending = read_full(self.source, FRAME_PLAINTEXT)
        last = not self.pending
        nonce = self.prefix + struct.pack(">I", self.counter)
        self.counter += 1
        sealed = self.aead.encrypt(nonce, current, self.head + bytes([last]))
        self.finished = last
        return _FRAME_HEAD.pack(int(last), len(sealed)) + sealed


class _Decrypter(_Reader):
    def __init__(self, source: ByteStream, key: bytes, head: bytes, what: str) -> None:
        super().__init__()
        self.source, self.aead, self.head, self.what = source, AESGCM(key), head, what
        self.prefix = head[6 : 6 + NONCE_PREFIX]
        self.counter = 0
        self.seen_last = False

    def _next(self) -> bytes:
        if self.seen_last:
            if self.source.read(1):
                raise IntegrityError(f"{self.what}: data after the last encrypted frame; the object is damaged")
            return b""
        frame_head = read_full(self.source, _FRAME_HEAD.size)
        if len(frame_head) < _FRAME_HEAD.size:
            raise IntegrityError(f"{self.what}: the encrypted object is truncated; it is damaged")
        last, length = _FRAME_HEAD.unpack(frame_head)
        sealed = read_full(self.source, length)
        nonce = self.prefix + struct.pack(">I", self.counter)
        self.counter += 1
        try:
            plain = self.aead.decrypt(nonce, sealed, self.head + bytes([last]))
        except InvalidTag:
            raise IntegrityError(f"{self.what}: encrypted bytes fail authentication; the object is damaged") from None
        self.seen_last = bool(last)
        return plain


class Prefixed(_Reader):
    """A stream with some bytes already read put back in front."""

    def __init__(self, first: bytes, rest: ByteStream) -> None:
        super().__init__()
        self.first, self.rest = first, rest

    def _next(self) -> bytes:
        if self.first:
            chunk, self.first = self.first, b""
            return chunk
        return self.rest.read(FRAME_PLAINTEXT)


def read_full(stream: ByteStream, size: int) -> bytes:
    parts = []
    remaining = size
    while remaining:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def encode(plain: ByteStream, compress: bool, key: bytes | None) -> IO[bytes]:
    """A stream of the stored form of ``plain`` (header included), produced as it is read."""
    head = header(compress, key is not None)
    body: ByteStream = plain
    if compress:
        # zstandard's stubs ask for IO[bytes] where its reader only calls read().
        body = zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_reader(
            plain, read_size=FRAME_PLAINTEXT)  # type: ignore[arg-type]
    if key is not None:
        body = io.BufferedReader(_Encrypter(body, key, head), buffer_size=FRAME_PLAINTEXT)
    return io.BufferedReader(Prefixed(head, body), buffer_size=FRAME_PLAINTEXT)


def read_header(stored: IO[bytes], what: str) -> tuple[bytes, bool, bool]:
    head = read_full(stored, 6)
    if len(head) < 6 or head[:4] != MAGIC:
        raise IntegrityError(f"{what}: not a directus-ops object (bad header); the repository is damaged")
    if head[4] != VERSION:
        raise IntegrityError(f"{what}: object format {head[4]} is not readable by this directus-ops (reads {VERSION})")
    compressed, encrypted = bool(head[5] & FLAG_ZSTD), bool(head[5] & FLAG_ENCRYPTED)
    if encrypted:
        head += read_full(stored, NONCE_PREFIX)
    return head, compressed, encrypted


def decode(stored: IO[bytes], key_for: Callable[[], bytes], what: str = "object") -> ByteStream:
    """The plaintext of a stored object, produced as it is read. ``key_for`` is asked only if it is encrypted."""
    head, compressed, encrypted = read_header(stored, what)
    body: IO[bytes] = stored
    if encrypted:
        body = io.BufferedReader(_Decrypter(stored, key_for(), head, what), buffer_size=FRAME_PLAINTEXT)
    if compressed:
        try:
            body = zstandard.ZstdDecompressor().stream_reader(body, read_size=FRAME_PLAINTEXT)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{what}: cannot decompress ({exc}); the object is damaged") from None
    return _ZstdErrors(body, what) if compressed else body


class _ZstdErrors(_Reader):
    """Turns a decompression failure in the middle of a stream into an IntegrityError naming the object."""

    def __init__(self, source: IO[bytes], what: str) -> None:
        super().__init__()
        self.source, self.what = source, what

    def _next(self) -> bytes:
        try:
            return self.source.read(FRAME_PLAINTEXT)
        except zstandard.ZstdError as exc:
            raise IntegrityError(f"{self.what}: cannot decompress ({exc}); the object is damaged") from None


def encode_small(plain: bytes, compress: bool | None, key: bytes | None) -> tuple[list[bytes], bool]:
    """Encode an object held in memory into the parts of its stored form (header, body: written without
    joining them). ``compress=None`` keeps the compressed form only if it saves enough; above
    COMPRESSION_SAMPLE a trial on the first bytes decides whether to try at all (random bytes do not
    compress, and zstd would spend as long finding that out as hashing them)."""
    body = plain
    compressed = False
    if compress is None and len(plain) > COMPRESSION_SAMPLE and not worth_compressing(memoryview(plain)[:COMPRESSION_SAMPLE]):
        compress = False
    if compress is not False and len(plain) >= 512:
        packed = _compressor().compress(plain)
        if compress or len(packed) < (1 - MIN_SAVING) * len(plain):
            body, compressed = packed, True
    head = header(compressed, key is not None)
    if key is None:
        return [head, body], compressed
    return [_sealed(head, body, key)], compressed


def _sealed(head: bytes, body: bytes, key: bytes) -> bytes:
    encrypter = _Encrypter(io.BytesIO(body), key, head)
    frames = []
    while frame := encrypter._next():
        frames.append(frame)
    return head + b"".join(frames)


def encode_bytes(plain: bytes, compress: bool, key: bytes | None) -> bytes:
    return encode(io.BytesIO(plain), compress, key).read()


def decode_bytes(stored: bytes, key_for: Callable[[], bytes], what: str = "object") -> bytes:
    return decode(io.BytesIO(stored), key_for, what).read()

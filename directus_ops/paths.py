"""Storage keys: the text that names an object in a manifest, and the rules a key read from a repository
must follow before anything is written under it.

A key is the object's path relative to its location's root, ``/``-separated. File names are bytes on
Linux; one that is not UTF-8 (JSON cannot carry it) is written as ``RAW_PREFIX`` + the URL-safe base64 of
the whole relative path's bytes. NUL is the one character no file name can hold, so a raw key never
collides with a real name. Python holds such a name as a str with surrogate escapes (``os.fsdecode``):
``key_from_name`` and ``name_from_key`` convert between the two forms at the filesystem's edge.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from typing import Any

from . import verified_copy
from .errors import UnsafeSnapshot, UnsafeTarget

RAW_PREFIX = "\0b64:"
NAME_MAX = 255  # bytes in one path component (Linux, and S3's practical limit per segment)
KEY_MAX = 1024  # bytes in a whole key: S3's limit, far below Linux's PATH_MAX
LINK_MAX = 4095  # bytes of a symbolic link's target (PATH_MAX less its NUL)
SINGLE_NAME_LOCATIONS = ("@database", "@config", "@project")  # artifacts written as one file into one folder


def key_from_name(name: str) -> str:
    """The key of a relative path as the OS gave it (a str, surrogate-escaped where not UTF-8)."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return RAW_PREFIX + base64.urlsafe_b64encode(os.fsencode(name)).decode("ascii")


def name_from_key(key: str) -> str:
    """The relative path (a str the OS takes) that a key names."""
    if not key.startswith(RAW_PREFIX):
        return key
    return os.fsdecode(_raw_bytes(key))


def key_bytes(key: str) -> bytes:
    """The exact bytes of the relative path a key names."""
    return _raw_bytes(key) if key.startswith(RAW_PREFIX) else key.encode("utf-8", "surrogateescape")


def display_key(key: str) -> str:
    """A key as a person reads it (a raw key's bytes shown with escapes)."""
    if not key.startswith(RAW_PREFIX):
        return key
    try:
        return _raw_bytes(key).decode("utf-8", "backslashreplace")
    except ValueError:
        return repr(key)


def _raw_bytes(key: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(key[len(RAW_PREFIX):].encode("ascii"))
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{key!r} is not a valid raw key") from None


def key_problem(key: str) -> str | None:
    """Why ``key`` cannot name a file under a root without leaving it, or None if it is a safe key: a
    relative path of non-empty components, none ``.`` or ``..``, no NUL, no component over NAME_MAX bytes,
    the whole at most KEY_MAX bytes."""
    if not isinstance(key, str) or not key:
        return "is empty"
    try:
        raw = key_bytes(key)
    except ValueError:
        return "is not a valid raw (non-UTF-8) key"
    if key.startswith(RAW_PREFIX):
        try:
            raw.decode("utf-8")
            return "is a raw key of a UTF-8 name"  # only non-UTF-8 names take the raw form: one name, one key
        except UnicodeDecodeError:
            pass
    if b"\0" in raw:
        return "contains a NUL byte"
    if raw.startswith(b"/"):
        return "is an absolute path"
    if len(raw) > KEY_MAX:
        return f"is longer than {KEY_MAX} bytes"
    for part in raw.split(b"/"):
        if not part:
            return "has an empty path component"
        if part in (b".", b".."):
            return f"has a {part.decode()!r} path component"
        if len(part) > NAME_MAX:
            return f"has a path component longer than {NAME_MAX} bytes"
    return None


def display_path(root: str, key: str) -> str:
    return repr(os.path.join(root, display_key(key)))


# -- checking a manifest's keys ------------------------------------------------------------------------------------
class KeyCheck:
    """Why each key of a manifest cannot be restored (None: it can), entry by entry in one pass: an unsafe key
    (``key_problem``), more than a single file name where one file is written, a key given twice in one
    location, or a key that is both a file and a folder of another key."""

    def __init__(self) -> None:
        self._files: set[tuple[str, str]] = set()
        self._folders: set[tuple[str, str]] = set()

    def problem(self, location: str, key: str, symlink: bool = False, size: int = 0) -> str | None:
        problem = key_problem(key)
        if problem:
            return problem
        name = name_from_key(key)
        if location in SINGLE_NAME_LOCATIONS and "/" in name:
            return "is not a single file name"
        if symlink and size > LINK_MAX:
            return f"is a symbolic link whose target is longer than {LINK_MAX} bytes"
        if (location, name) in self._files:
            return "appears twice"
        if (location, name) in self._folders:
            return "is a file and also a folder of other keys"
        self._files.add((location, name))
        cut = name.rfind("/")
        while cut > 0:
            folder = (location, name[:cut])
            if folder in self._files:
                return f"lies inside {display_key(key_from_name(name[:cut]))!r}, which is a file of this snapshot"
            if folder in self._folders:
                break  # its parents were added with it
            self._folders.add(folder)
            cut = name.rfind("/", 0, cut)
        return None


def config_file_problem(name: str) -> str | None:
    """Why a manifest's ``config_file`` cannot be written into a project directory (None: it can)."""
    problem = key_problem(name)
    if problem is None and "/" in name_from_key(name):
        return "is not a single file name"
    return problem


def manifest_key_problems(manifest: Any) -> Iterator[tuple[str, str, str]]:
    """(location, key, problem) of every key of a manifest that a restore must refuse, ``config_file`` included."""
    config_problem = config_file_problem(manifest.project.config_file)
    if config_problem:
        yield "config_file", manifest.project.config_file, config_problem
    check = KeyCheck()
    for entries in (manifest.artifacts, manifest.objects):
        for entry in entries:
            problem = check.problem(entry.location, entry.key, entry.symlink, entry.size)
            if problem:
                yield entry.location, entry.key, problem


def unsafe_snapshot(snapshot_id: str | None, location: str, key: str, problem: str) -> UnsafeSnapshot:
    where = f"snapshot {snapshot_id}: " if snapshot_id else ""
    return UnsafeSnapshot(f"{where}{location} key {display_key(key)!r} {problem}: the snapshot was tampered with or "
                          "damaged; restore another snapshot")


def check_manifest_keys(manifest: Any) -> None:
    """Refuse a manifest with any key a restore must not write (the first one named)."""
    for location, key, problem in manifest_key_problems(manifest):
        raise unsafe_snapshot(manifest.id, location, key, problem)


# -- writing under a root without following a symlink --------------------------------------------------------------
# Restore writes every file by walking from its root one folder at a time (openat with O_NOFOLLOW): no symlink
# inside the root is followed, whoever put it there and whenever. The root itself is the operator's setting and
# may be a symlink. A file is written to a short temporary name in its final folder (a 255-byte name still
# fits) and renamed over the final name, which replaces a symlink there instead of writing through it.
TEMP_PREFIX = ".directus-ops-"
TEMP_SUFFIX = ".restoring"
_TEMP_LENGTH = len(TEMP_PREFIX) + 16 + len(TEMP_SUFFIX)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def temporary_name() -> str:
    return f"{TEMP_PREFIX}{secrets.token_hex(8)}{TEMP_SUFFIX}"


def is_temporary_name(name: str) -> bool:
    """One of this tool's temporary names (``temporary_name``), left by a restore that did not finish."""
    return len(name) == _TEMP_LENGTH and name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX)


def _open_root(root: str, create: bool) -> int:
    try:
        return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        if not create:
            raise
    os.makedirs(root, exist_ok=True)
    return os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def _unsafe(root: str, parts: list[bytes], parent_fd: int, what: str) -> UnsafeTarget:
    shown = display_path(root, key_from_name(os.fsdecode(b"/".join(parts))))
    try:
        mode = os.stat(parts[-1], dir_fd=parent_fd, follow_symlinks=False).st_mode
        kind = "is a symbolic link" if stat.S_ISLNK(mode) else ("is a folder" if stat.S_ISDIR(mode) else "is not a folder")
    except OSError:
        kind = "cannot be opened"
    return UnsafeTarget(f"{shown} {kind} where the snapshot has {what}: restore does not write through it; move it "
                        "out of the way or restore into another place")


def open_parent(root: str, key: str, create: bool = True) -> tuple[int, bytes]:
    """An open descriptor of the folder that holds ``key``'s file under ``root`` (folders made as needed when
    ``create``), and that file's name. FileNotFoundError when not ``create`` and a folder is missing; UnsafeTarget
    when a symlink or a file is in the way."""
    problem = key_problem(key)
    if problem:  # plan_restore refuses these first; this keeps the writer safe on its own
        raise UnsafeSnapshot(f"key {display_key(key)!r} {problem}: refusing to write it under {root}")
    parts = key_bytes(key).split(b"/")
    fd = _open_root(root, create)
    try:
        for index, part in enumerate(parts[:-1]):
            fd_next = _open_folder(fd, part, create, root, parts[: index + 1])
            os.close(fd)
            fd = fd_next
    except BaseException:
        os.close(fd)
        raise
    return fd, parts[-1]


def _open_folder(parent_fd: int, name: bytes, create: bool, root: str, parts: list[bytes]) -> int:
    for _ in range(3):  # another worker may create the same folder at the same time
        try:
            return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)
        except FileNotFoundError:
            if not create:
                raise
            try:
                os.mkdir(name, 0o755, dir_fd=parent_fd)
            except FileExistsError:
                pass
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):
                if not create:
                    raise FileNotFoundError(exc.errno, exc.strerror) from None
                raise _unsafe(root, parts, parent_fd, "a folder") from None
            raise
    return os.open(name, _DIR_FLAGS, dir_fd=parent_fd)


class LocalUncommitted:
    """A file under ``root`` that becomes ``key`` only on ``commit()`` (a rename in its folder); ``discard()``
    leaves what was there untouched."""

    def __init__(self, root: str, key: str, mode: int = 0o644) -> None:
        self.root, self.key = root, key
        self.dir_fd, self.name = open_parent(root, key)
        self.temporary = temporary_name().encode()
        try:
            fd = os.open(self.temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode,
                         dir_fd=self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.handle = os.fdopen(fd, "wb")

    def write(self, data: bytes) -> int:
        return self.handle.write(data)

    def commit(self) -> None:
        self.handle.close()
        _replace(self.root, self.key, self.dir_fd, self.temporary, self.name)
        os.close(self.dir_fd)

    def discard(self) -> None:
        self.handle.close()
        try:
            os.unlink(self.temporary, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        os.close(self.dir_fd)


def _replace(root: str, key: str, dir_fd: int, temporary: bytes, name: bytes) -> None:
    try:
        os.rename(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        os.unlink(temporary, dir_fd=dir_fd)
        if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
            raise _unsafe(root, key_bytes(key).split(b"/"), dir_fd, "a file") from None
        raise


def write_symlink(root: str, key: str, target: bytes) -> None:
    """``key`` under ``root`` made a symbolic link to ``target`` (replacing what is there); never followed."""
    dir_fd, name = open_parent(root, key)
    try:
        temporary = temporary_name().encode()
        os.symlink(target, temporary, dir_fd=dir_fd)
        _replace(root, key, dir_fd, temporary, name)
    finally:
        os.close(dir_fd)


def check_folders(root: str, keys: Iterable[str]) -> None:
    """UnsafeTarget, before anything is written, if a symlink or a file stands where one of ``keys`` needs a
    folder under ``root`` (the root itself may be a link), or a folder where it needs a file: restore would
    have to stop there, with part of the target written. Each folder is looked at once (lstat, never followed)."""
    seen: set[bytes] = set()
    for key in keys:
        parts = key_bytes(key).split(b"/")
        for depth in range(1, len(parts) + 1):
            relative = b"/".join(parts[:depth])
            if relative in seen:
                continue
            seen.add(relative)
            try:
                mode = os.lstat(os.path.join(os.fsencode(root), relative)).st_mode
            except FileNotFoundError:
                break  # made by the restore: nothing below it can be in the way
            except NotADirectoryError:
                break  # reported at the level that is not a folder
            last = depth == len(parts)
            if (not last and not stat.S_ISDIR(mode)) or (last and stat.S_ISDIR(mode)):
                kind = "is a symbolic link" if stat.S_ISLNK(mode) else ("is a folder" if stat.S_ISDIR(mode) else "is not a folder")
                what = "a file" if last else "a folder"
                raise UnsafeTarget(f"{display_path(root, key_from_name(os.fsdecode(relative)))} {kind} where the snapshot "
                                   f"has {what}: restore does not write through it; move it out of the way or restore "
                                   "into another place")


def local_matches(root: str, key: str, size: int, sha256: str, symlink: bool = False) -> bool:
    """Whether ``key`` under ``root`` already is exactly this content (a regular file; or for ``symlink`` a link
    with this target), found without following any symlink."""
    try:
        dir_fd, name = open_parent(root, key, create=False)
    except (FileNotFoundError, UnsafeTarget):
        return False
    try:
        if symlink:
            try:
                return hashlib.sha256(os.readlink(name, dir_fd=dir_fd)).hexdigest() == sha256
            except OSError:
                return False
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
        except OSError:
            return False  # missing, a symlink (ELOOP), unreadable: written anew
        with os.fdopen(fd, "rb") as handle:
            status = os.fstat(fd)
            if not stat.S_ISREG(status.st_mode) or status.st_size != size:
                return False
            return verified_copy.digest(handle) == sha256
    finally:
        os.close(dir_fd)


def remove_created(root: str, kept: Iterable[str] = ()) -> None:
    """Everything under ``root`` removed but the entries in ``kept`` (relative paths that were there before): a
    local root that held no file when a failed restore started. Symlinks are removed, never followed."""
    keep = set(kept)
    for folder, subfolders, files in os.walk(root, topdown=False):
        relative = os.path.relpath(folder, root)
        for name in files + subfolders:
            path = os.path.join(folder, name)
            if os.path.normpath(os.path.join(relative, name)) in keep:
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                try:
                    os.rmdir(path)
                except OSError:
                    pass  # not empty: it holds something kept
            else:
                os.unlink(path)


def entries_under(root: str) -> list[str]:
    """Relative paths of every folder, link and file under ``root`` (not through symlinks)."""
    found = []
    for folder, subfolders, files in os.walk(root):
        for name in subfolders + files:
            found.append(os.path.normpath(os.path.relpath(os.path.join(folder, name), root)))
    return found

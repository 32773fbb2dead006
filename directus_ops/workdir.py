"""The run's private work directory: decompressed dumps, staging entries, a JavaScript config being evaluated.

One directory per process, ``<tmp>/directus-ops-run.<uid>.<pid>.<start>`` (``<start>``: the process's start
time in clock ticks since boot, from ``/proc``), created mode 0700 on first use. It lives in the temporary
directory (``TMPDIR``) because dumps can be large. A run killed without cleanup leaves its directory behind;
the next run's first use removes every such directory whose process (pid *and* start time, so a reused pid
does not count) is gone. A normal exit removes the process's own directory.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

PREFIX = "directus-ops-run."

_lock = threading.Lock()
_current: tuple[int, Path] | None = None  # (pid that created it, directory)


def state_dir() -> Path:
    """Where directus-ops keeps what outlives a run (project locks, the warm runner's socket)."""
    if os.environ.get("DIRECTUS_OPS_STATE_DIR"):
        return Path(os.environ["DIRECTUS_OPS_STATE_DIR"])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "directus-ops"


def cache_root() -> Path:
    """Where directus-ops keeps what it can fetch or compute again (package metadata, manifest headers)."""
    return Path(os.environ.get("DIRECTUS_OPS_CACHE") or Path.home() / ".cache" / "directus-ops")


def process_start_time(pid: int) -> str | None:
    """The start time of ``pid`` in clock ticks since boot (field 22 of /proc/<pid>/stat), None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces: count the fields after its end.
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[19] if len(fields) > 19 else None


def _name(pid: int) -> str:
    return f"{PREFIX}{os.getuid()}.{pid}.{process_start_time(pid) or 0}"


def _remove_dead(parent: Path) -> None:
    """Remove this user's run directories whose process is gone (or whose pid now belongs to another process)."""
    mine = f"{PREFIX}{os.getuid()}."
    with contextlib.suppress(OSError):
        for entry in os.scandir(parent):
            if not entry.name.startswith(mine):
                continue
            pid_text, _, started = entry.name[len(mine):].partition(".")
            if not pid_text.isdigit() or int(pid_text) == os.getpid():
                continue
            if process_start_time(int(pid_text)) == started:
                continue  # a live run's directory
            with contextlib.suppress(OSError):
                if entry.is_dir(follow_symlinks=False) and entry.stat(follow_symlinks=False).st_uid == os.getuid():
                    shutil.rmtree(entry.path, ignore_errors=True)


def run_dir() -> Path:
    """This process's 0700 work directory (created, and dead runs' directories removed, on first use)."""
    global _current
    with _lock:
        pid = os.getpid()
        if _current is not None and _current[0] == pid and _current[1].is_dir():
            return _current[1]
        parent = Path(tempfile.gettempdir())
        _remove_dead(parent)
        path = parent / _name(pid)
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(path)
        # Someone else's directory or a symlink planted under our name in a shared /tmp: never write into it.
        if not os.path.isdir(path) or os.path.islink(path) or info.st_uid != os.getuid():
            raise OSError(f"{path} exists and is not this user's directory; remove it")
        os.chmod(path, 0o700)
        if _current is None or _current[0] != pid:
            atexit.register(_remove_own, pid, path)
        _current = (pid, path)
        return path


def _remove_own(pid: int, path: Path) -> None:
    if os.getpid() == pid:
        shutil.rmtree(path, ignore_errors=True)


def make_dir(prefix: str = "work-") -> Path:
    """A fresh private directory inside the run's work directory."""
    return Path(tempfile.mkdtemp(prefix=prefix, dir=run_dir()))

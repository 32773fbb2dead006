"""The local Prefect server that records ad-hoc runs when no Prefect server is configured.

Without ``PREFECT_API_URL``, Prefect starts a temporary server for every process that runs a flow and stops it
at exit: 6–9 s per command on a 2-core host, more than many procedures' own work. Instead, the first command
that runs a flow starts ``prefect server start`` in the background on 127.0.0.1, and every later command finds it
and reuses it: its UI shows every run, the same database (``$PREFECT_HOME/prefect.db``) the temporary servers
used. It keeps running until ``directus-ops server stop`` (or ``prefect server stop``).

Files in ``$PREFECT_HOME``: ``directus-ops-server.json`` (pid, port, Prefect version), ``directus-ops-server.log``
(its output), ``directus-ops-server.lock`` (one starter at a time), and Prefect's own ``server.pid`` when free,
so ``prefect server stop`` stops it too. A server from another Prefect version is replaced; a stale record
(process gone, port answering something else) is ignored. ``DIRECTUS_OPS_LOCAL_SERVER=off`` goes back to
Prefect's temporary server per command.

The server sees none of our secrets: it starts with an environment of only what Prefect and Python need.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

from . import process
from .errors import LocalServerFailed
from .redact import redact

STATE_FILE = "directus-ops-server.json"
LOG_FILE = "directus-ops-server.log"
LOCK_FILE = "directus-ops-server.lock"
PREFECT_PID_FILE = "server.pid"  # prefect.cli._server_utils.SERVER_PID_FILE_NAME: `prefect server stop` reads it
PREFERRED_PORT = 4200  # Prefect's own default: where a Prefect user looks first
HOST = "127.0.0.1"

# What the server's environment keeps of ours: PATH and locale for Python, Prefect's own settings (its home and
# database, never an API URL or key: it is the API). Nothing else: no database password, passphrase or S3 key.
_KEPT = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV", "DO_NOT_TRACK")
_NOT_KEPT = ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING")


@dataclass(frozen=True)
class LocalServer:
    pid: int
    port: int
    prefect_version: str

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/api"


def enabled() -> bool:
    return os.environ.get("DIRECTUS_OPS_LOCAL_SERVER", "on").lower() not in {"off", "0", "false", "no"}


def prefect_home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or "~/.prefect").expanduser()


def _prefect_version() -> str:
    return metadata.version("prefect")


def _answers(server: LocalServer, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{server.api_url}/health", timeout=timeout) as reply:  # noqa: S310 (loopback)
            return reply.status == 200 and reply.read().strip() == b"true"
    except (OSError, urllib.error.URLError, ValueError):
        return False


def _recorded(home: Path) -> LocalServer | None:
    try:
        data = json.loads((home / STATE_FILE).read_text())
        return LocalServer(pid=int(data["pid"]), port=int(data["port"]), prefect_version=str(data["prefect_version"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def serves(api_url: str, home: Path | None = None) -> bool:
    """Whether ``api_url`` is the local server recorded for ``home`` (from its record: no request)."""
    server = _recorded(home or prefect_home())
    return server is not None and api_url.rstrip("/") == server.api_url


def running(home: Path | None = None) -> LocalServer | None:
    """The recorded server if its process is alive and its API answers."""
    server = _recorded(home or prefect_home())
    if server is not None and process.process_runs(server.pid) and _answers(server):
        return server
    return None


@contextlib.contextmanager
def _starter_lock(home: Path) -> Iterator[None]:
    fd = os.open(home / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _free_port(preferred: bool = True) -> int:
    for port in (PREFERRED_PORT, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind((HOST, port))
            except OSError:
                continue
            return int(probe.getsockname()[1])
    raise LocalServerFailed("no free port on 127.0.0.1 for the local Prefect server; set PREFECT_API_URL to a server")


def _server_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in _KEPT or (k.startswith("PREFECT_") and k not in _NOT_KEPT)}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
                "PREFECT_SERVER_LOGGING_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1"})
    return env


def ensure(home: Path | None = None, timeout: float = 120.0,
           say: Callable[[str], None] | None = None) -> LocalServer:
    """The local server of ``home`` (``$PREFECT_HOME``), started now if it is not running (``say`` tells the
    user, whose command waits for it)."""
    home = home or prefect_home()
    version = _prefect_version()
    server = running(home)
    if server is not None and server.prefect_version == version:
        return server
    home.mkdir(parents=True, exist_ok=True)
    with _starter_lock(home):
        server = running(home)  # another command may have started it while we waited
        if server is not None and server.prefect_version == version:
            return server
        if server is not None:  # a server of the Prefect version before an upgrade: its schema may differ
            stop(home)
        if say:
            say("starting the local Prefect server that records ad-hoc runs (once; about 10 s; "
                "`directus-ops server status` shows where its UI is)")
        return _start(home, version, timeout)


# What `prefect server start` prints when the port it was given was taken after we found it free (another
# server starting at the same moment, typically on the preferred port).
_PORT_TAKEN = ("is already in use", "already running on port")


def _start(home: Path, version: str, timeout: float) -> LocalServer:
    port = _free_port()
    for _attempt in range(3):
        try:
            return _start_on(home, version, timeout, port)
        except _PortTaken:
            port = _free_port(preferred=False)
    raise LocalServerFailed("the local Prefect server found its port taken three times; set PREFECT_API_URL to a "
                            "running server, or DIRECTUS_OPS_LOCAL_SERVER=off")


class _PortTaken(Exception):
    pass


def _start_on(home: Path, version: str, timeout: float, port: int) -> LocalServer:
    log_path = home / LOG_FILE
    log_start = log_path.stat().st_size if log_path.exists() else 0  # the log is appended to: earlier starts' lines
    pid = process.start_service([sys.executable, "-m", "prefect", "server", "start", "--host", HOST,
                                 "--port", str(port)], env=_server_env(home), log_path=log_path)
    server = LocalServer(pid=pid, port=port, prefect_version=version)
    state = home / STATE_FILE
    state.write_text(json.dumps(asdict(server)))
    with contextlib.suppress(FileExistsError):  # a server the user started with `prefect server start -b` keeps it
        with open(os.open(home / PREFECT_PID_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as pid_file:
            pid_file.write(str(pid))
    deadline = time.monotonic() + timeout
    what = f"did not start within {timeout:.0f} s"
    while time.monotonic() < deadline:
        if any(needle in _log_since(log_path, log_start) for needle in _PORT_TAKEN):
            stop(home)
            raise _PortTaken()
        # Another server may have taken the port after we found it free: what answers must be ours.
        if _answers(server, timeout=1.0) and _listens(pid, port):
            return server
        if not process.process_runs(pid):
            what = "exited while starting"
            break
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        time.sleep(0.1)
    stop(home)
    cause = _failure_cause(log_path, log_start)
    raise LocalServerFailed(f"the local Prefect server {what}{f': {cause}' if cause else ''} (see {log_path}); "
                            "set PREFECT_API_URL to a running server, or DIRECTUS_OPS_LOCAL_SERVER=off")


def _listens(group: int, port: int) -> bool:
    """Whether a process of process group ``group`` (the server and its uvicorn child) holds the socket listening
    on ``HOST:port``, read from /proc (Linux)."""
    wanted = f"{socket.inet_aton(HOST)[::-1].hex().upper()}:{port:04X}"
    inodes = set()
    try:
        with open("/proc/net/tcp") as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1] == wanted and fields[3] == "0A":  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    except OSError:
        return True  # no /proc: trust the answer
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[2]) != group:
                continue
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return True
        except (OSError, ValueError, IndexError):
            continue
    return False


def _log_since(log_path: Path, start: int) -> str:
    """What the server wrote to its log from ``start`` on (its last 64 KiB at most)."""
    try:
        with open(log_path, "rb") as handle:
            handle.seek(max(start, handle.seek(0, os.SEEK_END) - 64 * 1024))
            return handle.read().decode("utf-8", "replace")
    except OSError:
        return ""


def _failure_cause(log_path: Path, start: int) -> str:
    """The error line(s) this start wrote to the server's log (the user may not look there)."""
    return process.failure_cause(redact("\n".join(_log_since(log_path, start).splitlines()[-40:])))


def stop(home: Path | None = None) -> LocalServer | None:
    """Stop the recorded server (if its process is alive) and forget it; returns what was stopped."""
    home = home or prefect_home()
    server = _recorded(home)
    if server is not None and process.process_runs(server.pid):
        process.stop_service(server.pid)
    with contextlib.suppress(FileNotFoundError):
        (home / STATE_FILE).unlink()
    pid_file = home / PREFECT_PID_FILE
    with contextlib.suppress(OSError, ValueError):
        if server is not None and int(pid_file.read_text()) == server.pid:
            pid_file.unlink()
    return server if server is not None and not process.process_runs(server.pid) else None

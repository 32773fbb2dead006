"""The warm runner: ``directus-ops`` commands in a process that has already imported Prefect and the flows.

Importing Prefect, the flows and what they use takes 1.5–2 s of CPU before a command does anything, more than
a whole incremental backup. So the ``directus-ops`` command is a small client: it connects to a runner (a
daemon of this user, one per code version) over a Unix socket, hands it its arguments, environment, working
directory, umask and its stdin/stdout/stderr (the file descriptors themselves, ``SCM_RIGHTS``), and the runner
forks a child that runs the command exactly as the command would have run here: same output to the same
terminal, same exit code or death by the same signal. Ctrl-C and other signals the client receives are passed
on to the child; if the client is killed outright, the child sees its socket close and kills itself, as
the command would have died with it (the process watchdog then stops its tools).

No runner yet (the first command, or after 10 idle minutes): the command runs in this process as before and
starts a runner in the background for the next one. ``DIRECTUS_OPS_RUNNER=off`` always runs in this process,
and so does ``python -m directus_ops.cli``.

Safety: the socket lives in a 0700 directory of the state directory and the runner serves only its own uid
(``SO_PEERCRED``). The environment a command carries (passphrases, keys) travels through the socket into the
child's memory, never to disk; the runner itself starts with an environment of only PATH, locale and the code's
location, and holds no secret. The code version is a hash of every source file's size and mtime and the
installed packages' folder, so a changed or reinstalled directus-ops gets a new runner; the old one exits when
idle.
"""

from __future__ import annotations

import array
import gc
import hashlib
import json
import os
import selectors
import signal
import socket
import struct
import subprocess
import sys
import sysconfig
import threading
import time
from pathlib import Path
from typing import Any, NoReturn

from .workdir import state_dir

PROTOCOL = 1
IDLE_SECONDS = float(os.environ.get("DIRECTUS_OPS_RUNNER_IDLE_SECONDS", "600"))
_HEADER = struct.Struct("!I")  # length of the request (JSON)
_REPLY = struct.Struct("!ci")  # b"p" pid of the child, b"x" exit code, b"s" killed by signal
_CODE_ROOT = Path(__file__).resolve().parent.parent  # holds directus_ops/, flows/, tasks/, deployments/
_PACKAGES = ("directus_ops", "flows", "tasks", "deployments")
_FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2)


def enabled() -> bool:
    return os.environ.get("DIRECTUS_OPS_RUNNER", "on").lower() not in {"off", "0", "false", "no"}


def code_version() -> str:
    """A hash of what the runner would import: our sources (size, mtime), the interpreter, the installed packages."""
    digest = hashlib.sha256(f"{PROTOCOL}\0{sys.prefix}\0{sys.version}\0{_CODE_ROOT}".encode())
    for package in _PACKAGES:
        for folder, _, names in sorted(os.walk(_CODE_ROOT / package)):
            for name in sorted(names):
                if name.endswith(".py"):
                    with _suppress_oserror():
                        st = os.stat(os.path.join(folder, name))
                        digest.update(f"{folder}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    with _suppress_oserror():
        digest.update(str(os.stat(sysconfig.get_paths()["purelib"]).st_mtime_ns).encode())
    return digest.hexdigest()[:20]


class _suppress_oserror:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, traceback: Any) -> bool:
        return kind is not None and issubclass(kind, OSError)


def socket_path(state: Path | None = None) -> Path:
    return (state or state_dir()) / "runner" / f"{os.getuid()}-{code_version()}.sock"


# -- the client: the `directus-ops` command ------------------------------------------------------------------------

def main() -> NoReturn:
    """Entry point of ``directus-ops``: run the command in the warm runner if one answers, else here."""
    if not enabled():
        _run_here()
    path = socket_path()
    connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        connection.connect(str(path))
    except OSError:
        connection.close()
        _start_runner(path)
        _run_here()
    sys.exit(_run_in_runner(connection))


def _run_here() -> NoReturn:
    from .cli import run

    run()
    sys.exit(0)


def _run_in_runner(connection: socket.socket) -> int:
    request = json.dumps({"protocol": PROTOCOL, "argv": sys.argv, "env": dict(os.environ), "cwd": os.getcwd(),
                          "umask": _umask()}).encode()
    fds = array.array("i", [0, 1, 2])
    connection.sendmsg([_HEADER.pack(len(request))], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
    connection.sendall(request)
    child: list[int] = []
    pending: list[int] = []

    def forward(signum: int, frame: Any) -> None:
        if child:
            with _suppress_oserror():
                os.kill(child[0], signum)
        else:
            pending.append(signum)

    for signum in _FORWARDED_SIGNALS:
        signal.signal(signum, forward)
    while True:
        reply = _recv_exactly(connection, _REPLY.size)
        if reply is None and not child:  # the runner exited (idle) before taking the command: nothing ran
            connection.close()
            for signum in _FORWARDED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            _run_here()
        if reply is None:  # the runner went away without a word: it was killed (no child can report)
            print("directus-ops: error: the warm runner stopped during the command; run it again "
                  "(or set DIRECTUS_OPS_RUNNER=off)", file=sys.stderr)
            return 1
        kind, value = _REPLY.unpack(reply)
        if kind == b"p":
            child.append(value)
            for pending_signum in pending:
                with _suppress_oserror():
                    os.kill(value, pending_signum)
        elif kind == b"x":
            return value
        elif kind == b"s":  # die as the command died, so a caller sees the same status
            for signum in _FORWARDED_SIGNALS:
                signal.signal(signum, signal.SIG_DFL)
            with _suppress_oserror():  # SIGKILL has no handler to reset
                signal.signal(value, signal.SIG_DFL)
            os.kill(os.getpid(), value)
            return 128 + value


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current


def _recv_exactly(connection: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _start_runner(path: Path) -> None:
    """Start a runner for the next command, in the background: it is ready 2–3 s later; this command does
    not wait for it."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.parent.chmod(0o700)
    except OSError:
        return  # no state directory: no runner, every command runs in its own process
    env = {k: v for k, v in os.environ.items()
           if k in ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "VIRTUAL_ENV")
           or (k.startswith("PREFECT_") and k not in ("PREFECT_API_KEY", "PREFECT_API_AUTH_STRING"))}
    env["PYTHONPATH"] = str(_CODE_ROOT)  # the same code as this client's (a checkout may shadow an install)
    env["DIRECTUS_OPS_RUNNER_IDLE_SECONDS"] = str(IDLE_SECONDS)
    with _suppress_oserror():
        subprocess.Popen([sys.executable, "-m", "directus_ops.runner", "serve", str(path)], env=env, cwd="/",
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


# -- the runner ------------------------------------------------------------------------------------------------------

def _warm() -> None:
    """Import what commands import, so a child starts with it done."""
    import directus_ops.cli

    directus_ops.cli.command()
    import fastapi.encoders  # noqa: F401 (Prefect imports it for every flow run's parameters: 0.45 s)
    import prefect.flow_engine  # noqa: F401
    import prefect.task_engine  # noqa: F401

    for module in ("flows.backup", "flows.restore", "flows.verify", "flows.forget", "flows.upgrade",
                   "flows.rehearse", "flows.downgrade", "flows.move", "flows.delete", "flows.v8_migrate"):
        __import__(module)


def _bind(path: Path) -> socket.socket | None:
    """Listen on ``path``, unless a live runner already does (two clients may start one each)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
        return None  # a runner answers there already
    except OSError:
        pass
    finally:
        probe.close()
    with _suppress_oserror():
        path.unlink()
    old_umask = os.umask(0o177)
    try:
        listener.bind(str(path))
    except OSError:
        return None
    finally:
        os.umask(old_umask)
    listener.listen(16)
    return listener


def serve(path: Path) -> None:
    _warm()
    from . import heap

    gc.collect()  # the imports' garbage, once: what is frozen next stays
    heap.freeze_long_lived()
    listener = _bind(path)
    if listener is None:
        return
    identity = os.stat(path).st_ino
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(wake_read, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    last_active = time.monotonic()
    stopping = False
    while True:
        for key, _ in selector.select(timeout=5):
            if key.fileobj is listener:
                connection, _ = listener.accept()
                try:
                    child = _accept(connection, listener, selector, wake_read, wake_write)
                except _Stop:
                    stopping, child = True, None
                    selector.unregister(listener)
                    listener.close()
                if child:
                    children[child] = connection
                else:
                    connection.close()
            else:
                with _suppress_oserror():
                    os.read(wake_read, 4096)
        _reap(children)
        if children:
            last_active = time.monotonic()
            continue
        try:
            replaced = os.stat(path).st_ino != identity  # a newer runner took the path, or it was removed
        except OSError:
            replaced = True
        if stopping or replaced or time.monotonic() - last_active > IDLE_SECONDS:
            if not replaced:
                with _suppress_oserror():
                    path.unlink()
            return


class _Stop(Exception):
    """A client asked the runner to exit (``stop_all``)."""


def stop_all(state: Path | None = None) -> int:
    """Ask every runner of this user (any code version) to exit once its commands end; returns how many."""
    stopped = 0
    folder = (state or state_dir()) / "runner"
    for path in folder.glob(f"{os.getuid()}-*.sock") if folder.is_dir() else []:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
            try:
                connection.connect(str(path))
                request = json.dumps({"protocol": PROTOCOL, "stop": True}).encode()
                fds = array.array("i", [0, 1, 2])
                connection.sendmsg([_HEADER.pack(len(request))],
                                   [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds.tobytes())])
                connection.sendall(request)
                connection.recv(1)  # the runner closes the connection when it has read the request
                stopped += 1
            except OSError:
                continue
    return stopped


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        connection = children.pop(pid, None)
        if connection is None:
            continue
        if os.WIFSIGNALED(status):
            reply = _REPLY.pack(b"s", os.WTERMSIG(status))
        else:
            reply = _REPLY.pack(b"x", os.waitstatus_to_exitcode(status))
        with _suppress_oserror():
            connection.sendall(reply)
        connection.close()


def _accept(connection: socket.socket, listener: socket.socket, selector: selectors.BaseSelector,
            wake_read: int, wake_write: int) -> int | None:
    """Read one request and fork its child; returns the child's pid (None: refused)."""
    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    if uid != os.getuid():
        return None
    connection.settimeout(10)
    try:
        fd_size = array.array("i").itemsize * 3
        header, ancillary, _, _ = connection.recvmsg(_HEADER.size, socket.CMSG_SPACE(fd_size))
        fds = array.array("i")
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
        if len(header) != _HEADER.size or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return None
        (length,) = _HEADER.unpack(header)
        body = _recv_exactly(connection, length)
        request = json.loads(body or b"{}")
        if request.get("protocol") != PROTOCOL:
            raise ValueError("protocol")
    except (OSError, ValueError):
        return None
    if request.get("stop"):
        for fd in fds:
            os.close(fd)
        raise _Stop
    connection.settimeout(None)
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        os.close(wake_read)
        os.close(wake_write)
        _child(connection, request, list(fds))
    for fd in fds:
        os.close(fd)
    with _suppress_oserror():
        connection.sendall(_REPLY.pack(b"p", pid))
    return pid


def _child(connection: socket.socket, request: dict[str, Any], fds: list[int]) -> NoReturn:
    """Become the command: its descriptors, environment, directory, umask and arguments; then run it."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setpgid(0, 0)  # a group of its own: the runner's signals are not its signals
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    runner_env = dict(os.environ)
    os.environ.clear()
    os.environ.update(request["env"])
    os.chdir(request["cwd"])
    os.umask(request["umask"])
    sys.argv = list(request["argv"])
    sys.stdin = open(0, encoding=sys.stdin.encoding, errors=sys.stdin.errors, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1 if os.isatty(1) else -1, encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # noqa: SIM115
    _settle_environment(runner_env)

    def die_with_client() -> None:
        try:
            while connection.recv(4096):
                pass
        except OSError:
            pass
        os.kill(os.getpid(), signal.SIGKILL)  # the client was killed: so is the command, as it was before

    threading.Thread(target=die_with_client, daemon=True, name="directus-ops-client").start()
    from .cli import run

    run()  # raises SystemExit with the command's code: the interpreter exits as a command's would


def _prefect_files() -> bool:
    """Whether the working directory holds settings Prefect reads: prefect.toml, a [tool.prefect] table in
    pyproject.toml, PREFECT_ lines in .env (a Directus project's .env has none)."""
    if os.path.exists("prefect.toml"):
        return True
    for name, marker in (("pyproject.toml", b"tool.prefect"), (".env", b"PREFECT_")):
        try:
            with open(name, "rb") as handle:
                if marker in handle.read(1 << 20):
                    return True
        except OSError:
            continue
    return False


def _settle_environment(runner_env: dict[str, str]) -> None:
    """What was read from the environment at import time, read again from the command's environment: Prefect's
    settings and logging (from PREFECT_* variables, and from a .env, prefect.toml or pyproject.toml in the
    working directory) when they can differ from the runner's (rebuilding them costs 0.1 s), our kill points."""
    from tasks import prefect_environment_defaults

    from . import faults

    prefect_environment_defaults()
    faults.reload()
    prefect_env = {k: v for k, v in os.environ.items() if k.startswith("PREFECT_")}
    if prefect_env == {k: v for k, v in runner_env.items() if k.startswith("PREFECT_")} and not _prefect_files():
        return
    from prefect.context import refresh_global_settings_context
    from prefect.logging.configuration import setup_logging

    refresh_global_settings_context()
    setup_logging(incremental=False)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "serve":
        serve(Path(sys.argv[2]))
    else:
        main()

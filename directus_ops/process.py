"""The one way to run a subprocess (npm, npx directus, pg_dump, mariadb-dump, ...).

Every child runs in its own process group with a timeout; what it prints goes to the log (redacted); if the
caller is cancelled or times out, the whole group is killed so no orphan keeps writing.

If this process dies without cleaning up (SIGKILL, OOM killer), its watchdog kills what it left running: a
``sh`` started once per process in a session of its own, reading a pipe whose write end only this process
holds. Each child's process group is registered on it while the child runs (``+-PGID`` / ``--PGID`` lines;
other processes, such as Prefect's temporary server, by pid with ``watch``/``unwatch``). When the pipe reaches
end-of-file (this process is gone, however it ended) the watchdog sends SIGTERM to every registered group and
process, then SIGKILL a second later. A parent-death signal would not do: it reaches only direct children,
not the grandchildren of ``npm`` or ``npx``. Cost: one ``sh`` per process, one short write per child.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from .errors import ProcessFailed, ToolMissing
from .redact import redact

log = logging.getLogger("directus_ops.process")

DEFAULT_TIMEOUT = 6 * 3600
_TAIL_LINES = 40

# Lines that tell why a tool failed, strongest first: an error code or a tool's own error summary, then any
# line that says "error". The chosen lines keep their order in the output.
_CAUSE_RULES = (
    re.compile(r"\bcode E[A-Z0-9]{3,}\b|\bE[A-Z]{3,}\b|\bE\d{3}\b|\bnotarget\b"  # npm: code ETARGET, ERESOLVE, E404
               r"|^\s*(?:\[[^\]]*\]\s*)?[\w.]*(?:Error|error|Exception): "  # Node's, Python's: "TypeError: ..."
               r"|^[\w.-]+: (?:error|fatal|Got error)\b"  # pg_dump: error: ..., mysqldump: Got error: ...
               r"|\b(?:ERROR|FATAL|PANIC):"),  # PostgreSQL / MariaDB server messages
    re.compile(r"\berror\b|ERR!|\bfatal\b|\bfailed\b", re.IGNORECASE),
)
# Lines that may match the rules but are not the cause: npm's pointers to its own log, its advice, bare
# prefixes, and warnings (npm's "warn EBADENGINE" precedes many an unrelated failure).
_NOT_A_CAUSE = re.compile(
    r"A complete log of this run can be found in|For a full report see|_logs/\S+\.(?:log|txt)\s*$"
    r"|In most cases you or one of your dependencies are requesting|a package version that doesn't exist"
    r"|^\s*(?:npm (?:error|ERR!)\s*)?$"
    r"|^npm warn\b|^[\w.-]+: warning:",
    re.IGNORECASE,
)
_NPM_CODE = re.compile(r"^npm (?:error|ERR!) code E[A-Z0-9]{3,}\s*$")
_CAUSE_LINES = 3
_CAUSE_LINE_CHARS = 240
_CAUSE_CHARS = 600


def failure_cause(output: str, lines: int = _CAUSE_LINES) -> str:
    """The line(s) of a tool's output that say why it failed, joined with " | " (one line, bounded length).

    Tools often end with a trailer (npm's "A complete log of this run can be found in ...") after the line that
    matters (``npm error notarget No matching version found for ...``), so the last line is not the cause.
    Falls back to the last line that is not boilerplate (else the last line); "" for no output. ``output`` is
    already redacted.
    """
    printed = [line.strip() for line in output.splitlines() if line.strip()]
    candidates = [line for line in printed if not _NOT_A_CAUSE.search(line)]
    chosen: list[str] = []
    for rule in _CAUSE_RULES:  # only the strongest kind present: weaker lines would bury it
        chosen = [line for index, line in enumerate(candidates) if rule.search(line)
                  # npm's summary is the line after its "code EXXX" line ("JSON.parse Invalid package.json: ...")
                  or (index and _NPM_CODE.search(candidates[index - 1]))][:lines]
        if chosen:
            break
    chosen = chosen or candidates[-1:] or printed[-1:]
    return _shorten(" | ".join(_shorten(line, _CAUSE_LINE_CHARS) for line in chosen), _CAUSE_CHARS)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# Each spawned child's last lines and the thread that reads them, for ``recent_output``.
_outputs: weakref.WeakKeyDictionary[subprocess.Popen[bytes], tuple[deque[str], threading.Thread]] = (
    weakref.WeakKeyDictionary())


def recent_output(proc: subprocess.Popen[bytes], wait: float = 2.0) -> str:
    """The last lines (redacted) a child started with ``spawn`` printed: why a server that exited did so.
    Once the child has exited, waits up to ``wait`` seconds for its last lines to be read."""
    tail, pump = _outputs.get(proc, (deque(), None))
    if pump is not None and proc.poll() is not None:
        pump.join(wait)
    return "\n".join(tail)


def find_tool(*names: str, purpose: str, install_hint: str) -> str:
    """Return the path of the first of ``names`` on PATH, or raise ToolMissing naming what to install."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    wanted = " or ".join(f"`{n}`" for n in names)
    raise ToolMissing(f"{wanted} is needed to {purpose} but is not installed; {install_hint}")


def _child_env(env: Mapping[str, str] | None) -> dict[str, str]:
    merged = dict(os.environ)
    if env:
        merged.update(env)
    return merged


# Reads "+TARGET" / "-TARGET" lines (TARGET: "-PGID" for a group, "PID" for a process) until end-of-file.
_WATCHDOG_SCRIPT = r"""
t=' '
while IFS= read -r l; do
  case $l in
    +*) t="$t${l#+} " ;;
    -*) p=${l#-}; case $t in *" $p "*) t="${t%% $p *} ${t#* $p }" ;; esac ;;
  esac
done
case $t in *[0-9]*) ;; *) exit 0 ;; esac
for p in $t; do kill -15 $p 2>/dev/null; done
sleep 1
for p in $t; do kill -9 $p 2>/dev/null; done
"""

_watchdog_lock = threading.Lock()
_watchdog: tuple[int, int] | None = None  # (pid of the process that started it, write end of its pipe)


def _watchdog_fd() -> int | None:
    """The write end of this process's watchdog pipe, starting the watchdog on first use."""
    global _watchdog
    pid = os.getpid()
    if _watchdog is not None and _watchdog[0] == pid:
        return _watchdog[1]
    read_end, write_end = os.pipe()  # both close-on-exec: no child but the watchdog inherits either end
    try:
        subprocess.Popen(["/bin/sh", "-c", _WATCHDOG_SCRIPT], stdin=read_end, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)  # out of reach of our group's signals
    except OSError as exc:
        os.close(write_end)
        log.warning("cannot start the process watchdog (%s): children of a killed run may outlive it", exc)
        return None
    finally:
        os.close(read_end)
    _watchdog = (pid, write_end)
    return write_end


def _tell_watchdog(line: str) -> None:
    with _watchdog_lock:
        fd = _watchdog_fd()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.write(fd, (line + "\n").encode())  # shorter than PIPE_BUF: one atomic write


def watch(pid: int, group: bool = False) -> None:
    """Have the watchdog kill ``pid`` (its process group if ``group``) should this process die first."""
    _tell_watchdog(f"+{'-' if group else ''}{pid}")


def unwatch(pid: int, group: bool = False) -> None:
    _tell_watchdog(f"-{'-' if group else ''}{pid}")


def process_runs(pid: int) -> bool:
    """Whether process ``pid`` exists and has not exited (a zombie has)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"  # a zombie has exited
    except OSError:
        return True


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_group(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """SIGTERM the whole group, give it ``grace`` seconds, then SIGKILL whatever is left of it."""
    pgid = proc.pid  # start_new_session made the child its group's leader
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)
    while _group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.05)  # grandchildren finishing their own SIGTERM handling
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    proc.wait()


def _pump_lines(
    stream: IO[bytes], name: str, tail: deque[str], captured: list[str] | None, logger: logging.Logger,
    level: int = logging.INFO, on_line: Callable[[str], None] | None = None,
) -> None:
    for raw in iter(stream.readline, b""):
        line = redact(raw.decode("utf-8", "replace").rstrip())
        if line:
            tail.append(line)
            if captured is not None:
                captured.append(line)
            logger.log(level, "[%s] %s", name, line)
            if on_line is not None:
                try:
                    on_line(line)
                except Exception:  # a broken progress display must not stop the pump (the child would block)
                    log.debug("on_line callback failed", exc_info=True)
    stream.close()


@contextlib.contextmanager
def spawn(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin: IO[bytes] | int | None = subprocess.DEVNULL,
    stdout_pipe: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    logger: logging.Logger | None = None,
    captured: list[str] | None = None,
    check: bool = True,
    quiet: bool = False,
    pass_fds: Sequence[int] = (),
    on_line: Callable[[str], None] | None = None,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in its own process group; yield the Popen; on exit wait, check the exit code, clean up.

    With ``stdout_pipe`` the caller reads ``proc.stdout`` (a dump streaming into the repository); otherwise
    stdout goes to the log like stderr. On any exception in the caller's block, or when ``timeout`` passes,
    the process group is killed. With ``check=False`` (servers the caller stops) the exit code is not checked.
    ``quiet`` logs the command and its output at DEBUG (queries such as ``npm view``). ``pass_fds`` are
    inherited by the child (a password in a pipe, read as ``/dev/fd/N``). ``on_line`` is called with each
    (redacted) line the child prints besides stdout when piped, from the thread that reads them (a progress display).
    """
    logger = logger or log
    level = logging.DEBUG if quiet else logging.INFO
    name = Path(args[0]).name
    logger.log(level, "running %s", redact(" ".join(str(a) for a in args)))
    proc = subprocess.Popen(
        [str(a) for a in args],
        env=_child_env(env),
        cwd=str(cwd) if cwd else None,
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT if not stdout_pipe else subprocess.PIPE,
        start_new_session=True,  # own process group: killpg reaches grandchildren (npx -> node)
        pass_fds=tuple(pass_fds),
    )
    watch(proc.pid, group=True)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    log_stream = proc.stderr if stdout_pipe else proc.stdout
    assert log_stream is not None
    # The copied context carries the caller's run (Prefect) so the tool's lines land in the run's log.
    pump = threading.Thread(target=contextvars.copy_context().run,
                            args=(_pump_lines, log_stream, name, tail, captured, logger, level, on_line), daemon=True)
    pump.start()
    _outputs[proc] = (tail, pump)
    timer = threading.Timer(timeout, _kill_group, args=(proc,))
    timer.daemon = True
    timer.start()
    started = time.monotonic()
    try:
        yield proc
        if stdout_pipe and proc.stdout is not None:
            proc.stdout.close()
        proc.wait()
    except BaseException:
        _kill_group(proc)
        raise
    finally:
        timer.cancel()
        pump.join(timeout=10)
        unwatch(proc.pid, group=True)
    elapsed = time.monotonic() - started
    if not check:
        return
    if elapsed >= timeout:
        raise ProcessFailed(f"{name} did not finish within {timeout:.0f} s and was stopped", None, "\n".join(tail))
    if proc.returncode != 0:
        output = "\n".join(tail)
        cause = failure_cause(output) or "no output"
        raise ProcessFailed(f"{name} failed with exit code {proc.returncode}: {cause}", proc.returncode, output)


def stop(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """Stop a process started with ``spawn`` and its whole group: SIGTERM, then SIGKILL after ``grace``."""
    _kill_group(proc, grace)


def run(
    args: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin_path: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    logger: logging.Logger | None = None,
    quiet: bool = False,
    pass_fds: Sequence[int] = (),
    on_line: Callable[[str], None] | None = None,
) -> str:
    """Run to completion; return what it printed (redacted). Raises ProcessFailed on a non-zero exit."""
    captured: list[str] = []
    with contextlib.ExitStack() as stack:
        stdin: IO[bytes] | int = subprocess.DEVNULL
        if stdin_path is not None:
            stdin = stack.enter_context(open(stdin_path, "rb"))
        stack.enter_context(
            spawn(args, env=env, cwd=cwd, stdin=stdin, timeout=timeout, logger=logger, captured=captured, quiet=quiet,
                  pass_fds=pass_fds, on_line=on_line)
        )
    return "\n".join(captured)


def output(args: Sequence[str], *, timeout: float = DEFAULT_TIMEOUT, cwd: str | Path | None = None,
           env: Mapping[str, str] | None = None) -> str:
    """What ``args`` prints on stdout, as it printed it: data to use (a container id, a path), so neither
    logged nor redacted (a redacted path would name the wrong place). Its stderr goes to the log."""
    chunks: list[bytes] = []
    stream_stdout(args, lambda stream: chunks.append(stream.read()), env=env, cwd=cwd, timeout=timeout)
    return b"".join(chunks).decode("utf-8", errors="replace")


def stream_stdout(
    args: Sequence[str],
    consume: Callable[[IO[bytes]], None],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    logger: logging.Logger | None = None,
    pass_fds: Sequence[int] = (),
    stdin_path: str | Path | None = None,
) -> None:
    """Run ``args`` and hand its stdout stream to ``consume`` (which reads it in chunks); its stdin is
    ``stdin_path`` when given."""
    with contextlib.ExitStack() as stack:
        stdin: IO[bytes] | int = subprocess.DEVNULL
        if stdin_path is not None:
            stdin = stack.enter_context(open(stdin_path, "rb"))
        proc = stack.enter_context(spawn(args, env=env, cwd=cwd, stdin=stdin, stdout_pipe=True, timeout=timeout,
                                         logger=logger, pass_fds=pass_fds))
        assert proc.stdout is not None
        consume(proc.stdout)


def start_service(args: Sequence[str], *, env: Mapping[str, str], log_path: Path) -> int:
    """Start a long-lived service that must outlive this process (the local Prefect server): its own session,
    so no signal to our group reaches it; not watched, so our death does not stop it; stdin from /dev/null and
    its output appended to ``log_path``; ``env`` exactly as given (the caller decides what it may see: no
    secret of ours). Returns its pid; stopping it is the caller's business (``stop_service``)."""
    log.info("starting %s", redact(" ".join(str(a) for a in args)))
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o600)
    try:
        proc = subprocess.Popen([str(a) for a in args], env=dict(env), stdin=subprocess.DEVNULL, stdout=fd,
                                stderr=fd, start_new_session=True, cwd="/")
    finally:
        os.close(fd)
    return proc.pid


def stop_service(pid: int, grace: float = 10.0) -> None:
    """SIGTERM a service's process group, then SIGKILL it after ``grace`` seconds if it is still there."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _group_alive(pid):
            return
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reap it when we started it ourselves
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)

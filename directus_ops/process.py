"""The one way to run a subprocess (npm, npx directus, pg_dump, mariadb-dump, ...).

Every child runs in its own process group with a timeout; what it prints goes to the log (redacted); if the
caller is cancelled or times out, the whole group is killed so no orphan keeps writing.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

from .errors import ProcessFailed, ToolMissing
from .redact import redact

log = logging.getLogger("directus_ops.process")

DEFAULT_TIMEOUT = 6 * 3600
_TAIL_LINES = 40


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
    level: int = logging.INFO,
) -> None:
    for raw in iter(stream.readline, b""):
        line = redact(raw.decode("utf-8", "replace").rstrip())
        if line:
            tail.append(line)
            if captured is not None:
                captured.append(line)
            logger.log(level, "[%s] %s", name, line)
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
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``args`` in its own process group; yield the Popen; on exit wait, check the exit code, clean up.

    With ``stdout_pipe`` the caller reads ``proc.stdout`` (a dump streaming into the repository); otherwise
    stdout goes to the log like stderr. On any exception in the caller's block, or when ``timeout`` passes,
    the process group is killed. With ``check=False`` (servers the caller stops) the exit code is not checked.
    ``quiet`` logs the command and its output at DEBUG (queries such as ``npm view``).
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
    )
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    log_stream = proc.stderr if stdout_pipe else proc.stdout
    assert log_stream is not None
    # The copied context carries the caller's run (Prefect) so the tool's lines land in the run's log.
    pump = threading.Thread(target=contextvars.copy_context().run,
                            args=(_pump_lines, log_stream, name, tail, captured, logger, level), daemon=True)
    pump.start()
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
    elapsed = time.monotonic() - started
    if not check:
        return
    if elapsed >= timeout:
        raise ProcessFailed(f"{name} did not finish within {timeout:.0f} s and was stopped", None, "\n".join(tail))
    if proc.returncode != 0:
        last = tail[-1] if tail else "no output"
        raise ProcessFailed(f"{name} failed with exit code {proc.returncode}: {last}", proc.returncode, "\n".join(tail))


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
) -> str:
    """Run to completion; return what it printed (redacted). Raises ProcessFailed on a non-zero exit."""
    captured: list[str] = []
    with contextlib.ExitStack() as stack:
        stdin: IO[bytes] | int = subprocess.DEVNULL
        if stdin_path is not None:
            stdin = stack.enter_context(open(stdin_path, "rb"))
        stack.enter_context(
            spawn(args, env=env, cwd=cwd, stdin=stdin, timeout=timeout, logger=logger, captured=captured, quiet=quiet)
        )
    return "\n".join(captured)


def stream_stdout(
    args: Sequence[str],
    consume: Callable[[IO[bytes]], None],
    *,
    env: Mapping[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    logger: logging.Logger | None = None,
) -> None:
    """Run ``args`` and hand its stdout stream to ``consume`` (which reads it in chunks)."""
    with spawn(args, env=env, cwd=cwd, stdout_pipe=True, timeout=timeout, logger=logger) as proc:
        assert proc.stdout is not None
        consume(proc.stdout)

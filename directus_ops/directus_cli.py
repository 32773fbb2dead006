"""Directus's own tooling, run through the one subprocess helper: ``npm install directus@X``, the
``directus`` CLI (``bootstrap``, ``database migrate:*``), and a server started for checks.

The CLI is started as ``node node_modules/directus/cli.js`` (not ``npx``, which leaves npm and sh parents
behind). Directus reads ``.env`` over environment variables, so another config is chosen with ``CONFIG_PATH``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from . import node as node_runtime
from . import process
from .errors import ProcessFailed, ProjectError, VersionError
from .node import NodeRuntime

log = logging.getLogger("directus_ops.directus_cli")

NPM_INSTALL_TIMEOUT = 40 * 60
MIGRATE_TIMEOUT = 2 * 3600


class NpmProgress:
    """Turns the lines of ``npm install --loglevel info`` into a status line for someone watching a
    minutes-long install: at each phase (resolving, downloading, install scripts) and every ``interval``
    seconds between, so a silent native build (isolated-vm compiles for minutes) still shows time passing."""

    PHASES = ("resolving dependencies", "downloading packages", "running install scripts")
    _URL = re.compile(r"^npm http (?:fetch GET \d+|cache) \S*?(https?://\S+)")
    _SCRIPT = re.compile(r"^npm info run (\S+) (\S+) (.*)$")  # "<pkg>@<v> <event> <dir> <cmd>" or "... { code: N, ... }"

    def __init__(self, say: Callable[[str], None], interval: float = 10.0) -> None:
        self.say = say
        self.interval = interval
        self.started = time.monotonic()
        self.phase = 0
        self.manifests = 0
        self.packages: set[str] = set()  # tarball URLs (npm names one when it downloads it and when it unpacks it)
        self.scripts: dict[str, None] = {}  # install scripts running now, oldest first
        self.summary = ""  # npm's closing line ("added 1234 packages in 3m")
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._ticker = threading.Thread(target=self._tick, daemon=True)

    def __enter__(self) -> NpmProgress:
        self._ticker.start()
        return self

    def __exit__(self, kind: object, exc: object, traceback: object) -> None:
        self._stopped.set()
        self._ticker.join()
        if kind is None:
            self.say(f"npm {self._elapsed()}: done{f' ({self.summary})' if self.summary else ''}")

    def _elapsed(self) -> str:
        seconds = int(time.monotonic() - self.started)
        return f"{seconds // 60}:{seconds % 60:02d}"

    def _tick(self) -> None:
        while not self._stopped.wait(self.interval):
            self.report()

    def report(self, details: bool = True) -> None:
        with self._lock:
            if not details:  # a phase just began: its counts say nothing yet
                self.say(f"npm {self._elapsed()}: {self.PHASES[self.phase]}")
                return
            if self.phase == 0:
                detail = f"{self.manifests} package manifests read"
            elif self.phase == 1:
                detail = f"{len(self.packages)} so far"
            else:
                detail = ", ".join(self.scripts) or "between scripts"
            self.say(f"npm {self._elapsed()}: {self.PHASES[self.phase]} ({detail})")

    def line(self, text: str) -> None:
        """One line of npm's output (called from the thread that reads them)."""
        with self._lock:
            phase = self.phase
            if url := self._URL.match(text):
                if url.group(1).endswith(".tgz"):
                    self.packages.add(url.group(1))
                    phase = max(phase, 1)
                else:
                    self.manifests += 1
            elif script := self._SCRIPT.match(text):
                package, event, rest = script.groups()
                key = f"{package.rsplit('@', 1)[0]} {event}"
                if rest.startswith("{ code:"):
                    self.scripts.pop(key, None)
                else:
                    self.scripts[key] = None
                phase = 2
            elif text.startswith(("added ", "changed ", "up to date")):
                self.summary = text
            advanced = phase > self.phase
            self.phase = max(phase, self.phase)
        if advanced:
            self.report(details=self.phase == 2)  # which script runs is worth saying at once


def npm_install_directus(project_dir: Path, version: str, runtime: NodeRuntime | None = None,
                         say: Callable[[str], None] | None = None) -> None:
    """Install ``directus@version`` exactly (``--save-exact``: a range would resolve elsewhere later) with the
    Node it needs (``runtime``, by default chosen from its engines.node), and record that Node in the project.
    With ``say``, npm's progress goes there as a status line per phase and every few seconds (see NpmProgress)."""
    runtime = runtime or node_runtime.for_version(version)
    project_dir.mkdir(parents=True, exist_ok=True)
    package = project_dir / "package.json"
    if not package.exists():
        package.write_text(json.dumps({"name": project_dir.name.lower() or "directus-project", "private": True}, indent=2) + "\n")
    args = [runtime.npm, "install", "--save-exact", "--no-audit", "--no-fund", f"directus@{version}"]
    if say is None:
        process.run(args, cwd=project_dir, env=runtime.env(), timeout=NPM_INSTALL_TIMEOUT)
    else:
        # --loglevel info: each fetch and each install script start/end, which is what the status is made of.
        with NpmProgress(say) as npm_progress:
            process.run([*args, "--loglevel", "info"], cwd=project_dir, env=runtime.env(),
                        timeout=NPM_INSTALL_TIMEOUT, on_line=npm_progress.line)
    node_runtime.record(project_dir, runtime)


_NOT_PUBLISHED = re.compile(r"No matching version found for (\S+?)\.?$", re.MULTILINE)


def missing_dependency(output: str) -> str | None:
    """``package@version`` npm found no such version of (ETARGET), from its output; None for another failure."""
    found = _NOT_PUBLISHED.search(output)
    return found.group(1) if found else None


def install_newest(project_dir: Path, line: str, say: Callable[[str], None]) -> str:
    """Install the newest published ``directus@line`` (e.g. "12") that this machine's npm registry can supply:
    a mirror may lack a dependency of the newest release (directus@12.4.1 needs @directus/app@18.0.1), and
    then the next older release is tried, saying why. Returns the installed version."""
    from .releases import published_versions

    candidates = list(reversed(published_versions(f"directus@{line}")))[:3]
    if not candidates:
        raise VersionError(f"no directus@{line} is published on the npm registry; pass another --directus-version")
    for index, version in enumerate(candidates):
        say(f"installing directus@{version} from npm into {project_dir} (a few minutes, once)")
        try:
            npm_install_directus(project_dir, version, say=say)
            return version
        except ProcessFailed as exc:
            missing = missing_dependency(exc.output_tail)
            if missing is None or missing.startswith("directus@") or index == len(candidates) - 1:
                raise
            say(f"directus@{version} cannot be installed from this npm registry: its dependency {missing} is not "
                f"there; falling back to directus@{candidates[index + 1]}")
    raise AssertionError("unreachable")


def npm_reinstall(project_dir: Path, runtime: NodeRuntime) -> None:
    """Make node_modules match package.json and package-lock.json again (after they were put back), built for
    ``runtime``, which the project records."""
    process.run([runtime.npm, "install", "--no-audit", "--no-fund"], cwd=project_dir, env=runtime.env(),
                timeout=NPM_INSTALL_TIMEOUT)
    node_runtime.record(project_dir, runtime)


def cli_path(project_dir: Path) -> Path:
    path = project_dir / "node_modules" / "directus" / "cli.js"
    if not path.exists():
        raise ProjectError(f"Directus is not installed in {project_dir} (no node_modules/directus); run `npm install` there")
    return path


def _env(config_path: Path | None, extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(extra or {})
    if config_path is not None:
        env["CONFIG_PATH"] = str(config_path)
    return env


def directus(project_dir: Path, *args: str, config_path: Path | None = None, env: Mapping[str, str] | None = None,
             timeout: float = 600, runtime: NodeRuntime | None = None) -> str:
    """Run one ``directus`` CLI command in the project directory (on the project's Node unless ``runtime`` is
    given); return its output."""
    runtime = runtime or node_runtime.for_project(project_dir)
    return process.run([runtime.node, str(cli_path(project_dir)), *args], cwd=project_dir,
                       env={**runtime.env(), **_env(config_path, env)}, timeout=timeout)


def migrate(project_dir: Path, command: str, config_path: Path, runtime: NodeRuntime | None = None) -> str:
    """``directus database migrate:latest|migrate:down|migrate:up`` against the config at ``config_path``."""
    return directus(project_dir, "database", command, config_path=config_path, timeout=MIGRATE_TIMEOUT,
                    runtime=runtime)


def failing_migration(output: str) -> str | None:
    """The migration a failed ``migrate:*`` was applying, from Directus's "Applying <name>..." lines."""
    found = re.findall(r"(?:Applying|Undoing) (.+?)\.\.\.", output)
    return found[-1] if found else None


def bootstrap(project_dir: Path, admin_email: str, admin_password: str, config_path: Path | None = None) -> None:
    directus(project_dir, "bootstrap", config_path=config_path,
             env={"ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": admin_password})


@contextlib.contextmanager
def running_server(project_dir: Path, url: str, config_path: Path | None = None,
                   env: Mapping[str, str] | None = None, ready_timeout: float = 90,
                   runtime: NodeRuntime | None = None) -> Iterator[str]:
    """Start ``directus start`` in the project (on the project's Node unless ``runtime`` is given), wait until it
    answers ``/server/ping``, yield its URL, stop it."""
    from .directus_api import wait_until_up

    runtime = runtime or node_runtime.for_project(project_dir)

    with process.spawn([runtime.node, str(cli_path(project_dir)), "start"], cwd=project_dir,
                       env={**runtime.env(), **_env(config_path, env)}, timeout=24 * 3600, check=False) as proc:

        def why_exited() -> str:
            return f"exit code {proc.returncode}: {process.failure_cause(process.recent_output(proc)) or 'no output'}"

        try:
            wait_until_up(url, ready_timeout, alive=lambda: proc.poll() is None, why_exited=why_exited)
            yield url
        finally:
            process.stop(proc)

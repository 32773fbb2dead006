"""Deleting a Directus project: every ``directus_*`` system table dropped, so the project's own tables stay
behind as a plain SQL database, and the project root removed. The plain functions under the delete flow's
tasks: refusals first (nothing changed), the plan (read from the database, printed by ``--dry-run``), the
per-engine drop, the verification, the root's removal.

Per engine (see docs: "System tables"): the foreign keys from project tables to system tables are dropped by
name, then the exact list of system tables (their foreign keys among each other go with them).
PostgreSQL does it in one transaction; MySQL/MariaDB commit each DDL statement, so the foreign keys go
first and the tables then in one statement with ``FOREIGN_KEY_CHECKS=0``; SQLite cannot drop a foreign key,
so the project tables that have one are rebuilt without it, all in one transaction.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import database as db
from . import licensing
from .database import DatabaseSettings, ForeignKey
from .errors import ConfigError, DatabaseError, IntegrityError, NeedsConfirmation, ProjectError
from .project import Project, load_project
from .redact import redact
from .sqlite_foreign_keys import sqlite_drop_tables

log = logging.getLogger("directus_ops.delete")

BACKUP_SCOPES = ("entire", "system", "project", "none")
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


# -- refusals ------------------------------------------------------------------------------------------------------
def backups_requested(backup_database: str, backup_files: bool, backup_extensions: bool) -> bool:
    return backup_database != "none" or backup_files or backup_extensions


def check_delete(project_dir: str, config_path: str | None, confirm: str | None, repo: str | None,
                 backup_database: str = "entire", backup_files: bool = False, backup_extensions: bool = False,
                 keep_root: bool = False, dry_run: bool = False, service: str | None = None) -> Project:
    """Every refusal, before anything is written: the project loads, the options make sense, ``confirm``
    names the project (not needed for a dry run), a requested backup has a repository, and the root may go.
    A Docker Compose project keeps its directory (its Compose file, its mounts, maybe its database's data):
    its Directus service is stopped instead, and the stack is the operator's to remove."""
    project = load_project(project_dir, config_path, service=service)
    if project.compose is not None:
        keep_root = True
    if backup_database not in BACKUP_SCOPES:
        raise ConfigError(f"--backup-database {backup_database}: choose one of {', '.join(BACKUP_SCOPES)}")
    if not dry_run:
        what = "drops its directus_* tables" + ("" if keep_root else f" and removes {project.root}")
        if project.compose is not None:
            what += f" and stops its Compose service '{project.compose.service}'"
        if confirm is None:
            raise NeedsConfirmation(f"deleting project {project.name} {what}: pass --confirm {project.name} to go "
                                    "ahead (--dry-run shows the plan)")
        if confirm != project.name:
            raise NeedsConfirmation(f"--confirm {confirm} does not match the project's name {project.name}; pass "
                                    f"--confirm {project.name} to delete it")
    if backups_requested(backup_database, backup_files, backup_extensions) and not repo:
        asked = "--backup-database " + backup_database + (" (the default)" if backup_database == "entire" else "")
        if backup_database == "none":
            asked = "--backup-files" if backup_files else "--backup-extensions"
        raise ConfigError(f"{asked} needs --repo REPO for the snapshot; pass --repo, or --backup-database none "
                          "(and no --backup-files/--backup-extensions) to delete without a backup")
    if not keep_root:
        check_root(project.root)
        if repo and "://" not in repo and _inside(Path(repo).expanduser().absolute(), project.root):
            raise ConfigError(f"the repository {repo} is inside the project root {project.root}, which the delete "
                              "removes; put the repository elsewhere or pass --keep-root")
    return project


def check_root(root: Path) -> None:
    """Refuse to remove a directory that is not plainly one Directus project's own."""
    resolved = root.resolve()
    home = Path.home().resolve()
    if resolved == Path(resolved.anchor) or resolved == home or resolved in home.parents:
        raise ProjectError(f"refusing to delete {resolved}: it is {'/' if resolved == Path('/') else 'a home directory or above one'}; "
                           "pass the project's own directory, or --keep-root to keep the directory")
    if not is_directus_project(resolved):
        raise ProjectError(f"{resolved} does not look like a Directus project directory (no package.json depending on "
                           "directus, no node_modules/directus); pass the project's own directory, or --keep-root")


def is_directus_project(root: Path) -> bool:
    if (root / "node_modules" / "directus" / "package.json").is_file():
        return True
    try:
        package = json.loads((root / "package.json").read_text())
    except (OSError, ValueError):
        return False
    return any("directus" in (package.get(kind) or {}) for kind in ("dependencies", "devDependencies"))


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


# -- the plan ------------------------------------------------------------------------------------------------------
@dataclass
class DeletePlan:
    """What a delete drops, keeps and removes, as read from the database and the disk."""

    project_dir: str
    config_path: str
    project_name: str
    database: str  # described, no secrets
    engine: str
    system_tables: list[str]
    project_tables: list[str]
    row_counts: dict[str, int]  # project tables, before
    project_to_system: list[ForeignKey]  # removed
    between_system: list[ForeignKey]  # go with their tables
    between_project: list[ForeignKey]  # kept, checked afterwards
    join_counts: dict[str, int]  # rows of the join over each kept foreign key, before
    delete_root: bool
    delete_paths: list[str] = field(default_factory=list)
    compose_service: str | None = None  # a Docker Compose project's Directus service: stopped, not removed
    keep_paths: list[str] = field(default_factory=list)
    untouched: list[str] = field(default_factory=list)
    backups: list[str] = field(default_factory=list)
    schema: str | None = None  # PostgreSQL: the schema of the project's tables (DB_SEARCH_PATH, else public)
    license_notice: str | None = None  # an activated Directus 12 license: deactivate it first

    def is_system(self, table: str) -> bool:
        return db.is_system_table(table, self.schema)

    def load(self) -> Project:
        """The project again, as the plan found it (a Compose project by its service, not its file)."""
        if self.compose_service:
            return load_project(self.project_dir, service=self.compose_service)
        return load_project(self.project_dir, self.config_path)

    def lines(self) -> list[str]:
        rows = sum(self.row_counts.values())
        out = [f"delete project {self.project_name} ({self.project_dir})",
               f"database: {self.database}: {len(self.system_tables)} system tables to drop, "
               f"{len(self.project_tables)} project tables kept ({rows} rows)"]
        out.append("backups first (verified before anything is dropped):" if self.backups else "backups: none")
        out += [f"  {b}" for b in self.backups]
        out.append(f"drop tables ({len(self.system_tables)}):")
        out += [f"  {t}" for t in self.system_tables]
        how = " (tables rebuilt without them: SQLite cannot drop a foreign key)" if self.engine == "sqlite" else ""
        out.append(f"remove foreign keys from project tables to system tables ({len(self.project_to_system)}){how}:")
        out += [f"  {k.describe()}" for k in self.project_to_system]
        out.append(f"foreign keys between system tables, dropped with them ({len(self.between_system)}):")
        out += [f"  {k.describe()}" for k in self.between_system]
        out.append(f"keep project tables ({len(self.project_tables)}), checked afterwards:")
        out += [f"  {t} ({self.row_counts.get(t, 0)} row{'' if self.row_counts.get(t) == 1 else 's'})"
                for t in self.project_tables]
        out.append(f"keep foreign keys between project tables ({len(self.between_project)}):")
        out += [f"  {k.describe()}" for k in self.between_project]
        if self.compose_service:
            out.append(f"stop the Compose service '{self.compose_service}' (its next start would bootstrap Directus "
                       f"again); keep the Compose project in {self.project_dir}")
        elif self.delete_root:
            out.append(f"delete paths ({len(self.delete_paths)}):")
            out += [f"  {p}" for p in self.delete_paths]
        else:
            out.append(f"keep the project root {self.project_dir} (--keep-root)")
        out += [f"keep {p}" for p in self.keep_paths]
        out += [f"not touched: {p}" for p in self.untouched]
        if self.license_notice:
            out.append(f"license: {self.license_notice}")
        return out


def plan_delete(project: Project, keep_root: bool = False, backups: list[str] | None = None) -> DeletePlan:
    if project.compose is not None:
        keep_root = True  # the Compose project's directory stays (check_delete)
    schema = db.project_schema(project.database)

    def is_system(table: str) -> bool:
        return db.is_system_table(table, schema)

    with db.connect(project.database) as conn:
        tables = db.list_tables(conn)
        system = [t for t in tables if is_system(t)]
        if not system:
            # Nothing to drop in a Directus project's database means the wrong database or schema: removing the
            # root (and its config) then would leave every system table behind with nothing pointing at it.
            where = f"schema {schema} of {project.database.describe()}" if schema else project.database.describe()
            fix = {"postgresql": "is DB_SEARCH_PATH right?", "mysql": "is DB_DATABASE right?",
                   "sqlite": "is DB_FILENAME right?"}[project.database.engine]
            raise ConfigError(f"no directus_* tables found in {where}: {fix} Point the config at the project's "
                              "database; nothing was changed")
        own = [t for t in tables if not is_system(t)]
        keys = db.foreign_keys(conn)
        counts = db.count_rows(conn, own)
        kept_keys = [k for k in keys if not is_system(k.table) and not is_system(k.referred_table)]
        joins = {k.describe(): _join_count(conn, k) for k in kept_keys}
    delete_paths, keep_paths, untouched = _paths(project, keep_root)
    if project.compose is not None:
        untouched = [f"the Compose project in {project.root} (its Compose file, mounts and volumes, and the database "
                     "service) is yours to remove: `docker compose down` (with -v only once the database's data is "
                     "kept elsewhere)"]
    return DeletePlan(
        project_dir=str(project.root), config_path=str(project.config_path), project_name=project.name,
        database=project.database.describe(), engine=project.database.engine, system_tables=system,
        project_tables=own, row_counts=counts,
        project_to_system=[k for k in keys if not is_system(k.table) and is_system(k.referred_table)],
        between_system=[k for k in keys if is_system(k.table)],
        between_project=kept_keys, join_counts=joins, delete_root=not keep_root, delete_paths=delete_paths,
        keep_paths=keep_paths, untouched=untouched, backups=backups or [], schema=schema,
        compose_service=project.compose.service if project.compose else None,
        license_notice=licensing.delete_notice(licensing.activated_license(project)))


def describe_backups(project: Project, repo: str | None, backup_database: str, backup_files: bool,
                     backup_extensions: bool) -> list[str]:
    """What the safety-net snapshot will hold, one line each (for the plan)."""
    lines = []
    database = {"entire": "the entire database", "system": "only the directus_* system tables",
                "project": "only the project tables (no directus_*)"}.get(backup_database)
    if database:
        lines.append(f"database: {database} of {project.database.describe()}")
    if backup_files:
        lines += [f"storage '{l.name}': every object of {l.describe()}" for l in project.storage]
    if backup_extensions:
        lines.append(f"custom code: package.json/lock, {project.extensions_path}, {project.migrations_path}")
    if lines:
        lines.append(f"into the repository {redact(repo or '')} (with the config, encrypted)")
    return lines


def _join_count(conn: Connection, key: ForeignKey) -> int:
    quote = conn.dialect.identifier_preparer.quote
    on = " AND ".join(f"c.{quote(a)} = p.{quote(b)}" for a, b in zip(key.columns, key.referred_columns))
    return int(conn.execute(sa.text(f"SELECT count(*) FROM {db.quote_table(conn, key.table)} c "
                                    f"JOIN {db.quote_table(conn, key.referred_table)} p ON {on}")).scalar() or 0)


def _database_files(project: Project) -> list[Path]:
    if project.database.engine != "sqlite" or project.database.filename is None:
        return []
    main = Path(os.path.abspath(project.database.filename))
    return [main, *(Path(str(main) + suffix) for suffix in SQLITE_COMPANIONS)]


def _paths(project: Project, keep_root: bool) -> tuple[list[str], list[str], list[str]]:
    """What removing the root deletes (top-most paths), keeps (the SQLite database inside it) and leaves alone."""
    root = project.root
    database_files = _database_files(project)
    keep = [p for p in database_files if _inside(p, root) and (p.exists() or p == database_files[0])]
    keep_text = [f"{p} (the SQLite database: the project tables stay in it)" if p == database_files[0]
                 else f"{p} (its {p.name.rsplit('-', 1)[-1].upper()} file)" for p in keep]
    untouched = []
    for location in project.storage:
        if location.driver != "local" or not _inside(Path(location.root).absolute(), root):
            untouched.append(f"storage '{location.name}' ({location.describe()}) is outside the project root; "
                             "delete its objects yourself")
    for label, folder in (("extensions", project.extensions_path), ("migrations", project.migrations_path)):
        if folder.exists() and not _inside(folder, root):
            untouched.append(f"{label} folder {folder} is outside the project root")
    if keep_root:
        return [], keep_text, untouched
    delete: list[str] = []

    def collect(directory: Path) -> None:
        for entry in sorted(directory.iterdir()):
            if entry in keep:
                continue
            if entry.is_dir() and not entry.is_symlink() and any(_inside(k, entry) for k in keep):
                collect(entry)
            else:
                delete.append(str(entry) + ("/" if entry.is_dir() and not entry.is_symlink() else ""))

    collect(root)
    if not keep:
        delete.append(f"{root}/ (the project root itself)")
    return delete, keep_text, untouched


# -- the drop --------------------------------------------------------------------------------------------------------
@dataclass
class DropResult:
    dropped_tables: list[str]
    dropped_foreign_keys: list[str]
    rebuilt_tables: list[str]  # SQLite: rebuilt without their references to system tables


def drop_system_tables(settings: DatabaseSettings, plan: DeletePlan, backup_counts: dict[str, int] | None = None,
                       backup_scope: str = "entire") -> DropResult:
    """Drop the plan's foreign keys and system tables, per engine; the plan must still match the database, and
    the tables the backup holds (``backup_counts``: the snapshot manifest's row counts, of a ``backup_scope``
    dump) must still hold as many rows as it has: else a running Directus wrote meanwhile, and rows would be
    dropped that no backup has. Without a backup the project tables' counts must still be the plan's."""
    keys = [k.describe() for k in plan.project_to_system]
    expected = _Expected(plan, backup_counts, backup_scope)
    try:
        if settings.engine == "postgresql":
            _drop_postgresql(settings, plan, expected)
            rebuilt: list[str] = []
        elif settings.engine == "mysql":
            _drop_mysql(settings, plan, expected)
            rebuilt = []
        else:
            rebuilt = _drop_sqlite(settings, plan, expected)
    except sa.exc.DBAPIError as exc:
        reason = redact(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
        changed = ("the foreign keys from project tables to system tables were dropped already"
                   if settings.engine == "mysql" else "nothing was changed")
        raise DatabaseError(f"cannot drop the system tables of {settings.describe()}: {reason}; {changed}") from None
    log.info("dropped %d system tables and %d foreign keys from project tables in %s", len(plan.system_tables),
             len(keys), settings.describe())
    return DropResult(dropped_tables=list(plan.system_tables), dropped_foreign_keys=keys, rebuilt_tables=rebuilt)


def _check_unchanged(conn: Connection, plan: DeletePlan) -> None:
    """The database still is what the plan describes (a running Directus could have added a table)."""
    system = [t for t in db.list_tables(conn) if plan.is_system(t)]
    keys = [k for k in db.foreign_keys(conn) if not plan.is_system(k.table) and plan.is_system(k.referred_table)]
    if system != plan.system_tables or keys != plan.project_to_system:
        raise DatabaseError(f"{plan.database} changed since the delete was planned (system tables or their foreign "
                            "keys differ); nothing was changed: stop Directus and run the delete again")


@dataclass
class _Expected:
    """The row counts the drop must still find: the backup's (the rows it holds) and the plan's."""

    plan: DeletePlan
    backup_counts: dict[str, int] | None
    backup_scope: str

    def check(self, tables: list[str], count: Callable[[list[str]], dict[str, int]]) -> None:
        """Raise if the database (``tables`` now, ``count`` reading row counts) differs; nothing dropped yet."""
        present = set(tables)
        if self.backup_counts is not None:
            in_scope = [t for t in self.plan.system_tables if self.backup_scope in ("entire", "system")]
            missing = [t for t in in_scope if t not in self.backup_counts]
            if missing:
                self._refuse("since the backup", f"table {missing[0]} is not in the snapshot")
            backed_up = [t for t in self.backup_counts if t in present]
            gone = [t for t in self.backup_counts if t not in present]
            if gone:
                self._refuse("since the backup", f"table {gone[0]}: gone, the snapshot has "
                                                 f"{self.backup_counts[gone[0]]} rows")
            self._compare(count(backed_up), self.backup_counts, "since the backup", "the snapshot has")
        planned = [t for t in self.plan.project_tables if t in present]
        if len(planned) < len(self.plan.project_tables):
            gone_table = next(t for t in self.plan.project_tables if t not in present)
            self._refuse("since the delete was planned", f"table {gone_table}: gone, the plan counted "
                                                         f"{self.plan.row_counts.get(gone_table)} rows")
        self._compare(count(planned), self.plan.row_counts, "since the delete was planned", "the plan counted")

    def _compare(self, now: dict[str, int], then: dict[str, int], since: str, source: str) -> None:
        for table, rows in now.items():
            if rows != then.get(table):
                self._refuse(since, f"table {table}: {rows} rows, {source} {then.get(table)}")

    def _refuse(self, since: str, detail: str) -> None:
        raise DatabaseError(f"{self.plan.database} changed {since} ({detail}): stop Directus and run again; "
                            "nothing was dropped")


def _drop_postgresql(settings: DatabaseSettings, plan: DeletePlan, expected: _Expected) -> None:
    with db.connect(settings) as conn:
        quote = conn.dialect.identifier_preparer.quote
        tables = ", ".join(db.quote_table(conn, t) for t in plan.system_tables)  # schema.table quoted part by part
        with conn.begin():  # one transaction: all of it or nothing
            conn.execute(sa.text("SET LOCAL lock_timeout = '30s'"))  # a busy app makes it fail, not hang
            if plan.system_tables:
                # Nobody writes to them from here on: the counts compared below are the rows the drop removes.
                conn.execute(sa.text(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"))
            _check_unchanged(conn, plan)
            expected.check(db.list_tables(conn), lambda names: db.count_rows(conn, names))
            for key in plan.project_to_system:
                conn.execute(sa.text(f"ALTER TABLE {db.quote_table(conn, key.table)} "
                                     f"DROP CONSTRAINT {quote(key.name or '')}"))
            if plan.system_tables:
                # No CASCADE: anything else depending on a system table (a view) stops the drop instead of vanishing.
                conn.execute(sa.text(f"DROP TABLE {tables}"))
            _check_counts(conn, plan)  # still inside the transaction: a difference rolls everything back


def _drop_mysql(settings: DatabaseSettings, plan: DeletePlan, expected: _Expected) -> None:
    with db.connect(settings, isolation_level="AUTOCOMMIT") as conn:
        quote = conn.dialect.identifier_preparer.quote
        _check_unchanged(conn, plan)
        # Right before the first DDL (each commits at once; MySQL cannot hold a lock across them).
        expected.check(db.list_tables(conn), lambda names: db.count_rows(conn, names))
        by_table: dict[str, list[str]] = {}
        for key in plan.project_to_system:
            by_table.setdefault(key.table, []).append(key.name or "")
        for table, names in by_table.items():  # DDL commits at once: the project tables' side first
            conn.execute(sa.text(f"ALTER TABLE {quote(table)} " +
                                 ", ".join(f"DROP FOREIGN KEY {quote(n)}" for n in names)))
        if not plan.system_tables:
            return
        previous = int(conn.execute(sa.text("SELECT @@SESSION.foreign_key_checks")).scalar() or 0)
        conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))  # the system tables reference each other
        try:
            conn.execute(sa.text("DROP TABLE " + ", ".join(quote(t) for t in plan.system_tables)))
        finally:
            conn.execute(sa.text(f"SET SESSION foreign_key_checks = {previous}"))


def _drop_sqlite(settings: DatabaseSettings, plan: DeletePlan, expected: _Expected) -> list[str]:
    with db.connect(settings, isolation_level="AUTOCOMMIT") as conn:
        _check_unchanged(conn, plan)
        raw = conn.connection.driver_connection
        assert isinstance(raw, sqlite3.Connection)  # the pysqlite driver's own

        def check(locked: sqlite3.Connection) -> None:  # inside the drop's write transaction: nobody writes meanwhile
            tables = [r[0] for r in locked.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
            expected.check(tables, lambda names: {
                t: int(locked.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchone()[0])
                for t in names})

        rebuilt = sqlite_drop_tables(raw, plan.system_tables, before=check)
        raw.execute("VACUUM")  # the dropped tables' pages (password hashes, tokens) are erased from the file
    return rebuilt


def _check_counts(conn: Connection, plan: DeletePlan) -> None:
    counts = db.count_rows(conn, plan.project_tables)
    differing = [t for t in plan.project_tables if counts.get(t) != plan.row_counts.get(t)]
    if differing:
        raise DatabaseError(f"table {differing[0]} has {counts.get(differing[0])} rows after the drop, "
                            f"{plan.row_counts.get(differing[0])} before; nothing was changed")


# -- verification ----------------------------------------------------------------------------------------------------
@dataclass
class Verification:
    tables: int
    rows: int
    foreign_keys: int
    problems: list[str]


def verify_deleted(settings: DatabaseSettings, plan: DeletePlan) -> Verification:
    """No ``directus_*`` table left, every project table there with its rows, readable with plain SQL, and
    the foreign keys between project tables still in place and joining the same rows."""
    problems: list[str] = []
    with db.connect(settings) as conn:
        tables = db.list_tables(conn)
        left = [t for t in tables if plan.is_system(t)]
        if left:
            problems.append(f"{len(left)} system tables are still there (first: {left[0]})")
        missing = [t for t in plan.project_tables if t not in tables]
        if missing:
            problems.append(f"project table {missing[0]} is gone ({len(missing)} missing)")
        present = [t for t in plan.project_tables if t in tables]
        counts = db.count_rows(conn, present)
        problems += [f"table {t} has {counts[t]} rows, {plan.row_counts[t]} before" for t in present
                     if counts[t] != plan.row_counts[t]]
        for table in present:
            conn.execute(sa.text(f"SELECT * FROM {db.quote_table(conn, table)}")).first()  # every column readable
        keys = db.foreign_keys(conn)
        problems += [f"foreign key {k.describe()} still points at a system table" for k in keys
                     if plan.is_system(k.referred_table)]
        now = {(k.table, k.columns, k.referred_table, k.referred_columns) for k in keys}
        for key in plan.between_project:
            if (key.table, key.columns, key.referred_table, key.referred_columns) not in now:
                problems.append(f"foreign key {key.describe()} is gone")
            elif _join_count(conn, key) != plan.join_counts[key.describe()]:
                problems.append(f"the join over {key.describe()} gives other rows than before")
    if problems:
        raise IntegrityError(f"after dropping the system tables: {problems[0]} ({len(problems)} problems); the "
                             "project root was kept, restore from the snapshot if needed")
    return Verification(tables=len(present), rows=sum(counts.values()), foreign_keys=len(plan.between_project),
                        problems=[])


# -- the root --------------------------------------------------------------------------------------------------------
def delete_root(plan: DeletePlan) -> list[str]:
    """Remove the project root, all but the SQLite database (and its WAL/SHM files) inside it; symlinks are
    removed, never followed. Returns the paths removed."""
    root = Path(plan.project_dir)
    check_root(root)
    project = plan.load()
    delete_paths, _, _ = _paths(project, keep_root=False)
    removed = []
    for text in delete_paths:
        if text.endswith("(the project root itself)"):
            continue
        path = Path(text.rstrip("/"))
        if path.is_symlink() or not path.is_dir():
            path.unlink(missing_ok=True)
        else:
            shutil.rmtree(path)
        removed.append(text)
    kept = [p for p in _database_files(project) if _inside(p, root) and p.exists()]
    if not kept:
        root.rmdir()
        removed.append(f"{root}/")
    leftovers = [p for p in root.rglob("*") if p not in kept and not any(_inside(k, p) for k in kept)] \
        if root.exists() else []
    if leftovers:
        raise ProjectError(f"{leftovers[0]} is still in {root} after removing the project root (written meanwhile?); "
                           "stop whatever writes there and remove it by hand")
    log.info("removed %s (%d paths)%s", root, len(removed), f", kept {kept[0]}" if kept else "")
    return removed

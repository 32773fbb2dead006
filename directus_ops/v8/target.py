"""Writing a v8 project into a Directus 10, 11 or 12 database (database mode), through ``database.connect``.

``inspect_target`` checks the target before anything is written: a bootstrapped Directus 10.x, 11.x or 12.x on
PostgreSQL, MySQL/MariaDB or SQLite (``directus_migrations`` applied, the installed package's version; 11.x and
later have ``directus_policies`` and ``directus_access``, where admin/app access and the public access live), and no
table named like a v8 collection unless an earlier run of this migration created it (recognised by the UUIDs the id map
gives: then the run resumes). Every writer after it is idempotent: rows whose key is there already are skipped
(the ids are deterministic), metadata rows only written where missing, tables and foreign keys only if absent. So
a second run changes nothing and a run stopped half way completes when run again.

Items are streamed from the v8 database (unbuffered cursor), converted by a per-collection RowConverter and
written in batches; counters are reset after. What differs per engine (DDL, when the foreign keys are made, how
a batch is written and how an existing key is skipped, how values are stored, counters, session settings) is in
``writers.py``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import contextlib
import hashlib
import logging
import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import psycopg
import pymysql.cursors
import sqlalchemy as sa
from pymysql.constants import FIELD_TYPE
from pymysql.converters import convert_datetime
from sqlalchemy.engine import Connection

from .. import faults, schema_ddl, verified_copy
from ..database import DatabaseSettings, connect, list_tables
from ..errors import ConfigError, StorageError, V8TargetConflict, V8TargetNotReady, VersionError
from ..project import Project
from ..redact import redact
from ..storage import StorageLocation
from . import sqlitems
from .mapping import SYSTEM_TARGETS, CollectionPlan, IdMap, RowConverter, SchemaPlan
from .mapping import legacy_comments as mapping_legacy
from .source import V8Source, _q
from .target_writer import ItemStats, TargetInfo, TargetWriter
from .writers import BATCH_ROWS, ENGINES_TEXT, WRITERS, Writer, knex_foreign_keys, writer_for

log = logging.getLogger("directus_ops.v8.target")

T = TypeVar("T")
SUPPORTED_MAJORS = (10, 11, 12)  # the lines the v8 migration is tested into (tests/harness.py RELEASES)
POLICY_TABLES = {"directus_policies", "directus_access"}  # Directus 11's access model, 12's too


def major(version: str) -> int | None:
    """The major line of a Directus version ("12.4.0" -> 12); None when it is not a version."""
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else None


def check_supported(version: str, where: str) -> int:
    """The target's major line, when the v8 migration writes into it; else a VersionError naming the lines."""
    line = major(version)
    if line not in SUPPORTED_MAJORS:
        lines = ", ".join(f"{m}.x" for m in SUPPORTED_MAJORS)
        raise VersionError(f"{where} runs Directus {version or 'of an unknown version'}; the v8 migration writes "
                           f"into Directus {lines} targets: use a project on one of those")
    return line


def inspect_target(project: Project, collections: list[str], ids_probe: list[tuple[str, str]] | None = None) -> TargetInfo:
    """Check the target; ``ids_probe``: (system table, uuid) pairs only a previous run of this migration wrote."""
    settings = project.database
    where = settings.describe()
    if settings.engine not in WRITERS:
        raise ConfigError(f"{where}: the v8 migration writes into {ENGINES_TEXT} targets only; use a Directus "
                          "project on one of those (DB_CLIENT=pg, mysql or sqlite3)")
    version = project.directus_version
    if version is None and project.compose is not None:
        raise V8TargetNotReady(f"the Directus version of service '{project.compose.service}' ({project.compose.image()}) "
                               "cannot be read; use an image tagged directus/directus:<version>")
    if version is None:
        raise V8TargetNotReady(f"no Directus is installed in {project.root} (node_modules/directus is missing); "
                             "install Directus (10.x, 11.x or 12.x) there and run `npx directus bootstrap` first")
    check_supported(version, "the target")
    with connect(settings) as conn:
        tables = set(list_tables(conn))
        needed = {"directus_migrations", "directus_users", "directus_roles", "directus_collections",
                  "directus_fields", "directus_relations", "directus_files", "directus_folders", "directus_permissions"}
        migrations = int(conn.execute(sa.text("SELECT count(*) FROM directus_migrations")).scalar() or 0) \
            if "directus_migrations" in tables else 0
        if not needed <= tables or migrations == 0:
            raise V8TargetNotReady(f"{where} is not a bootstrapped Directus database (no applied directus_migrations); "
                                 f"run `npx directus bootstrap` in {project.root} first")
        policies = _check_access_model(version, tables, where, project.root)
        public_policy = _public_policy_v11(conn, where, project.root) if policies else None
        admin = _admin_role_v11(conn) if policies else conn.execute(sa.text(
            "SELECT id FROM directus_roles WHERE admin_access ORDER BY name, id LIMIT 1")).scalar()
        if admin is None:
            raise V8TargetNotReady(f"{where} has no role with admin access; run `npx directus bootstrap` in "
                                 f"{project.root} (it creates the Administrator role)")
        users = {str(email).lower(): str(uid) for uid, email in
                 conn.execute(sa.text("SELECT id, email FROM directus_users WHERE email IS NOT NULL"))}
        existing = sorted(c for c in collections if c in tables)
        resuming = False
        if existing:
            uuid = writer_for(settings.engine).uuid_param("id")
            resuming = any(conn.execute(sa.text(f"SELECT 1 FROM {table} WHERE id = {uuid}"),
                                        {"id": value}).first() is not None for table, value in ids_probe or [])
            if not resuming:
                shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
                raise V8TargetConflict(f"{where} already has {len(existing)} collections named like v8 ones "
                                     f"({shown}), not from this migration; migrate into a fresh Directus project or "
                                     "leave them out with --skip-collections")
    if not project.storage:
        raise ConfigError(f"{project.config_path} has no STORAGE_LOCATIONS; add one (e.g. local) for the files")
    return TargetInfo(where, version, migrations, str(admin), users, project.storage[0].name, resuming, existing,
                      policies=policies, public_policy=public_policy)


def target_license(project: Project) -> Any:
    """The target's Directus 12 license and usage (``entitlements.License``); None before 12 (no licensing)."""
    from . import entitlements

    with connect(project.database) as conn:
        return entitlements.from_database(project, conn)


def _check_access_model(version: str, tables: set[str], where: str, root: Any) -> bool:
    """Whether the target database has Directus 11's policies; its schema must match the installed package."""
    policies = POLICY_TABLES <= tables
    line = major(version) or 0
    if line >= 11 and not policies:
        raise V8TargetNotReady(f"{where} has no directus_policies/directus_access although Directus {version} is "
                             f"installed: its migrations are not applied; run `npx directus database migrate:latest` "
                             f"in {root} first")
    if line < 11 and policies:
        raise VersionError(f"{where} has Directus 11's directus_policies but Directus {version} is installed in "
                           f"{root}; install the Directus version the database was migrated to")
    return policies


# -- Directus 11.x: admin access and public access live on policies, linked to roles through directus_access --
def _admin_role_v11(conn: Connection) -> Any:
    """The role an admin policy is attached to (11.x roles have no admin_access of their own)."""
    return conn.execute(sa.text(
        "SELECT r.id FROM directus_roles r JOIN directus_access a ON a.role = r.id "
        "JOIN directus_policies p ON p.id = a.policy WHERE p.admin_access ORDER BY r.name, r.id LIMIT 1")).scalar()


def _public_policy_v11(conn: Connection, where: str, root: Any) -> str:
    """The policy of the public access row (no role, no user): v8's Public permissions go there, never to a
    second public policy."""
    user = conn.dialect.identifier_preparer.quote("user")  # a reserved word: "user" or `user`
    policy = conn.execute(sa.text(
        f"SELECT policy FROM directus_access WHERE role IS NULL AND {user} IS NULL ORDER BY sort, id LIMIT 1")).scalar()
    if policy is None:
        raise V8TargetNotReady(f"{where} has no public policy (a directus_access row without role and user); run "
                             f"`npx directus bootstrap` in {root} on a fresh database (Directus 11 creates it)")
    return str(policy)


# -- helpers ---------------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _target(settings: DatabaseSettings) -> Iterator[tuple[Connection, Writer]]:
    """A connection to the target with its engine's session settings, and the engine's writer."""
    writer = writer_for(settings.engine)
    with connect(settings) as conn:
        writer.session(conn)
        yield conn, writer


def _reflect(conn: Connection, name: str) -> sa.Table:
    table = sa.Table(name, sa.MetaData(), autoload_with=conn)
    for column in table.c:
        if isinstance(column.type, sa.JSON):
            column.type.none_as_null = True  # None is SQL NULL, not the JSON text 'null'
    return table


def _insert_missing(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
    """Insert rows, skipping those whose keys are there already (the re-run no-op); how many were new."""
    return writer_for(conn.dialect.name).insert_missing(conn, table, rows)


def write_system_rows(settings: DatabaseSettings, table: str, rows: list[dict[str, Any]]) -> int:
    """Roles, users, folders or files rows (parents first for folders); returns how many were new."""
    with _target(settings) as (conn, writer), conn.begin():
        return writer.insert_missing(conn, _reflect(conn, table), rows)


# -- schema ------------------------------------------------------------------------------------------------------
def create_schema(settings: DatabaseSettings, schema: SchemaPlan) -> dict[str, int]:
    """Tables (without foreign keys: those come after the rows; SQLite's come with their tables), then the Directus
    metadata rows that are missing."""
    counts = {"tables": 0, "collections": 0, "fields": 0, "relations": 0, "foreign_keys": 0}
    with _target(settings) as (conn, writer), conn.begin():
        present = set(list_tables(conn))
        for plan in schema.collections:
            if plan.name not in present:
                writer.create_table(conn, plan, schema)
                counts["tables"] += 1
                counts["foreign_keys"] += len(plan.foreign_keys) if writer.keys_with_tables else 0
                faults.checkpoint("v8-table-created")
        counts["collections"] = _insert_missing(conn, _reflect(conn, "directus_collections"),
                                                [p.collection_row for p in schema.collections])
        fields = _reflect(conn, "directus_fields")
        have = {(c, f) for c, f in conn.execute(sa.select(fields.c.collection, fields.c.field))}
        missing = [r for p in schema.collections for r in writer.field_rows(p)
                   if (r["collection"], r["field"]) not in have]
        counts["fields"] = _insert_missing(conn, fields, missing)
        relations = _reflect(conn, "directus_relations")
        have = {(c, f) for c, f in conn.execute(sa.select(relations.c.many_collection, relations.c.many_field))}
        missing = [r for r in schema.relation_rows if (r["many_collection"], r["many_field"]) not in have]
        counts["relations"] = _insert_missing(conn, relations, missing)
    return counts


def add_foreign_keys(settings: DatabaseSettings, schema: SchemaPlan) -> int:
    """Real foreign keys (ON DELETE SET NULL, as Directus's nullify; named as knex does), after the rows are in.
    None on SQLite, which cannot add one to a table: there they came with the tables (``create_schema``)."""
    added = 0
    with _target(settings) as (conn, writer), conn.begin():
        if writer.keys_with_tables:
            return 0
        inspector = sa.inspect(conn)
        quote = conn.dialect.identifier_preparer.quote
        for plan in schema.collections:
            have = {tuple(fk["constrained_columns"]) for fk in inspector.get_foreign_keys(plan.name)}
            keys = [key for key in knex_foreign_keys(plan, 63) if (key.columns[0],) not in have]
            clauses = [schema_ddl.fk_clause(key, quote) for key in keys]
            if clauses:  # one ALTER per table: MySQL rebuilds the table for each one (to check the rows)
                conn.exec_driver_sql(f"ALTER TABLE {quote(plan.name)} {', '.join(f'ADD {c}' for c in clauses)}")
                added += len(clauses)
    return added


# -- items -------------------------------------------------------------------------------------------------------
def _stream(conn: Connection, table: str, columns: list[str], key: str | None) -> Iterator[Sequence[tuple[Any, ...]]]:
    """Batches of rows as tuples in ``columns`` order, from an unbuffered (server-side) pymysql cursor."""
    sql = f"SELECT {', '.join(_q(c) for c in columns)} FROM {_q(table)}" + (f" ORDER BY {_q(key)}" if key else "")
    dbapi = conn.connection.dbapi_connection
    cursor = dbapi.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
    decoders = dbapi.decoders  # type: ignore[union-attr]
    dbapi.decoders = {**decoders, FIELD_TYPE.DATETIME: _datetime, FIELD_TYPE.TIMESTAMP: _datetime}  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(BATCH_ROWS):
            yield batch
    finally:
        cursor.close()
        dbapi.decoders = decoders  # type: ignore[union-attr]


def _datetime(text: str | bytes) -> Any:
    """pymysql's DATETIME decoder with the C parser for the one form the server sends (a regex per value
    otherwise); anything else (zero dates) goes to pymysql's own, which returns them as they are."""
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("ascii")
    if len(text) in (19, 26) and text[10] == " ":
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            pass
    return convert_datetime(text)


def _ahead(batches: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Read and convert the next batches in a thread while the caller writes this one: the two database servers
    and the conversion then work at the same time. At most ``depth`` batches wait (memory stays bounded)."""
    waiting: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                waiting.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not put(("batch", batch)):
                    return
            put(("done", None))
        except BaseException as exc:  # handed to the caller, raised there
            put(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close:
                close()

    worker = threading.Thread(target=produce, name="v8-items-reader", daemon=True)
    worker.start()
    try:
        while True:
            kind, item = waiting.get()
            if kind == "done":
                return
            if kind == "error":
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def referenced_keys(v8: DatabaseSettings, schema: SchemaPlan,
                    plans: list[CollectionPlan] | None = None) -> dict[str, set[Any]]:
    """The primary keys of every user collection another one (of ``plans``: all by default) references (a reference
    to a missing key is dangling)."""
    targets = {c.references for p in (schema.collections if plans is None else plans) for c in p.columns
               if c.convert == "ref" and c.references not in SYSTEM_TARGETS}
    keys: dict[str, set[Any]] = {}
    with connect(v8) as conn:
        for name in sorted(t for t in targets if t):
            plan = schema.collection(name)
            if plan.rows is not None:
                keys[name] = {r[plan.primary_key or "id"] for r in plan.rows}
                continue
            key = plan.primary_key or "id"
            keys[name] = {r[0] for r in conn.execute(sa.text(f"SELECT {_q(key)} FROM {_q(name)}"))}
    return keys


def write_items(v8: DatabaseSettings, target: DatabaseSettings, schema: SchemaPlan, ids: IdMap,
                tz: ZoneInfo | timezone, unmapped: list[str], in_sql: bool = True) -> dict[str, ItemStats]:
    """Every collection's rows. Into PostgreSQL, converted by the servers (``sqlitems``) where that gives exactly
    the Python path's values; elsewhere (and with ``in_sql=False``) by ``RowConverter`` in Python."""
    stats: dict[str, ItemStats] = {}
    keys: dict[str, set[Any]] = {}  # the Python path's referenced keys, read when a collection needs them
    with connect(v8) as source, _target(target) as (conn, writer), contextlib.ExitStack() as more:
        zone: str | None | bool = False
        families: dict[str, str | None] = {}
        sessions = [conn]  # the SQL path's PostgreSQL sessions: batches alternate between them
        if in_sql and writer.engine == "postgresql":
            with conn.begin():
                zone = sqlitems.zone_of(tz, conn)
                if zone is not False:
                    families = sqlitems.setup(conn, source, ids, schema)
            if zone is not False and any(p.rows is None for p in schema.collections):
                second, _ = more.enter_context(_target(target))
                with second.begin():
                    sqlitems.setup(second, source, ids, schema)
                sessions.append(second)
        for plan in schema.collections:
            stat = stats[plan.name] = ItemStats()
            sql: sqlitems.SqlPlan | str = "not into PostgreSQL"
            if zone is not False:
                with conn.begin():
                    sql = sqlitems.sql_plan(plan, sqlitems.source_types(source, plan.name) if plan.rows is None
                                            else {}, sqlitems.target_types(conn, plan.name), families,
                                            zone or None)  # type: ignore[arg-type]
            if isinstance(sql, sqlitems.SqlPlan):
                stat.path = "sql"
                _items_in_sql(source, sessions, sql, stat, unmapped)
            else:
                if zone is not False:
                    log.info("v8 items: %s converted in Python (%s)", plan.name, sql)
                if any(c.convert == "ref" and c.references not in SYSTEM_TARGETS and c.references not in keys
                       for c in plan.columns):
                    keys.update(referenced_keys(v8, schema, [plan]))
                _items_in_python(source, conn, writer, plan, ids, keys, tz, stat, unmapped)
            log.info("v8 items: %s read %d, written %d", plan.name, stat.read, stat.written)
    return stats


def _items_in_python(source: Connection, conn: Connection, writer: Writer, plan: Any, ids: IdMap,
                     keys: dict[str, set[Any]], tz: ZoneInfo | timezone, stat: ItemStats, unmapped: list[str]) -> None:
    names = [c.name for c in plan.columns]
    converter = RowConverter(plan, ids, keys, tz, stat.dangling, unmapped)
    batches = [[tuple(r.get(n) for n in names) for r in plan.rows]] if plan.rows is not None else \
        _stream(source, plan.name, names, plan.primary_key)
    with conn.begin():
        writer.start_items(conn, plan)
    for rows, references in _ahead(converter.rows(batch) for batch in batches):
        stat.read += len(rows)
        stat.references += references
        with conn.begin():
            stat.written += writer.write_items(conn, plan, rows)
        faults.checkpoint("v8-items-batch")
    with conn.begin():
        writer.finish_items(conn, plan)


def _items_in_sql(source: Connection, sessions: list[Connection], sql: sqlitems.SqlPlan, stat: ItemStats,
                  unmapped: list[str]) -> None:
    """Batches alternate between the PostgreSQL sessions (the conversion is most of the work: two server
    processes use both cores), one batch per session at a time; results are taken in batch order, so the
    report's order is the rows' order. Each batch commits on its own: a stopped run leaves whole batches."""
    for conn in sessions:
        with conn.begin():
            sqlitems.start(conn, sql)
    in_flight: collections.deque[concurrent.futures.Future[tuple[sqlitems.BatchResult, int]]] = collections.deque()

    def take(future: concurrent.futures.Future[tuple[sqlitems.BatchResult, int]]) -> None:
        result, count = future.result()
        stat.read += count
        stat.written += result.written
        stat.references += result.references
        stat.dangling += result.dangling
        unmapped.extend(result.unmapped)
        faults.checkpoint("v8-items-batch")

    with concurrent.futures.ThreadPoolExecutor(len(sessions), thread_name_prefix="v8-items-writer") as pool:
        try:
            for number, (lines, count) in enumerate(_ahead(sqlitems.stream_lines(source, sql, sqlitems.BATCH_ROWS))):
                while len(in_flight) >= len(sessions):  # the next session's previous batch is done first
                    take(in_flight.popleft())
                in_flight.append(pool.submit(_sql_batch, sessions[number % len(sessions)], sql, lines, count))
            while in_flight:
                take(in_flight.popleft())
        finally:
            for future in in_flight:
                future.cancel()
            concurrent.futures.wait(in_flight)
    for conn in sessions:
        with conn.begin():
            sqlitems.finish(conn)


def _sql_batch(conn: Connection, sql: sqlitems.SqlPlan, lines: bytes, count: int) -> tuple[sqlitems.BatchResult, int]:
    try:
        with conn.begin():
            return sqlitems.write_batch(conn, sql, lines), count
    except psycopg.errors.DataError:
        if not (sql.trust_json and sql.json_columns):
            raise
        log.info("v8 items: %s has JSON MariaDB accepts and PostgreSQL does not; checking each value",
                 sql.plan.name)
        sql.trust_json = False  # the batch was rolled back: again, every JSON value checked by PostgreSQL
        with conn.begin():
            return sqlitems.write_batch(conn, sql, lines), count


def reset_sequences(settings: DatabaseSettings, schema: SchemaPlan) -> int:
    """Each auto-increment key continues after the highest id written (a new item gets the next id)."""
    reset = 0
    with _target(settings) as (conn, writer), conn.begin():
        for plan in schema.collections:
            key = plan.primary_key
            if key and plan.column(key).auto_increment and writer.reset_counter(conn, plan, key):
                reset += 1
    return reset


def write_permissions(settings: DatabaseSettings, rows: list[dict[str, Any]]) -> int:
    """Rows keyed by ``role`` (10.x) or ``policy`` (11.x, whose permissions have no role): the missing ones."""
    with _target(settings) as (conn, _), conn.begin():
        table = _reflect(conn, "directus_permissions")
        owner = "policy" if "policy" in table.c else "role"
        have = {(str(r) if r else None, c, a) for r, c, a in
                conn.execute(sa.select(table.c[owner], table.c.collection, table.c.action))}
        missing = [r for r in rows if (r[owner], r["collection"], r["action"]) not in have]
        return _insert_missing(conn, table, missing)


def write_comments(settings: DatabaseSettings, rows: list[dict[str, Any]]) -> tuple[int, str]:
    """``mapping.map_comments``'s rows into the table the target keeps comments in: ``directus_comments`` where
    it has one (11.1.2+, as Directus's own migration moves them), else ``directus_activity`` rows with action
    ``comment`` (10.x; no key of their own: one already there with the same collection, item and text counts as
    written). The missing ones; how many, and where."""
    with _target(settings) as (conn, writer), conn.begin():
        if "directus_comments" in set(list_tables(conn)):
            return writer.insert_missing(conn, _reflect(conn, "directus_comments"), rows), "directus_comments"
        activity = _reflect(conn, "directus_activity")
        if "comment" not in activity.c:  # neither form (an 11.x before 11.1.2 keeps no comments)
            return 0, "none"
        have = collections.Counter((c, str(i), t) for c, i, t in conn.execute(
            sa.select(activity.c.collection, activity.c.item, activity.c.comment).where(activity.c.action == "comment")))
        missing = []
        for row in mapping_legacy(rows):
            key = (row["collection"], str(row["item"]), row["comment"])
            if have[key]:
                have[key] -= 1
            else:
                missing.append(row)
        return writer.insert_missing(conn, activity, missing), "directus_activity"


# -- files' bytes ------------------------------------------------------------------------------------------------
@dataclass
class FileCopy:
    copied: int = 0
    skipped: int = 0  # already there with the right bytes (a re-run)
    bytes: int = 0
    checksum_mismatch: list[str] = field(default_factory=list)  # v8 checksum (md5) did not match the original


def _md5(location: StorageLocation, key: str, fs: Any) -> tuple[str, int]:
    digest, size = hashlib.md5(), 0
    with location.open(key, fs=fs) as handle:
        while chunk := handle.read(1024 * 1024):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def copy_files(source: V8Source, originals: StorageLocation, target: StorageLocation,
               pairs: list[tuple[str, str]]) -> FileCopy:
    """Copy ``originals/<v8 filename_disk>`` to ``target/<v9 filename_disk>`` for each (v8, v9) pair; every copy
    is re-read and compared with the original's md5 (and v8's recorded checksum)."""
    result = FileCopy()
    src_fs, dst_fs = originals.filesystem(), target.filesystem()
    checksums = {f.filename_disk: f.checksum for f in source.files}
    for v8_name, v9_name in pairs:
        try:
            want, size = _md5(originals, v8_name, src_fs)
            if checksums.get(v8_name) and checksums[v8_name] != want:
                result.checksum_mismatch.append(v8_name)
            if dst_fs.exists(target.path_of(v9_name)) and _md5(target, v9_name, dst_fs) == (want, size):
                result.skipped += 1
                continue
            with originals.open(v8_name, fs=src_fs) as handle:
                verified_copy.write_committed(handle, target.open_uncommitted(v9_name, fs=dst_fs), algorithm="md5")
            if _md5(target, v9_name, dst_fs) != (want, size):
                raise StorageError(f"the copy of {v8_name} in {target.describe()} does not match the original; "
                                   "check the storage and run the migration again")
            result.copied += 1
            result.bytes += size
            faults.checkpoint("v8-file-copied")
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"cannot copy {v8_name} to {target.describe()}: {redact(str(exc)) or type(exc).__name__}; "
                               "check both locations and run the migration again (it resumes)") from None
    return result


# -- the target writer of database mode ---------------------------------------------------------------------------
def hash_password(project: Project, password: str) -> str:
    """An argon2 hash of ``password``, made by the target's own ``argon2`` package (what Directus verifies with):
    in its project directory, or for a Docker Compose project in its Directus image."""
    from .. import node as node_runtime
    from .. import process
    from ..redact import register_secret

    register_secret(password)
    project_dir = str(project.root)
    env = {"DIRECTUS_OPS_TEMP_PASSWORD": password}
    if project.compose is not None:
        # argon2 beside @directus/api, wherever the image's package manager put it.
        script = ("const {createRequire} = require('module'); const fs = require('fs');"
                  "const api = ['node_modules/@directus/api', 'node_modules/directus/node_modules/@directus/api']"
                  ".map(p => '/directus/' + p + '/package.json').find(p => fs.existsSync(p)) || '/directus/package.json';"
                  "createRequire(api)('argon2').hash(process.env.DIRECTUS_OPS_TEMP_PASSWORD).then(h => process.stdout.write(h))")
        argv = project.compose.node_argv("-e", script, env=list(env))
    else:
        script = "require('argon2').hash(process.env.DIRECTUS_OPS_TEMP_PASSWORD).then(h => process.stdout.write(h))"
        argv = [node_runtime.for_project(project_dir).node, "-e", script]
    output = process.run(argv, cwd=project_dir, env=env, timeout=120, quiet=True)
    hashed = output.strip().splitlines()[-1] if output.strip() else ""
    if not hashed.startswith("$argon2"):
        raise ConfigError(f"cannot hash the temporary password with {project_dir}/node_modules/argon2; check that "
                          "Directus is installed there")
    return hashed


class DatabaseTarget(TargetWriter):
    """The target's database and first storage location (database mode), through the functions above."""

    def __init__(self, project: Project) -> None:
        self.project = project
        self.settings = project.database

    def inspect(self, collections: list[str], ids_probe: list[tuple[str, str]]) -> TargetInfo:
        return inspect_target(self.project, collections, ids_probe)

    def license(self) -> Any:
        return target_license(self.project)

    def user_password(self, password: str | None) -> str | None:
        return hash_password(self.project, password) if password else None

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        return write_system_rows(self.settings, table, rows)

    def write_files(self, source: V8Source, ids: IdMap, rows: list[dict[str, Any]], originals: StorageLocation,
                    storage: str) -> dict[str, Any]:
        """The rows, then each file's bytes copied under its new ``filename_disk``."""
        written = write_system_rows(self.settings, "directus_files", rows)
        pairs = [(f.filename_disk, row["filename_disk"]) for f, row in zip(source.files, rows)]
        location = self.project.location(storage)
        copy = copy_files(source, originals, location, pairs)
        if self.project.compose is not None and location.driver == "local":
            self.project.compose.hand_over([Path(location.root)])
        return {"rows": written, "copied": copy.copied, "already_there": copy.skipped, "bytes": copy.bytes,
                "checksum_mismatch": copy.checksum_mismatch}

    def create_schema(self, schema: SchemaPlan) -> dict[str, int]:
        return create_schema(self.settings, schema)

    def write_items(self, v8: DatabaseSettings, schema: SchemaPlan, ids: IdMap, tz: ZoneInfo | timezone,
                    unmapped: list[str]) -> dict[str, ItemStats]:
        return write_items(v8, self.settings, schema, ids, tz, unmapped)

    def after_items(self, schema: SchemaPlan) -> dict[str, int]:
        # After the rows: a cycle between collections is then only an order (SQLite's came with the tables).
        return {"foreign_keys": add_foreign_keys(self.settings, schema)}

    def write_permissions(self, rows: list[dict[str, Any]], owner: str) -> int:
        return write_permissions(self.settings, rows)  # the owner column as the target's table has it

    def write_comments(self, rows: list[dict[str, Any]]) -> tuple[int, str]:
        return write_comments(self.settings, rows)

    def finish(self, schema: SchemaPlan) -> dict[str, Any]:
        return {"sequences": reset_sequences(self.settings, schema)}


__all__ = ["DatabaseTarget", "FileCopy", "ItemStats", "TargetInfo",
           "add_foreign_keys", "check_supported", "copy_files", "create_schema", "hash_password", "inspect_target",
           "major", "referenced_keys",
           "reset_sequences", "target_license", "write_comments", "write_items", "write_permissions",
           "write_system_rows"]

"""Copy a Directus database to another engine (PostgreSQL, MySQL/MariaDB, SQLite).

How the target's schema is made:

- The ``directus_*`` system tables are created by **Directus itself** on the target (``directus database install``
  and ``migrate:latest`` from the project's own install, with a private config whose ``MIGRATIONS_PATH`` is an
  empty folder), then emptied of what those commands seeded. Their DDL is then exactly what a fresh Directus of
  that version has on that engine: knex's per-engine choices (timestamptz vs timestamp, char(36) uuids,
  MariaDB's longtext json, unsigned ints, index and constraint names) are not re-derived here. Without a
  Directus install (``directus_dir=None``) they go through the mapping, like user tables.
- User tables go through the **Directus-type mapping** of ``schema_ddl``: each source column read as the
  Directus type Directus would give it, and created as what knex emits for that type on the target engine.

Rows are streamed in batches from a server-side cursor (never a whole table in memory) and converted by the
*source* server where a conversion is needed (each engine has SQL for it), so Python only passes values along:
PostgreSQL targets are loaded with ``COPY … FROM STDIN`` (from MySQL/MariaDB, the source server even writes
the CSV lines COPY reads), the others with batched multi-row inserts. Two tables are copied at once (one at a
time into SQLite, which has one writer), biggest first, and the user tables' rows while Directus installs its
tables. Foreign keys and secondary indexes are
created after the rows are in; PostgreSQL sequences are set to each table's highest id (MySQL's
AUTO_INCREMENT and SQLite's ``sqlite_sequence`` follow explicit ids by themselves). Each table is read in its
own transaction: stop writes to the source first (the move's cutover does) for one consistent copy.

Values kept exactly: decimals, timestamps (stored by Directus on SQLite as epoch milliseconds, written back the
same way; on MySQL/MariaDB ``timestamp`` columns hold whole seconds, so a copy *to* MySQL keeps seconds),
booleans, JSON text, uuids, binary, unicode (utf8mb4).

Whether two databases hold the same content: ``content_digest``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import secrets
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from . import database, workdir
from .config import write_private_text
from .database import DatabaseSettings, connect, open_engine, streaming_cursor
from .errors import ConfigError, DatabaseError, TargetNotEmpty, VersionError
from .redact import redact
from .schema_ddl import Column, Table, create_table_sql, fk_clause, index_sql, reflect

if TYPE_CHECKING:
    import psycopg

log = logging.getLogger("directus_ops.transfer")

SUPPORTED_ENGINES = ("postgresql", "mysql", "sqlite")
ENGINE_NAMES = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB", "sqlite": "SQLite"}
DEFAULT_WORKERS = 2  # tables copied at once: this tool's machines have 2 cores, shared with both servers


# -- what is reported ------------------------------------------------------------------------------------------
@dataclass
class TableCopy:
    table: str
    rows: int
    seconds: float


@dataclass
class TransferReport:
    source: str  # describe() of each side: no secrets
    target: str
    system_tables_created_by: str  # "directus" (database install + migrate:latest) or "mapping"
    tables: list[TableCopy] = field(default_factory=list)
    foreign_keys: int = 0
    indexes: int = 0
    sequences_reset: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows": self.rows}


# -- reading values the way the target takes them ----------------------------------------------------------------
def _select_expr(source: str, target: str, col: Column, q: str) -> str:
    """SQL that makes the source server hand over a value the target driver takes as is."""
    t = col.type
    if source == "postgresql":
        if t in ("json", "uuid") or (t == "time" and target != "mysql"):
            return f"{q}::text"
        if t == "decimal":
            return f"{q}::text" if target == "sqlite" else q
        if t in ("timestamp", "dateTime", "date") and target == "sqlite":
            # Directus on SQLite: epoch milliseconds, truncated (a cast to bigint would round …:00.9996 up a second)
            return f"floor(extract(epoch from {q}) * 1000)::bigint"
        # MySQL's timestamp/datetime/time columns hold whole seconds: MySQL (>= 5.6.4) rounds a fraction on
        # insert and MariaDB truncates it, so the source truncates: both store the same second.
        if t == "timestamp" and target == "mysql":
            return f"date_trunc('second', {q} AT TIME ZONE 'UTC')"
        if t == "dateTime" and target == "mysql":
            return f"date_trunc('second', {q})"
        if t == "time" and target == "mysql":
            return f"to_char({q}, 'HH24:MI:SS')"
        if t == "boolean" and target == "sqlite":
            return f"{q}::int"
        return q
    if source == "mysql":  # the session runs in UTC
        if t in ("timestamp", "dateTime", "date"):
            # MySQL's zero dates ('0000-00-00 …', allowed without NO_ZERO_DATE) are what Directus reads as null
            if target == "sqlite":
                return f"IF(YEAR({q}) = 0, NULL, TIMESTAMPDIFF(MICROSECOND, '1970-01-01', {q}) DIV 1000)"
            if target == "postgresql":
                return f"IF(YEAR({q}) = 0, NULL, CAST({q} AS CHAR))"  # text PostgreSQL parses: no Python datetimes
            return q
        if t in ("time", "decimal") and target != "mysql":
            return f"CAST({q} AS CHAR)"
        return q
    # SQLite: Directus stores date/dateTime/timestamp as epoch ms; CURRENT_TIMESTAMP defaults as text
    if t in ("timestamp", "dateTime") and target == "mysql":  # whole seconds, truncated (see above)
        return (f"CASE WHEN typeof({q}) IN ('integer', 'real') THEN strftime('%Y-%m-%d %H:%M:%S', {q} / 1000, "
                f"'unixepoch') ELSE strftime('%Y-%m-%d %H:%M:%S', {q}) END")
    if t == "time" and target == "mysql":
        return f"substr({q}, 1, 8)"
    if t in ("timestamp", "dateTime") and target != "sqlite":
        return (f"CASE WHEN typeof({q}) IN ('integer', 'real') THEN strftime('%Y-%m-%d %H:%M:%S', {q} / 1000, "
                f"'unixepoch') || printf('.%03d', {q} % 1000) ELSE strftime('%Y-%m-%d %H:%M:%f', {q}) END")
    if t == "date" and target != "sqlite":
        return f"CASE WHEN typeof({q}) IN ('integer', 'real') THEN date({q} / 1000, 'unixepoch') ELSE date({q}) END"
    return q


# -- checks ------------------------------------------------------------------------------------------------------
def _check_engine(settings: DatabaseSettings, role: str) -> None:
    if settings.engine not in SUPPORTED_ENGINES:
        raise ConfigError(
            f"the {role} database engine '{settings.engine}' is not supported for a cross-engine copy; "
            f"supported: {', '.join(ENGINE_NAMES[e] for e in SUPPORTED_ENGINES)}")


def _same_database(source: DatabaseSettings, target: DatabaseSettings) -> bool:
    return database.same_database(source, target)


def check_transfer(source: DatabaseSettings, target: DatabaseSettings, directus_dir: Path | None = None) -> None:
    """Raise before anything is changed: ConfigError for an unsupported engine or pair, DatabaseUnreachable /
    DatabaseError if either side cannot be reached, TargetNotEmpty if the target holds tables; with
    ``directus_dir``, VersionError if its Directus has migrations the source database lacks."""
    _check_engine(source, "source")
    _check_engine(target, "target")
    if _same_database(source, target):
        raise ConfigError(f"source and target are the same database ({source.describe()}); name another target")
    with connect(source) as conn:
        if not database.list_tables(conn):
            raise DatabaseError(f"{source.describe()} has no tables; check the source settings")
        applied = set(database.applied_migrations(conn))
    if directus_dir is not None:
        from .releases import installed_migrations

        missing = sorted({m.key for m in installed_migrations(directus_dir)} - applied)
        if missing:
            raise VersionError(
                f"the Directus installed in {directus_dir} has {len(missing)} migrations the source database lacks "
                f"(first {missing[0]}); run `directus database migrate:latest` on the source first, or copy with "
                "the install that wrote it")
    if target.engine == "sqlite":
        assert target.filename is not None
        parent = target.filename.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise DatabaseError(f"cannot create {target.describe()}: {parent} is not writable; choose another path")
    tables = database.table_count(target)
    if tables:
        raise TargetNotEmpty(f"{target.describe()} is not empty ({tables} tables); copy into a new or empty database")


# -- the copy ----------------------------------------------------------------------------------------------------
def copy_database(source: DatabaseSettings, target: DatabaseSettings, *, batch_rows: int = 10_000,
                  on_progress: Callable[[str, int], None] | None = None, directus_dir: Path | None = None,
                  workers: int = DEFAULT_WORKERS) -> TransferReport:
    """Copy every table of ``source`` into the empty ``target`` (created if missing).

    ``directus_dir``: a Directus project (its ``node_modules``) of the version that wrote the source; its CLI
    creates the system tables on the target. ``on_progress(table, rows_so_far)`` is called after each batch,
    from the copying threads. On failure the target is emptied again (it was empty before).
    """
    check_transfer(source, target, directus_dir)
    started = time.monotonic()
    with connect(source) as conn:
        tables = reflect(conn, exclude=source.exclude_tables)
        source_migrations = set(database.applied_migrations(conn))
    created_database = database.ensure_database(target)
    if target.engine == "sqlite" and not target.filename.exists():  # type: ignore[union-attr]
        sqlite3.connect(target.filename).close()  # type: ignore[arg-type]
        created_database = True
    report = TransferReport(source=source.describe(), target=target.describe(),
                            system_tables_created_by="directus" if directus_dir else "mapping")
    try:
        # Directus installs its tables (node, mostly waiting on its own round trips) while the user tables'
        # rows are copied: they are independent until the foreign keys at the end.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="transfer-install") as installer:
            installing = installer.submit(_install_system_tables, target, directus_dir, tables,
                                          source_migrations) if directus_dir is not None else None
            if installing is not None and target.engine == "sqlite":
                installing.result()  # SQLite has one writer at a time: Directus would find the file locked
            quote = _quoter(target)
            same_engine = source.engine == target.engine
            to_create = [t for t in tables if installing is None or not database.is_system_table(t.name)]
            _run(target, [create_table_sql(t, target.engine, quote, same_engine) for t in _creation_order(to_create)])
            _copy_rows(source, target, to_create, batch_rows, on_progress, workers, report)
            log.info("%d rows of %d tables copied (%.1f s)", report.rows, len(to_create), time.monotonic() - started)
            system_fks: list[str] = []
            if installing is not None:
                by_directus = installing.result()
                log.info("system tables created by Directus on %s (%.1f s)", target.describe(),
                         time.monotonic() - started)
                system_fks = _detach_foreign_keys(target, sorted(by_directus))
                _copy_rows(source, target, [t for t in tables if t.name in by_directus], batch_rows, on_progress,
                           workers, report)
                log.info("%d rows copied in all (%.1f s)", report.rows, time.monotonic() - started)
        statements = []
        for table in to_create:
            statements += [index_sql(table, index, target.engine, quote) for index in table.indexes]
            report.indexes += len(table.indexes)
            if target.engine != "sqlite":
                statements += [f"ALTER TABLE {quote(table.name)} ADD {fk_clause(fk, quote)}" for fk in table.foreign_keys]
            report.foreign_keys += len(table.foreign_keys)
        statements += system_fks
        report.foreign_keys += len(system_fks)
        _run(target, statements)
        log.info("%d indexes and %d foreign keys created (%.1f s)", report.indexes, report.foreign_keys,
                 time.monotonic() - started)
        report.sequences_reset = _reset_sequences(target, tables)
    except BaseException:
        with contextlib.suppress(Exception):
            if created_database:
                database.drop_database(target)
            else:
                database.clear_database(target)
        raise
    report.seconds = round(time.monotonic() - started, 3)
    return report


def _quoter(settings: DatabaseSettings) -> Callable[[str], str]:
    engine = open_engine(settings)
    preparer = engine.dialect.identifier_preparer
    engine.dispose()
    return preparer.quote


def _run(settings: DatabaseSettings, statements: list[str]) -> None:
    if not statements:
        return
    with connect(settings) as conn:
        try:
            for statement in statements:
                conn.exec_driver_sql(statement)
            conn.commit()
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"{settings.describe()} refused the schema: {database._reason(exc)}") from None


def _creation_order(tables: list[Table]) -> list[Table]:
    """Referenced tables first (SQLite checks that a foreign key's table exists only when used, but keep it tidy)."""
    done: list[Table] = []
    names = {t.name for t in tables}
    pending = list(tables)
    while pending:
        progressed = False
        for table in list(pending):
            deps = {fk.table for fk in table.foreign_keys if fk.table in names and fk.table != table.name}
            if deps <= {t.name for t in done}:
                done.append(table)
                pending.remove(table)
                progressed = True
        if not progressed:  # a cycle: order does not matter for loading with checks off
            done += pending
            break
    return done


# -- system tables by Directus ------------------------------------------------------------------------------------
def _install_system_tables(target: DatabaseSettings, directus_dir: Path, tables: list[Table],
                           source_migrations: set[str]) -> set[str]:
    """Let Directus create its own tables on the target, then empty them; return their names."""
    from . import directus_cli

    with tempfile.TemporaryDirectory(prefix="transfer-", dir=workdir.run_dir()) as scratch:
        root = Path(scratch)
        (root / "migrations").mkdir()
        (root / "extensions").mkdir()
        config = root / "transfer.json"  # JSON: any password survives without dotenv quoting rules
        values = {**target.config_values(), "KEY": secrets.token_hex(16), "SECRET": secrets.token_hex(32),
                  "MIGRATIONS_PATH": str(root / "migrations"), "EXTENSIONS_PATH": str(root / "extensions"),
                  "TELEMETRY": "false", "LOG_LEVEL": "warn", "CACHE_ENABLED": "false"}
        if target.engine == "mysql":
            values.setdefault("DB_PASSWORD", "")  # Directus's mysql client insists on the variable
        write_private_text(config, json.dumps(values))  # it holds the target's password
        directus_cli.directus(directus_dir, "database", "install", config_path=config)
        directus_cli.migrate(directus_dir, "migrate:latest", config_path=config)
    with connect(target) as conn:  # the user tables are being loaded meanwhile: leave them be
        installed = reflect(conn, [t for t in sa.inspect(conn).get_table_names() if database.is_system_table(t)])
        applied = set(database.applied_migrations(conn))
    names = {t.name for t in installed}
    source_system = {t.name for t in tables if database.is_system_table(t.name)}
    if source_system != names or applied - source_migrations:
        missing = sorted((applied - source_migrations) | (source_system ^ names))
        raise DatabaseError(
            f"the Directus installed in {directus_dir} is not the version that wrote the source database "
            f"(differs in: {', '.join(missing[:5])}); run the copy with the project's own install")
    source_columns = {t.name: [c.name for c in t.columns] for t in tables}
    for table in installed:
        if sorted(c.name for c in table.columns) != sorted(source_columns[table.name]):
            raise DatabaseError(f"{table.name} has other columns in the source than Directus creates; "
                                "the source database is not at this Directus version's schema")
    _empty_tables(target, sorted(names))
    return names


def _empty_tables(settings: DatabaseSettings, tables: list[str]) -> None:
    with connect(settings) as conn:
        q = conn.dialect.identifier_preparer.quote
        if settings.engine == "postgresql":
            conn.exec_driver_sql(f"TRUNCATE {', '.join(q(t) for t in tables)} RESTART IDENTITY")
        elif settings.engine == "mysql":
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
            for table in tables:
                conn.exec_driver_sql(f"DELETE FROM {q(table)}")
            conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
        else:
            for table in tables:
                conn.exec_driver_sql(f"DELETE FROM {q(table)}")
            conn.exec_driver_sql("DELETE FROM sqlite_sequence")
        conn.commit()


def _detach_foreign_keys(settings: DatabaseSettings, tables: list[str]) -> list[str]:
    """PostgreSQL: drop the foreign keys Directus made on its tables (rows load in any order), returning the
    statements that put them back exactly. MySQL loads with FOREIGN_KEY_CHECKS=0, SQLite with foreign_keys off."""
    if settings.engine != "postgresql" or not tables:
        return []
    restore = []
    with connect(settings) as conn:
        q = conn.dialect.identifier_preparer.quote
        rows = conn.execute(sa.text(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "JOIN pg_namespace n ON n.oid = c.connamespace WHERE c.contype = 'f' AND n.nspname = current_schema() "
            "AND c.conrelid::regclass::text = ANY(:tables)"), {"tables": [q(t) for t in tables] + tables}).all()
        for table, name, definition in rows:
            conn.exec_driver_sql(f"ALTER TABLE {table} DROP CONSTRAINT {q(name)}")
            restore.append(f"ALTER TABLE {table} ADD CONSTRAINT {q(name)} {definition}")
        conn.commit()
    return restore


# -- rows ----------------------------------------------------------------------------------------------------------
def _copy_rows(source: DatabaseSettings, target: DatabaseSettings, tables: list[Table], batch_rows: int,
               on_progress: Callable[[str, int], None] | None, workers: int, report: TransferReport) -> None:
    with connect(source) as conn:
        sizes = _table_sizes(conn, [t.name for t in tables])
    order = sorted(tables, key=lambda t: -sizes.get(t.name, 0))  # biggest first: they bound the wall time
    source_engine, target_engine = open_engine(source), open_engine(target)
    lock = threading.Lock()
    failed = threading.Event()  # set by the first failing table: the others stop at their next batch
    if target.engine == "sqlite":
        # One writer: each table holds SQLite's write lock until its commit, so a second writer would wait
        # out the driver's busy timeout (5 s) and fail with "database is locked" on any table slower than that.
        workers = 1

    def progress(table: str, rows: int) -> None:
        if failed.is_set():
            raise _Stopped
        if on_progress:
            on_progress(table, rows)

    def one(table: Table) -> TableCopy:
        if failed.is_set():
            raise _Stopped
        started = time.monotonic()
        try:
            rows = _copy_table(source_engine, target_engine, source.engine, target.engine, table, batch_rows,
                               progress)
        except _Stopped:
            raise
        except _DRIVER_ERRORS as exc:
            if failed.is_set():  # an aborted COPY's own error, after another table failed: report that one
                raise _Stopped from None
            failed.set()
            raise DatabaseError(
                f"copying the rows of table {table.name} from {source.describe()} into {target.describe()} "
                f"failed: {_driver_reason(exc, table)}; the target was emptied again: change that table's "
                "offending value or column in the source and copy again") from None
        except BaseException:
            failed.set()
            raise
        copied = TableCopy(table.name, rows, round(time.monotonic() - started, 3))
        with lock:
            report.tables.append(copied)
        return copied

    try:
        with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="transfer") as pool:
            futures = [pool.submit(one, t) for t in order]
            wait(futures, return_when=FIRST_EXCEPTION)
            if failed.is_set():
                pool.shutdown(cancel_futures=True)  # the queued tables never start
        errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
        first = next((e for e in errors if not isinstance(e, _Stopped)), None)
        if first is not None:
            raise first
    finally:
        source_engine.dispose()
        target_engine.dispose()
    report.tables.sort(key=lambda t: t.table)


class _Stopped(Exception):
    """A table's copy given up because another table's failed."""


def _driver_errors() -> tuple[type[BaseException], ...]:
    # Rows go through the drivers' own cursors (raw_connection), so their errors are not SQLAlchemy's.
    import psycopg
    import pymysql

    return (sa.exc.DBAPIError, psycopg.Error, pymysql.err.Error, sqlite3.Error)


_DRIVER_ERRORS = _driver_errors()
_QUOTED = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"")


def _driver_reason(exc: BaseException, table: Table) -> str:
    """The driver's message on one line, without the row's values: quoted text that is not a name of the
    table (its own, a column's, an index's or constraint's) is left out."""
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        exc = exc.orig
    diag = getattr(exc, "diag", None)  # psycopg: the primary message; its detail and context hold values
    if diag is not None and getattr(diag, "message_primary", None):
        text = str(diag.message_primary)
    elif len(exc.args) >= 2 and isinstance(exc.args[0], int):  # pymysql: (code, message)
        text = f"{exc.args[1]} (MySQL error {exc.args[0]})"
    else:
        text = str(exc)
    text = (text.strip().splitlines() or [type(exc).__name__])[0]
    names = {table.name, "PRIMARY", *(c.name for c in table.columns), *(i.name for i in table.indexes),
             *(fk.name for fk in table.foreign_keys)}

    def keep_names(match: re.Match[str]) -> str:
        quoted = match.group(0)
        return quoted if quoted[1:-1] in names else f"{quoted[0]}…{quoted[0]}"

    text = _QUOTED.sub(keep_names, text)
    return redact(text[:300])


def _table_sizes(conn: Connection, tables: list[str]) -> dict[str, int]:
    dialect = conn.dialect.name
    if dialect == "postgresql":
        rows = conn.execute(sa.text("SELECT relname, pg_relation_size(oid) FROM pg_class WHERE relkind = 'r'"))
    elif dialect == "mysql":
        rows = conn.execute(sa.text("SELECT table_name, data_length FROM information_schema.tables "
                                    "WHERE table_schema = DATABASE()"))
    else:
        return {}
    return {name: int(size or 0) for name, size in rows if name in tables}


def _copy_table(source_engine: sa.Engine, target_engine: sa.Engine, source: str, target: str, table: Table,
                batch_rows: int, on_progress: Callable[[str, int], None] | None) -> int:
    src = source_engine.raw_connection()
    dst = target_engine.raw_connection()
    try:
        sq = source_engine.dialect.identifier_preparer.quote
        tq = target_engine.dialect.identifier_preparer.quote
        exprs = ", ".join(_select_expr(source, target, c, sq(c.name)) for c in table.columns)
        select = f"SELECT {exprs} FROM {sq(table.name)}"
        columns = ", ".join(tq(c.name) for c in table.columns)
        copied = 0
        if source == "mysql" and target == "postgresql":
            select = _mysql_copy_lines(table, sq)
        with contextlib.closing(streaming_cursor(src, source, batch_rows)) as cursor:
            cursor.execute(select)
            if source == "mysql" and target == "postgresql":
                # SQLAlchemy types a generic DBAPI cursor; this is psycopg's own (COPY, a context manager).
                with cast("psycopg.Cursor[Any]", dst.cursor()) as out:
                    out.execute("SET TIME ZONE 'UTC'")
                    # No WAL flush wait per table: the synchronous commit of the indexes and foreign keys after
                    # the rows flushes the WAL up to there, so every row is durable when copy_database returns.
                    out.execute("SET synchronous_commit = off")
                    with out.copy(f"COPY {tq(table.name)} ({columns}) FROM STDIN WITH (FORMAT csv)") as copy:
                        while rows := cursor.fetchmany(batch_rows):
                            copy.write(b"\n".join([row[0] for row in rows]) + b"\n")
                            copied += len(rows)
                            if on_progress:
                                on_progress(table.name, copied)
            elif target == "postgresql":
                with cast("psycopg.Cursor[Any]", dst.cursor()) as out:
                    out.execute("SET TIME ZONE 'UTC'")
                    # No WAL flush wait per table: the synchronous commit of the indexes and foreign keys after
                    # the rows flushes the WAL up to there, so every row is durable when copy_database returns.
                    out.execute("SET synchronous_commit = off")
                    with out.copy(f"COPY {tq(table.name)} ({columns}) FROM STDIN") as copy:
                        while rows := cursor.fetchmany(batch_rows):
                            for row in rows:
                                copy.write_row(row)
                            copied += len(rows)
                            if on_progress:
                                on_progress(table.name, copied)
            else:
                placeholders = ", ".join(["%s" if target == "mysql" else "?"] * len(table.columns))
                insert = f"INSERT INTO {tq(table.name)} ({columns}) VALUES ({placeholders})"
                target_cursor = dst.cursor()
                if target == "mysql":
                    target_cursor.execute("SET FOREIGN_KEY_CHECKS = 0")
                    target_cursor.execute("SET time_zone = '+00:00'")
                while rows := cursor.fetchmany(batch_rows):
                    target_cursor.executemany(insert, rows)
                    copied += len(rows)
                    if on_progress:
                        on_progress(table.name, copied)
                target_cursor.close()
        dst.commit()
        return copied
    finally:
        with contextlib.suppress(Exception):
            src.rollback()
        src.close()
        dst.close()


def _mysql_copy_lines(table: Table, quote: Callable[[str], str]) -> str:
    """MySQL -> PostgreSQL: MariaDB writes each row as one line of COPY's CSV format (NULL unquoted and empty,
    text quoted with doubled quotes), so Python reads one bytes value per row and hands batches of lines to
    COPY untouched."""
    fields = []
    for col in table.columns:
        q = quote(col.name)
        if col.type == "binary":
            value = f"CONCAT(CHAR(92 USING utf8mb4), 'x', HEX({q}))"  # bytea's hex input \\x…
        elif col.type in ("string", "text", "json", "csv"):
            value = f"CONCAT('\"', REPLACE({q}, '\"', '\"\"'), '\"')"
        else:  # numbers, dates, uuids, booleans: nothing to quote
            value = f"CAST({_select_expr('mysql', 'postgresql', col, q)} AS CHAR)"
        fields.append(f"IFNULL({value}, '')")
    return f"SELECT CAST(CONCAT_WS(',', {', '.join(fields)}) AS BINARY) FROM {quote(table.name)}"
def _reset_sequences(settings: DatabaseSettings, tables: list[Table]) -> list[str]:
    """PostgreSQL: each serial's sequence continues after the highest id copied (else Directus's next insert
    collides with a copied row). MySQL and SQLite advance their counters on explicit ids by themselves."""
    if settings.engine != "postgresql":
        return []
    reset = []
    with connect(settings) as conn:
        q = conn.dialect.identifier_preparer.quote
        for table in tables:
            for col in table.columns:
                if not col.autoincrement:
                    continue
                sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                        {"t": q(table.name), "c": col.name}).scalar()
                if not sequence:
                    continue
                conn.execute(sa.text(
                    f"SELECT setval(:s, COALESCE((SELECT max({q(col.name)}) FROM {q(table.name)}), 1), "
                    f"(SELECT max({q(col.name)}) FROM {q(table.name)}) IS NOT NULL)"), {"s": sequence})
                reset.append(f"{table.name}.{col.name}")
        conn.commit()
    return reset

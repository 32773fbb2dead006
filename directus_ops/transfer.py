"""Copy a Directus database to another engine (PostgreSQL, MySQL/MariaDB, SQLite), and compare two databases by
content.

How the target's schema is made:

- The ``directus_*`` system tables are created by **Directus itself** on the target (``directus database install``
  and ``migrate:latest`` from the project's own install, with a private config whose ``MIGRATIONS_PATH`` is an
  empty folder), then emptied of what those commands seeded. Their DDL is then exactly what a fresh Directus of
  that version has on that engine: knex's per-engine choices (timestamptz vs timestamp, char(36) uuids,
  MariaDB's longtext json, unsigned ints, index and constraint names) are not re-derived here. Without a
  Directus install (``directus_dir=None``) they go through the mapping below, like user tables.
- User tables go through a **Directus-type mapping**: each source column is read as the Directus type Directus
  would give it (``get-local-type``: the column type, refined by ``directus_fields.special`` where the engine
  is ambiguous — SQLite's ``datetime``, MySQL's ``char(36)`` and ``longtext``), a foreign key column takes its
  referenced column's type, and the target column is what knex emits for that type on the target engine.

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

``table_digests`` reduces every table to its row count and an order-independent checksum of its values in a
canonical, engine-independent form (timestamps as whole UTC epoch seconds, booleans 0/1, JSON re-serialised with
sorted keys, decimals normalised, 8-byte floats as their shortest decimal, 4-byte floats to 6 significant
digits, uuids lower case), so a PostgreSQL copy of a
MariaDB database compares equal, and any changed value does not.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import ReflectedColumn

from . import database, workdir
from .database import DatabaseSettings, DatabaseUnreachable, connect, open_engine  # noqa: F401 (raised by connect)
from .errors import ConfigError, DatabaseError, TargetNotEmpty, VersionError
from .redact import redact

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


@dataclass(frozen=True)
class TableDigest:
    rows: int
    checksum: str  # hex; equal on two engines when every value is equal
    columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum, "columns": list(self.columns)}


# -- the schema, in Directus's terms ----------------------------------------------------------------------------
@dataclass
class Column:
    name: str
    type: str  # Directus type: string text uuid json boolean integer bigInteger float decimal date time dateTime timestamp binary
    length: int | None = None  # string
    precision: int | None = None  # decimal
    scale: int | None = None
    double: bool = False  # float of 8 bytes (SQLite REAL, DOUBLE); PostgreSQL real / MySQL float otherwise
    nullable: bool = True
    default: tuple[str, Any] | None = None  # ("value", x) | ("now", None)
    autoincrement: bool = False
    unsigned: bool = False  # MySQL: a column referencing an unsigned id must be unsigned too
    native: str = ""  # the source's own type name, for types kept as they are on the same engine (mediumtext, ...)
    comment: str | None = None  # MySQL: written as the column's COMMENT (reflect leaves it out)


@dataclass
class ForeignKey:
    name: str
    columns: list[str]
    table: str
    ref_columns: list[str]
    on_delete: str | None = None
    on_update: str | None = None


@dataclass
class Index:
    name: str
    columns: list[str]
    unique: bool
    constraint: bool = False  # a UNIQUE constraint (knex .unique()) rather than a plain index


@dataclass
class Table:
    name: str
    columns: list[Column]
    primary_key: list[str]
    foreign_keys: list[ForeignKey] = field(default_factory=list)
    indexes: list[Index] = field(default_factory=list)

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


# -- reflection ----------------------------------------------------------------------------------------------------
def _q(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def _specials(conn: Connection, tables: list[str]) -> dict[tuple[str, str], list[str]]:
    """``directus_fields.special`` per (collection, field): what Directus itself uses to tell uuid, json and
    timestamp columns from plain text and datetime on engines that store them alike."""
    if "directus_fields" not in tables:
        return {}
    found: dict[tuple[str, str], list[str]] = {}
    for collection, name, special in conn.execute(sa.text(
            f"SELECT collection, {_q(conn, 'field')}, special FROM directus_fields WHERE special IS NOT NULL")):
        found[(collection, name)] = [s.strip() for s in str(special).strip("{}").split(",") if s.strip()]
    return found


def _mysql_json_columns(conn: Connection) -> set[tuple[str, str]]:
    """MariaDB's JSON is longtext with a ``json_valid`` check: the check is what says it is JSON."""
    found = set()
    with contextlib.suppress(sa.exc.DBAPIError):  # MySQL < 8.0.16 has no CHECK_CONSTRAINTS table
        for table, clause in conn.execute(sa.text(
                "SELECT table_name, check_clause FROM information_schema.check_constraints "
                "WHERE constraint_schema = DATABASE() AND check_clause LIKE 'json\\_valid(%'")):
            match = re.match(r"json_valid\(`?([^`)]+)`?\)", clause)
            if match:
                found.add((table, match.group(1)))
    return found


def _sqlite_autoincrement(conn: Connection, table: str) -> bool:
    sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type='table' AND name=:t"), {"t": table}).scalar()
    return bool(sql and "autoincrement" in sql.lower())


_MYSQL_ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a", "%": "\\%", "_": "\\_"}
_MYSQL_ESCAPE = re.compile(r"\\(.)|''", re.DOTALL)


def _mysql_unescape(text: str) -> str:
    """The value of a MySQL string literal's inside (SHOW CREATE TABLE writes \\\\ for a backslash)."""
    return _MYSQL_ESCAPE.sub(lambda m: "'" if m.group(1) is None else _MYSQL_ESCAPES.get(m.group(1), m.group(1)), text)


def _default(raw: str | None, engine: str = "") -> tuple[str, Any] | None:
    """A reflected default as ("now", None) or ("value", text) — None for no default or NULL."""
    if raw is None:
        return None
    text = raw.strip()
    text = re.sub(r"::[a-z ]+(\(\d+(,\d+)?\))?(\[\])?$", "", text)  # PostgreSQL's 'x'::character varying
    lowered = text.lower()
    if lowered in ("null", "") or lowered.startswith("nextval("):
        return None
    if lowered in ("current_timestamp", "current_timestamp()", "now()") or lowered.startswith("current_timestamp("):
        return ("now", None)
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return ("value", _mysql_unescape(text[1:-1]) if engine == "mysql" else text[1:-1].replace("''", "'"))
    if text.startswith("(") and text.endswith(")"):
        return _default(text[1:-1], engine)
    return ("value", text)


def _local_type(engine: str, column: ReflectedColumn, special: list[str], json_columns: bool) -> Column:
    """The Directus type of a reflected column (after api/src/utils/get-local-type.ts)."""
    sqltype = column["type"]
    kind = type(sqltype).__name__.upper()
    col = Column(name=column["name"], type="unknown", nullable=bool(column.get("nullable", True)),
                 default=_default(column.get("default"), engine), native=str(sqltype).lower())
    length = getattr(sqltype, "length", None)
    if kind in ("VARCHAR", "NVARCHAR", "STRING"):
        col.type, col.length = "string", length
    elif kind in ("CHAR", "NCHAR"):
        col.type, col.length = ("uuid", None) if length == 36 else ("string", length)
    elif kind in ("TEXT", "TINYTEXT", "MEDIUMTEXT", "LONGTEXT", "CLOB", "CITEXT"):
        col.type = "json" if json_columns else "text"
    elif kind == "UUID":
        col.type = "uuid"
    elif kind in ("JSON", "JSONB"):
        col.type = "json"
    elif kind in ("BOOLEAN", "BOOL"):
        col.type = "boolean"
    elif kind == "TINYINT" and getattr(sqltype, "display_width", None) == 1:
        col.type = "boolean"  # MySQL's boolean
    elif kind in ("INTEGER", "SMALLINT", "TINYINT", "MEDIUMINT", "INT"):
        col.type = "integer"
    elif kind == "BIGINT":
        col.type = "bigInteger"
    elif kind in ("NUMERIC", "DECIMAL"):
        col.type = "decimal"
        col.precision, col.scale = getattr(sqltype, "precision", None), getattr(sqltype, "scale", None)
        if engine == "sqlite":  # SQLite has no exact decimal: it stores REAL
            col.type, col.double = "float", True
    elif kind in ("FLOAT", "REAL", "DOUBLE", "DOUBLE_PRECISION"):
        col.type = "float"
        col.double = engine == "sqlite" or kind in ("DOUBLE", "DOUBLE_PRECISION") or (
            kind == "FLOAT" and (getattr(sqltype, "precision", None) or 0) > 24)
    elif kind == "DATE":
        col.type = "date"
    elif kind == "TIME":
        col.type = "time"
    elif kind == "TIMESTAMP":
        col.type = "timestamp" if (engine != "postgresql" or getattr(sqltype, "timezone", False)) else "dateTime"
    elif kind == "DATETIME":
        col.type = "dateTime"
    elif kind in ("BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BYTEA", "BINARY", "VARBINARY", "LARGEBINARY"):
        col.type = "binary"
    else:
        col.type = "text"  # an engine type Directus has no name for: kept as text, which every engine can hold
    if "cast-json" in special:
        col.type = "json"
    elif "uuid" in special or "file" in special:
        col.type = "uuid"
    elif "cast-timestamp" in special and col.type in ("dateTime", "timestamp"):
        col.type = "timestamp"
    elif "hash" in special:
        col.type, col.length = "string", 255
    if column.get("autoincrement") is True and col.type in ("integer", "bigInteger"):
        col.autoincrement = True
    if engine == "mysql" and getattr(sqltype, "unsigned", False):
        col.unsigned = True
    return col


def reflect(conn: Connection, tables: list[str] | None = None, exclude: tuple[str, ...] = ()) -> list[Table]:
    """Every table (or those named, less ``exclude``: DB_EXCLUDE_TABLES) in Directus's terms."""
    engine = conn.dialect.name
    inspector = sa.inspect(conn)
    all_tables = sorted(inspector.get_table_names())  # base tables of the current schema (DB_SEARCH_PATH)
    names = [t for t in all_tables if (tables is None or t in tables) and t not in exclude]
    specials = _specials(conn, all_tables)
    json_columns = _mysql_json_columns(conn) if engine == "mysql" else set()
    keys: dict[str, list[database.ForeignKey]] = {}
    for key in database.foreign_keys(conn):
        keys.setdefault(key.table, []).append(key)
    result = []
    for name in names:
        pk = inspector.get_pk_constraint(name).get("constrained_columns") or []
        columns = []
        for reflected in inspector.get_columns(name):
            col = _local_type(engine, reflected, specials.get((name, reflected["name"]), []),
                              (name, reflected["name"]) in json_columns)
            if engine == "sqlite" and pk == [col.name] and col.type in ("integer", "bigInteger"):
                col.autoincrement = _sqlite_autoincrement(conn, name)
            if engine == "postgresql" and str(reflected.get("default") or "").startswith("nextval("):
                col.autoincrement = True
            if engine == "postgresql" and reflected.get("identity"):
                col.autoincrement = True
            columns.append(col)
        fks = [ForeignKey(name=key.name or f"{name}_{'_'.join(key.columns)}_foreign",  # knex's name
                          columns=list(key.columns), table=key.referred_table, ref_columns=list(key.referred_columns),
                          on_delete=key.on_delete, on_update=key.on_update) for key in keys.get(name, [])]
        fk_names = {fk.name for fk in fks}
        indexes = []
        uniques = inspector.get_unique_constraints(name)
        unique_names = {u["name"] for u in uniques if u.get("name")}
        for unique in uniques:
            indexes.append(Index(unique.get("name") or f"{name}_{'_'.join(unique['column_names'])}_unique",
                                 list(unique["column_names"]), unique=True, constraint=True))
        for index in inspector.get_indexes(name):
            if index["name"] in fk_names or index["name"] in unique_names or index.get("duplicates_constraint"):
                continue  # MySQL's index behind a foreign key, or the index behind a UNIQUE constraint
            column_names = [c for c in index["column_names"] if c is not None]
            if len(column_names) < len(index["column_names"]):
                continue  # an expression index: not something Directus creates
            assert index["name"] is not None  # typed optional; the three dialects name every index they reflect
            indexes.append(Index(index["name"], column_names, unique=bool(index["unique"])))
        result.append(Table(name, columns, list(pk), fks, indexes))
    # A foreign key column must have its referenced column's type (char(36) -> uuid, int -> unsigned int).
    by_name = {t.name: t for t in result}
    for table in result:
        for fk in table.foreign_keys:
            referenced = by_name.get(fk.table)
            if referenced is None:
                continue
            for col_name, ref_name in zip(fk.columns, fk.ref_columns):
                col, ref = table.column(col_name), referenced.column(ref_name)
                if ref.type in ("uuid", "string", "integer", "bigInteger") and col.type != ref.type:
                    col.type, col.length = ref.type, ref.length
                col.unsigned = ref.unsigned or ref.autoincrement  # knex: increments() is unsigned on MySQL
    return result


# -- DDL as knex emits it on each engine ------------------------------------------------------------------------
def _column_type(col: Column, engine: str, same_engine: bool) -> str:
    t = col.type
    if engine == "postgresql":
        if col.autoincrement:
            return "bigserial" if t == "bigInteger" else "serial"
        return {"string": f"varchar({col.length or 255})", "text": "text", "uuid": "uuid", "json": "json",
                "boolean": "boolean", "integer": "integer", "bigInteger": "bigint",
                "float": "double precision" if col.double else "real",
                "decimal": f"numeric({col.precision or 10}, {col.scale if col.scale is not None else 5})",
                "date": "date", "time": "time", "dateTime": "timestamp", "timestamp": "timestamptz",
                "binary": "bytea"}[t]
    if engine == "mysql":
        unsigned = " unsigned" if col.unsigned else ""
        if col.autoincrement:
            return f"{'bigint' if t == 'bigInteger' else 'int'} unsigned NOT NULL AUTO_INCREMENT"
        if t == "text" and same_engine and col.native.split("(")[0] in ("mediumtext", "longtext", "tinytext"):
            return col.native.split(" ")[0]
        if t == "binary" and same_engine and col.native.split("(")[0] in ("mediumblob", "longblob", "tinyblob"):
            return col.native.split(" ")[0]
        return {"string": f"varchar({col.length or 255})", "text": "text", "uuid": "char(36)", "json": "json",
                "boolean": "boolean", "integer": f"int{unsigned}", "bigInteger": f"bigint{unsigned}",
                "float": "double" if col.double else "float",
                "decimal": f"decimal({col.precision or 10}, {col.scale if col.scale is not None else 5})",
                "date": "date", "time": "time", "dateTime": "datetime",
                "timestamp": "timestamp NULL" if col.nullable else "timestamp", "binary": "blob"}[t]
    if col.autoincrement:
        return "integer"
    return {"string": f"varchar({col.length or 255})", "text": "text", "uuid": "char(36)", "json": "json",
            "boolean": "boolean", "integer": "integer", "bigInteger": "bigint", "float": "float",
            "decimal": "float",  # knex's decimal on SQLite
            "date": "date", "time": "time", "dateTime": "datetime", "timestamp": "datetime", "binary": "blob"}[t]


_DIALECTS: dict[str, sa.engine.Dialect] = {}


def _literal(value: str, engine: str) -> str:
    """A string literal as the target engine reads it (MySQL: backslashes escaped too)."""
    if engine not in _DIALECTS:
        from sqlalchemy.dialects.mysql import pymysql
        from sqlalchemy.dialects.postgresql import psycopg
        from sqlalchemy.dialects.sqlite import pysqlite

        # The drivers' own dialects: _run's exec_driver_sql passes the DDL through their paramstyle, so a %
        # must be doubled for psycopg and pymysql and not for sqlite3.
        _DIALECTS[engine] = {"postgresql": psycopg.dialect, "mysql": pymysql.dialect,
                             "sqlite": pysqlite.dialect}[engine]()
    literal = sa.literal(value, sa.String()).compile(dialect=_DIALECTS[engine], compile_kwargs={"literal_binds": True})
    return str(literal)


def _default_sql(col: Column, engine: str) -> str:
    if col.default is None or col.autoincrement:
        return ""
    kind, value = col.default
    if kind == "now":
        return " DEFAULT CURRENT_TIMESTAMP" if col.type in ("timestamp", "dateTime", "date") else ""
    if col.type == "boolean":
        truth = str(value).strip("'").lower() in ("1", "true", "t")
        return f" DEFAULT {'true' if truth else 'false'}" if engine == "postgresql" else f" DEFAULT '{int(truth)}'"
    if col.type in ("integer", "bigInteger", "float", "decimal"):
        try:
            Decimal(str(value))
        except InvalidOperation:
            return ""
        return f" DEFAULT {value}" if engine != "sqlite" else f" DEFAULT '{value}'"
    if col.type in ("json", "text") and engine == "mysql":
        return f" DEFAULT ({_literal(str(value), engine)})"  # MariaDB takes BLOB/TEXT defaults only as expressions
    return f" DEFAULT {_literal(str(value), engine)}"


def create_table_sql(table: Table, engine: str, quote: Callable[[str], str], same_engine: bool) -> str:
    parts = []
    for col in table.columns:
        sql = f"{quote(col.name)} {_column_type(col, engine, same_engine)}"
        if col.autoincrement:
            sql += {"postgresql": " PRIMARY KEY", "mysql": " PRIMARY KEY", "sqlite": " PRIMARY KEY AUTOINCREMENT NOT NULL"}[engine]
        else:
            if not col.nullable:
                sql += " NOT NULL"
            sql += _default_sql(col, engine)
        if col.comment and engine == "mysql":
            sql += f" COMMENT {_literal(col.comment, engine)}"
        parts.append(sql)
    if table.primary_key and not any(c.autoincrement for c in table.columns):
        parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in table.primary_key)})")
    if engine == "sqlite":  # SQLite cannot add a foreign key later; rows load with foreign_keys off
        parts += [_fk_clause(fk, quote) for fk in table.foreign_keys]
    return f"CREATE TABLE {quote(table.name)} ({', '.join(parts)})"


def _fk_clause(fk: ForeignKey, quote: Callable[[str], str]) -> str:
    sql = (f"CONSTRAINT {quote(fk.name)} FOREIGN KEY ({', '.join(quote(c) for c in fk.columns)}) "
           f"REFERENCES {quote(fk.table)} ({', '.join(quote(c) for c in fk.ref_columns)})")
    if fk.on_delete:
        sql += f" ON DELETE {fk.on_delete.upper()}"
    if fk.on_update:
        sql += f" ON UPDATE {fk.on_update.upper()}"
    return sql


def index_sql(table: Table, index: Index, engine: str, quote: Callable[[str], str]) -> str:
    columns = ", ".join(quote(c) for c in index.columns)
    if index.constraint and engine == "postgresql":
        return f"ALTER TABLE {quote(table.name)} ADD CONSTRAINT {quote(index.name)} UNIQUE ({columns})"
    if index.constraint and engine == "mysql":
        return f"ALTER TABLE {quote(table.name)} ADD UNIQUE {quote(index.name)} ({columns})"
    unique = "UNIQUE " if index.unique else ""
    return f"CREATE {unique}INDEX {quote(index.name)} ON {quote(table.name)} ({columns})"


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
                statements += [f"ALTER TABLE {quote(table.name)} ADD {_fk_clause(fk, quote)}" for fk in table.foreign_keys]
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
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # it holds the target's password
        with os.fdopen(fd, "w") as handle:
            json.dump(values, handle)
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
        with contextlib.closing(_source_cursor(src, source, batch_rows)) as cursor:
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


def _source_cursor(raw: Any, engine: str, batch_rows: int) -> Any:
    """A cursor that streams: a server-side cursor on PostgreSQL, an unbuffered one on MySQL."""
    if engine == "postgresql":
        cursor = raw.cursor(name=f"transfer_{secrets.token_hex(4)}")
        cursor.itersize = batch_rows
        with raw.cursor() as setup:
            setup.execute("SET TIME ZONE 'UTC'")
        return cursor
    if engine == "mysql":
        import pymysql.cursors

        with raw.cursor() as setup:
            setup.execute("SET time_zone = '+00:00'")
        return raw.cursor(pymysql.cursors.SSCursor)
    return raw.cursor()


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


# -- content digests -------------------------------------------------------------------------------------------
def _digest_expr(engine: str, col: Column, q: str) -> str:
    """SQL giving the canonical form where the server can make it (times to UTC epoch seconds, uuids lower)."""
    t = col.type
    if t in ("timestamp", "dateTime", "date"):
        if engine == "postgresql":
            return f"floor(extract(epoch from {q}))::bigint"
        if engine == "mysql":
            return f"IF(YEAR({q}) = 0, NULL, TIMESTAMPDIFF(SECOND, '1970-01-01', {q}))"
        return (f"CASE WHEN typeof({q}) IN ('integer', 'real') THEN CAST({q} / 1000 AS INTEGER) "
                f"ELSE CAST(strftime('%s', {q}) AS INTEGER) END")
    if t == "uuid":
        return f"lower({q}::text)" if engine == "postgresql" else f"lower({q})"
    if t == "time":
        if engine == "postgresql":
            return f"to_char({q}, 'HH24:MI:SS')"
        if engine == "mysql":
            return f"TIME_FORMAT({q}, '%H:%i:%s')"
        return f"substr({q}, 1, 8)"
    if t in ("json", "decimal") and engine == "postgresql":
        return f"{q}::text"
    if t == "decimal" and engine == "mysql":
        return f"CAST({q} AS CHAR)"
    if t == "boolean" and engine == "postgresql":
        return f"{q}::int"
    return q


# Kinds whose canonical text the server itself makes (see _digest_expr): they travel as one string per row,
# which the drivers parse much faster than one value per column. The others need Python (JSON, floats, decimals).
_SERVER_KINDS = frozenset({"integer", "bigInteger", "boolean", "timestamp", "dateTime", "date", "uuid", "time",
                           "string", "text", "csv", "unknown"})


def _digest_select(engine: str, table: Table, quote: Callable[[str], str]) -> tuple[str, list[Callable[[Any], str]]]:
    """The digest's SELECT: first the server-made columns joined into one text (\\x1f between values, \\x01
    for NULL), then each other column; and the canonical text functions for what it returns."""
    columns = sorted(table.columns, key=lambda c: c.name)
    on_server = [c for c in columns if c.type in _SERVER_KINDS]
    in_python = [c for c in columns if c.type not in _SERVER_KINDS]
    fields: list[str] = []
    canon: list[Callable[[Any], str]] = []
    if on_server:
        if engine == "postgresql":
            parts = [f"coalesce(({_digest_expr(engine, c, quote(c.name))})::text, chr(1))" for c in on_server]
            fields.append(" || chr(31) || ".join(parts))
        elif engine == "mysql":
            parts = [f"IFNULL(CAST({_digest_expr(engine, c, quote(c.name))} AS CHAR), CHAR(1 USING utf8mb4))"
                     for c in on_server]
            fields.append(f"CONCAT_WS(CHAR(31 USING utf8mb4), {', '.join(parts)})")
        else:
            cast = {"integer", "bigInteger", "boolean"}
            parts = [f"ifnull(CAST({_digest_expr(engine, c, quote(c.name))} AS {'INTEGER' if c.type in cast else 'TEXT'}), char(1))"
                     for c in on_server]
            fields.append(" || char(31) || ".join(parts))
        canon.append(_server_text)
    for col in in_python:
        fields.append(_digest_expr(engine, col, quote(col.name)))
        canon.append(_canonical(col.type, col.double))
    return f"SELECT {', '.join(fields)} FROM {quote(table.name)}", canon


def _server_text(v: Any) -> str:
    return v if isinstance(v, str) else bytes(v).decode("utf-8", "surrogateescape")


def _json_text(v: Any) -> str:
    try:
        return orjson.dumps(orjson.loads(v), option=orjson.OPT_SORT_KEYS).decode()
    except (orjson.JSONDecodeError, TypeError):  # integers beyond 64 bits, or not JSON at all
        try:
            return json.dumps(json.loads(v), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        except (TypeError, ValueError):
            return str(v)


def _decimal_text(v: Any) -> str:
    text = v if isinstance(v, str) else str(v)
    if "e" not in text and "E" not in text and "N" not in text and "n" not in text:  # plain digits: trim zeros
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text if text not in ("", "-", "-0") else "0"
    try:
        number = Decimal(str(v))
    except InvalidOperation:
        return str(v)
    text = format(number.normalize(), "f") if number == number else "NaN"
    return text if text != "-0" else "0"


def _binary_text(v: Any) -> str:
    return bytes(v).hex() if isinstance(v, (bytes, bytearray, memoryview)) else str(v).encode().hex()


def _integer_text(v: Any) -> str:
    return str(int(v))


def _canonical(kind: str, double: bool = False) -> Callable[[Any], str]:
    """The engine-independent text of a value the digest SELECT returned (not NULL)."""
    if kind == "json":
        return _json_text
    if kind == "decimal":
        return _decimal_text
    if kind == "float" and double:  # shortest repr, as a decimal: equal to an exact decimal it came from
        return lambda v: _decimal_text(repr(float(v)))
    if kind == "float":  # 4-byte floats: PostgreSQL's real and MySQL's float print the same value differently
        return lambda v: format(float(v), ".6g")
    if kind in ("integer", "bigInteger", "boolean", "timestamp", "dateTime", "date"):
        return _integer_text
    if kind == "binary":
        return _binary_text
    return str  # text, uuids (lower-cased by the server), times (formatted by the server)


def _row_hashes(rows: list[Any], canon: list[Callable[[Any], str]]) -> int:
    """Sum of the rows' 128-bit hashes: equal for equal multisets of rows, in any order."""
    total = 0
    blake2b, from_bytes = hashlib.blake2b, int.from_bytes
    for row in rows:
        # \x1f between values and \x00 for NULL: unambiguous for any text a Directus field holds in practice
        text = "\x1f".join(["\x00" if v is None else c(v) for v, c in zip(row, canon)])
        total += from_bytes(blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest(), "big")
    return total


def table_digests(settings: DatabaseSettings, tables: list[str] | None = None) -> dict[str, TableDigest]:
    """Per table: row count and an engine-independent, row-order-independent checksum of every value."""
    digests: dict[str, TableDigest] = {}
    engine = open_engine(settings)
    try:
        with connect(settings) as conn:
            reflected = reflect(conn, tables, exclude=settings.exclude_tables)
        for table in reflected:
            columns = sorted(table.columns, key=lambda c: c.name)
            raw = engine.raw_connection()
            try:
                select, canon = _digest_select(settings.engine, table, engine.dialect.identifier_preparer.quote)
                total, rows = 0, 0
                with contextlib.closing(_source_cursor(raw, settings.engine, 10_000)) as cursor:
                    cursor.execute(select)
                    while batch := cursor.fetchmany(10_000):
                        total += _row_hashes(batch, canon)
                        rows += len(batch)
                header = hashlib.blake2b(digest_size=8)
                header.update("\x1f".join(c.name for c in columns).encode())
                checksum = f"{header.hexdigest()}-{total % (1 << 128):032x}"
                digests[table.name] = TableDigest(rows=rows, checksum=checksum, columns=tuple(c.name for c in columns))
            finally:
                with contextlib.suppress(Exception):
                    raw.rollback()
                raw.close()
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(f"cannot read {settings.describe()} for its digest: {database._reason(exc)}") from None
    finally:
        engine.dispose()
    return digests


def compare_digests(source: dict[str, TableDigest], target: dict[str, TableDigest]) -> list[str]:
    """Tables whose digests differ (or that one side lacks), with what differs; empty when equal."""
    problems = []
    for name in sorted(set(source) | set(target)):
        a, b = source.get(name), target.get(name)
        if a is None or b is None:
            problems.append(f"{name}: only in the {'target' if a is None else 'source'}")
        elif a.rows != b.rows:
            problems.append(f"{name}: {a.rows} rows in the source, {b.rows} in the target")
        elif a.checksum != b.checksum:
            problems.append(f"{name}: same row count ({a.rows}) but different content")
    return problems

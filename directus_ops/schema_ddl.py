"""A database's tables in Directus's terms (``Column``, ``Table``, ``ForeignKey``, ``Index``), read from a live
database and written as the DDL knex emits on each engine: what the cross-engine copy (``transfer``) creates
its target with, what the v8 writers create tables with, and how ``content_digest`` reads a table's columns.

``reflect`` applies the **Directus-type mapping**: each source column is read as the Directus type Directus
would give it (``get-local-type``: the column type, refined by ``directus_fields.special`` where the engine
is ambiguous — SQLite's ``datetime``, MySQL's ``char(36)`` and ``longtext``), a foreign key column takes its
referenced column's type, and the target column is what knex emits for that type on the target engine.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.engine.interfaces import ReflectedColumn

from . import database


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
        parts += [fk_clause(fk, quote) for fk in table.foreign_keys]
    return f"CREATE TABLE {quote(table.name)} ({', '.join(parts)})"


def fk_clause(fk: ForeignKey, quote: Callable[[str], str]) -> str:
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

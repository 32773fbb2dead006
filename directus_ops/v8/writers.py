"""What the database-mode v8 migration writes differently per target engine: the one place that knows PostgreSQL,
MySQL/MariaDB and SQLite apart. ``target.py``'s steps are the same for all and ask ``writer_for(engine)`` for the
rest.

- **PostgreSQL**: tables through SQLAlchemy's DDL; system rows with ``INSERT … ON CONFLICT DO NOTHING``; items
  with COPY into a session staging table, then ``INSERT … SELECT … ON CONFLICT DO NOTHING``; sequences set to
  the highest key after.
- **MySQL/MariaDB**: tables as Directus (knex) creates them on MySQL, through ``schema_ddl.py``'s Directus-type
  DDL (char(36) uuids, tinyint(1) booleans, json, decimal(p,s), ``timestamp NULL``, unsigned auto-increment keys
  and the int m2o columns that reference them, as Directus's relations service makes them); rows in multi-row
  INSERTs after one SELECT of the batch's keys already there (skips those and nothing else: unlike INSERT
  IGNORE, a bad value still fails); the session in UTC (``timestamp`` columns convert from the session time
  zone); each AUTO_INCREMENT set after the highest id.
- **SQLite**: tables as Directus (knex) creates them on SQLite, through ``schema_ddl.py``'s DDL (char(36) uuids,
  ``boolean``, ``float`` for decimals too, ``datetime`` for timestamps, ``json``, ``integer PRIMARY KEY
  AUTOINCREMENT``), unique columns as knex's ``CREATE UNIQUE INDEX``, and the foreign keys inside the CREATE TABLE
  (SQLite cannot add one to a table later; Directus's relations service rebuilds the table for it, which gives
  the same table). Dates as Directus stores them there: timestamp, dateTime and date as epoch milliseconds (a
  dateTime and a date as their UTC wall time: Directus reads them in its process's time zone, UTC by default),
  times as ``HH:MM:SS`` text; timestamp fields get Directus's ``cast-timestamp`` flag (and json ones
  ``cast-json``), without which Directus reads a SQLite ``datetime`` as a dateTime. Rows with ``INSERT … ON
  CONFLICT DO NOTHING`` (batched: one executemany per batch); the connection runs with ``foreign_keys`` off
  (rows in any order: every reference was checked against the v8 rows already) and begins each transaction
  itself (``BEGIN IMMEDIATE``), so a table's DDL commits or rolls back with the rest of its step;
  ``sqlite_sequence`` raised to the highest id where it is not past it.

All skip a row whose key is there already, so a re-run writes nothing and a stopped run completes.
"""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection

from .. import schema_ddl
from ..errors import ConfigError
from .mapping import SYSTEM_TARGETS, CollectionPlan, ColumnPlan, SchemaPlan

BATCH_ROWS = 5000


def only_columns(table: sa.Table, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Keep the keys the target's table has (10.x minor versions differ: theme vs appearance…)."""
    names = set(table.c.keys())
    return [{k: v for k, v in row.items() if k in names} for row in rows]


def json_as_text(table: sa.Table, row: dict[str, Any]) -> dict[str, Any]:
    """A dict or list for a column not reflected as JSON (MariaDB's json is longtext; SQLite's text columns) goes as
    its JSON text."""
    return {k: json.dumps(v) if isinstance(v, (dict, list)) and not isinstance(table.c[k].type, sa.JSON) else v
            for k, v in row.items()}


class Writer:
    """The engine-specific half of each step; every method runs inside the caller's transaction."""

    engine = ""
    # The foreign keys are made with their tables (create_table), not added after the rows (target.add_foreign_keys).
    keys_with_tables = False

    def session(self, conn: Connection) -> None:
        """Session settings, once per connection (outside any transaction)."""

    def uuid_param(self, name: str) -> str:
        """A bind parameter compared with a uuid column."""
        return f":{name}"

    def insert_missing(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        """Insert rows, skipping those whose key is there already: the re-run no-op. Returns how many were new."""
        raise NotImplementedError

    def create_table(self, conn: Connection, plan: CollectionPlan, schema: SchemaPlan) -> None:
        raise NotImplementedError

    def field_rows(self, plan: CollectionPlan) -> list[dict[str, Any]]:
        """The collection's directus_fields rows as this engine's Directus would have them."""
        return plan.field_rows

    def start_items(self, conn: Connection, plan: CollectionPlan) -> None:
        """Before a collection's batches."""

    def write_items(self, conn: Connection, plan: CollectionPlan, rows: list[tuple[Any, ...]]) -> int:
        """One batch (tuples in ``plan.columns`` order); returns how many rows were new."""
        raise NotImplementedError

    def finish_items(self, conn: Connection, plan: CollectionPlan) -> None:
        """After a collection's batches."""

    def reset_counter(self, conn: Connection, plan: CollectionPlan, key: str) -> bool:
        """Make the auto-increment key continue after the highest id; True if it has a counter."""
        raise NotImplementedError


# -- PostgreSQL ---------------------------------------------------------------------------------------------------
def _sa_type(column: ColumnPlan) -> sa.types.TypeEngine:
    types: dict[str, sa.types.TypeEngine] = {
        "integer": sa.Integer(), "bigInteger": sa.BigInteger(), "string": sa.String(column.length or 255),
        "text": sa.Text(), "boolean": sa.Boolean(), "float": sa.Float(), "date": sa.Date(), "time": sa.Time(),
        "dateTime": sa.DateTime(timezone=False), "timestamp": sa.DateTime(timezone=True),
        "json": sa.JSON(none_as_null=True),
        "uuid": sa.Uuid(as_uuid=False), "binary": sa.LargeBinary(),
        "decimal": sa.Numeric(column.precision or 10, column.scale or 0, asdecimal=True),
    }
    return types[column.type]


def _server_default(column: ColumnPlan) -> Any:
    value = column.default
    if value is None:
        return None
    if value == "CURRENT_TIMESTAMP":
        return sa.text("CURRENT_TIMESTAMP")
    if isinstance(value, bool):
        return sa.true() if value else sa.false()
    if isinstance(value, int):
        return sa.text(str(value))
    return str(value)


def table_of(plan: CollectionPlan, metadata: sa.MetaData | None = None) -> sa.Table:
    """A collection as a SQLAlchemy table (PostgreSQL's DDL)."""
    metadata = metadata or sa.MetaData()
    columns = [sa.Column(c.name, _sa_type(c), primary_key=c.primary, nullable=c.nullable and not c.primary,
                         autoincrement=c.auto_increment if c.primary else False, unique=c.unique or None,
                         server_default=_server_default(c), comment=c.comment)
               for c in plan.columns]
    return sa.Table(plan.name, metadata, *columns)


class PostgresWriter(Writer):
    engine = "postgresql"

    def uuid_param(self, name: str) -> str:
        return f"CAST(:{name} AS uuid)"

    def insert_missing(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        written = 0
        rows = only_columns(table, rows)
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start:start + BATCH_ROWS]
            if batch:
                # Any unique constraint; RETURNING counts what was new (an executemany's rowcount is not reliable).
                insert: sa.Executable = pg_insert(table).on_conflict_do_nothing().returning(sa.literal_column("1"))
                written += len(conn.execute(insert, batch).all())
        return written

    def create_table(self, conn: Connection, plan: CollectionPlan, schema: SchemaPlan) -> None:
        table_of(plan).create(conn)

    def start_items(self, conn: Connection, plan: CollectionPlan) -> None:
        # The staging table: the target's columns and NOT NULLs, no keys, per session.
        conn.execute(sa.text(f'CREATE TEMPORARY TABLE v8_stage (LIKE "{plan.name}") ON COMMIT DELETE ROWS'))

    def write_items(self, conn: Connection, plan: CollectionPlan, rows: list[tuple[Any, ...]]) -> int:
        """COPY a batch into the session's staging table, then insert what is not there yet (any unique
        constraint: the re-run no-op); the staging table empties itself at commit."""
        columns = ", ".join(f'"{c.name}"' for c in plan.columns)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        with cursor.copy(f"COPY v8_stage ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(f'INSERT INTO "{plan.name}" ({columns}) SELECT {columns} FROM v8_stage ON CONFLICT DO NOTHING')
        return max(cursor.rowcount, 0)

    def finish_items(self, conn: Connection, plan: CollectionPlan) -> None:
        conn.execute(sa.text("DROP TABLE v8_stage"))

    def reset_counter(self, conn: Connection, plan: CollectionPlan, key: str) -> bool:
        """PostgreSQL does not advance a serial when rows come with their ids: set it to the highest key."""
        sequence = conn.execute(sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                                {"t": f'"{plan.name}"', "c": key}).scalar()
        if not sequence:
            return False
        conn.execute(sa.text(f'SELECT setval(:s, COALESCE((SELECT max("{key}") FROM "{plan.name}"), 1), '
                             f'(SELECT max("{key}") FROM "{plan.name}") IS NOT NULL)'), {"s": sequence})
        return True


# -- MySQL / MariaDB ----------------------------------------------------------------------------------------------
def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _default(column: ColumnPlan) -> tuple[str, Any] | None:
    """A ColumnPlan default in schema_ddl.Column's form."""
    value = column.default
    if value is None:
        return None
    if value == "CURRENT_TIMESTAMP":
        return ("now", None)
    if isinstance(value, bool):
        return ("value", "1" if value else "0")
    return ("value", str(value))


def mysql_columns(plan: CollectionPlan, schema: SchemaPlan) -> list[schema_ddl.Column]:
    """The collection's columns as schema_ddl.py's Directus-type columns, for its MySQL DDL."""
    columns = []
    for c in plan.columns:
        column = schema_ddl.Column(
            name=c.name, type=c.type, length=c.length, precision=c.precision, scale=c.scale,
            double=True,  # a v8 float/double keeps its 8 bytes (what the PostgreSQL path's double precision keeps)
            nullable=c.nullable and not c.primary, default=_default(c), autoincrement=c.primary and c.auto_increment,
            comment=c.comment)
        if c.references and c.references not in SYSTEM_TARGETS and c.type in ("integer", "bigInteger"):
            # knex's increments() is unsigned and MySQL refuses a foreign key from a signed int to it; Directus's
            # relations service makes such an m2o column unsigned too.
            key = schema.collection(c.references)
            column.unsigned = any(k.primary and k.auto_increment for k in key.columns)
        columns.append(column)
    return columns


class MysqlWriter(Writer):
    engine = "mysql"

    def session(self, conn: Connection) -> None:
        # timestamp columns store UTC and convert from the session's zone: the values written are UTC already.
        conn.exec_driver_sql("SET time_zone = '+00:00'")
        conn.commit()

    def insert_missing(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        rows = [json_as_text(table, row) for row in only_columns(table, rows)]
        key = [c.name for c in table.primary_key.columns]
        written = 0
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start:start + BATCH_ROWS]
            if key and all(row.get(k) is not None for row in batch for k in key):
                present = self._present(conn, table, key, [tuple(row[k] for k in key) for row in batch])
                batch = [row for row in batch if tuple(row[k] for k in key) not in present]
            if batch:
                conn.execute(sa.insert(table), batch)
                written += len(batch)
        return written

    @staticmethod
    def _present(conn: Connection, table: sa.Table, key: list[str],
                 values: list[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
        columns = [table.c[k] for k in key]
        where = sa.tuple_(*columns).in_(values) if len(columns) > 1 else columns[0].in_([v[0] for v in values])
        return {tuple(r) for r in conn.execute(sa.select(*columns).where(where))}

    def create_table(self, conn: Connection, plan: CollectionPlan, schema: SchemaPlan) -> None:
        key = [c.name for c in plan.columns if c.primary]
        table = schema_ddl.Table(plan.name, mysql_columns(plan, schema), key)
        sql = schema_ddl.create_table_sql(table, "mysql", _quote, same_engine=False)
        # Unique columns as knex's .unique() names them, inside the CREATE: one statement, so a stopped run never
        # leaves a table without its unique key (MySQL commits each DDL statement by itself).
        uniques = [f"UNIQUE KEY {_quote(f'{plan.name}_{c.name}_unique'[:64])} ({_quote(c.name)})"
                   for c in plan.columns if c.unique and not c.primary]
        if uniques:
            sql = f"{sql[:-1]}, {', '.join(uniques)})"
        conn.exec_driver_sql(sql)

    def start_items(self, conn: Connection, plan: CollectionPlan) -> None:
        # A re-run after the foreign keys exist inserts rows in any order (a cycle between collections);
        # every reference was checked against the v8 rows already (a dangling one is NULL).
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")

    def write_items(self, conn: Connection, plan: CollectionPlan, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        names = [c.name for c in plan.columns]
        if plan.primary_key in names:
            index = names.index(plan.primary_key)
            keys = [row[index] for row in rows]
            cursor.execute(f"SELECT {_quote(names[index])} FROM {_quote(plan.name)} WHERE {_quote(names[index])} "
                           f"IN ({', '.join(['%s'] * len(keys))})", keys)
            present = {r[0] for r in cursor.fetchall()}
            rows = [row for row in rows if row[index] not in present]
        if rows:
            # pymysql sends an executemany of one INSERT … VALUES as multi-row INSERTs (up to 1 MB each).
            cursor.executemany(f"INSERT INTO {_quote(plan.name)} ({', '.join(_quote(n) for n in names)}) "
                               f"VALUES ({', '.join(['%s'] * len(names))})", rows)
        cursor.close()
        return len(rows)

    def finish_items(self, conn: Connection, plan: CollectionPlan) -> None:
        conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")

    def reset_counter(self, conn: Connection, plan: CollectionPlan, key: str) -> bool:
        """InnoDB advances AUTO_INCREMENT past explicit ids by itself: raise it only where it is not past the
        highest id (never lowered: ids of items deleted since the migration are not given out again)."""
        highest = conn.exec_driver_sql(f"SELECT max({_quote(key)}) FROM {_quote(plan.name)}").scalar()
        counter = conn.execute(sa.text("SELECT auto_increment FROM information_schema.tables "
                                       "WHERE table_schema = DATABASE() AND table_name = :t"), {"t": plan.name}).scalar()
        if highest is not None and (counter is None or int(counter) <= int(highest)):
            conn.exec_driver_sql(f"ALTER TABLE {_quote(plan.name)} AUTO_INCREMENT = {int(highest) + 1}")
        return True


# -- SQLite ---------------------------------------------------------------------------------------------------------
EPOCH = datetime(1970, 1, 1)
EPOCH_UTC = EPOCH.replace(tzinfo=timezone.utc)
MILLISECOND = timedelta(milliseconds=1)
SQLITE_FLAGS = {"timestamp": "cast-timestamp", "json": "cast-json"}  # Directus's DateHelperSQLite.fieldFlagForField


def sqlite_value(value: Any) -> Any:
    """A value as Directus stores it on SQLite: datetimes and dates as epoch milliseconds (a naive datetime and a
    date are UTC wall time), times as ``HH:MM:SS`` text, decimals as the REAL their ``float`` column holds."""
    if isinstance(value, datetime):
        return (value - (EPOCH_UTC if value.tzinfo else EPOCH)) // MILLISECOND
    if isinstance(value, date):
        return (value - EPOCH.date()).days * 86_400_000
    if isinstance(value, time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


class SqliteValue(sa.types.TypeDecorator[Any]):
    """A reflected date, datetime or time column written as ``sqlite_value`` (SQLAlchemy's own SQLite types
    write ISO text, which Directus does not)."""

    impl = sa.types.NullType
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return sqlite_value(value)


def sqlite_columns(plan: CollectionPlan) -> list[schema_ddl.Column]:
    """The collection's columns as schema_ddl.py's Directus-type columns, for its SQLite DDL."""
    return [schema_ddl.Column(name=c.name, type=c.type, length=c.length, precision=c.precision, scale=c.scale,
                            double=True, nullable=c.nullable and not c.primary, default=_default(c),
                            autoincrement=c.primary and c.auto_increment)
            for c in plan.columns]


def knex_foreign_keys(plan: CollectionPlan, limit: int | None = None) -> list[schema_ddl.ForeignKey]:
    """The collection's foreign keys named as knex names them (``<table>_<column>_foreign``, cut to the engine's
    identifier ``limit``), ON DELETE SET NULL as Directus's nullify."""
    return [schema_ddl.ForeignKey(f"{plan.name}_{fk.column}_foreign"[:limit], [fk.column], fk.table, [fk.target_column],
                                on_delete="SET NULL") for fk in plan.foreign_keys]


def _sqlite_quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"  # as knex quotes on SQLite


class SqliteWriter(Writer):
    engine = "sqlite"
    keys_with_tables = True

    def session(self, conn: Connection) -> None:
        # pysqlite begins a transaction only before DML and runs DDL outside one; here each transaction begins
        # explicitly (IMMEDIATE: the write lock at once), so a CREATE TABLE and its index commit or roll back with
        # their step. Foreign keys unchecked: rows go in any order (a cycle between collections).
        dbapi = conn.connection.dbapi_connection
        dbapi.isolation_level = None  # type: ignore[union-attr]
        dbapi.execute("PRAGMA foreign_keys = OFF")  # type: ignore[union-attr]
        event.listen(conn, "begin", lambda c: c.exec_driver_sql("BEGIN IMMEDIATE"))

    def insert_missing(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> int:
        rows = [json_as_text(table, row) for row in only_columns(table, rows)]
        target = self._directus_dates(table)
        written = 0
        for start in range(0, len(rows), BATCH_ROWS):
            batch = rows[start:start + BATCH_ROWS]
            if batch:
                # Any unique constraint; RETURNING counts what was new.
                insert: Any = sqlite_insert(target).on_conflict_do_nothing().returning(sa.literal_column("1"))
                written += len(conn.execute(insert, batch).all())
        return written

    @staticmethod
    def _directus_dates(table: sa.Table) -> sa.Table:
        """``table`` with its date, datetime and time columns written as Directus stores them."""
        columns = [sa.Column(c.name, SqliteValue() if isinstance(c.type, (sa.Date, sa.DateTime, sa.Time)) else c.type,
                             primary_key=c.primary_key) for c in table.c]
        return sa.Table(table.name, sa.MetaData(), *columns)

    def create_table(self, conn: Connection, plan: CollectionPlan, schema: SchemaPlan) -> None:
        key = [c.name for c in plan.columns if c.primary]
        table = schema_ddl.Table(plan.name, sqlite_columns(plan), key, knex_foreign_keys(plan))
        conn.exec_driver_sql(schema_ddl.create_table_sql(table, "sqlite", _sqlite_quote, same_engine=False))
        for column in plan.columns:
            if column.unique and not column.primary:
                conn.exec_driver_sql(f"CREATE UNIQUE INDEX {_sqlite_quote(f'{plan.name}_{column.name}_unique')} "
                                     f"ON {_sqlite_quote(plan.name)} ({_sqlite_quote(column.name)})")

    def field_rows(self, plan: CollectionPlan) -> list[dict[str, Any]]:
        types = {c.name: c.type for c in plan.columns}
        rows = []
        for row in plan.field_rows:
            flag = SQLITE_FLAGS.get(types.get(row["field"], ""))
            special = row["special"].split(",") if row["special"] else []
            if flag and flag not in special:
                row = {**row, "special": ",".join([*special, flag])}
            rows.append(row)
        return rows

    def write_items(self, conn: Connection, plan: CollectionPlan, rows: list[tuple[Any, ...]]) -> int:
        if not rows:
            return 0
        converted = {i for i, c in enumerate(plan.columns)
                     if c.type in ("timestamp", "dateTime", "date", "time", "decimal")}
        if converted:
            rows = [tuple(sqlite_value(v) if i in converted else v for i, v in enumerate(row)) for row in rows]
        names = ", ".join(_sqlite_quote(c.name) for c in plan.columns)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            # Any unique constraint: a row already there is skipped (the re-run no-op), a bad value still fails.
            cursor.executemany(f"INSERT INTO {_sqlite_quote(plan.name)} ({names}) VALUES "
                               f"({', '.join(['?'] * len(plan.columns))}) ON CONFLICT DO NOTHING", rows)
            return max(cursor.rowcount, 0)  # the rows inserted, summed over the batch
        finally:
            cursor.close()

    def reset_counter(self, conn: Connection, plan: CollectionPlan, key: str) -> bool:
        """SQLite advances an AUTOINCREMENT table's ``sqlite_sequence`` past explicit ids by itself: raise it only
        where it is not past the highest id (never lowered: ids of items deleted since are not given out again)."""
        sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                           {"t": plan.name}).scalar()
        if not sql or "autoincrement" not in sql.lower():
            return False
        highest = conn.exec_driver_sql(f"SELECT max({_sqlite_quote(key)}) FROM {_sqlite_quote(plan.name)}").scalar()
        if highest is None:
            return True
        values = {"t": plan.name, "h": int(highest)}
        counter = conn.execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = :t"), values).first()
        if counter is None:
            conn.execute(sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES (:t, :h)"), values)
        elif int(counter[0] or 0) < int(highest):
            conn.execute(sa.text("UPDATE sqlite_sequence SET seq = :h WHERE name = :t"), values)
        return True


WRITERS: dict[str, Writer] = {"postgresql": PostgresWriter(), "mysql": MysqlWriter(), "sqlite": SqliteWriter()}
ENGINES_TEXT = "PostgreSQL, MySQL/MariaDB or SQLite"


def writer_for(engine: str) -> Writer:
    """The writer of a target engine (``DatabaseSettings.engine`` or a dialect name)."""
    if engine not in WRITERS:
        raise ConfigError(f"the v8 migration writes into {ENGINES_TEXT} targets, not {engine}; use a Directus "
                          "project on one of those (DB_CLIENT=pg, mysql or sqlite3)")
    return WRITERS[engine]


__all__ = ["BATCH_ROWS", "ENGINES_TEXT", "WRITERS", "MysqlWriter", "PostgresWriter", "SqliteWriter", "Writer",
           "json_as_text", "knex_foreign_keys", "mysql_columns", "only_columns", "sqlite_columns", "sqlite_value",
           "table_of", "writer_for"]

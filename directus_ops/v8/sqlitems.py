"""The items step into a PostgreSQL target with the conversion done by the two database servers (database mode).

On a small machine the Python path (``RowConverter``: pymysql parses every field, Python converts every value,
psycopg formats it for COPY) is bound by one CPU. Here Python only pumps bytes: MariaDB writes each v8 row as one
line of COPY's text format (``CONCAT_WS`` of the columns' text, backslash/tab/newline/CR escaped, ``\\N`` for
NULL), the lines are copied into a session table of text columns, and one ``INSERT … SELECT … ON CONFLICT DO
NOTHING`` per batch converts them in PostgreSQL, giving the values ``RowConverter`` gives:

- references to users/files/roles/folders through a temporary id-map table (v8 role 2, Public, is NULL and not
  dangling); references to user collections kept where the key exists in v8 (a temporary table of the keys);
  dangling ones NULL and reported in row order, as ``Dangling`` entries;
- booleans (an integer's non-zero), decimals exact, CSV → a JSON array (split on ``,``, Python's ``str.strip``
  whitespace trimmed, empties dropped), JSON text (blank → NULL, JSON ``null`` → NULL, not JSON → the text as a
  JSON string plus an ``unmapped`` note);
- datetimes in the v8 time zone → UTC (an ambiguous local time takes its first occurrence, as Python's
  ``fold=0``), zero or impossible dates → NULL; times past 24h wrap as ``datetime.min + timedelta`` does.

JSON values are the same JSON as the Python path's (the ``json`` column keeps v8's own text where the Python path
re-serialises it: spacing and ``\\u`` escapes may differ, the value does not).

Only temporary tables and ``pg_temp`` functions are created. A collection whose columns this cannot convert
exactly (binary data, unusual key or reference types, a time zone PostgreSQL does not know, rows made by the
migration) goes through the Python path (``sql_plan`` says why not).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timezone
from typing import Any
from zoneinfo import ZoneInfo

import pymysql.cursors
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .mapping import SYSTEM_TARGETS, CollectionPlan, Dangling, IdMap, SchemaPlan
from .source import _q

# What Python's str.strip() removes: PostgreSQL's btrim with these characters is the same operation.
PY_WHITESPACE = "".join(chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace())

INT_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year"}
STRING_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set", "json"}
DATETIME_TYPES = {"datetime", "timestamp"}
# MariaDB data types whose text (what the Python path parses) PostgreSQL reads back as the same value.
BATCH_ROWS = 10000  # rows per COPY, INSERT and commit (lines of text: a few MB)
PLAIN_TYPES = INT_TYPES | STRING_TYPES | DATETIME_TYPES | {"decimal", "numeric", "float", "double", "real", "date",
                                                           "time"}

# Mode-independent literals (no backslash escapes in the SQL text: NO_BACKSLASH_ESCAPES cannot change them),
# binary: the text is escaped as UTF-8 bytes (byte-wise REPLACE is much faster than a collation-aware one, and
# UTF-8 never has these ASCII bytes inside a character).
_BS, _TAB, _LF, _CR = (f"CHAR({n})" for n in (92, 9, 10, 13))

FUNCTIONS = [
    # A JSON text's value, or NULL when it is not JSON (no pg_input_is_valid before PostgreSQL 16).
    """CREATE OR REPLACE FUNCTION pg_temp.v8_json(s text) RETURNS json LANGUAGE plpgsql IMMUTABLE AS $$
       BEGIN RETURN s::json; EXCEPTION WHEN others THEN RETURN NULL; END $$""",
    # A MariaDB datetime text, or NULL for what Python's datetime refuses (zero parts, Feb 30, year 0).
    """CREATE OR REPLACE FUNCTION pg_temp.v8_timestamp(s text) RETURNS timestamp LANGUAGE plpgsql IMMUTABLE AS $$
       BEGIN RETURN s::timestamp; EXCEPTION WHEN others THEN RETURN NULL; END $$""",
    """CREATE OR REPLACE FUNCTION pg_temp.v8_date(s text) RETURNS date LANGUAGE plpgsql IMMUTABLE AS $$
       BEGIN RETURN s::date; EXCEPTION WHEN others THEN RETURN NULL; END $$""",
    # Local time in a zone → UTC as Python's zoneinfo does (fold=0): PostgreSQL gives an ambiguous local time
    # (the hour repeated when clocks go back) its later occurrence, Python its first; a gap takes the offset
    # before it in both. Transitions of up to 3 hours are covered.
    """CREATE OR REPLACE FUNCTION pg_temp.v8_utc(ts timestamp, zone text) RETURNS timestamptz LANGUAGE plpgsql
       IMMUTABLE AS $$
       DECLARE later timestamptz := ts AT TIME ZONE zone;
               earlier timestamptz := ((ts - interval '3 hours') AT TIME ZONE zone) + interval '3 hours';
       BEGIN
         IF earlier < later AND (earlier AT TIME ZONE zone) = ts THEN RETURN earlier; END IF;
         RETURN later;
       END $$""",
]


@dataclass
class Column:
    index: int
    name: str
    kind: str  # ColumnPlan.convert
    source_type: str  # the MariaDB data type
    target_type: str  # PostgreSQL's format_type
    references: str | None = None
    # An integer reference to a v8 table: MariaDB looks the key up (its primary key index) while exporting, and
    # stages a found flag; no copy of the keys is needed.
    source_key: str | None = None


@dataclass
class SqlPlan:
    plan: CollectionPlan
    columns: list[Column]
    key: Column | None  # the primary key column (for the report)
    zone: str | None  # None: the v8 times are UTC
    # MariaDB's JSON_VALID of each JSON column is staged too: PostgreSQL then casts the valid ones without a
    # subtransaction each. Should PostgreSQL refuse one MariaDB accepted, the batch is done again without it.
    trust_json: bool = True
    # The collection's table was empty when its first batch came: every v8 key is new (v8's own unique keys hold in
    # PostgreSQL too), so a plain INSERT does, without ON CONFLICT's speculative insertion. A re-run or a resumed
    # run finds rows and skips those that are there.
    fresh: bool = False

    @property
    def looked_up(self) -> list[Column]:
        return [col for col in self.columns if col.source_key]

    @property
    def json_columns(self) -> list[Column]:
        return [col for col in self.columns if col.kind == "json"]

    def staged(self) -> list[str]:
        """The session table's text columns, in the export's order."""
        return [f"c{col.index}" for col in self.columns] + [f"v{col.index}" for col in self.json_columns] + \
            [f"e{col.index}" for col in self.looked_up]


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def source_types(conn: Connection, table: str) -> dict[str, str]:
    rows = conn.execute(sa.text("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_schema = DATABASE() AND table_name = :t"), {"t": table})
    return {str(name): str(kind).lower() for name, kind in rows}


def target_types(conn: Connection, table: str) -> dict[str, str]:
    rows = conn.execute(sa.text("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                                "WHERE attrelid = CAST(:t AS regclass) AND attnum > 0 AND NOT attisdropped"),
                        {"t": '"' + table.replace('"', '""') + '"'})
    return {str(name): str(kind) for name, kind in rows}


def key_families(keys: dict[str, set[Any]]) -> dict[str, str | None]:
    """Per referenced collection: "int" or "str" when all its keys are of that Python type (else None)."""
    families: dict[str, str | None] = {}
    for name, values in keys.items():
        kinds = {type(v) for v in values}
        families[name] = "int" if kinds <= {int} else "str" if kinds <= {str} else None
    return families


def sql_plan(plan: CollectionPlan, sources: dict[str, str], targets: dict[str, str],
             families: dict[str, str | None], zone: str | None) -> SqlPlan | str:
    """How the collection converts in PostgreSQL, or why it cannot exactly (then: the Python path)."""
    if plan.rows is not None:
        return "rows made by the migration"
    columns: list[Column] = []
    for index, c in enumerate(plan.columns):
        source, target = sources.get(c.name), targets.get(c.name)
        if source is None or target is None:
            return f"column {c.name} not in both databases"
        column = Column(index, c.name, c.convert, source, target, c.references)
        family = families.get(c.references or "") or ""
        if c.convert == "ref" and family.startswith("int-in:") and source in INT_TYPES:
            column.source_key = family.split(":", 1)[1]
        if source not in PLAIN_TYPES:
            return f"column {c.name} is {source}"
        if c.convert == "ref":
            if source not in INT_TYPES | STRING_TYPES - {"json"} or (c.primary):
                return f"reference {c.name} is {source}"
            if c.references not in SYSTEM_TARGETS:
                key_family = families.get(c.references or "")
                if key_family is None or key_family.startswith("int") != (source in INT_TYPES):
                    return f"reference {c.name} ({source}) to keys of another type"
            elif source not in INT_TYPES and c.references:
                return f"reference {c.name} is {source}"
        elif c.convert == "bool" and source not in INT_TYPES:
            return f"boolean {c.name} is {source}"
        elif c.convert in ("datetime", "timestamp") and source not in DATETIME_TYPES:
            return f"datetime {c.name} is {source}"
        elif c.convert in ("json", "csv_json") and source not in STRING_TYPES | INT_TYPES:
            return f"JSON {c.name} is {source}"
        elif c.convert == "plain" and c.type in ("date", "time") and source != c.type:
            return f"{c.name} is {source}"
        columns.append(column)
    key = next((col for col in columns if col.name == plan.primary_key), None)
    if plan.primary_key and (key is None or key.source_type not in INT_TYPES | STRING_TYPES - {"json"}):
        return "a primary key of another type"
    return SqlPlan(plan, columns, key, zone)


def zone_of(tz: ZoneInfo | timezone, conn: Connection) -> str | None | bool:
    """None for UTC, the IANA name PostgreSQL knows, or False (the Python path converts)."""
    if tz is timezone.utc or getattr(tz, "key", None) in ("UTC", "Etc/UTC"):
        return None
    name = getattr(tz, "key", None)
    if not name:
        return False
    known = conn.execute(sa.text("SELECT 1 FROM pg_timezone_names WHERE name = :n"), {"n": name}).first()
    return name if known else False


# -- the source side: one COPY line per row -------------------------------------------------------------------
def export_sql(sql: SqlPlan, order: bool = True) -> str:
    """The v8 query giving each row as one COPY text line (bytes: no decoding in Python)."""
    parts = []
    for col in sql.columns:
        value = f"t.{_q(col.name)}"
        if col.source_type in STRING_TYPES:
            value = f"CAST(CONVERT({value} USING utf8mb4) AS BINARY)"
            for raw, escaped in ((_BS, f"CONCAT({_BS}, {_BS})"), (_TAB, f"CONCAT({_BS}, 't')"),
                                 (_LF, f"CONCAT({_BS}, 'n')"), (_CR, f"CONCAT({_BS}, 'r')")):
                value = f"REPLACE({value}, {raw}, {escaped})"
        parts.append(f"IFNULL({value}, CONCAT({_BS}, 'N'))")
    parts += [f"IFNULL(JSON_VALID({_q(col.name)}), CONCAT({_BS}, 'N'))" for col in sql.json_columns]
    parts += [f"IFNULL(EXISTS (SELECT 1 FROM {_q(col.references or '')} AS k WHERE k.{_q(col.source_key or '')} = "
              f"t.{_q(col.name)}), CONCAT({_BS}, 'N'))" for col in sql.looked_up]
    order_by = f" ORDER BY t.{_q(sql.plan.primary_key)}" if sql.plan.primary_key and order else ""
    return f"SELECT CAST(CONCAT_WS({_TAB}, {', '.join(parts)}) AS BINARY) FROM {_q(sql.plan.name)} AS t{order_by}"


def stream_lines(conn: Connection, sql: SqlPlan, rows: int, order: bool = True) -> Iterator[tuple[bytes, int]]:
    """Batches of COPY text (lines ending in a newline) and their row counts, from an unbuffered cursor."""
    cursor = conn.connection.dbapi_connection.cursor(pymysql.cursors.SSCursor)  # type: ignore[union-attr]
    try:
        cursor.execute(export_sql(sql, order))
        while batch := cursor.fetchmany(rows):
            yield b"\n".join([r[0] for r in batch]) + b"\n", len(batch)
    finally:
        cursor.close()


# -- the target side: conversion in PostgreSQL --------------------------------------------------------------------
def setup(conn: Connection, source: Connection, ids: IdMap, schema: SchemaPlan) -> dict[str, str | None]:
    """The session's functions, id map and the keys of every referenced user collection (temporary: gone with the
    connection); the keys go from MariaDB to PostgreSQL as COPY text, never as Python values. Returns each
    referenced collection's key family ("int", "str"; "int-in:<key>": looked up in MariaDB; or None: the Python
    path compares those)."""
    for function in FUNCTIONS:
        conn.exec_driver_sql(function)
    conn.exec_driver_sql("SET work_mem = '64MB'")  # a batch's converted rows stay in memory (this session only)
    conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS v8_ids (tbl text, v8 bigint, id uuid, "
                         "PRIMARY KEY (tbl, v8))")
    # Keys of a collection are unique: loaded by COPY (the table's name as the column default), indexed after.
    conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS v8_int_keys (tbl text, key numeric)")
    conn.exec_driver_sql("CREATE TEMPORARY TABLE IF NOT EXISTS v8_text_keys (tbl text, key text)")
    conn.exec_driver_sql("TRUNCATE v8_ids, v8_int_keys, v8_text_keys")
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy("COPY v8_ids (tbl, v8, id) FROM STDIN") as copy:
        for table in SYSTEM_TARGETS:
            for v8_id, value in ids.ids.get(table, {}).items():
                if value is not None:
                    copy.write_row((table, v8_id, value))
    families: dict[str, str | None] = {}
    targets = sorted({c.references for p in schema.collections for c in p.columns
                      if c.convert == "ref" and c.references and c.references not in SYSTEM_TARGETS})
    for name in targets:
        plan = schema.collection(name)
        key = plan.primary_key or "id"
        values: set[Any] = {r[key] for r in plan.rows} if plan.rows is not None else set()  # made here (languages)
        kind = source_types(source, name).get(key) if plan.rows is None else None
        families[name] = key_families({name: values})[name] if plan.rows is not None else \
            "int" if kind in INT_TYPES else "str" if kind in STRING_TYPES - {"json"} else None
        if families[name] == "int" and plan.rows is None:
            families[name] = f"int-in:{key}"
        if families[name] is None or families[name] != "int" and families[name] != "str":
            continue
        table = "v8_int_keys" if families[name] == "int" else "v8_text_keys"
        conn.exec_driver_sql(f"ALTER TABLE {table} ALTER tbl SET DEFAULT {_literal(name)}")
        with cursor.copy(f"COPY {table} (key) FROM STDIN") as copy:
            if plan.rows is not None:
                for value in values:
                    copy.write_row((value,))
            else:
                column = Column(0, key, "plain", kind or "", "text")
                for lines, _ in stream_lines(source, SqlPlan(plan, [column], None, None), BATCH_ROWS, order=False):
                    copy.write(lines)
    cursor.close()
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS v8_int_keys_key ON v8_int_keys (tbl, key)")
    conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS v8_text_keys_key ON v8_text_keys (tbl, key)")
    conn.exec_driver_sql("ANALYZE v8_ids, v8_int_keys, v8_text_keys")
    return families


def _cast(col: Column, value: str) -> str:
    """A staged text → the target column's type, as COPY would read the Python path's value."""
    target = col.target_type
    if target == "text" or target.startswith(("character varying", "character(")):
        return value  # assignment: a value too long fails as it does in COPY
    if target == "date":
        return f"pg_temp.v8_date({value})"
    if target.startswith("time without"):
        return f"(time '00:00' + CAST({value} AS interval))"  # datetime.min + timedelta, then .time()
    return f"CAST({value} AS {target})"


def _timestamp(value: str) -> str:
    # The common case without a subtransaction: a date part every calendar has.
    return (f"CASE WHEN substr({value}, 1, 4) BETWEEN '0001' AND '9999' AND substr({value}, 6, 2) BETWEEN '01' "
            f"AND '12' AND substr({value}, 9, 2) BETWEEN '01' AND '28' THEN CAST({value} AS timestamp) "
            f"ELSE pg_temp.v8_timestamp({value}) END")


def _refs(sql: SqlPlan) -> list[tuple[Column, str, str, str]]:
    """(column, join clause, mapped value expression, condition "points at a row that exists")."""
    out = []
    for col in sql.columns:
        if col.kind != "ref":
            continue
        value, alias, target = f"s.c{col.index}", f"r{col.index}", _literal(col.references or "")
        if col.references in SYSTEM_TARGETS:
            join = f"LEFT JOIN v8_ids {alias} ON {alias}.tbl = {target} AND {alias}.v8 = CAST({value} AS bigint)"
            mapped = f"{alias}.id"
            if col.references == "directus_roles":  # v8's public role: no role in v9, not dangling
                mapped = f"CASE WHEN CAST({value} AS bigint) = 2 THEN NULL ELSE {alias}.id END"
                exists = f"({alias}.id IS NOT NULL OR CAST({value} AS bigint) = 2)"
            else:
                exists = f"{alias}.id IS NOT NULL"
        elif col.source_key:
            join = ""
            mapped = f"CASE WHEN s.e{col.index} = '1' THEN {_cast(col, value)} END"
            exists = f"s.e{col.index} = '1'"
        elif col.source_type in INT_TYPES:
            join = f"LEFT JOIN v8_int_keys {alias} ON {alias}.tbl = {target} AND {alias}.key = CAST({value} AS numeric)"
            mapped = f"CASE WHEN {alias}.key IS NOT NULL THEN {_cast(col, value)} END"
            exists = f"{alias}.key IS NOT NULL"
        else:
            join = f"LEFT JOIN v8_text_keys {alias} ON {alias}.tbl = {target} AND {alias}.key = {value}"
            mapped = f"CASE WHEN {alias}.key IS NOT NULL THEN {_cast(col, value)} END"
            exists = f"{alias}.key IS NOT NULL"
        out.append((col, join, mapped, exists))
    return out


def _expression(sql: SqlPlan, col: Column, mapped: dict[int, str]) -> str:
    value = f"s.c{col.index}"
    if col.kind == "ref":
        return mapped[col.index]
    if col.kind == "bool":
        return f"(CAST({value} AS numeric) <> 0)"
    if col.kind in ("datetime", "timestamp"):
        local = _timestamp(value)
        if sql.zone is None:
            return local if col.kind == "datetime" else f"(({local}) AT TIME ZONE 'UTC')"
        utc = f"pg_temp.v8_utc({local}, {_literal(sql.zone)})"
        return f"({utc} AT TIME ZONE 'UTC')" if col.kind == "datetime" else utc
    if col.kind == "csv_json":
        # Each part stripped = the whitespace around every comma and at both ends removed; then the empties.
        # (A value without whitespace, the usual one, skips the costly regexp_replace.)
        ws = PY_WHITESPACE
        return (f"to_json(array_remove(string_to_array(CASE WHEN {value} ~ {_literal(f'[{ws}]')} THEN "
                f"regexp_replace(btrim({value}, {_literal(ws)}), {_literal(f'[{ws}]*,[{ws}]*')}, ',', 'g') "
                f"ELSE {value} END, ','), ''))")
    if col.kind == "json":
        ws = _literal(PY_WHITESPACE)
        checked = (f"CASE WHEN btrim({value}, {ws}) = '' THEN NULL ELSE (SELECT CASE WHEN j IS NULL THEN "
                   f"to_json({value}) WHEN json_typeof(j) = 'null' THEN NULL ELSE j END FROM "
                   f"(SELECT pg_temp.v8_json({value}) AS j) AS v) END")
        if not sql.trust_json:
            return checked
        # JSON's own whitespace is space, tab, newline and CR: a text whose value is null is "null" within those.
        return (f"CASE WHEN s.v{col.index} = '1' THEN CASE WHEN btrim({value}, E' \\t\\n\\r') = 'null' THEN NULL "
                f"ELSE CAST({value} AS json) END ELSE {checked} END")
    return _cast(col, value)


def start(conn: Connection, sql: SqlPlan) -> None:
    sql.fresh = conn.exec_driver_sql(f'SELECT NOT EXISTS (SELECT 1 FROM "{sql.plan.name}")').scalar() is True
    columns = ", ".join(f"{name} text" for name in sql.staged())
    conn.exec_driver_sql("CREATE TEMPORARY TABLE v8_lines (seq bigint GENERATED BY DEFAULT AS IDENTITY, "
                         f"{columns}) ON COMMIT DELETE ROWS")


def finish(conn: Connection) -> None:
    conn.exec_driver_sql("DROP TABLE v8_lines")


@dataclass
class BatchResult:
    written: int
    references: int
    dangling: list[Dangling]
    unmapped: list[str]


def write_batch(conn: Connection, sql: SqlPlan, lines: bytes) -> BatchResult:
    """COPY the lines into the session table, convert and insert what is not there yet, and report the batch's
    references (inside the caller's transaction; the session table empties itself at commit)."""
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    staged = ", ".join(sql.staged())
    with cursor.copy(f"COPY v8_lines ({staged}) FROM STDIN") as copy:
        copy.write(lines)
    refs = _refs(sql)
    joins = " ".join(join for _, join, _, _ in refs)
    mapped = {col.index: expression for col, _, expression, _ in refs}
    names = ", ".join('"' + col.name.replace('"', '""') + '"' for col in sql.columns)
    ws = _literal(PY_WHITESPACE)
    trusted = "s.v{} = '0' AND " if sql.trust_json else ""
    # One pass over the batch: the converted values, and what the Python path reports in its order (row, then
    # column): dangling references and text that is not JSON; the insert reads the converted values from it.
    flags = [f"s.c{col.index} IS NOT NULL AND NOT {exists} AS d{col.index}" for col, _, _, exists in refs]
    flags += [f"{trusted.format(col.index)}btrim(s.c{col.index}, {ws}) <> '' AND pg_temp.v8_json(s.c{col.index}) "
              f"IS NULL AS j{col.index}" for col in sql.json_columns]
    present = " + ".join(f"(s.c{col.index} IS NOT NULL)::int" for col, *_ in refs) or "0"
    key = f"s.c{sql.key.index}" if sql.key else "NULL"
    converted = ", ".join(f"{_expression(sql, col, mapped)} AS x{col.index}" for col in sql.columns)
    raws = "".join(f", s.c{col.index} AS r{col.index}" for col, *_ in refs)
    reports = [f"SELECT seq, {col.index}, k, r{col.index}, 'ref' FROM c WHERE d{col.index}" for col, *_ in refs]
    reports += [f"SELECT seq, {col.index}, k, NULL, 'json' FROM c WHERE j{col.index}" for col in sql.json_columns]
    cursor.execute(
        f"WITH c AS MATERIALIZED (SELECT s.seq, {key} AS k, {present} AS n{raws}, "
        f"{', '.join([converted, *flags])} FROM v8_lines s {joins}), "
        f'i AS (INSERT INTO "{sql.plan.name}" ({names}) SELECT {", ".join(f"x{col.index}" for col in sql.columns)} '
        f"FROM c{'' if sql.fresh else ' ON CONFLICT DO NOTHING'} RETURNING 1) "
        f"SELECT -1, -1, (SELECT count(*) FROM i)::text, (SELECT sum(n) FROM c)::text, 'count' "
        + "".join(f" UNION ALL {report}" for report in reports) + " ORDER BY 1, 2")
    rows = cursor.fetchall()
    written, present_refs = int(rows[0][2]), int(rows[0][3] or 0)
    dangling: list[Dangling] = []
    unmapped: list[str] = []
    by_index = {col.index: col for col in sql.columns}
    for _, index, key_text, value, kind in rows[1:]:
        col = by_index[index]
        row_key = _typed(key_text, sql.key)
        if kind == "ref":
            dangling.append(Dangling(sql.plan.name, row_key, col.name, _typed(value, col), col.references or ""))
        else:
            unmapped.append(f"{sql.plan.name}.{col.name} of {row_key}: not JSON, kept as a JSON string")
    cursor.close()
    return BatchResult(written, present_refs - len(dangling), dangling, unmapped)


def _typed(text: str | None, col: Column | None) -> Any:
    """A staged text as pymysql gives it: an int for integer columns, else the string."""
    if text is None or col is None:
        return None
    return int(text) if col.source_type in INT_TYPES else text


__all__ = ["BatchResult", "SqlPlan", "export_sql", "finish", "key_families", "setup", "source_types", "sql_plan",
           "start", "stream_lines", "target_types", "write_batch", "zone_of"]

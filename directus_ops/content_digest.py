"""Comparing two databases by content, across engines.

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
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
import sqlalchemy as sa

from . import database
from .database import DatabaseSettings, connect, open_engine, streaming_cursor
from .errors import DatabaseError
from .schema_ddl import Column, Table, reflect


@dataclass(frozen=True)
class TableDigest:
    rows: int
    checksum: str  # hex; equal on two engines when every value is equal
    columns: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"rows": self.rows, "checksum": self.checksum, "columns": list(self.columns)}


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
                with contextlib.closing(streaming_cursor(raw, settings.engine, 10_000)) as cursor:
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

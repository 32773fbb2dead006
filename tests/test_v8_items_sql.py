"""The items step's PostgreSQL fast path (directus_ops/v8/sqlitems.py: MariaDB writes COPY lines, PostgreSQL
converts) writes the same rows as the Python path (RowConverter): the shared v8 sample plus a collection of edge
values (every conversion kind, zero and impossible dates, DST edges, invalid/blank/null JSON and JSON MariaDB
accepts but PostgreSQL does not, CSV with spaces, tabs and empties, dangling references to users, files, folders,
roles and items, v8's Public role, a string-keyed reference, unicode, backslashes, tabs, newlines, NULLs) are
written by both into two real PostgreSQL databases, in UTC and in Europe/Berlin, and compared row by row with
their types (JSON as its parsed value); the dangling lists, counts and notes too; a re-run writes nothing."""

from __future__ import annotations

import uuid
from datetime import timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import pymysql
import pytest
from harness import Databases
from v8_checks import load_v8_sample

from directus_ops.database import DatabaseSettings, connect
from directus_ops.v8 import target
from directus_ops.v8.mapping import build_id_map, plan_schema
from directus_ops.v8.source import read_v8
from directus_ops.v8.writers import PostgresWriter

EDGE_TABLES = """
CREATE TABLE edge_codes (code varchar(20) NOT NULL PRIMARY KEY, label varchar(50)) DEFAULT CHARSET=utf8mb4;
CREATE TABLE edge_values (
  id int(10) unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  owner int, editor int, person int, role_ref int, folder_ref int, file_ref int, author int, code_ref varchar(20),
  flag tinyint(1), flag2 tinyint(1) unsigned, price decimal(12,4), amount decimal(20,0),
  kw varchar(255), data text, data2 longtext,
  created datetime, happened datetime, stamp timestamp NULL DEFAULT NULL, day date, at time,
  n int, big bigint, f double, fl float, yr year,
  title varchar(255), body text, code char(10), uid varchar(36), kind enum('a','b', 'c d')
) DEFAULT CHARSET=utf8mb4;
"""
FIELDS = [("id", "integer", "primary-key"), ("owner", "owner", "owner"), ("editor", "user_updated", "user-updated"),
          ("person", "user", "user"), ("role_ref", "m2o", "many-to-one"), ("folder_ref", "m2o", "many-to-one"),
          ("file_ref", "file", "file"), ("author", "m2o", "many-to-one"), ("code_ref", "m2o", "many-to-one"),
          ("flag", "boolean", "switch"), ("flag2", "boolean", "toggle"), ("price", "decimal", "numeric"),
          ("amount", "decimal", "numeric"), ("kw", "array", "tags"), ("data", "json", "json"),
          ("data2", "json", "code"), ("created", "datetime_created", "datetime-created"),
          ("happened", "datetime", "datetime"), ("stamp", "datetime", "datetime"), ("day", "date", "date"),
          ("at", "time", "time"), ("n", "integer", "numeric"), ("big", "integer", "numeric"),
          ("f", "float", "numeric"), ("fl", "float", "numeric"), ("yr", "integer", "numeric"),
          ("title", "string", "text-input"), ("body", "string", "textarea"), ("code", "string", "text-input"),
          ("uid", "uuid", "uuid"), ("kind", "string", "dropdown")]
RELATIONS = [("role_ref", "directus_roles"), ("folder_ref", "directus_folders"), ("author", "authors"),
             ("code_ref", "edge_codes")]
COLUMNS = ("owner, editor, person, role_ref, folder_ref, file_ref, author, code_ref, flag, flag2, price, amount, kw, "
           "data, data2, created, happened, stamp, day, at, n, big, f, fl, yr, title, body, code, uid, kind")
ROWS: list[tuple[Any, ...]] = [
    (None,) * 30,
    (1, 2, 3, 3, 1, 1, 1, "alpha", 1, 1, Decimal("12.3456"), Decimal("12345678901234567890"), "a,b,c",
     '{"a": 1, "b": [true, null, 1.5], "u": "\\u00e9"}', "[1, 2]", "2019-01-01 00:00:00", "2020-02-29 23:59:59",
     "2021-06-01 12:00:00", "2020-02-29", "12:34:56", -5, 9007199254740993, 0.1, 0.1, 2019,
     "Ünïcode ✓ 日本", "tab\there\nnew line\r\nCR \\ backslash \\N \\t literal", "padded", 
     "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9", "c d"),
    (9999, 9998, 9997, 2, 999, 99999, 99999, "missing", 0, 0, Decimal("-0.0001"), Decimal("0"),
     " spaced , tabbed\t,\t, ,,last\u00a0", "not json", "   \t\n ", "0000-00-00 00:00:00", "2019-00-10 10:00:00",
     "0000-00-00 00:00:00", "0000-00-00", "25:00:00", 0, -1, 1e300, -3.4e38, 0, "", "", "", None, "a"),
    (None, None, None, 99, None, None, None, "ALPHA", 5, 255, None, None, "", "null", '"just a string"',
     "2021-10-31 02:30:00", "2021-03-28 02:30:00", "2021-10-31 01:59:59", "2019-02-28", "00:00:00", None, None,
     -0.0, 1.5, 1901, "quote ' \" `", "ελληνικά\\", "x", None, None),
    (1, 1, 1, 1, 1, 1, 2, "beta", -1, 1, Decimal("99999999.9999"), None, ",,", "{bad json", "1.",
     "2021-10-31 03:30:00", "2016-12-31 23:59:59", "2038-01-19 03:14:07", "9999-12-31", "23:59:59", 2147483647,
     -9223372036854775808, 1.7976931348623157e308, 1.17549e-38, 2155, "emoji 😀", "\\\\server\\share", None,
     None, "b"),
]


def build_edges(url: str) -> None:
    settings = DatabaseSettings.from_url(url)
    conn = pymysql.connect(host="127.0.0.1", user="root", database=settings.database, charset="utf8mb4",
                           autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("SET SESSION max_recursive_iterations = 100000")
        cur.execute("SET SESSION sql_mode = ''")  # zero dates and zero months, as old v8 databases hold them
        for statement in EDGE_TABLES.split(";"):
            if statement.strip():
                cur.execute(statement)
        cur.execute("INSERT INTO directus_collections (collection, managed, hidden, single) VALUES "
                    "('edge_codes', 1, 0, 0), ('edge_values', 1, 0, 0)")
        cur.execute("INSERT INTO directus_fields (collection, field, type, interface, sort) VALUES "
                    "('edge_codes', 'code', 'string', 'primary-key', 1), ('edge_codes', 'label', 'string', "
                    "'text-input', 2)")
        cur.executemany("INSERT INTO directus_fields (collection, field, type, interface, sort) "
                        "VALUES ('edge_values', %s, %s, %s, %s)",
                        [(name, kind, interface, i + 1) for i, (name, kind, interface) in enumerate(FIELDS)])
        cur.executemany("INSERT INTO directus_relations (collection_many, field_many, collection_one) "
                        "VALUES ('edge_values', %s, %s)", RELATIONS)
        cur.executemany("INSERT INTO edge_codes VALUES (%s, %s)", [("alpha", "A"), ("beta", "B"), ("gamma ", "C")])
        cur.executemany(f"INSERT INTO edge_values ({COLUMNS}) VALUES ({', '.join(['%s'] * 30)})", ROWS)
        # And the bulk: many rows through several batches, some dangling, in every conversion kind.
        cur.execute(f"""INSERT INTO edge_values ({COLUMNS})
            WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 12000)
            SELECT IF(i % 97 = 0, 5000 + i, 1 + i % 3), NULL, IF(i % 5 = 0, NULL, 2), 1 + i % 4, NULL,
                   IF(i % 7 = 0, 424242, 1 + i % 4), IF(i % 11 = 0, 77, 1 + i % 4), ELT(1 + i % 4, 'alpha', 'beta',
                   'gamma', NULL), i % 2, i % 3, i / 7, i * 1000003, CONCAT_WS(',', 'x', IF(i % 2, ' y ', ''), i),
                   IF(i % 13 = 0, CONCAT('bad', i), JSON_OBJECT('i', i, 's', CONCAT('é', i))), NULL,
                   TIMESTAMP('2021-10-30 00:00:00') + INTERVAL i * 7 MINUTE,
                   TIMESTAMP('2021-03-27 00:00:00') + INTERVAL i * 11 MINUTE, NULL,
                   DATE('2020-01-01') + INTERVAL i DAY, SEC_TO_TIME(i * 13), i, i * i, i / 3, i / 9, 1901 + i % 200,
                   CONCAT('row ', i, '\\t', 'ü'), REPEAT('\\\\', i % 3), NULL, NULL, ELT(1 + i % 3, 'a', 'b', 'c d')
            FROM n""")


@pytest.fixture(scope="module")
def v8_url(module_databases: Databases) -> str:
    url = load_v8_sample(module_databases)
    build_edges(url)
    return url


def table_rows(settings: DatabaseSettings, table: str, key: str | None) -> list[tuple[Any, ...]]:
    """Every row with each value's Python type (json columns parsed: the same JSON value)."""
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{settings.database}") as conn:
        order = f' ORDER BY "{key}"' if key else ""
        rows = conn.execute(f'SELECT * FROM "{table}"{order}').fetchall()
    return [tuple((type(v).__name__, v) for v in row) for row in rows]


@pytest.mark.parametrize("zone", ["UTC", "Europe/Berlin"])
def test_sql_path_writes_what_the_python_path_writes(module_databases: Databases, v8_url: str, zone: str) -> None:
    v8 = DatabaseSettings.from_url(v8_url)
    source = read_v8(v8_url)
    schema = plan_schema(source)
    ids = build_id_map(source, str(uuid.uuid4()), {})
    tz = timezone.utc if zone == "UTC" else ZoneInfo(zone)
    results = {}
    for in_sql in (True, False):
        settings = DatabaseSettings.from_url(module_databases.create("pg").url)
        with connect(settings) as conn, conn.begin():
            for plan in schema.collections:
                PostgresWriter().create_table(conn, plan, schema)
        unmapped: list[str] = []
        stats = target.write_items(v8, settings, schema, ids, tz, unmapped, in_sql=in_sql)
        again = target.write_items(v8, settings, schema, ids, tz, [], in_sql=in_sql)  # the re-run writes nothing
        assert sum(s.written for s in again.values()) == 0
        rows = {p.name: table_rows(settings, p.name, p.primary_key) for p in schema.collections}
        results[in_sql] = (stats, unmapped, rows)

    (fast, fast_notes, fast_rows), (slow, slow_notes, slow_rows) = results[True], results[False]
    assert {n: s.path for n, s in fast.items()} == {n: "python" if n == "languages" else "sql" for n in fast}
    assert {n: s.path for n, s in slow.items()} == {n: "python" for n in slow}
    assert fast_rows["edge_values"] and len(fast_rows["edge_values"]) == len(ROWS) + 12001
    for name in slow_rows:
        assert len(fast_rows[name]) == len(slow_rows[name]), name
        for mine, theirs in zip(fast_rows[name], slow_rows[name]):
            assert mine == theirs, name
    for name in slow:
        assert (fast[name].read, fast[name].written, fast[name].references) == \
            (slow[name].read, slow[name].written, slow[name].references), name
        assert fast[name].dangling == slow[name].dangling, name
    assert fast_notes == slow_notes
    edge = slow["edge_values"]
    assert edge.dangling and {d.target for d in edge.dangling} == {"directus_users", "directus_files",
                                                                   "directus_folders", "directus_roles", "authors",
                                                                   "edge_codes"}
    assert any("not JSON" in note for note in slow_notes)
    # "1." is JSON to MariaDB's JSON_VALID, not to PostgreSQL nor Python: the batch was done again, each value
    # checked by PostgreSQL.
    assert "edge_values.data2 of 5: not JSON, kept as a JSON string" in fast_notes

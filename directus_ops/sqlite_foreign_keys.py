"""SQLite's foreign keys where its ALTER TABLE and SQLAlchemy's reflection fall short: their names and actions
read from the ``CREATE TABLE`` text and the pragmas, and tables dropped though others reference them (each
referencing table rebuilt without those references: what ``delete`` and a table-scoped SQLite dump need).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection

from .errors import DatabaseError


# -- SQLite: dropping tables that others reference -------------------------------------------------------------
def sqlite_drop_tables(conn: sqlite3.Connection, drop: list[str],
                       before: Callable[[sqlite3.Connection], None] | None = None) -> list[str]:
    """Drop ``drop`` in one transaction. A SQLite foreign key cannot be dropped by ALTER TABLE, so each table
    that stays and references a dropped one is rebuilt without those references (the SQLite documentation's
    twelve-step procedure: new table, rows copied, old dropped, new renamed, indexes and triggers recreated,
    AUTOINCREMENT counter kept). Foreign key enforcement is off meanwhile (it cannot change inside a
    transaction) and put back as it was; ``PRAGMA foreign_key_check`` must find no new violation.
    ``conn`` must be in autocommit mode (``isolation_level=None``). ``before`` runs first inside the write
    transaction (a last check; raising rolls back, nothing changed). Returns the rebuilt tables."""
    assert conn.isolation_level is None, "sqlite_drop_tables controls its own transaction"
    dropped = {t.lower() for t in drop}
    enforced = bool(conn.execute("PRAGMA foreign_keys").fetchone()[0])
    conn.execute("PRAGMA foreign_keys = OFF")
    rebuilt: list[str] = []
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            if before is not None:
                before(conn)
            violations = _sqlite_violations(conn, dropped)
            tables = [r[0] for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
            for table in tables:
                if table.lower() in dropped:
                    continue
                references = [r for r in conn.execute(f"PRAGMA foreign_key_list({_sqlite_quote(table)})")
                              if r[2].lower() in dropped]
                if references:
                    _sqlite_rebuild_without(conn, table, dropped)
                    rebuilt.append(table)
            for table in drop:
                conn.execute(f"DROP TABLE {_sqlite_quote(table)}")
            after = _sqlite_violations(conn, dropped)
            new = {k: v for k, v in after.items() if v > violations.get(k, 0)}
            if new:
                (table, parent), count = next(iter(new.items()))
                raise DatabaseError(f"dropping the tables would break {count} rows of {table} referencing {parent}; "
                                    "nothing was changed")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    finally:
        if enforced:
            conn.execute("PRAGMA foreign_keys = ON")
    return rebuilt


def _sqlite_quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_violations(conn: sqlite3.Connection, ignore_parents: set[str]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for table, _, parent, _ in conn.execute("PRAGMA foreign_key_check"):
        if parent.lower() not in ignore_parents:
            counts[(table, parent)] = counts.get((table, parent), 0) + 1
    return counts


def _sqlite_rebuild_without(conn: sqlite3.Connection, table: str, dropped: set[str]) -> None:
    sql = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)).fetchone()[0]
    temporary = f"{table}__directus_ops_rebuild"
    columns_before = list(conn.execute(f"PRAGMA table_xinfo({_sqlite_quote(table)})"))
    keys_before = [(r[2], r[3], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({_sqlite_quote(table)})")
                   if r[2].lower() not in dropped]
    companions = [r[0] for r in conn.execute(
        "SELECT sql FROM sqlite_master WHERE tbl_name = ? AND type IN ('index', 'trigger') AND sql IS NOT NULL "
        "ORDER BY type, name", (table,))]
    has_sequence = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'").fetchone()
    sequence = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = ?", (table,)).fetchone() if has_sequence else None
    conn.execute(sqlite_table_without_references(sql, dropped, temporary))
    copied = ", ".join(_sqlite_quote(r[1]) for r in columns_before if r[6] == 0)  # not generated columns
    conn.execute(f"INSERT INTO {_sqlite_quote(temporary)} ({copied}) SELECT {copied} FROM {_sqlite_quote(table)}")
    conn.execute(f"DROP TABLE {_sqlite_quote(table)}")
    conn.execute(f"ALTER TABLE {_sqlite_quote(temporary)} RENAME TO {_sqlite_quote(table)}")
    for statement in companions:
        conn.execute(statement)
    if sequence is not None:
        conn.execute("UPDATE sqlite_sequence SET seq = ? WHERE name = ?", (sequence[0], table))
        if conn.execute("SELECT changes()").fetchone()[0] == 0:
            conn.execute("INSERT INTO sqlite_sequence (name, seq) VALUES (?, ?)", (table, sequence[0]))
    columns_after = list(conn.execute(f"PRAGMA table_xinfo({_sqlite_quote(table)})"))
    keys_after = [(r[2], r[3], r[4]) for r in conn.execute(f"PRAGMA foreign_key_list({_sqlite_quote(table)})")]
    if columns_after != columns_before or keys_after != keys_before:
        raise DatabaseError(f"rebuilding SQLite table {table} without its references to the dropped tables changed "
                            "its definition; nothing was changed (report this with the table's CREATE statement)")


_SQL_TOKEN = re.compile(r"""
    (?P<space>\s+|--[^\n]*(?:\n|$)|/\*.*?(?:\*/|$))
  | (?P<ident>"(?:[^"]|"")*"|`(?:[^`]|``)*`|\[[^\]]*\])
  | (?P<string>'(?:[^']|'')*')
  | (?P<word>[A-Za-z0-9_$]+)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
_TABLE_CONSTRAINT_START = {"CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN"}
_FK_ACTIONS = {"SET", "NULL", "DEFAULT", "CASCADE", "RESTRICT", "NO", "ACTION"}


def _unquote(token: str) -> str:
    if token[:1] in '"`':
        return token[1:-1].replace(token[0] * 2, token[0])
    if token[:1] == "[":
        return token[1:-1]
    return token


def sqlite_table_without_references(sql: str, tables: set[str], new_name: str | None = None) -> str:
    """A SQLite ``CREATE TABLE`` statement without its foreign keys to ``tables`` (lower-case names), both table
    constraints (``[CONSTRAINT n] FOREIGN KEY (..) REFERENCES t ...``) and column constraints
    (``[CONSTRAINT n] REFERENCES t ...``); named ``new_name`` if given. Everything else stays as written."""
    tokens, start, end, definitions = _sqlite_split(sql)
    assert start is not None and end is not None, "unbalanced CREATE TABLE statement"
    significant = [i for i, (kind, _) in enumerate(tokens) if kind != "space"]
    kept = []
    for definition in definitions:
        words = [(i, t) for i, (k, t) in enumerate(definition) if k != "space"]
        if not words:
            continue
        first = words[0][1].upper() if definition[words[0][0]][0] == "word" else ""
        if first in _TABLE_CONSTRAINT_START:
            referred = _referred_table(definition, words)
            if referred is not None and referred.lower() in tables:
                continue
            kept.append(definition)
        else:
            kept.append(_column_without_references(definition, words, tables))
    body = ",".join("".join(text for _, text in d) for d in kept)
    head = "".join(text for _, text in tokens[:start])
    if new_name is not None:
        name_index = max(i for i in significant if i < start)
        head = "".join(text for _, text in tokens[:name_index]) + _sqlite_quote(new_name) + \
            "".join(text for _, text in tokens[name_index + 1:start])
    return head + "(" + body + ")" + "".join(text for _, text in tokens[end + 1:])


def sqlite_constraint_names(sql: str) -> dict[tuple[tuple[str, ...], str], str]:
    """Names of the named foreign keys of a SQLite ``CREATE TABLE``, by (columns, referred table), lower-case
    (SQLite's own pragmas do not report them)."""
    names: dict[tuple[tuple[str, ...], str], str] = {}
    for column, definition in _sqlite_definitions(sql):
        words = [t for k, t in definition if k != "space"]
        for position, word in enumerate(words):
            if word.upper() != "CONSTRAINT" or position + 2 >= len(words):
                continue
            name, following = _unquote(words[position + 1]), words[position + 2].upper()
            if following == "FOREIGN" and "(" in words[position + 2:]:
                opening = words.index("(", position + 2)
                closing = words.index(")", opening)
                columns = tuple(_unquote(w).lower() for w in words[opening + 1:closing] if w != ",")
                if closing + 2 < len(words) and words[closing + 1].upper() == "REFERENCES":
                    names[(columns, _unquote(words[closing + 2]).lower())] = name
            elif following == "REFERENCES" and column and position + 3 < len(words):
                names[((column.lower(),), _unquote(words[position + 3]).lower())] = name
    return names


Token = tuple[str | None, str]  # (kind, text)


def _sqlite_split(sql: str) -> tuple[list[Token], int | None, int | None, list[list[Token]]]:
    """A CREATE TABLE's tokens, the index of the ``(`` opening its body and of the ``)`` closing it (None if
    missing), and the body's definitions split at its top-level commas."""
    tokens = [(m.lastgroup, m.group()) for m in _SQL_TOKEN.finditer(sql)]
    start = next((i for i, (kind, text) in enumerate(tokens) if kind == "other" and text == "("), None)
    definitions: list[list[Token]] = [[]]
    if start is None:
        return tokens, None, None, []
    depth, end = 0, None
    for index in range(start + 1, len(tokens)):
        kind, text = tokens[index]
        if kind == "other" and text == ")" and depth == 0:
            end = index
            break
        if kind == "other" and text == "," and depth == 0:
            definitions.append([])
            continue
        depth += {"(": 1, ")": -1}.get(text, 0) if kind == "other" else 0
        definitions[-1].append((kind, text))
    return tokens, start, end, definitions


def _sqlite_definitions(sql: str) -> list[tuple[str | None, list[Token]]]:
    """The column and constraint definitions of a CREATE TABLE, each with its column's name (None for a
    table constraint)."""
    _, _, _, definitions = _sqlite_split(sql)
    out = []
    for definition in definitions:
        significant = [(k, t) for k, t in definition if k != "space"]
        if not significant:
            continue
        kind, first = significant[0]
        is_constraint = kind == "word" and first.upper() in _TABLE_CONSTRAINT_START
        out.append((None if is_constraint else _unquote(first), definition))
    return out


def _referred_table(definition: list, words: list[tuple[int, str]]) -> str | None:
    for position, (_, text) in enumerate(words):
        if text.upper() == "REFERENCES" and position + 1 < len(words):
            return _unquote(words[position + 1][1])
    return None


def _column_without_references(definition: list, words: list[tuple[int, str]], tables: set[str]) -> list:
    """Remove each ``[CONSTRAINT name] REFERENCES t [(cols)] [ON DELETE|UPDATE action | MATCH name |
    [NOT] DEFERRABLE [INITIALLY DEFERRED|IMMEDIATE]]...`` clause naming one of ``tables``."""
    remove: list[tuple[int, int]] = []
    position = 0
    while position < len(words):
        if words[position][1].upper() != "REFERENCES" or position + 1 >= len(words) or \
                _unquote(words[position + 1][1]).lower() not in tables:
            position += 1
            continue
        first = position - 2 if position >= 2 and words[position - 2][1].upper() == "CONSTRAINT" else position
        cursor = position + 2
        if cursor < len(words) and words[cursor][1] == "(":
            while cursor < len(words) and words[cursor][1] != ")":
                cursor += 1
            cursor += 1
        while cursor < len(words):
            word = words[cursor][1].upper()
            if word == "ON" and cursor + 1 < len(words):
                cursor += 2
                while cursor < len(words) and words[cursor][1].upper() in _FK_ACTIONS:
                    cursor += 1
            elif word == "MATCH":
                cursor += 2
            elif word == "NOT" and cursor + 1 < len(words) and words[cursor + 1][1].upper() == "DEFERRABLE":
                cursor += 1
            elif word == "DEFERRABLE":
                cursor += 1
                if cursor < len(words) and words[cursor][1].upper() == "INITIALLY":
                    cursor += 2
            else:
                break
        last = words[cursor - 1][0]
        remove.append((words[first][0], last))
        position = cursor
    if not remove:
        return definition
    return [token for i, token in enumerate(definition) if not any(a <= i <= b for a, b in remove)]



def sqlite_key_actions(conn: Connection, table: str) -> dict[tuple[tuple[str, ...], str], tuple[str | None, str | None]]:
    """(columns, referred table), lowercased -> (ON DELETE, ON UPDATE) of each foreign key of a SQLite table,
    from ``PRAGMA foreign_key_list``; NO ACTION (the default) is None, as the other engines' reflection says."""
    rows = conn.exec_driver_sql(f"PRAGMA foreign_key_list({_sqlite_quote(table)})").fetchall()
    by_id: dict[int, list[Any]] = {}
    for key_id, seq, referred, column, _to, on_update, on_delete, _match in rows:
        by_id.setdefault(key_id, []).append((seq, column, referred, on_delete, on_update))
    actions = {}
    for parts in by_id.values():
        parts.sort()
        _, _, referred, on_delete, on_update = parts[0]
        actions[(tuple(str(p[1]).lower() for p in parts), str(referred).lower())] = (
            None if (on_delete or "NO ACTION").upper() == "NO ACTION" else on_delete,
            None if (on_update or "NO ACTION").upper() == "NO ACTION" else on_update)
    return actions

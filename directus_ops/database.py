"""The project's database: settings from the Directus config, the one way to open it, and per-engine
dump / restore / emptiness checks with the engine's native tools.

Engines: PostgreSQL (``DB_CLIENT=pg``), MySQL and MariaDB (``mysql``), SQLite (``sqlite3``).
Passwords never reach a command line nor a file: PostgreSQL tools get ``PGPASSWORD``, MySQL tools a
``--defaults-extra-file`` that is an inherited pipe (``/dev/fd/N``).
"""

from __future__ import annotations

import contextlib
import contextvars
import fcntl
import io
import os
import queue
import re
import shutil
import sqlite3
import struct
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any, Literal, cast

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from . import faults, process, workdir
from .config import DirectusConfig
from .errors import ConfigError, DatabaseError, TargetNotEmpty
from .redact import redact, register_secret

Engine_ = Literal["postgresql", "mysql", "sqlite"]

# DB_CLIENT values Directus accepts, mapped to the engines this tool supports.
CLIENTS: dict[str, Engine_] = {"pg": "postgresql", "postgres": "postgresql", "mysql": "mysql", "sqlite3": "sqlite"}
SUPPORTED_CLIENTS_TEXT = "pg, mysql (MySQL and MariaDB), sqlite3"
_PG_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
CONNECT_TIMEOUT_SECONDS = 10


class DatabaseUnreachable(DatabaseError):
    """The server did not accept a connection (may be transient: flows retry it)."""

    transient = True


@dataclass(frozen=True)
class DatabaseSettings:
    """Where a project's database is; built from the Directus config or from a ``--database-url``."""

    engine: Engine_
    database: str = ""
    host: str | None = None
    port: int | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    socket_path: str | None = None
    filename: Path | None = None  # sqlite
    search_path: str | None = None  # postgresql schema
    ssl: bool = False
    exclude_tables: tuple[str, ...] = ()

    # -- construction -----------------------------------------------------------------------------------------
    @classmethod
    def from_config(cls, config: DirectusConfig, project_root: Path) -> DatabaseSettings:
        where = config.path or "the config"
        client = config.text("DB_CLIENT")
        if not client:
            raise ConfigError(f"DB_CLIENT is not set in {where}; set DB_CLIENT to one of: {SUPPORTED_CLIENTS_TEXT}")
        engine = CLIENTS.get(client.strip().lower())
        if engine is None:
            raise ConfigError(
                f"DB_CLIENT={client} in {where} is not supported by directus-ops; supported: {SUPPORTED_CLIENTS_TEXT}"
            )
        exclude = tuple(config.list("DB_EXCLUDE_TABLES"))
        if engine == "sqlite":
            filename = config.text("DB_FILENAME")
            if not filename:
                raise ConfigError(f"DB_FILENAME is not set in {where}; DB_CLIENT=sqlite3 needs the database file path")
            path = Path(filename).expanduser()
            return cls(engine="sqlite", filename=path if path.is_absolute() else project_root / path,
                       database=Path(filename).name, exclude_tables=exclude)
        ssl = config.flag("DB_SSL") or any(k.startswith("DB_SSL__") for k in config.values)
        search_path = config.list("DB_SEARCH_PATH")
        connection_string = config.text("DB_CONNECTION_STRING")
        if connection_string:
            parsed = cls.from_url(connection_string if "://" in connection_string else _libpq_to_url(connection_string),
                                  default_engine=engine)
            return replace(parsed, search_path=search_path[0] if search_path else parsed.search_path,
                           ssl=parsed.ssl or ssl, exclude_tables=exclude)
        database = config.text("DB_DATABASE") or ""
        if not database:
            raise ConfigError(f"DB_DATABASE is not set in {where}; set it to the name of the project's database")
        port = config.text("DB_PORT")
        return cls(
            engine=engine,
            database=database,
            host=config.text("DB_HOST") or ("localhost" if not config.text("DB_SOCKET_PATH") else None),
            port=int(float(port)) if port else None,
            user=config.text("DB_USER"),
            password=config.text("DB_PASSWORD"),
            socket_path=config.text("DB_SOCKET_PATH"),
            search_path=search_path[0] if search_path else None,
            ssl=ssl,
            exclude_tables=exclude,
        )

    @classmethod
    def from_url(cls, url: str, default_engine: Engine_ | None = None) -> DatabaseSettings:
        """Parse ``postgresql://u:p@h:5432/db``, ``mysql://…``, ``mariadb://…`` or ``sqlite:///path``."""
        try:
            parsed = sa.make_url(url)
        except Exception:
            raise ConfigError(
                "cannot parse the database URL; use postgresql://USER:PASSWORD@HOST:PORT/DB, mysql://… or sqlite:///PATH"
            ) from None
        backend = parsed.get_backend_name()
        engine: Engine_ | None = {"postgresql": "postgresql", "postgres": "postgresql", "mysql": "mysql",
                                  "mariadb": "mysql", "sqlite": "sqlite"}.get(backend, None)  # type: ignore[assignment]
        if engine is None:
            raise ConfigError(f"database URL scheme '{backend}' is not supported; use postgresql://, mysql:// or sqlite:///")
        if default_engine and engine != default_engine:
            raise ConfigError(f"the connection string is for {engine} but DB_CLIENT says {default_engine}; make them agree")
        if parsed.password:
            register_secret(parsed.password)
        if engine == "sqlite":
            if not parsed.database:
                raise ConfigError("a sqlite:/// URL needs a file path, e.g. sqlite:////srv/directus/data.db")
            return cls(engine="sqlite", filename=Path(parsed.database).expanduser().resolve(), database=Path(parsed.database).name)
        if not parsed.database:
            raise ConfigError("the database URL has no database name; add /DBNAME at its end")
        query = dict(parsed.query)
        return cls(
            engine=engine,
            database=parsed.database,
            host=parsed.host or ("localhost" if "unix_socket" not in query else None),
            port=parsed.port,
            user=parsed.username,
            password=parsed.password,
            socket_path=query.get("unix_socket") or query.get("host") if not parsed.host else None,  # type: ignore[arg-type]
            ssl=query.get("sslmode") in ("require", "verify-ca", "verify-full") or query.get("ssl") == "true",
        )

    # -- views of the settings -----------------------------------------------------------------------------
    def url(self, database: str | None = None) -> URL:
        """The SQLAlchemy URL (with the password inside: render it only with ``hide_password=True``)."""
        if self.engine == "sqlite":
            return URL.create("sqlite", database=str(self.filename))
        query: dict[str, str] = {}
        if self.engine == "postgresql":
            if self.socket_path:
                query["host"] = self.socket_path
            if self.ssl:
                query["sslmode"] = "require"
            return URL.create("postgresql+psycopg", username=self.user, password=self.password, host=self.host,
                              port=self.port, database=database if database is not None else self.database, query=query)
        if self.socket_path:
            query["unix_socket"] = self.socket_path
        return URL.create("mysql+pymysql", username=self.user, password=self.password, host=self.host,
                          port=self.port, database=database if database is not None else self.database,
                          query={**query, "charset": "utf8mb4"})

    def describe(self) -> str:
        """Human text naming the database without secrets, e.g. ``PostgreSQL database "app" at 127.0.0.1:5432``."""
        if self.engine == "sqlite":
            return f"SQLite database {self.filename}"
        name = {"postgresql": "PostgreSQL", "mysql": "MySQL/MariaDB"}[self.engine]
        where = self.socket_path or f"{self.host}:{self.port or default_port(self.engine)}"
        return f'{name} database "{self.database}" at {where}'

    def config_values(self) -> dict[str, Any]:
        """The ``DB_*`` variables that point Directus at this database."""
        if self.engine == "sqlite":
            return {"DB_CLIENT": "sqlite3", "DB_FILENAME": str(self.filename)}
        values: dict[str, Any] = {"DB_CLIENT": "pg" if self.engine == "postgresql" else "mysql",
                                  "DB_DATABASE": self.database}
        if self.socket_path:
            values["DB_SOCKET_PATH"] = self.socket_path
        if self.host:
            values["DB_HOST"] = self.host
        values["DB_PORT"] = self.port or default_port(self.engine)
        if self.user:
            values["DB_USER"] = self.user
        if self.password:
            values["DB_PASSWORD"] = self.password
        if self.search_path:
            values["DB_SEARCH_PATH"] = self.search_path
        return values


DB_CONFIG_KEYS = frozenset({"DB_CLIENT", "DB_HOST", "DB_PORT", "DB_DATABASE", "DB_USER", "DB_PASSWORD", "DB_FILENAME",
                            "DB_CONNECTION_STRING", "DB_SOCKET_PATH", "DB_SEARCH_PATH"})


def default_port(engine: Engine_) -> int:
    return {"postgresql": 5432, "mysql": 3306}.get(engine, 0)


def same_database(a: DatabaseSettings, b: DatabaseSettings) -> bool:
    """Whether two settings name one database (a SQLite file by its resolved path; a server's port defaulted,
    so ``host`` and ``host:5432`` are the same)."""
    if a.engine != b.engine:
        return False
    if a.engine == "sqlite":
        return bool(a.filename and b.filename and Path(a.filename).resolve() == Path(b.filename).resolve())
    return (a.host, a.port or default_port(a.engine), a.socket_path, a.database) == \
        (b.host, b.port or default_port(b.engine), b.socket_path, b.database)


def _libpq_to_url(conninfo: str) -> str:
    from psycopg.conninfo import conninfo_to_dict

    try:
        parts = conninfo_to_dict(conninfo)
    except Exception:
        raise ConfigError("cannot parse DB_CONNECTION_STRING; use postgresql://USER:PASSWORD@HOST:PORT/DB") from None

    def part(key: str) -> str | None:  # typed str | int | None; parsed from a string, a value is a str
        value = parts.get(key)
        return None if value is None else str(value)

    port = part("port")
    url = URL.create("postgresql", username=part("user"), password=part("password"), host=part("host"),
                     port=int(port) if port else None, database=part("dbname"))
    return url.render_as_string(hide_password=False)


# -- the one way to open a database ------------------------------------------------------------------------------
def open_engine(settings: DatabaseSettings, database: str | None = None, **kwargs: Any) -> Engine:
    connect_args: dict[str, Any] = {}
    if settings.engine == "postgresql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
        if settings.search_path:
            connect_args["options"] = f"-c search_path={settings.search_path}"
    elif settings.engine == "mysql":
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_SECONDS
    return sa.create_engine(settings.url(database), connect_args=connect_args, pool_pre_ping=True, **kwargs)


@contextlib.contextmanager
def connect(settings: DatabaseSettings, database: str | None = None, **kwargs: Any) -> Iterator[Connection]:
    """Open a connection, translating connection failures into one clear DatabaseUnreachable."""
    if settings.engine == "sqlite" and not (settings.filename and settings.filename.exists()):
        raise DatabaseUnreachable(f"{settings.describe()} does not exist; check DB_FILENAME")
    engine = open_engine(settings, database, **kwargs)
    try:
        try:
            connection = engine.connect()
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            reason = _connect_reason(exc)
            raise DatabaseUnreachable(
                f"cannot connect to {settings.describe()}: {reason}; check the DB_* settings and that the server is running"
            ) from None
        with connection:
            yield connection
    finally:
        engine.dispose()


def server_version(settings: DatabaseSettings) -> str:
    if settings.engine == "sqlite":
        return sqlite3.sqlite_version
    with connect(settings) as conn:
        if settings.engine == "postgresql":
            return str(conn.execute(sa.text("SHOW server_version")).scalar()).split(" ")[0]
        return str(conn.execute(sa.text("SELECT VERSION()")).scalar())


def _quote(conn: Connection, name: str) -> str:
    return conn.dialect.identifier_preparer.quote(name)


def list_tables(conn: Connection) -> list[str]:
    """Every base table the dump covers; PostgreSQL tables outside ``public`` are named ``schema.table``."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        rows = conn.execute(sa.text(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%' "
            "ORDER BY 1, 2"))
        return [name if schema == "public" else f"{schema}.{name}" for schema, name in rows]
    if dialect == "mysql":
        rows = conn.execute(sa.text(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE() "
            "AND table_type = 'BASE TABLE' ORDER BY 1"))
        return [r[0] for r in rows]
    rows = conn.execute(sa.text(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1"))
    return [r[0] for r in rows]


def quote_table(conn: Connection, table: str) -> str:
    """A table as ``list_tables`` names it, quoted for SQL: on PostgreSQL always ``schema.table``, quoted part
    by part (a plain name is public's, also when DB_SEARCH_PATH puts another schema first)."""
    if conn.dialect.name == "postgresql":
        schema, name = table.split(".", 1) if "." in table else ("public", table)
        return f"{_quote(conn, schema)}.{_quote(conn, name)}"
    return _quote(conn, table)


def count_rows(conn: Connection, tables: list[str] | None = None) -> dict[str, int]:
    counts = {}
    for table in tables if tables is not None else list_tables(conn):
        counts[table] = int(conn.execute(sa.text(f"SELECT count(*) FROM {quote_table(conn, table)}")).scalar() or 0)
    return counts


def applied_migrations(conn: Connection) -> list[str]:
    return sorted(migration_history(conn))


def directus_file_names(conn: Connection, storage: str) -> list[str] | None:
    """``filename_disk`` of every ``directus_files`` row in storage location ``storage`` (None: no
    ``directus_files`` table, so not a Directus database to check against)."""
    if "directus_files" not in list_tables(conn):
        return None
    rows = conn.execute(sa.text("SELECT filename_disk FROM directus_files WHERE storage = :storage "
                                "AND filename_disk IS NOT NULL"), {"storage": storage})
    return list(rows.scalars())  # no Row object per file (10,000 of them in a large project)


def migration_history(conn: Connection) -> list[str]:
    """Applied migration keys in the order Directus applied them (``migrate:down`` reverts the last one)."""
    if "directus_migrations" not in list_tables(conn):
        return []
    return [r[0] for r in conn.execute(sa.text("SELECT version FROM directus_migrations ORDER BY timestamp, version"))]


# -- system tables and foreign keys ------------------------------------------------------------------------------
SYSTEM_PREFIX = "directus_"


def project_schema(settings: DatabaseSettings) -> str | None:
    """The PostgreSQL schema holding the project's tables: DB_SEARCH_PATH's first schema, else public (None on
    the other engines)."""
    return (settings.search_path or "public") if settings.engine == "postgresql" else None


def is_system_table(name: str, schema: str | None = None) -> bool:
    """A Directus system table (of the project's PostgreSQL ``schema``; ``name`` as ``list_tables`` gives it,
    ``schema.table`` outside public): compared in Python, because ``_`` is a wildcard in SQL's LIKE."""
    return name.startswith(SYSTEM_PREFIX if schema in (None, "public") else f"{schema}.{SYSTEM_PREFIX}")


@dataclass(frozen=True)
class ForeignKey:
    """One foreign key constraint as the database reports it."""

    table: str
    name: str | None  # SQLite allows unnamed constraints
    columns: tuple[str, ...]
    referred_table: str
    referred_columns: tuple[str, ...]
    on_delete: str | None = None  # as the database reports it: CASCADE, SET NULL, ...
    on_update: str | None = None

    def describe(self) -> str:
        return (f"{self.table}.{self.name or '(unnamed)'} ({', '.join(self.columns)}) -> "
                f"{self.referred_table} ({', '.join(self.referred_columns)})")


def foreign_keys(conn: Connection) -> list[ForeignKey]:
    """Every foreign key of the tables in the default schema (where Directus keeps its tables), the tables
    named as ``list_tables`` names them (``schema.table`` for a PostgreSQL schema other than public)."""
    default = conn.dialect.default_schema_name

    def named(schema: str | None, table: str) -> str:
        schema = schema or default
        return f"{schema}.{table}" if conn.dialect.name == "postgresql" and schema != "public" else table

    found = []
    for (_, table), keys in sa.inspect(conn).get_multi_foreign_keys().items():
        names: dict[tuple[tuple[str, ...], str], str] = {}
        actions: dict[tuple[tuple[str, ...], str], tuple[str | None, str | None]] = {}
        if conn.dialect.name == "sqlite":
            if any(not k.get("name") for k in keys):
                sql = conn.execute(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = :t"),
                                   {"t": table}).scalar()
                names = sqlite_constraint_names(sql or "")
            actions = _sqlite_key_actions(conn, table)
        for key in keys:
            if key.get("referred_schema") not in (None, default):
                continue
            columns = tuple(key["constrained_columns"])
            match = (tuple(c.lower() for c in columns), key["referred_table"].lower())
            name = key.get("name") or names.get(match)
            options = key.get("options") or {}
            # SQLAlchemy parses the actions out of SQLite's CREATE TABLE text and misses them on the
            # backtick-quoted constraints knex writes for Directus; SQLite's own PRAGMA has them.
            on_delete, on_update = actions.get(match, (options.get("ondelete"), options.get("onupdate")))
            found.append(ForeignKey(named(None, table), name, columns, named(None, key["referred_table"]),
                                    tuple(key["referred_columns"]), on_delete, on_update))
    return sorted(found, key=lambda k: (k.table, k.name or "", k.columns))


def _sqlite_key_actions(conn: Connection, table: str) -> dict[tuple[tuple[str, ...], str], tuple[str | None, str | None]]:
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


def scope_tables(tables: list[str], scope: str, schema: str | None = None) -> list[str]:
    """The tables a dump of ``scope`` covers: entire, system (``directus_*`` of the project's ``schema``) or
    project (the others)."""
    if scope == "entire":
        return list(tables)
    if scope == "system":
        return [t for t in tables if is_system_table(t, schema)]
    if scope == "project":
        return [t for t in tables if not is_system_table(t, schema)]
    raise ConfigError(f"database scope {scope!r} is not one of: entire, system, project")


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


# -- dump --------------------------------------------------------------------------------------------------------
@dataclass
class DumpResult:
    tool: str  # e.g. "pg_dump (PostgreSQL) 15.19"
    format: str  # "pg_dump-custom" | "mysql-sql" | "sqlite-file"
    server_version: str
    row_counts: dict[str, int]
    extra: dict[str, Any] = field(default_factory=dict)


def _pg_env(settings: DatabaseSettings, database: str | None = None) -> dict[str, str]:
    env = {"PGDATABASE": database or settings.database, "PGCONNECT_TIMEOUT": str(CONNECT_TIMEOUT_SECONDS)}
    if settings.socket_path or settings.host:
        env["PGHOST"] = settings.socket_path or settings.host  # type: ignore[assignment]
    if settings.port:
        env["PGPORT"] = str(settings.port)
    if settings.user:
        env["PGUSER"] = settings.user
    if settings.password:
        env["PGPASSWORD"] = settings.password
    if settings.ssl:
        env["PGSSLMODE"] = "require"
    if settings.search_path:
        env["PGOPTIONS"] = f"-c search_path={settings.search_path}"
    return env


@contextlib.contextmanager
def _mysql_defaults_file(settings: DatabaseSettings) -> Iterator[tuple[str, int]]:
    """The client options (password included) as an option file that is never on disk: a pipe holding the text,
    its read end inherited by the tool as ``/dev/fd/N``. Yields (the ``--defaults-extra-file`` path, the fd to
    pass). MariaDB and MySQL clients read it like a file (their world-writable check does not apply to a pipe);
    unlike ``MYSQL_PWD`` it is not in the child's environment, which MySQL 8 deprecates for passwords."""
    lines = ["[client]"]
    if settings.host:
        lines.append(f"host={settings.host}")
    if settings.port:
        lines.append(f"port={settings.port}")
    if settings.socket_path:
        lines.append(f"socket={settings.socket_path}")
    if settings.user:
        lines.append(f"user={settings.user}")
    if settings.password is not None:
        escaped = settings.password.replace("\\", "\\\\").replace('"', '\\"')
        lines.append(f'password="{escaped}"')
    if settings.ssl:
        lines.append("ssl=1")
    text = ("\n".join(lines) + "\n").encode()
    read_end, write_end = os.pipe()
    try:
        # A few hundred bytes: far below the pipe's buffer, so the write never blocks waiting for the reader.
        os.write(write_end, text)
        os.close(write_end)
        write_end = -1
        yield f"/dev/fd/{read_end}", read_end
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def _tool_version(tool: str) -> str:
    with contextlib.suppress(Exception):
        return process.run([tool, "--version"], timeout=30).strip().splitlines()[0]
    return Path(tool).name


def pg_tool(name: str) -> str:
    return process.find_tool(name, purpose=f"dump and restore PostgreSQL databases ({name})",
                             install_hint="install the PostgreSQL client, e.g. `apt-get install postgresql-client`")


def mysql_tool(kind: Literal["dump", "client"], server_version_text: str = "") -> str:
    mariadb = "mariadb" in server_version_text.lower()
    names = {"dump": ["mariadb-dump", "mysqldump"], "client": ["mariadb", "mysql"]}[kind]
    if server_version_text and not mariadb:
        names.reverse()
    return process.find_tool(*names, purpose=f"{'dump' if kind == 'dump' else 'restore'} MySQL/MariaDB databases",
                             install_hint="install the MariaDB or MySQL client, e.g. `apt-get install mariadb-client`")


def dump(settings: DatabaseSettings, consume: Callable[[IO[bytes]], None], staging_dir: Path,
         tables: list[str] | None = None) -> DumpResult:
    """Dump the database (only the exact ``tables`` if given), handing the dump's byte stream to ``consume``;
    return what the manifest records.

    Row counts come from the same consistent view as the dump where the engine allows it (PostgreSQL: an
    exported snapshot shared with ``pg_dump``; SQLite: the backup copy itself).
    """
    if settings.engine == "postgresql":
        return _dump_postgresql(settings, consume, tables)
    if settings.engine == "mysql":
        return _dump_mysql(settings, consume, tables)
    return _dump_sqlite(settings, consume, staging_dir, tables)


# A dump tool writes its stdout in 4 KiB pieces into a 64 KiB pipe: read as they come, that is a wake-up per piece
# (a CPU-second per GB in Python), and while the consumer hashes and compresses a MiB the pipe fills and the dump
# waits (mariadb-dump, measured: 20% of its time). So the pipe is widened, drained by a thread of its own into a
# bounded queue, and read only once it holds a good share: the dump never waits on the consumer's CPU bursts.
_PIPE_SIZE = 1024 * 1024  # what Linux lets any user ask for (/proc/sys/fs/pipe-max-size), unless lowered
_DRAIN_BACKLOG = 64  # chunks of up to _PIPE_SIZE held for a consumer that falls behind


class _DrainedPipe(io.RawIOBase):
    """The read end of a pipe, emptied in big reads by a thread of its own; ``read`` hands out its chunks.

    Closing it (a consumer that failed) makes the thread stop and close the pipe, so the writer gets EPIPE."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self.pipe, self.fd = pipe, pipe.fileno()
        with contextlib.suppress(OSError, AttributeError, ValueError):
            fcntl.fcntl(self.fd, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        with contextlib.suppress(OSError, AttributeError, ValueError):
            self.capacity = fcntl.fcntl(self.fd, fcntl.F_GETPIPE_SZ)
        self.capacity = getattr(self, "capacity", 65536)
        # Waiting for the pipe to fill is only safe when it holds more than the dump writes meanwhile.
        self.pause = 0.002 if self.capacity >= _PIPE_SIZE // 2 else 0.0
        self.chunks: queue.Queue[bytes | BaseException] = queue.Queue(_DRAIN_BACKLOG)
        self.current = memoryview(b"")
        self.stopping = threading.Event()
        self.ended = False
        self.thread = threading.Thread(target=self._drain, name="dump-drain", daemon=True)
        self.thread.start()

    def _waiting(self) -> int:
        try:
            return struct.unpack("i", fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0"))[0]
        except OSError:
            return self.capacity  # cannot tell: just read

    def _drain(self) -> None:
        try:
            while not self.stopping.is_set():
                if self.pause and self._waiting() < self.capacity // 2:
                    time.sleep(self.pause)  # the dump writes ~0.2 MB meanwhile: one read instead of fifty
                chunk = os.read(self.fd, self.capacity)  # blocks only on an empty pipe
                self._hand(chunk)
                if not chunk:
                    return
        except BaseException as exc:  # handed to the reader
            self._hand(exc)

    def _hand(self, item: bytes | BaseException) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(queue.Full):
                self.chunks.put(item, timeout=0.5)
                return

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        if not self.current and not self.ended:
            item = self.chunks.get()
            if isinstance(item, BaseException):
                self.chunks.put(item)  # again for a later read
                raise item
            self.ended = not item
            self.current = memoryview(item)
        if len(self.current) <= size:  # usually: the whole chunk, not copied
            chunk, self.current = self.current, memoryview(b"")
            whole = chunk.obj  # the queued bytes themselves
            return whole if isinstance(whole, bytes) and len(chunk) == len(whole) else bytes(chunk)
        chunk, self.current = self.current[:size], self.current[size:]
        return bytes(chunk)

    def readinto(self, target: Any) -> int:
        chunk = self.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)

    def close(self) -> None:
        if not self.closed:
            self.stopping.set()
            self.thread.join(timeout=5)
            self.pipe.close()
        super().close()


def _consume_in_thread(stream: IO[bytes], consume: Callable[[IO[bytes]], None]) -> Callable[[], None]:
    """Run ``consume(stream)`` in a thread so the caller can count rows meanwhile; return a join that re-raises."""
    failure: list[BaseException] = []

    def target() -> None:
        try:
            consume(stream)
        except BaseException as exc:  # handed back to the caller by join()
            failure.append(exc)
            with contextlib.suppress(Exception):
                stream.close()

    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,), name="dump-consumer", daemon=True)
    thread.start()

    def join() -> None:
        thread.join()
        if failure:
            raise failure[0]

    return join


def _pg_table_pattern(table: str) -> str:
    """A ``pg_dump --table`` pattern matching exactly one table (named as ``list_tables`` does: a plain name is
    in public, whatever the search path): inside double quotes nothing is a wildcard."""
    schema, name = table.split(".", 1) if "." in table else ("public", table)
    return ".".join('"' + part.replace('"', '""') + '"' for part in (schema, name))


def _dump_postgresql(settings: DatabaseSettings, consume: Callable[[IO[bytes]], None],
                     tables: list[str] | None = None) -> DumpResult:
    pg_dump = pg_tool("pg_dump")
    with connect(settings, isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            version = str(conn.execute(sa.text("SHOW server_version")).scalar()).split(" ")[0]
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar()
            args = [pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}"]
            args += [f"--table={_pg_table_pattern(t)}" for t in tables or ()]
            with process.spawn(args, env=_pg_env(settings), stdout_pipe=True) as proc:
                assert proc.stdout is not None
                join = _consume_in_thread(proc.stdout, consume)
                counts = count_rows(conn, tables)  # same snapshot as pg_dump sees
                join()
    return DumpResult(tool=_tool_version(pg_dump), format="pg_dump-custom", server_version=version, row_counts=counts)


def _dump_mysql(settings: DatabaseSettings, consume: Callable[[IO[bytes]], None],
                tables: list[str] | None = None) -> DumpResult:
    with connect(settings) as conn:
        version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
        charset, collation = conn.execute(sa.text(
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "
            "WHERE schema_name = DATABASE()")).one()
        dump_tool = mysql_tool("dump", version)
        with _mysql_defaults_file(settings) as (defaults, defaults_fd):
            args = [dump_tool, f"--defaults-extra-file={defaults}", "--single-transaction", "--quick", "--routines",
                    "--triggers", "--hex-blob", "--no-tablespaces", "--default-character-set=utf8mb4",
                    settings.database, *(tables or ())]  # table names after the database are exact, not patterns
            conn.execute(sa.text("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(sa.text("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
            with process.spawn(args, stdout_pipe=True, pass_fds=[defaults_fd]) as proc:
                assert proc.stdout is not None
                # A RawIOBase reads as IO[bytes] does; typeshed keeps the two types apart.
                join = _consume_in_thread(cast(IO[bytes], _DrainedPipe(proc.stdout)), consume)
                counts = count_rows(conn, tables)  # started with the dump; equal unless rows change during the dump's start
                join()
            conn.execute(sa.text("COMMIT"))
    return DumpResult(tool=_tool_version(dump_tool), format="mysql-sql", server_version=version, row_counts=counts,
                      extra={"charset": charset, "collation": collation})


def _dump_sqlite(settings: DatabaseSettings, consume: Callable[[IO[bytes]], None], staging_dir: Path,
                 keep: list[str] | None = None) -> DumpResult:
    source_path = settings.filename
    assert source_path is not None
    if not source_path.is_file():
        raise DatabaseUnreachable(f"{settings.describe()} does not exist; check DB_FILENAME")
    copy_path = staging_dir / "database.sqlite"
    source = sqlite3.connect(f"file:{source_path}?mode=ro", uri=True, timeout=30)
    try:
        target = sqlite3.connect(copy_path)
        try:
            source.backup(target)  # SQLite's online backup API: a consistent copy while Directus runs
            if keep is not None:
                _sqlite_keep_only(target, keep)
            tables = [r[0] for r in target.execute(
                "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY 1")]
            counts = {t: int(target.execute(f'SELECT count(*) FROM "{t.replace(chr(34), chr(34) * 2)}"').fetchone()[0])
                      for t in tables}
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise DatabaseError(f"cannot back up {settings.describe()}: {exc}") from None
    finally:
        source.close()
    try:
        with open(copy_path, "rb") as stream:
            consume(stream)
    finally:
        copy_path.unlink(missing_ok=True)
    return DumpResult(tool=f"sqlite3 online backup API (SQLite {sqlite3.sqlite_version})", format="sqlite-file",
                      server_version=sqlite3.sqlite_version, row_counts=counts)


def _sqlite_keep_only(copy: sqlite3.Connection, keep: list[str]) -> None:
    """A table-scoped SQLite dump: the other tables dropped from the copy (the tables kept lose their foreign
    keys to them, as a delete leaves them), and the freed pages erased (VACUUM) so none of their rows remain."""
    wanted = set(keep)
    tables = [r[0] for r in copy.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")]
    previous = copy.isolation_level
    copy.isolation_level = None
    try:
        sqlite_drop_tables(copy, [t for t in tables if t not in wanted])
        copy.execute("VACUUM")
    finally:
        copy.isolation_level = previous


# -- restore -----------------------------------------------------------------------------------------------------
def ensure_database(settings: DatabaseSettings, charset: str | None = None, collation: str | None = None) -> bool:
    """Create the target database if it does not exist; return True if it was created."""
    if settings.engine == "sqlite":
        assert settings.filename is not None
        settings.filename.parent.mkdir(parents=True, exist_ok=True)
        return False
    if settings.engine == "postgresql":
        with connect(settings, database="postgres", isolation_level="AUTOCOMMIT") as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": settings.database}).first()
            if exists:
                return False
            try:
                conn.execute(sa.text(f"CREATE DATABASE {_quote(conn, settings.database)}"))
            except sa.exc.DBAPIError as exc:
                raise DatabaseError(f"cannot create {settings.describe()}: {_reason(exc)}; create it first") from None
            return True
    with connect(settings, database="") as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :d"),
                              {"d": settings.database}).first()
        if exists:
            return False
        clause = f" CHARACTER SET {charset}" if charset else " CHARACTER SET utf8mb4"
        if collation:
            clause += f" COLLATE {collation}"
        try:
            conn.execute(sa.text(f"CREATE DATABASE {_quote(conn, settings.database)}{clause}"))
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(f"cannot create {settings.describe()}: {_reason(exc)}; create it first") from None
        return True


def database_exists(settings: DatabaseSettings) -> bool:
    if settings.engine == "sqlite":
        return bool(settings.filename and settings.filename.exists())
    if settings.engine == "postgresql":
        with connect(settings, database="postgres") as conn:
            return conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"), {"d": settings.database}).first() is not None
    with connect(settings, database="") as conn:
        return conn.execute(sa.text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :d"),
                            {"d": settings.database}).first() is not None


def table_count(settings: DatabaseSettings) -> int:
    """How many tables (and views, sequences) the database holds; 0 for a database that does not exist yet."""
    if not database_exists(settings):
        return 0
    if settings.engine == "sqlite":
        if settings.filename and settings.filename.stat().st_size == 0:
            return 0
    with connect(settings) as conn:
        if settings.engine == "postgresql":
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.relkind IN ('r','p','v','m','S','f') AND n.nspname NOT IN ('pg_catalog','information_schema') "
                "AND n.nspname NOT LIKE 'pg\\_%'")).scalar() or 0)
        if settings.engine == "mysql":
            return int(conn.execute(sa.text(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE()")).scalar() or 0)
        return int(conn.execute(sa.text("SELECT count(*) FROM sqlite_master WHERE type IN ('table','view') AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")).scalar() or 0)


def check_restorable(settings: DatabaseSettings, replace_existing: bool) -> int:
    """Refuse a non-empty target unless replacing; return how many tables it holds now."""
    tables = table_count(settings)
    if tables and not replace_existing:
        raise TargetNotEmpty(
            f"{settings.describe()} is not empty ({tables} tables); restore into an empty database or pass --replace to overwrite it"
        )
    return tables


def drop_database(settings: DatabaseSettings) -> None:
    """Drop a whole database (a scratch database this tool created)."""
    if settings.engine == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(settings.filename) + suffix).unlink(missing_ok=True)
        return
    if settings.engine == "postgresql":
        with connect(settings, database="postgres", isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(conn, settings.database)} WITH (FORCE)"))
        return
    with connect(settings, database="") as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quote(conn, settings.database)}"))


def clear_database(settings: DatabaseSettings) -> None:
    """Remove everything from the target (the --replace path; runs only after all checks passed)."""
    if settings.engine == "sqlite":
        assert settings.filename is not None
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(str(settings.filename) + suffix).unlink(missing_ok=True)
        return
    with connect(settings, isolation_level="AUTOCOMMIT") as conn:
        if settings.engine == "postgresql":
            # The public schema comes back exactly as it was (owner, privileges, comment): a restore must
            # leave the database as the dump had it, and PostgreSQL 15's default public schema is special.
            public = conn.execute(sa.text(
                "SELECT quote_ident(pg_get_userbyid(nspowner)), quote_literal(obj_description(oid, 'pg_namespace')), "
                "nspacl IS NULL FROM pg_namespace WHERE nspname = 'public'")).first()
            grants = conn.execute(sa.text(
                "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END, "
                "a.privilege_type FROM pg_namespace n, aclexplode(n.nspacl) a WHERE n.nspname = 'public'")).all()
            schemas = [r[0] for r in conn.execute(sa.text(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT IN ('pg_catalog','information_schema') "
                "AND nspname NOT LIKE 'pg\\_%'"))]
            for schema in schemas:
                conn.execute(sa.text(f"DROP SCHEMA {_quote(conn, schema)} CASCADE"))
            if public is None:
                conn.execute(sa.text("CREATE SCHEMA public"))
                return
            owner, comment, default_acl = public
            conn.execute(sa.text(f"CREATE SCHEMA public AUTHORIZATION {owner}"))
            if not default_acl:
                conn.execute(sa.text("REVOKE ALL ON SCHEMA public FROM PUBLIC"))
                for grantee, privilege in grants:
                    conn.execute(sa.text(f"GRANT {privilege} ON SCHEMA public TO {grantee}"))
            if comment is not None:
                conn.execute(sa.text(f"COMMENT ON SCHEMA public IS {comment}"))  # quoted by quote_literal
            return
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 0"))
        for name, kind in conn.execute(sa.text(
                "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = DATABASE()")).all():
            conn.execute(sa.text(f"DROP {'VIEW' if kind == 'VIEW' else 'TABLE'} {_quote(conn, name)}"))
        conn.execute(sa.text("SET FOREIGN_KEY_CHECKS = 1"))


def restore(settings: DatabaseSettings, dump_path: Path, dump_format: str,
            skip_foreign_keys: Sequence[tuple[str, str]] = ()) -> None:
    """Load a verified dump file into the (empty) target database. ``skip_foreign_keys`` (table, constraint)
    are those of a table-scoped dump that point at tables it does not hold: left out, not restored."""
    if dump_format == "pg_dump-custom":
        if settings.engine != "postgresql":
            raise DatabaseError(f"this snapshot holds a PostgreSQL dump; {settings.describe()} cannot take it (use `move` to change engines)")
        pg_restore = pg_tool("pg_restore")
        args = [pg_restore, "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", "--no-password",
                f"--dbname={settings.database}"]
        with contextlib.ExitStack() as stack:
            listing = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="toc-", dir=workdir.run_dir())))
            listing = listing / "toc.list"
            process.run([pg_restore, f"--file={listing}", "--list", str(dump_path)], quiet=True)
            if skip_foreign_keys:
                _pg_restore_list_without(listing, dump_path.name, skip_foreign_keys)
                args.append(f"--use-list={listing}")
            created = _pg_create_missing_schemas(settings, listing)
            try:
                with process.spawn([*args, str(dump_path)], env=_pg_env(settings)):
                    faults.checkpoint("database-loading")
            except BaseException:
                _pg_drop_empty_schemas(settings, created)  # the restore was one transaction: back to as it was
                raise
    elif dump_format == "mysql-sql":
        if settings.engine != "mysql":
            raise DatabaseError(f"this snapshot holds a MySQL/MariaDB dump; {settings.describe()} cannot take it (use `move` to change engines)")
        with connect(settings) as conn:
            version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
        client = mysql_tool("client", version)
        with _mysql_defaults_file(settings) as (defaults, defaults_fd), open(dump_path, "rb") as dump_in, \
                process.spawn([client, f"--defaults-extra-file={defaults}", "--default-character-set=utf8mb4",
                               "--binary-mode", settings.database], stdin=dump_in, pass_fds=[defaults_fd]):
            faults.checkpoint("database-loading")
        if skip_foreign_keys:
            # The dump turns foreign key checks off, so these were created pointing at absent tables: drop them.
            with connect(settings, isolation_level="AUTOCOMMIT") as conn:
                for table, constraint in skip_foreign_keys:
                    conn.execute(sa.text(f"ALTER TABLE {_quote(conn, table)} DROP FOREIGN KEY {_quote(conn, constraint)}"))
    elif dump_format == "sqlite-file":
        if settings.engine != "sqlite":
            raise DatabaseError(f"this snapshot holds a SQLite database; {settings.describe()} cannot take it (use `move` to change engines)")
        assert settings.filename is not None
        settings.filename.parent.mkdir(parents=True, exist_ok=True)
        sibling = settings.filename.with_name(f".{settings.filename.name}.restoring")
        shutil.copyfile(dump_path, sibling)  # same filesystem as the target, so the swap below is atomic
        _fsync_file(sibling)
        for suffix in ("-wal", "-shm", "-journal"):  # a stale WAL would be replayed into the restored file
            Path(str(settings.filename) + suffix).unlink(missing_ok=True)
        os.replace(sibling, settings.filename)
    else:
        raise DatabaseError(f"unknown dump format {dump_format!r} in the snapshot; upgrade directus-ops")


def _pg_create_missing_schemas(settings: DatabaseSettings, listing: Path) -> list[str]:
    """A table-scoped dump (``pg_dump --table``) holds no CREATE SCHEMA: create the schemas its tables are in
    (outside public) that the target lacks, from the dump's table of contents. Returns those created."""
    created_by_dump, needed = set(), set()
    for line in listing.read_text().splitlines():
        parts = line.split()  # "ID; TABLEOID OID TYPE SCHEMA NAME OWNER"
        if line.startswith(";") or len(parts) < 6:
            continue
        if parts[3] == "SCHEMA":
            created_by_dump.add(parts[5])
        elif parts[3] == "TABLE" and parts[4] != "DATA":
            needed.add(parts[4])
    missing = sorted(needed - created_by_dump - {"public", "-"})
    if not missing:
        return []
    created = []
    with connect(settings, isolation_level="AUTOCOMMIT") as conn:
        for schema in missing:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
            if not exists:
                conn.execute(sa.text(f"CREATE SCHEMA {_quote(conn, schema)}"))
                created.append(schema)
    return created


def _pg_drop_empty_schemas(settings: DatabaseSettings, schemas: list[str]) -> None:
    with contextlib.suppress(Exception), connect(settings, isolation_level="AUTOCOMMIT") as conn:
        for schema in schemas:
            conn.execute(sa.text(f"DROP SCHEMA IF EXISTS {_quote(conn, schema)} RESTRICT"))


def _pg_restore_list_without(listing: Path, dump_name: str, skip: Sequence[tuple[str, str]]) -> None:
    """The dump's table of contents (``listing``) minus the FK CONSTRAINT entries named in ``skip``."""
    names = set()
    for table, constraint in skip:
        schema, name = table.split(".", 1) if "." in table else ("public", table)
        names.add(f"FK CONSTRAINT {schema} {name} {constraint} ")
    lines = listing.read_text().splitlines(keepends=True)
    kept = [line for line in lines if line.startswith(";") or not any(n in line.rstrip("\n") + " " for n in names)]
    if len(lines) - len(kept) != len(names):
        raise DatabaseError(f"the dump {dump_name} does not list the {len(names)} foreign keys its manifest says "
                            "to leave out; the snapshot's manifest and dump disagree")
    listing.write_text("".join(kept))


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def _reason(exc: sa.exc.DBAPIError) -> str:
    return redact(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))


def _connect_reason(exc: sa.exc.DBAPIError) -> str:
    """The driver's reason a connection failed, in one line ("Connection refused", "password authentication
    failed for user ..."), not libpq's indented hint that follows it ("Is the server running ...")."""
    text = str(exc.orig if exc.orig is not None else exc)
    lines = [line for line in text.splitlines() if line.strip()]
    unindented = [line for line in lines if not line[:1].isspace()] or lines or [type(exc).__name__]
    # libpq: 'connection to server at "h", port p failed: <reason>' (one per address tried): the last reason.
    reason = unindented[-1].strip().rsplit(" failed: ", 1)[-1]
    return redact(reason)

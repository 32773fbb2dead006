"""The project's database: settings from the Directus config, the one way to open it, what it holds (tables,
row counts, applied migrations, foreign keys, system tables), creating, emptying and dropping it, and the
native tools that dump and restore it (``dumps``).

Engines: PostgreSQL (``DB_CLIENT=pg``), MySQL and MariaDB (``mysql``), SQLite (``sqlite3``).
"""

from __future__ import annotations

import contextlib
import secrets
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine

from . import process
from .config import DirectusConfig
from .container_database import DatabaseContainer, relay_address
from .errors import ConfigError, DatabaseError, DatabaseUnreachable, TargetNotEmpty
from .redact import redact, register_secret
from .sqlite_foreign_keys import sqlite_constraint_names, sqlite_key_actions

Engine_ = Literal["postgresql", "mysql", "sqlite"]

# DB_CLIENT values Directus accepts, mapped to the engines this tool supports.
CLIENTS: dict[str, Engine_] = {"pg": "postgresql", "postgres": "postgresql", "mysql": "mysql", "sqlite3": "sqlite"}
SUPPORTED_CLIENTS_TEXT = "pg, mysql (MySQL and MariaDB), sqlite3"
_PG_SYSTEM_SCHEMAS = ("pg_catalog", "information_schema")
CONNECT_TIMEOUT_SECONDS = 10


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
    # Reached through its Compose service's container (directus_ops.container_database), not from this host.
    container: DatabaseContainer | None = None

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
        through = f" ({self.container.describe()})" if self.container else ""
        return f'{name} database "{self.database}" at {where}{through}'

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
    url = settings.url(database)
    if settings.container is not None:  # the server answers only inside its stack: through the relay
        host, port = relay_address(settings.container)
        url = url.set(host=host, port=port)
    return sa.create_engine(url, connect_args=connect_args, pool_pre_ping=True, **kwargs)


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


def streaming_cursor(raw: Any, engine: str, batch_rows: int) -> Any:
    """A cursor on a driver connection (``Engine.raw_connection()``) that streams, its session in UTC: a
    server-side cursor on PostgreSQL, an unbuffered one on MySQL."""
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
            actions = sqlite_key_actions(conn, table)
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


# -- the native tools ------------------------------------------------------------------------------------------
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


# -- creating, emptying, dropping ------------------------------------------------------------------------------
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

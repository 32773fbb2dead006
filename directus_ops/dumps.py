"""Dumping and restoring a project's database with the engine's native tools: ``pg_dump`` / ``pg_restore``,
``mariadb-dump`` / ``mysqldump`` and the ``mariadb`` / ``mysql`` client, SQLite's online backup API.

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
import shutil
import sqlite3
import struct
import tempfile
import termios
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, cast

import sqlalchemy as sa

from . import faults, process, workdir
from .container_database import copied_in
from .database import (
    CONNECT_TIMEOUT_SECONDS,
    DatabaseSettings,
    DatabaseUnreachable,
    _quote,
    connect,
    count_rows,
    mysql_tool,
    pg_tool,
)
from .errors import DatabaseError
from .sqlite_foreign_keys import sqlite_drop_tables


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
    if settings.container:  # the tool runs beside the server, in its container
        env["PGHOST"] = "127.0.0.1"
    elif settings.socket_path or settings.host:
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


def _version_of(settings: DatabaseSettings, tool: str) -> str:
    return settings.container.tool_version(tool) if settings.container else _tool_version(tool)


def _in_place(settings: DatabaseSettings, args: list[str], env: Mapping[str, str], stdin: bool = False) -> list[str]:
    """``args`` as they run: here, or inside the database's container (its own tools; ``env`` passed by name)."""
    if settings.container is None:
        return args
    return settings.container.exec_argv(*args, env=env, stdin=stdin)


def _mysql_tool_for(settings: DatabaseSettings, kind: Literal["dump", "client"], version: str) -> str:
    if settings.container is None:
        return mysql_tool(kind, version)
    names = {"dump": ("mariadb-dump", "mysqldump"), "client": ("mariadb", "mysql")}[kind]
    found = process.output(settings.container.exec_argv("sh", "-c", f"command -v {names[0]} || command -v {names[1]}"),
                           timeout=60).strip().splitlines()
    return found[-1] if found else names[1]


@contextlib.contextmanager
def _mysql_options(settings: DatabaseSettings) -> Iterator[tuple[list[str], dict[str, str], list[int]]]:
    """The client's connection options, environment and inherited fds: here an option file in a pipe
    (``_mysql_defaults_file``); in the database's container (no pipe reaches it) the options as arguments and
    the password in ``MYSQL_PWD``, passed to the exec by name."""
    if settings.container is None:
        with _mysql_defaults_file(settings) as (defaults, defaults_fd):
            yield [f"--defaults-extra-file={defaults}"], {}, [defaults_fd]
        return
    options = ["--host=127.0.0.1", f"--port={settings.port or 3306}"]
    if settings.user:
        options.append(f"--user={settings.user}")
    yield options, ({"MYSQL_PWD": settings.password} if settings.password else {}), []

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
    pg_dump = "pg_dump" if settings.container else pg_tool("pg_dump")
    with connect(settings, isolation_level="REPEATABLE READ") as conn:
        with conn.begin():
            version = str(conn.execute(sa.text("SHOW server_version")).scalar()).split(" ")[0]
            snapshot = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar()
            args = [pg_dump, "--format=custom", "--no-password", f"--snapshot={snapshot}"]
            args += [f"--table={_pg_table_pattern(t)}" for t in tables or ()]
            env = _pg_env(settings)
            with process.spawn(_in_place(settings, args, env), env=env, stdout_pipe=True) as proc:
                assert proc.stdout is not None
                join = _consume_in_thread(proc.stdout, consume)
                counts = count_rows(conn, tables)  # same snapshot as pg_dump sees
                join()
    return DumpResult(tool=_version_of(settings, pg_dump), format="pg_dump-custom", server_version=version,
                      row_counts=counts)


def _dump_mysql(settings: DatabaseSettings, consume: Callable[[IO[bytes]], None],
                tables: list[str] | None = None) -> DumpResult:
    with connect(settings) as conn:
        version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
        charset, collation = conn.execute(sa.text(
            "SELECT default_character_set_name, default_collation_name FROM information_schema.schemata "
            "WHERE schema_name = DATABASE()")).one()
        dump_tool = _mysql_tool_for(settings, "dump", version)
        with _mysql_options(settings) as (options, env, fds):
            args = [dump_tool, *options, "--single-transaction", "--quick", "--routines",
                    "--triggers", "--hex-blob", "--no-tablespaces", "--default-character-set=utf8mb4",
                    settings.database, *(tables or ())]  # table names after the database are exact, not patterns
            conn.execute(sa.text("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(sa.text("START TRANSACTION WITH CONSISTENT SNAPSHOT"))
            with process.spawn(_in_place(settings, args, env), env=env, stdout_pipe=True, pass_fds=fds) as proc:
                assert proc.stdout is not None
                # A RawIOBase reads as IO[bytes] does; typeshed keeps the two types apart.
                join = _consume_in_thread(cast(IO[bytes], _DrainedPipe(proc.stdout)), consume)
                counts = count_rows(conn, tables)  # started with the dump; equal unless rows change during the dump's start
                join()
            conn.execute(sa.text("COMMIT"))
    return DumpResult(tool=_version_of(settings, dump_tool), format="mysql-sql", server_version=version, row_counts=counts,
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
def restore(settings: DatabaseSettings, dump_path: Path, dump_format: str,
            skip_foreign_keys: Sequence[tuple[str, str]] = ()) -> None:
    """Load a verified dump file into the (empty) target database. ``skip_foreign_keys`` (table, constraint)
    are those of a table-scoped dump that point at tables it does not hold: left out, not restored."""
    if dump_format == "pg_dump-custom":
        if settings.engine != "postgresql":
            raise DatabaseError(f"this snapshot holds a PostgreSQL dump; {settings.describe()} cannot take it (use `move` to change engines)")
        pg_restore = "pg_restore" if settings.container else pg_tool("pg_restore")
        args = [pg_restore, "--no-owner", "--no-acl", "--exit-on-error", "--single-transaction", "--no-password",
                f"--dbname={settings.database}"]
        env = _pg_env(settings)
        with contextlib.ExitStack() as stack:
            listing = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="toc-", dir=workdir.run_dir())))
            listing = listing / "toc.list"
            with open(listing, "wb") as listing_out:  # the dump's table of contents, by the server's own pg_restore
                process.stream_stdout(_in_place(settings, [pg_restore, "--list"], {}, stdin=True), lambda out: shutil.copyfileobj(out, listing_out),
                                      stdin_path=dump_path)
            if skip_foreign_keys:
                _pg_restore_list_without(listing, dump_path.name, skip_foreign_keys)
            dump_arg, list_arg = str(dump_path), str(listing)
            if settings.container:
                dump_arg, list_arg = stack.enter_context(copied_in(settings.container, dump_arg, list_arg))
            if skip_foreign_keys:
                args.append(f"--use-list={list_arg}")
            created = _pg_create_missing_schemas(settings, listing)
            try:
                with process.spawn(_in_place(settings, [*args, dump_arg], env), env=env):
                    faults.checkpoint("database-loading")
            except BaseException:
                _pg_drop_empty_schemas(settings, created)  # the restore was one transaction: back to as it was
                raise
    elif dump_format == "mysql-sql":
        if settings.engine != "mysql":
            raise DatabaseError(f"this snapshot holds a MySQL/MariaDB dump; {settings.describe()} cannot take it (use `move` to change engines)")
        with connect(settings) as conn:
            version = str(conn.execute(sa.text("SELECT VERSION()")).scalar())
        client = _mysql_tool_for(settings, "client", version)
        with _mysql_options(settings) as (options, env, fds), open(dump_path, "rb") as dump_in, \
                process.spawn(_in_place(settings, [client, *options, "--default-character-set=utf8mb4", "--binary-mode",
                                                   settings.database], env, stdin=True),
                              env=env, stdin=dump_in, pass_fds=fds):
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

"""Real Directus projects for tests: Directus installed once from npm into a cache, databases created and
dropped on the machine's PostgreSQL and MariaDB, S3 on a moto_server, seeded through the REST API."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import sqlalchemy as sa

from directus_ops import directus_cli, node
from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.directus_api import DirectusClient
from directus_ops.manifest import DatabaseInfo, Entry, Manifest, ProjectInfo
from directus_ops.repository import Repository

# The suite's Directus: every test runs on it. CI runs the whole suite on the default and the tests marked
# ``matrix`` (one per procedure) on the other supported lines.
DEFAULT_DIRECTUS = "12.4.0"
DIRECTUS_VERSION = os.environ.get("DIRECTUS_OPS_TEST_DIRECTUS", DEFAULT_DIRECTUS)
# The release the suite tests of each supported major line, oldest first (12.4.1 cannot be installed from this
# machine's registry mirror: @directus/app@18.0.1 is missing; 12.4.0 has the same 109 migrations).
RELEASES = ("10.13.4", "11.17.4", "12.4.0")
DIRECTUS_11 = "11.17.4"  # the 11.x release tests of 11-only behaviour run on (directus_install(DIRECTUS_11))


def _major(version: str) -> int:
    return int(version.split(".", 1)[0])


def upgrade_pair(version: str = DIRECTUS_VERSION) -> tuple[str, str]:
    """(from, to) for the upgrade and downgrade tests on the suite's version: from the previous major line up
    to ``version`` when it is of the newest line; else from ``version`` up to the next line's release."""
    newer = [r for r in RELEASES if _major(r) > _major(version)]
    if newer:
        return version, newer[0]
    older = [r for r in RELEASES if _major(r) < _major(version)]
    return older[-1], version
CACHE_ROOT = Path(os.environ.get("DIRECTUS_OPS_TEST_CACHE", Path.home() / ".cache" / "directus-ops"))
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "admin-password-1"
S3_REGION = "eu-west-1"  # moto refuses bucket creation with us-east-1's location constraint


# The test running now if it is marked ``fast`` (set by conftest.py): it must start no service.
FAST_TEST: str | None = None


def refuse_in_fast_test(what: str) -> None:
    """Fail a ``fast`` test that would start ``what``: its markers come from its fixtures (conftest.SERVICES), so
    it must reach ``what`` through the fixture that gives it."""
    if FAST_TEST is not None:
        raise AssertionError(f"{FAST_TEST} is marked fast but starts {what}: use the fixture that gives it "
                             "(tests/conftest.py), which marks the test")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def directus_install(version: str = DIRECTUS_VERSION) -> Path:
    """The cached ``directus@version`` install (node_modules + package files), installed if absent; by default
    the suite's version (``DIRECTUS_OPS_TEST_DIRECTUS``, else 12.4.0). Installed with the Node it needs
    (directus_ops.node), which the install records for the projects linked to it."""
    refuse_in_fast_test(f"Directus {version}")
    root = CACHE_ROOT / f"directus-{version}"
    marker = root / "node_modules" / "directus" / "package.json"
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    # Test runs in parallel (other checkouts) share the cache: one installs, the others wait and then find it
    # complete, instead of removing each other's half-made install.
    with open(CACHE_ROOT / f"directus-{version}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists() or not (root / "node_modules" / "isolated-vm" / "out" / "isolated_vm.node").exists():
            shutil.rmtree(root, ignore_errors=True)
            directus_cli.npm_install_directus(root, version)
    return root


def link_directus(project_dir: Path, install: Path, own_copy: bool = False) -> None:
    """Give a project directory the cached install (node_modules symlinked, or copied for a project whose
    packages a test changes; package files copied)."""
    project_dir.mkdir(parents=True, exist_ok=True)
    link = project_dir / "node_modules"
    if own_copy and not link.exists():
        subprocess.run(["cp", "-a", str(install / "node_modules"), str(link)], check=True)
    elif not link.exists():
        link.symlink_to(install / "node_modules")
    for name in ("package.json", "package-lock.json", str(node.RECORD)):
        if not (project_dir / name).exists() and (install / name).exists():
            (project_dir / name).parent.mkdir(exist_ok=True)
            shutil.copy(install / name, project_dir / name)


# -- databases ---------------------------------------------------------------------------------------------------
@dataclass
class Database:
    engine: str  # pg | mysql | sqlite3
    name: str
    user: str | None = None
    password: str | None = None
    filename: Path | None = None

    @property
    def url(self) -> str:
        if self.engine == "pg":
            return f"postgresql://{self.user}:{self.password}@127.0.0.1:5432/{self.name}"
        if self.engine == "mysql":
            return f"mysql://{self.user}:{self.password}@127.0.0.1:3306/{self.name}"
        return f"sqlite:///{self.filename}"

    @contextlib.contextmanager
    def flow_url(self) -> Iterator[str]:
        """The URL as a flow parameter takes it, without the password (parameters are stored with the run; the
        schema refuses one), which is in DIRECTUS_OPS_DATABASE_PASSWORD meanwhile, where the flows read it."""
        if not self.password:
            yield self.url
            return
        before = os.environ.get("DIRECTUS_OPS_DATABASE_PASSWORD")
        os.environ["DIRECTUS_OPS_DATABASE_PASSWORD"] = self.password
        try:
            yield self.url.replace(f":{self.password}@", "@")
        finally:
            if before is None:
                os.environ.pop("DIRECTUS_OPS_DATABASE_PASSWORD", None)
            else:
                os.environ["DIRECTUS_OPS_DATABASE_PASSWORD"] = before

    def env(self) -> dict[str, str]:
        if self.engine == "sqlite3":
            return {"DB_CLIENT": "sqlite3", "DB_FILENAME": str(self.filename)}
        return {"DB_CLIENT": self.engine, "DB_HOST": "127.0.0.1", "DB_PORT": "5432" if self.engine == "pg" else "3306",
                "DB_DATABASE": self.name, "DB_USER": self.user or "", "DB_PASSWORD": self.password or ""}

    def tables(self) -> list[str]:
        if self.engine == "pg":
            with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{self.name}") as conn:
                return [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public' ORDER BY 1")]
        if self.engine == "mysql":
            conn = pymysql.connect(host="127.0.0.1", user="root", database=self.name)
            with conn, conn.cursor() as cur:
                cur.execute("SHOW TABLES")
                return sorted(r[0] for r in cur.fetchall())
        import sqlite3

        if not self.filename or not self.filename.exists():
            return []
        with contextlib.closing(sqlite3.connect(self.filename)) as conn:
            return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%' ORDER BY 1")]


class Databases:
    """Creates databases (and a password-protected user each) and drops them all at the end."""

    def __init__(self, tmp_root: Path) -> None:
        self.tmp_root = tmp_root
        self.created: list[Database] = []

    def create(self, engine: str, create_database: bool = True) -> Database:
        if engine in ("pg", "mysql"):
            refuse_in_fast_test(f"a database on the machine's {engine}")
        name = f"dops_{secrets.token_hex(4)}"
        password = f"pw-{secrets.token_hex(8)}"
        if engine == "pg":
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE ROLE "{name}" LOGIN PASSWORD \'{password}\'')
                if create_database:
                    conn.execute(f'CREATE DATABASE "{name}" OWNER "{name}"')
                else:
                    conn.execute(f'ALTER ROLE "{name}" CREATEDB')
            database = Database("pg", name, name, password)
        elif engine == "mysql":
            conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
            with conn, conn.cursor() as cur:
                cur.execute(f"CREATE USER '{name}'@'%' IDENTIFIED BY '{password}'")
                if create_database:
                    cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                cur.execute(f"GRANT ALL ON `{name}`.* TO '{name}'@'%'")
            database = Database("mysql", name, name, password)
        else:
            directory = self.tmp_root / name
            directory.mkdir(parents=True)
            database = Database("sqlite3", name, filename=directory / "data.db")
        self.created.append(database)
        return database

    def drop_all(self) -> None:
        for database in self.created:
            if database.engine == "pg":
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{database.name}" WITH (FORCE)')
                    conn.execute(f'DROP ROLE IF EXISTS "{database.name}"')
            elif database.engine == "mysql":
                conn = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
                with conn, conn.cursor() as cur:
                    cur.execute(f"DROP DATABASE IF EXISTS `{database.name}`")
                    cur.execute(f"DROP USER IF EXISTS '{database.name}'@'%'")


# -- S3 ------------------------------------------------------------------------------------------------------------
@dataclass
class S3:
    endpoint: str
    pid: int = 0  # the moto_server process (its own process group)
    key_id: str = "testing-key-id"
    secret: str = "testing-secret-key-4f1c"
    buckets: list[str] = field(default_factory=list)

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, region_name=S3_REGION,
                            aws_access_key_id=self.key_id, aws_secret_access_key=self.secret)

    def create_bucket(self) -> str:
        name = f"dops-{secrets.token_hex(4)}"
        self.client().create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": S3_REGION})
        self.buckets.append(name)
        return name

    def objects(self, bucket: str, prefix: str = "") -> dict[str, bytes]:
        client = self.client()
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found[item["Key"]] = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        return found

    def drop_all(self) -> None:
        client = self.client()
        for bucket in self.buckets:
            with contextlib.suppress(Exception):
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
                    for item in page.get("Contents", []):
                        client.delete_object(Bucket=bucket, Key=item["Key"])
                client.delete_bucket(Bucket=bucket)


def s3_repository(s3: S3, monkeypatch: Any) -> Any:
    """A repository location in a new bucket of ``s3``, its credentials in the environment as a user sets them."""
    from directus_ops.repository import RepositoryLocation

    monkeypatch.setenv("DIRECTUS_OPS_REPO_ACCESS_KEY_ID", s3.key_id)
    monkeypatch.setenv("DIRECTUS_OPS_REPO_SECRET_ACCESS_KEY", s3.secret)
    return RepositoryLocation(url=f"s3://{s3.create_bucket()}/repo", endpoint=s3.endpoint, region=S3_REGION)


@contextlib.contextmanager
def moto_server() -> Iterator[S3]:
    refuse_in_fast_test("a moto S3 server")
    port = free_port()
    executable = shutil.which("moto_server")
    assert executable, "moto_server is not installed: pip install 'moto[server]'"
    proc = subprocess.Popen([executable, "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.2)
        s3 = S3(endpoint, pid=proc.pid)
        yield s3
        s3.drop_all()
    finally:
        os.killpg(proc.pid, 15)
        proc.wait(10)


def free_project_slot(project_dir: Path) -> None:
    """Free the slot a SIGKILLed flow run held in its project's Prefect concurrency limit. A real server's
    lease repossessor does that within a minute; the test server (prefect_test_harness) runs without it, so a
    test that kills a run does it here, as the repossessor would."""
    from prefect.client.orchestration import get_client

    from directus_ops.project_lock import limit_name, project_key

    with get_client(sync_client=True) as client, contextlib.suppress(Exception):  # no limit yet: nothing held
        client.delete_global_concurrency_limit_by_name(limit_name(project_key(project_dir)))


# -- the directus-ops command, Prefect artifacts, repositories ------------------------------------------------------
CLI = [sys.executable, "-m", "directus_ops.cli"]


def run_cli(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The real ``directus-ops`` command with ``env``, its output captured as text."""
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("directus-ops: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def latest_artifact(key: str) -> str:
    """The data of the newest Prefect artifact with ``key`` ("" when there is none)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    async def read() -> str:
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
        return max(found, key=lambda a: a.created).data if found else ""

    return asyncio.run(read())


def object_file(repo: Path, entry: Entry) -> Path:
    """Where a local repository keeps the object of a manifest entry."""
    return repo / "objects" / entry.object_name[:2] / entry.object_name


def save_snapshot(repo: Repository, when: datetime, entries: list[Entry], project: str = "site") -> str:
    """A snapshot of ``project`` taken at ``when`` holding just ``entries`` (a manifest, no dump): its id."""
    snapshot_id = f"{when.strftime('%Y%m%dT%H%M%SZ')}-{os.urandom(3).hex()}"
    repo.save_manifest(Manifest(
        id=snapshot_id, time=when,
        project=ProjectInfo(name=project, dir=f"/srv/{project}", host="h", config_file=".env",
                            directus_version="10.13.4", migrations=[]),
        database=DatabaseInfo(engine="sqlite", client="sqlite3", name="d", server_version="3", dump_tool="t",
                              dump_format="sqlite-file", row_counts={}),
        storage=[], artifacts=[], objects=entries))
    return snapshot_id


# -- projects ------------------------------------------------------------------------------------------------------
MARKER_EXTENSION = {
    "package.json": json.dumps({"name": "directus-extension-marker", "version": "1.0.0", "type": "module",
                                "directus:extension": {"type": "endpoint", "path": "dist/index.js",
                                                       "source": "src/index.js", "host": "^10.0.0"}}),
    "dist/index.js": "export default (router) => { router.get('/', (req, res) => res.send('marker-ok')); };\n",
}
MARKER_MIGRATION = """export async function up(knex) {
  await knex.schema.createTable('ops_marker', (table) => { table.increments('id'); table.string('note'); });
  await knex('ops_marker').insert({ note: 'created by a custom migration' });
}
export async function down(knex) {
  await knex.schema.dropTable('ops_marker');
}
"""


@dataclass
class TestProject:
    __test__ = False  # not a test class, despite its name

    dir: Path
    database: Database
    port: int
    storage: dict[str, dict[str, str]]  # location -> its STORAGE_* settings
    env: dict[str, str]
    seeded: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def secrets(self) -> list[str]:
        values = [self.env["KEY"], self.env["SECRET"]]
        if self.database.password:
            values.append(self.database.password)
        values += [s["SECRET"] for s in self.storage.values() if "SECRET" in s]
        return values

    @contextlib.contextmanager
    def server(self) -> Iterator[DirectusClient]:
        with directus_cli.running_server(self.dir, self.url):
            with DirectusClient.login(self.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
                yield client


def write_env(path: Path, values: dict[str, str]) -> None:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))


def make_project(root: Path, install: Path, database: Database, storage: dict[str, dict[str, str]] | None = None,
                 with_extras: bool = True, own_node_modules: bool = False) -> TestProject:
    """A bootstrapped Directus project: config, database, storage locations, a marker extension and migration."""
    project_dir = root / "project"
    link_directus(project_dir, install, own_node_modules)
    storage = storage or {"local": {"DRIVER": "local", "ROOT": "./uploads"}}
    port = free_port()
    env = {
        **database.env(),
        "KEY": f"key-{secrets.token_hex(8)}",
        "SECRET": f"secret-{secrets.token_hex(12)}",
        "PORT": str(port),
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        "TELEMETRY": "false",
        "LOG_LEVEL": "warn",
        # Directus answers 503 when the event loop lags; a 2-core machine running tests lags, and pressure
        # limiting is not what these tests check.
        "PRESSURE_LIMITER_ENABLED": "false",
        "STORAGE_LOCATIONS": ",".join(storage),
    }
    for location, settings in storage.items():
        for key, value in settings.items():
            env[f"STORAGE_{location.upper()}_{key}"] = value
    write_env(project_dir / ".env", env)
    if with_extras:
        for relative, text in MARKER_EXTENSION.items():
            target = project_dir / "extensions" / "directus-extension-marker" / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        (project_dir / "migrations").mkdir(exist_ok=True)
        (project_dir / "migrations" / "20990101A-add-marker-table.js").write_text(MARKER_MIGRATION)
    directus_cli.bootstrap(project_dir, ADMIN_EMAIL, ADMIN_PASSWORD)
    return TestProject(project_dir, database, port, storage, env)


def bootstrapped_tables(root: Path, install: Path, databases: Databases, engine: str = "sqlite3") -> set[str]:
    """The tables Directus's own bootstrap creates, listed from a new database bootstrapped by ``install`` (no
    project extensions or migrations): what a procedure must know as Directus's, taken from the installed
    version, so it follows new system tables (directus_comments, directus_deployments, ...) as they come."""
    database = databases.create(engine)
    make_project(root, install, database, with_extras=False)
    return set(database.tables())


def png_bytes(width: int = 16, height: int = 16, seed: int = 1) -> bytes:
    """A valid RGB PNG, built by hand so the test needs no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(
        b"\x00" + bytes(v for x in range(width) for v in ((x * seed + y * 7) % 256, (x + y * seed) % 256, (x * y + seed) % 256))
        for y in range(height)
    )
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def seed(client: DirectusClient, locations: list[str]) -> dict[str, Any]:
    """Collections with relations to each other, to users and to files; files (image and binary) in every
    storage location; a second user. Returns what was created."""
    def collection(payload: dict[str, Any]) -> None:
        # Every field gets a meta: 11.17+ adds a cast flag (json, boolean, ...) to a field without one as a meta
        # lacking its collection and field, which its validation then refuses.
        payload["fields"] = [{"meta": {}, **f} for f in payload["fields"]]
        client.post("/collections", payload)

    collection({"collection": "authors", "schema": {}, "meta": {"icon": "person"}, "fields": [
        {"field": "id", "type": "integer", "schema": {"is_primary_key": True, "has_auto_increment": True}},
        {"field": "name", "type": "string", "schema": {}},
        {"field": "user_created", "type": "uuid", "schema": {}, "meta": {"special": ["user-created"], "interface": "select-dropdown-m2o"}},
    ]})
    client.post("/relations", {"collection": "authors", "field": "user_created", "related_collection": "directus_users"})
    collection({"collection": "articles", "schema": {}, "meta": {}, "fields": [
        {"field": "id", "type": "integer", "schema": {"is_primary_key": True, "has_auto_increment": True}},
        {"field": "title", "type": "string", "schema": {}},
        {"field": "body", "type": "text", "schema": {}},
        {"field": "published", "type": "boolean", "schema": {"default_value": False}},
        {"field": "rating", "type": "decimal", "schema": {"numeric_precision": 10, "numeric_scale": 2}},
        {"field": "data", "type": "json", "schema": {}},
        {"field": "author", "type": "integer", "schema": {}, "meta": {"interface": "select-dropdown-m2o"}},
        {"field": "cover", "type": "uuid", "schema": {}, "meta": {"interface": "file-image", "special": ["file"]}},
    ]})
    client.post("/relations", {"collection": "articles", "field": "author", "related_collection": "authors"})
    client.post("/relations", {"collection": "articles", "field": "cover", "related_collection": "directus_files"})

    files = []
    for index, location in enumerate(locations):
        image = client.upload(content=png_bytes(24, 24, seed=index + 3), filename=f"cover-{location}.png",
                              storage=location, mime="image/png", title=f"Cover in {location}")
        binary = client.upload(content=os.urandom(300_000 + index), filename=f"blob-{location}.bin", storage=location)
        files += [image["id"], binary["id"]]
    authors = client.post("/items/authors", [{"name": "Ada"}, {"name": "Grace"}])
    client.post("/items/articles", [
        {"title": f"Article {i}", "body": "Ünïcode ✓ " * (i + 1), "published": i % 2 == 0, "rating": f"{i}.25",
         "data": {"n": i, "tags": ["a", "b"]}, "author": authors[i % 2]["id"], "cover": files[(2 * i) % len(files)]}
        for i in range(12)
    ])
    roles = client.get("/roles")
    user = client.post("/users", {"email": "editor@example.com", "password": "editor-password-1",
                                  "first_name": "Eddie", "role": roles[0]["id"]})
    return {"files": files, "user": user["id"]}


def api_state(client: DirectusClient) -> dict[str, Any]:
    """What a user sees through the API: items of the seeded collections, users, file rows and file bytes."""
    files = client.get("/files", limit=-1, sort="id", fields="id,filename_disk,storage,filesize,title,type")
    return {
        "articles": client.items("articles"),
        "authors": client.items("authors"),
        "users": sorted((u["email"], u["first_name"]) for u in client.get("/users", limit=-1, fields="email,first_name")),
        "files": files,
        "assets": {f["id"]: client.asset(f["id"]) for f in files},
        "marker": client.http.get("/directus-extension-marker").text,
    }


def engine_neutral(value):
    """What the API returns with the engine's own spellings taken out: MySQL/SQLite serve booleans as 1/0 and
    a json field (MariaDB: text) as its JSON text; PostgreSQL serves big integers and decimals as strings. The
    values themselves must still be equal."""
    import json
    from decimal import Decimal, InvalidOperation

    if isinstance(value, str) and value[:1] in "{[":
        try:
            value = json.loads(value)
        except ValueError:
            pass

    if isinstance(value, dict):
        return {k: engine_neutral(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [engine_neutral(v) for v in value]
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, (int, float)) or (isinstance(value, str) and value[:1].isdigit()):
        try:
            return Decimal(str(value)).normalize()
        except InvalidOperation:
            return value
    return value


# -- projects without Directus (fast): a database with related tables, a file, an extension --------------------
SCHEMA = [
    "CREATE TABLE authors (id INTEGER PRIMARY KEY {auto}, name VARCHAR(50) NOT NULL)",
    "CREATE TABLE books (id INTEGER PRIMARY KEY {auto}, title VARCHAR(200), author INTEGER REFERENCES authors(id))",
]
AUTO = {"pg": "GENERATED BY DEFAULT AS IDENTITY", "mysql": "AUTO_INCREMENT", "sqlite3": "AUTOINCREMENT"}


def small_project(root: Path, database: Database) -> tuple[Path, DatabaseSettings]:
    """A project without Directus: its own tables, a file in local storage, an extension file."""
    project = root / "project"
    (project / "uploads").mkdir(parents=True)
    (project / "uploads" / "photo.jpg").write_bytes(os.urandom(50_000))
    (project / "extensions" / "hooks").mkdir(parents=True)
    (project / "extensions" / "hooks" / "index.js").write_text("export default () => {};\n")
    write_env(project / ".env", {**database.env(), "KEY": "key-abcdef0123", "SECRET": "secret-abcdef0123"})
    settings = DatabaseSettings.from_url(database.url)
    engine = open_engine(settings)
    with engine.begin() as conn:
        for statement in SCHEMA:
            auto = AUTO[database.engine]
            if database.engine == "sqlite3":
                statement = statement.replace("INTEGER PRIMARY KEY {auto}", "INTEGER PRIMARY KEY AUTOINCREMENT")
            conn.execute(sa.text(statement.format(auto=auto)))
        conn.execute(sa.text("INSERT INTO authors (name) VALUES ('Ada'), ('Grace')"))
        conn.execute(sa.text("INSERT INTO books (title, author) VALUES ('Notes', 1), ('Compilers', 2), ('COBOL', 2)"))
    engine.dispose()
    return project, settings


def rows(settings: DatabaseSettings) -> dict[str, list[tuple]]:
    engine = open_engine(settings)
    with engine.connect() as conn:
        result = {t: [tuple(r) for r in conn.execute(sa.text(f"SELECT * FROM {t} ORDER BY id"))] for t in ("authors", "books")}
    engine.dispose()
    return result



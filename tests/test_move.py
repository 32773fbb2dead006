"""Moves of real Directus projects: to another database of the same engine (PostgreSQL, MariaDB, SQLite) and
across engines (SQLite -> PostgreSQL, MariaDB -> PostgreSQL), storage local -> S3 (renamed) and back, and
cutovers with real stop/start commands around a Directus process; afterwards Directus on the new config
serves the same items and byte-identical assets, takes new items, and lets the admin log in. Bad input is
refused through the real CLI with one line and nothing changed."""

from __future__ import annotations

import contextlib
import copy
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pymysql
import pytest
import sqlalchemy as sa

from harness import (ADMIN_EMAIL, engine_neutral, ADMIN_PASSWORD, CLI, S3_REGION, TestProject, api_state, latest_artifact, make_project,
                     rows, seed, small_project)

from directus_ops import database, directus_cli, move, node, storage_copy, transfer
from directus_ops.database import DatabaseSettings, open_engine
from directus_ops.directus_api import DirectusClient
from directus_ops.errors import ConfigError, IntegrityError, TargetNotEmpty
from directus_ops.storage import StorageLocation


@contextlib.contextmanager
def served(project: TestProject, config: Path) -> Iterator[DirectusClient]:
    """Directus started in the project directory on another config (CONFIG_PATH), logged in as the admin.
    Its pressure limiter is off: on a loaded 2-core test machine it answers 503 to reads this test must see."""
    with directus_cli.running_server(project.dir, project.url, config_path=config,
                                     env={"PRESSURE_LIMITER_ENABLED": "false"}):
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            yield client


def renamed(state: dict, old: str, new: str) -> dict:
    """The API state as it must look once location ``old`` is called ``new``."""
    expected = copy.deepcopy(state)
    for row in expected["files"]:
        if row["storage"] == old:
            row["storage"] = new
    return expected


def first_difference(a, b, path="") -> str | None:
    """Where two API states first differ (an assertion message a user can act on)."""
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b), key=str):
            found = first_difference(a.get(key), b.get(key), f"{path}.{key}")
            if found:
                return found
        return None
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for index, (x, y) in enumerate(zip(a, b)):
            found = first_difference(x, y, f"{path}[{index}]")
            if found:
                return found
        return None
    return None if a == b else f"{path}: {a!r} != {b!r}"


def can_write(client: DirectusClient) -> None:
    """A new item gets the next id (PostgreSQL sequences carried over or reset) and reads back."""
    existing = max(a["id"] for a in client.items("articles"))
    created = client.post("/items/articles", {"title": "written after the move", "published": True})
    assert created["id"] == existing + 1
    assert client.get(f"/items/articles/{created['id']}")["title"] == "written after the move"


def row_counts(settings: DatabaseSettings) -> dict[str, int]:
    """Every table of the database with its number of rows, as a user would count them with SQL."""
    engine = open_engine(settings)
    with engine.connect() as conn:
        quote = conn.dialect.identifier_preparer.quote
        found = {t: conn.execute(sa.text(f"SELECT count(*) FROM {quote(t)}")).scalar()
                 for t in sa.inspect(conn).get_table_names()}
    engine.dispose()
    return found


def storage_rows(settings: DatabaseSettings) -> list[str]:
    engine = open_engine(settings)
    with engine.connect() as conn:
        found = sorted(r[0] for r in conn.execute(sa.text("SELECT storage FROM directus_files")))
    engine.dispose()
    return found


# -- syntax and config, no Directus --------------------------------------------------------------------------
def test_to_storage_syntax():
    assert move.parse_storage_moves(["local=/srv/files", "s3=s3://b/p", "local2=new_name:s3://b/p?region=x"]) == {
        "local": "/srv/files", "s3": "s3://b/p", "local2": "new_name:s3://b/p?region=x"}
    assert move.split_target("s3new:s3://bucket/uploads") == ("s3new", "s3://bucket/uploads")
    assert move.split_target("files:/srv/files") == ("files", "/srv/files")
    assert move.split_target("file:///srv/files") == (None, "file:///srv/files")
    assert move.split_target("/srv/a:b") == (None, "/srv/a:b")
    for bad in ("local", "=s3://b", "local=", "local=bad name:/x", "local=9x:/x"):
        with pytest.raises(ConfigError, match="--to-storage"):
            move.parse_storage_moves([bad])
    with pytest.raises(ConfigError, match="twice"):
        move.parse_storage_moves(["local=/a", "local=/b"])


def test_final_pass_copies_only_new_or_changed_objects(tmp_path):
    """A cutover's second storage pass reads only what changed since the first; every copy is read back."""
    source_root = tmp_path / "uploads"
    (source_root / "nested").mkdir(parents=True)
    for index in range(20):
        (source_root / f"file-{index}.bin").write_bytes(os.urandom(10_000 + index))
    (source_root / "nested" / "deep.txt").write_text("deep")
    storage_move = storage_copy.StorageMove(StorageLocation.from_url("local", str(source_root)),
                                            StorageLocation.from_url("local", str(tmp_path / "moved")))
    staging = tmp_path / "staging"
    staging.mkdir()
    first = storage_copy.copy_location(storage_move, staging)
    assert (first.objects, first.copied, first.unchanged) == (21, 21, 0)
    (source_root / "file-3.bin").write_bytes(b"changed while the app ran")
    (source_root / "new.bin").write_bytes(b"uploaded while the app ran")
    final = storage_copy.copy_location(storage_move, staging, first.records_path)
    assert (final.objects, final.copied, final.unchanged) == (22, 2, 20)
    check = storage_copy.check_location(storage_move, final)
    assert check.ok and check.objects == check.target_objects == 22 and check.bytes == check.target_bytes
    assert check.checksums_equal == 22  # each one read back from the target and compared
    # A record the copy did not read back (a pass cut short) is not counted as equal: it is a problem.
    records = storage_copy._read_records(final.records_path)
    del records["new.bin"]["verified"]
    Path(final.records_path).write_text(__import__("json").dumps(records))
    unverified = storage_copy.check_location(storage_move, final)
    assert unverified.checksums_equal == 21 and unverified.problems == ["new.bin was not read back and compared with the source"]
    copied = {p.relative_to(tmp_path / "moved"): p.read_bytes() for p in (tmp_path / "moved").rglob("*") if p.is_file()}
    assert copied == {p.relative_to(source_root): p.read_bytes() for p in source_root.rglob("*") if p.is_file()}


def test_one_same_database_rule():
    """``host`` and ``host:5432`` are one database for the move's plan and the cross-engine copy alike."""
    implicit = DatabaseSettings.from_url("postgresql://u:p@db.example/directus")
    explicit = DatabaseSettings.from_url("postgresql://u:p@db.example:5432/directus")
    other = DatabaseSettings.from_url("postgresql://u:p@db.example:5433/directus")
    assert database.same_database(implicit, explicit) and transfer._same_database(implicit, explicit)
    assert not database.same_database(explicit, other) and not transfer._same_database(explicit, other)
    with pytest.raises(ConfigError, match="own database"):
        move.check_target_database(implicit, explicit)


def test_first_copy_never_empties_a_target_written_after_the_plan(tmp_path, databases):
    """The plan found the target empty; someone wrote to it since: the copy refuses, and their table stays."""
    source_db = databases.create("pg")
    project_dir, _ = small_project(tmp_path / "small", source_db)
    target_db = databases.create("pg")
    plan = move.plan_move(str(project_dir), to_database=target_db.url, repo_given=True)
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{target_db.name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE theirs (id int)")
        conn.execute("INSERT INTO theirs VALUES (1)")
    with pytest.raises(TargetNotEmpty):
        move.copy_native(plan, None, "no-snapshot-needed", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(TargetNotEmpty):
        move.copy_across(plan)
    assert target_db.tables() == ["theirs"]


def test_a_failed_copy_is_removed_from_the_target(tmp_path, databases, prefect_server):
    """A restore that goes wrong part-way (here: the target database adds a row to every new authors table, so
    the restored rows differ from the snapshot's) fails the move, and the target is left empty, not holding a
    copy that looks like a move."""
    from flows.move import move_project

    source_db = databases.create("pg")
    project_dir, source = small_project(tmp_path / "small", source_db)
    before = rows(source)
    target_db = databases.create("pg")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{target_db.name}", autocommit=True) as conn:
        conn.execute("""CREATE FUNCTION public.add_an_author() RETURNS event_trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF EXISTS (SELECT 1 FROM pg_event_trigger_ddl_commands() WHERE object_identity = 'public.authors') THEN
                INSERT INTO public.authors (id, name) VALUES (999, 'not in the source');
              END IF;
            END $$""")
        conn.execute("CREATE EVENT TRIGGER add_an_author ON ddl_command_end WHEN TAG IN ('CREATE TABLE') "
                     "EXECUTE FUNCTION public.add_an_author()")
    with pytest.raises(IntegrityError) as failed, target_db.flow_url() as target_url:
        move_project(project_dir=str(project_dir), to_database=target_url, repo=str(tmp_path / "repo"))
    message = str(failed.value)
    assert "differs from the snapshot" in message and "partial copy" in message and "removed" in message, message
    assert target_db.tables() == [] and rows(source) == before


def test_bucket_to_bucket_takes_the_source_credentials(s3, tmp_path):
    source_bucket, target_bucket = s3.create_bucket(), s3.create_bucket()
    client = s3.client()
    blobs = {f"files/{index}.bin": os.urandom(5_000 + index) for index in range(12)}
    for key, body in blobs.items():
        client.put_object(Bucket=source_bucket, Key=key, Body=body)
    source = StorageLocation(name="s3", driver="s3", root="files", bucket=source_bucket, region=S3_REGION,
                             endpoint=s3.endpoint, key_id=s3.key_id, secret=s3.secret, force_path_style=True)
    target = move.storage_target(source, f"s3://{target_bucket}/moved", environ={})
    assert (target.endpoint, target.key_id, target.secret, target.name) == (s3.endpoint, s3.key_id, s3.secret, "s3")
    staging = tmp_path / "staging"
    staging.mkdir()
    copied = storage_copy.copy_location(storage_copy.StorageMove(source, target), staging, workers=4)
    assert copied.copied == 12 and storage_copy.check_location(storage_copy.StorageMove(source, target), copied).ok
    assert {k.replace("moved/", "files/", 1): v for k, v in s3.objects(target_bucket, "moved/").items()} == blobs


# -- same engine ---------------------------------------------------------------------------------------------
def test_postgresql_move_with_storage_to_s3_renamed_and_back(tmp_path, directus, databases, s3, prefect_server,
                                                             monkeypatch):
    from flows.move import move_project

    source_db = databases.create("pg")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    original_config = (project.dir / ".env").read_bytes()
    bucket = s3.create_bucket()
    monkeypatch.setenv(move.STORAGE_KEY_ENV, s3.key_id)
    monkeypatch.setenv(move.STORAGE_SECRET_ENV, s3.secret)
    repo = tmp_path / "repo"

    target_db = databases.create("pg", create_database=False)  # created by the move
    out = tmp_path / "moved.env"
    with target_db.flow_url() as target_url:
        result = move_project(project_dir=str(project.dir), to_database=target_url,
                              to_storage={"local": f"s3files:s3://{bucket}/uploads?endpoint={s3.endpoint}&region={S3_REGION}"},
                              config_out=str(out), repo=str(repo))
    assert result.method == "native" and result.tables_equal and result.snapshot
    assert result.storage["local"]["objects"] == 2 and result.storage["local"]["checksums_equal"] == 2
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    text = out.read_text()
    assert f"DB_DATABASE={target_db.name}" in text and "STORAGE_LOCATIONS=s3files" in text
    assert "STORAGE_LOCAL_" not in text and f"STORAGE_S3FILES_BUCKET={bucket}" in text
    assert f"KEY={project.env['KEY']}" in text and f"SECRET={project.env['SECRET']}" in text  # the rest kept
    # The source is untouched: same config bytes, its files still in 'local'.
    assert (project.dir / ".env").read_bytes() == original_config
    assert set(storage_rows(DatabaseSettings.from_url(source_db.url))) == {"local"}
    uploads = {p.name: p.read_bytes() for p in (project.dir / "uploads").iterdir()}
    assert {k.split("/", 1)[1]: v for k, v in s3.objects(bucket, "uploads/").items()} == uploads

    report = latest_artifact("move-project")
    assert "## Tables" in report and "| directus_files | 2 | 2 | yes |" in report and "| articles | 12 | 12 | yes |" in report
    assert "'local' → 's3files' (2 directus_files rows)" in report and "2 sha256 equal on both sides" in report
    for secret in [*project.secrets, target_db.password, s3.secret]:
        assert secret not in report
    with served(project, out) as client:
        after = api_state(client)
        assert after == renamed(before, "local", "s3files")  # assets byte-identical, now read from S3
        can_write(client)
        DirectusClient.login(project.url, "editor@example.com", "editor-password-1").close()

    # And back: S3 -> a local folder named 'local' again, into yet another PostgreSQL database.
    back_db = databases.create("pg")
    back = tmp_path / "back.env"
    with back_db.flow_url() as back_url:
        move_project(project_dir=str(project.dir), config_path=str(out), to_database=back_url,
                     to_storage={"s3files": f"local:{tmp_path / 'uploads-back'}"}, config_out=str(back), repo=str(repo))
    assert {p.name: p.read_bytes() for p in (tmp_path / "uploads-back").iterdir()} == uploads
    with served(project, back) as client:
        state = api_state(client)
    assert state["assets"] == before["assets"]
    assert [f["storage"] for f in state["files"]] == ["local"] * len(before["files"])


def test_mariadb_same_engine_through_the_cli_then_to_postgresql(tmp_path, directus, databases, cli_env,
                                                                directus_tables):
    source_db = databases.create("mysql")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    target_db = databases.create("mysql")
    out = tmp_path / "moved.env"
    env = {**cli_env, "DIRECTUS_OPS_DATABASE_PASSWORD": target_db.password}
    url_without_password = target_db.url.replace(f":{target_db.password}@", "@")
    done = subprocess.run([*CLI, "move", str(project.dir), "--to-database", url_without_password, "--config-out",
                           str(out), "--repo", str(tmp_path / "repo")], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    assert "row counts and checksums equal" in done.stdout
    for secret in [*project.secrets, target_db.password]:
        assert secret not in done.stdout + done.stderr
    assert f"DB_PASSWORD={target_db.password}" in out.read_text()
    with served(project, out) as client:
        assert api_state(client) == before
        can_write(client)

    from flows.move import move_project

    pg_db = databases.create("pg")
    pg_out = tmp_path / "pg.env"
    with pg_db.flow_url() as pg_url:
        result = move_project(project_dir=str(project.dir), to_database=pg_url, config_out=str(pg_out))
    assert result.method == "transfer" and result.tables_equal
    source_counts = row_counts(DatabaseSettings.from_url(source_db.url))
    assert directus_tables <= set(source_counts)
    assert row_counts(DatabaseSettings.from_url(pg_db.url)) == source_counts
    with served(project, pg_out) as client:
        after = api_state(client)
        assert after["assets"] == before["assets"]
        assert engine_neutral(after) == engine_neutral(before), first_difference(engine_neutral(after), engine_neutral(before))
        can_write(client)


# -- across engines --------------------------------------------------------------------------------------------
@pytest.mark.matrix
def test_sqlite_to_postgresql(tmp_path, directus, databases, prefect_server, directus_tables):
    from flows.move import move_project

    source_db = databases.create("sqlite3")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    source_counts = row_counts(DatabaseSettings.from_url(source_db.url))
    target_db = databases.create("pg", create_database=False)
    out = tmp_path / "moved.env"
    with target_db.flow_url() as target_url:
        result = move_project(project_dir=str(project.dir), to_database=target_url, config_out=str(out))
    assert result.method == "transfer" and result.tables_equal and result.snapshot is None
    # Every table arrives with as many rows: each one a fresh bootstrap of the installed version creates
    # (directus_comments, directus_deployments, directus_oauth_* on 12.x) and the project's own.
    target_counts = row_counts(DatabaseSettings.from_url(target_db.url))
    assert directus_tables <= set(source_counts) and {"articles", "authors", "ops_marker"} <= set(source_counts)
    assert target_counts == source_counts
    assert "DB_FILENAME" not in out.read_text() and "DB_CLIENT=pg" in out.read_text()
    with served(project, out) as client:
        after = api_state(client)
        assert after["assets"] == before["assets"]
        assert engine_neutral(after) == engine_neutral(before), first_difference(engine_neutral(after), engine_neutral(before))
        can_write(client)
    # Relations to Directus's own tables are real foreign keys on the target.
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{target_db.name}") as conn:
        targets = {r[0] for r in conn.execute(
            "SELECT ccu.table_name FROM information_schema.table_constraints tc JOIN "
            "information_schema.constraint_column_usage ccu ON tc.constraint_name = ccu.constraint_name "
            "WHERE tc.constraint_type = 'FOREIGN KEY' AND tc.table_name = 'articles'")}
    assert {"authors", "directus_files"} <= targets


# -- cutover ---------------------------------------------------------------------------------------------------
def app_scripts(project: TestProject, fail_when: str | None = None) -> tuple[str, str]:
    """A start and a stop command around ``node node_modules/directus/cli.js start`` with a pid file; the
    start command fails (as an app refusing its config would) while the config contains ``fail_when``. The node
    is the one the project's Directus runs on (12.x needs Node 22, which need not be the machine's)."""
    directory = project.dir
    node_binary = node.for_project(directory).node
    start = directory / "start-app.sh"
    guard = f'grep -q "{fail_when}" .env && {{ echo "app refuses this config" >&2; exit 3; }}\n' if fail_when else ""
    start.write_text(f"""#!/bin/sh
cd "{directory}"
{guard}if [ -f app.pid ] && kill -0 "$(cat app.pid)" 2>/dev/null; then exit 0; fi
PRESSURE_LIMITER_ENABLED=false setsid "{node_binary}" node_modules/directus/cli.js start >app.log 2>&1 </dev/null &
echo $! > app.pid
for i in $(seq 1 200); do curl -sf {project.url}/server/ping >/dev/null && exit 0; sleep 0.3; done
echo "Directus did not start" >&2; exit 1
""")
    stop = directory / "stop-app.sh"
    stop.write_text(f"""#!/bin/sh
cd "{directory}"
[ -f app.pid ] || exit 0
pid="$(cat app.pid)"; kill "$pid" 2>/dev/null
for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null; rm -f app.pid; exit 0
""")
    for script in (start, stop):
        script.chmod(0o755)
    return f"sh {start}", f"sh {stop}"


def titles(settings: DatabaseSettings) -> set[str]:
    engine = open_engine(settings)
    with engine.connect() as conn:
        found = {r[0] for r in conn.execute(sa.text("SELECT title FROM articles"))}
    engine.dispose()
    return found


def test_cutover_fails_and_puts_the_old_config_back_then_succeeds(tmp_path, directus, databases, cli_env):
    source_db = databases.create("sqlite3")
    project = make_project(tmp_path / "source", directus, source_db)
    with project.server() as client:
        seed(client, ["local"])
        before = api_state(client)
    config = project.dir / ".env"
    original = config.read_bytes()
    source_settings = DatabaseSettings.from_url(source_db.url)
    start, stop = app_scripts(project, fail_when="STORAGE_FILES2_")

    def cutover(*args: str, stop_command: str = stop, url: str = project.url) -> subprocess.CompletedProcess:
        return subprocess.run([*CLI, "move", str(project.dir), *args, "--cutover", "--stop-command", stop_command,
                               "--start-command", start, "--url", url, "--app-timeout", "5"],
                              env=cli_env, capture_output=True, text=True, timeout=600)

    subprocess.run(start, shell=True, check=True, timeout=120)
    try:
        # A cutover whose start command fails on the new config: the rename is undone, the old config is put
        # back and the app runs again on it.
        done = cutover("--to-storage", f"local=files2:{tmp_path / 'files2'}")
        assert done.returncode == 15, done.stderr
        message = done.stderr.strip().splitlines()[-1]
        assert "cutover failed" in message and "old config put back" in message and "app started on the old config" in message
        assert config.read_bytes() == original and not (project.dir / ".env.before-move").exists()
        assert set(storage_rows(source_settings)) == {"local"}
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            assert api_state(client) == before  # the app that runs now is the old one, intact

        # A stop command that returns 0 but leaves the app answering: nothing is copied over or switched.
        done = cutover("--to-storage", f"local=files3:{tmp_path / 'files3'}", stop_command="true")
        assert done.returncode == 15, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and f"still answers at {project.url}" in lines[0] and "nothing was switched" in lines[0], lines
        assert config.read_bytes() == original and set(storage_rows(source_settings)) == {"local"}
        assert not (project.dir / ".env.before-move").exists() and not (project.dir / ".env.after-move").exists()

        # The start works on the new config but the health check fails (nothing answers at --url): the app
        # started on the new config is stopped before the old config goes back, so the only app running
        # afterwards is on the old config (Directus reads its config only when it starts).
        unused_target = databases.create("sqlite3")
        done = cutover("--to-database", unused_target.url, "--repo", str(tmp_path / "repo"), url="http://127.0.0.1:9")
        assert done.returncode == 15, done.stderr
        message = done.stderr.strip().splitlines()[-1]
        assert "cutover failed" in message and "app on the new config stopped" in message, message
        assert "old config put back" in message and config.read_bytes() == original
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            client.post("/items/articles", {"title": "written after the failed cutover"})
        assert "written after the failed cutover" in titles(source_settings)
        assert "written after the failed cutover" not in titles(DatabaseSettings.from_url(unused_target.url))
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            before = api_state(client)

        # Then a cutover that works: SQLite to a new SQLite file. The stop command writes a row into the
        # source once the app is down, so only the final copy (made after the stop) can carry it.
        written_at_stop = "written while the app was stopped"
        stop_and_write = (f"{stop} && sqlite3 {source_db.filename} "
                          f"\"INSERT INTO articles (title, published) VALUES ('{written_at_stop}', 0)\"")
        target_db = databases.create("sqlite3")
        done = cutover("--to-database", target_db.url, "--repo", str(tmp_path / "repo"), stop_command=stop_and_write)
        assert done.returncode == 0, done.stderr
        assert "cut over" in done.stdout
        assert (project.dir / ".env.before-move").read_bytes() == original
        assert f"DB_FILENAME={target_db.filename}" in config.read_text()
        assert stat.S_IMODE(config.stat().st_mode) == 0o600
        target_settings = DatabaseSettings.from_url(target_db.url)
        assert written_at_stop in titles(target_settings)
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            after = api_state(client)  # served by the app running on the moved database
            assert [a["title"] for a in after["articles"]] == [a["title"] for a in before["articles"]] + [written_at_stop]
            assert {**after, "articles": before["articles"]} == before
            assert after["articles"][:-1] == before["articles"]
            can_write(client)
        assert "written after the move" not in titles(source_settings)  # the new item went to the new database only
        assert "written after the move" in titles(target_settings)
        assert not (project.dir / ".env.after-move").exists()
    finally:
        subprocess.run(stop, shell=True, timeout=60)


# -- refusals --------------------------------------------------------------------------------------------------
def test_refusals_through_the_cli(tmp_path, databases, cli_env_no_server):
    source_db = databases.create("pg")
    project_dir, _ = small_project(tmp_path / "small", source_db)
    config = project_dir / ".env"
    (project_dir / "second").mkdir()
    with config.open("a") as env:  # a second location, to try swapping names
        env.write(f"STORAGE_LOCATIONS=local,second\nSTORAGE_SECOND_DRIVER=local\nSTORAGE_SECOND_ROOT={project_dir / 'second'}\n")
    original = config.read_bytes()
    missing = databases.create("pg", create_database=False)
    busy = databases.create("pg")
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{busy.name}", autocommit=True) as conn:
        conn.execute("CREATE TABLE something (id int)")
    busy_mysql = databases.create("mysql")
    conn = pymysql.connect(host="127.0.0.1", user="root", database=busy_mysql.name, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE something (id int)")
    out = tmp_path / "out.env"
    new_root = tmp_path / "new-uploads"
    cases = [
        (["--to-database", "postgresql://u:sekrit-pw-1@127.0.0.1:1/x", "--repo", str(tmp_path / "r")], 4, "cannot connect"),
        (["--to-database", busy.url, "--repo", str(tmp_path / "r")], 5, "not empty"),
        (["--to-database", "mssql://u:sekrit-pw-1@127.0.0.1/x"], 2, "not supported"),
        (["--to-database", busy_mysql.url], 5, "not empty"),  # across engines
        (["--to-storage", "local"], 2, "LOCATION=PATH_OR_S3_URL"),
        (["--to-storage", "nosuch=/tmp/x"], 2, "nosuch"),
        (["--to-database", missing.url], 2, "--repo"),
        (["--to-database", missing.url, "--repo", str(tmp_path / "r"), "--cutover"], 2, "--stop-command"),
        (["--to-storage", f"local={new_root}", "--config-out", str(config)], 2, "current config"),
        (["--to-storage", f"local=other:{new_root}"], 2, "--cutover"),
        # Swapped names would end with every file in one location (renames are one UPDATE per location).
        (["--to-storage", f"local=second:{new_root}", "--to-storage", f"second=local:{new_root}-2",
          "--cutover", "--stop-command", "true", "--start-command", "true"], 2, "already has a location"),
        ([], 2, "nothing to move"),
    ]
    for args, code, words in cases:
        done = subprocess.run([*CLI, "move", str(project_dir), *args, "--config-out", str(out)]
                              if "--config-out" not in args and args else [*CLI, "move", str(project_dir), *args],
                              env=cli_env_no_server, capture_output=True, text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == code, (args, done.stderr)
        assert len(lines) == 1 and words in lines[0], (args, lines)
        assert "sekrit-pw-1" not in done.stderr + done.stdout
        assert busy.password not in done.stderr and busy_mysql.password not in done.stderr
    # Nothing changed anywhere.
    assert config.read_bytes() == original and not out.exists() and not new_root.exists()
    assert not (tmp_path / "r").exists() and not Path(f"{new_root}-2").exists()
    with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres") as conn:
        assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (missing.name,)).fetchone() is None
    assert busy.tables() == ["something"] and busy_mysql.tables() == ["something"]

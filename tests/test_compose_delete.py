"""Delete of a Docker Compose project on real Docker: the directus_* tables dropped after a verified backup, the
project's own tables kept with their rows, the Directus service stopped (its next start would bootstrap Directus
again), and the stack — Compose file, mounts, volumes — left to its operator, as the result says."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable

from compose_stacks import ComposeStack
from directus_ops.directus_api import DirectusClient
from directus_ops.project import load_project
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, run_cli, seed


def test_delete_a_sqlite_project_in_a_volume(compose_stack: Callable[..., ComposeStack], cli_env: dict[str, str],
                                            tmp_path) -> None:
    stack = compose_stack("sqlite-volume")
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        seed(client, ["local"])
        articles = client.items("articles", sort="id")
    database = load_project(stack.directory).database.filename
    assert database is not None and database.is_file()  # the SQLite file, found through the named volume
    compose_bytes = stack.compose_file.read_bytes()
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "delete", str(stack.directory), "--confirm", stack.directory.name, "--repo", str(repo))
    assert done.returncode == 0, done.stderr
    assert "docker compose down" in done.stdout + done.stderr  # the stack is the operator's to remove
    assert not stack.ping()  # the Directus service is stopped
    assert stack.compose_file.read_bytes() == compose_bytes and stack.uploads.is_dir()
    with sqlite3.connect(database) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        rows = conn.execute("SELECT id, title, author FROM articles ORDER BY id").fetchall()
    assert not {t for t in tables if t.startswith("directus_")}
    assert {"articles", "authors"} <= tables
    assert rows == [(a["id"], a["title"], a["author"]) for a in articles]
    snapshots = run_cli(cli_env, "snapshots", "--repo", str(repo), "--json")
    assert snapshots.returncode == 0, snapshots.stderr
    assert [s["project"] for s in json.loads(snapshots.stdout)] == [stack.directory.name]  # the safety net exists


def test_delete_refuses_a_wrong_name_and_changes_nothing(compose_stack: Callable[..., ComposeStack],
                                                         cli_env: dict[str, str], tmp_path) -> None:
    stack = compose_stack("pg-in-stack")
    done = run_cli(cli_env, "delete", str(stack.directory), "--confirm", "other", "--repo", str(tmp_path / "repo"))
    assert done.returncode == 16 and "does not match the project's name" in done.stderr
    assert stack.ping()

"""Move of a Docker Compose project on real Docker, with the same command as an npm user: the copy verified
on both sides, the Directus service's environment rewritten in the Compose file (every other line as it was),
and ``--cutover`` stopping the service and recreating it on the new database, which then serves the same
items and files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from compose_stacks import ComposeStack
from directus_ops.directus_api import DirectusClient
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Databases, api_state, engine_neutral, run_cli, seed


def _environment(stack: ComposeStack) -> dict[str, str]:
    return {k: str(v) for k, v in yaml.safe_load(stack.compose_file.read_text())["services"]["directus"]["environment"].items()}


def _unchanged_lines(before: str, after: str, changed: set[str]) -> None:
    """Every line of ``before`` not setting one of ``changed`` is still in ``after``, in order."""
    kept = [line for line in before.splitlines() if line.strip().split(":", 1)[0] not in changed]
    remaining = iter(after.splitlines())
    assert all(any(line == other for other in remaining) for line in kept)


def test_move_sqlite_in_a_volume_to_postgresql_with_cutover(compose_stack: Callable[..., ComposeStack],
                                                            databases: Databases, cli_env: dict[str, str],
                                                            tmp_path: Path) -> None:
    stack = compose_stack("sqlite-volume")
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        seed(client, ["local"])
        before = api_state(client)
    target = databases.create("pg")
    compose_before = stack.compose_file.read_text()
    done = run_cli({**cli_env, "DIRECTUS_OPS_DATABASE_PASSWORD": target.password or ""}, "move", str(stack.directory),
                   "--to-database", target.url.replace(f":{target.password}@", "@"), "--repo", str(tmp_path / "repo"),
                   "--cutover")
    assert done.returncode == 0, done.stderr
    env = _environment(stack)
    assert (env["DB_CLIENT"], env["DB_HOST"], env["DB_DATABASE"], env["DB_PASSWORD"]) == (
        "pg", "127.0.0.1", target.name, target.password)
    assert "DB_FILENAME" not in env
    _unchanged_lines(compose_before, stack.compose_file.read_text(),
                     {"DB_CLIENT", "DB_FILENAME", "DB_HOST", "DB_PORT", "DB_DATABASE", "DB_USER", "DB_PASSWORD"})
    assert {"directus_users", "articles", "authors"} <= set(target.tables())
    stack.wait_ready()
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        # PostgreSQL serves big integers (filesize) as strings, SQLite as numbers: the values are equal.
        assert engine_neutral(api_state(client)) == engine_neutral(before)


def test_move_external_postgresql_into_the_stack(compose_stack: Callable[..., ComposeStack], databases: Databases,
                                                 cli_env: dict[str, str], tmp_path: Path) -> None:
    external = databases.create("pg")
    stack = compose_stack("pg-in-stack", extra_env={**external.env(), "DB_CLIENT": "pg"})
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        seed(client, ["local"])
        before = api_state(client)
    assert stack.db_port is not None
    # The database service's own database, as the Directus container reaches it: "database" is a service.
    in_stack = f"postgresql://directus@database:{stack.db_port}/directus"
    done = run_cli({**cli_env, "DIRECTUS_OPS_DATABASE_PASSWORD": "directus"}, "move", str(stack.directory),
                   "--to-database", in_stack, "--repo", str(tmp_path / "repo"), "--cutover")
    assert done.returncode == 0, done.stderr
    env = _environment(stack)
    assert (env["DB_HOST"], env["DB_PORT"], env["DB_DATABASE"], env["DB_USER"]) == (
        "database", str(stack.db_port), "directus", "directus")
    stack.wait_ready()
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        assert api_state(client) == before
    # The app now runs on the in-stack database: a change there is not in the external one.
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        client.post("/items/authors", {"name": "Barbara"})
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{external.name}") as conn:
        assert [r[0] for r in conn.execute("SELECT name FROM authors ORDER BY id")] == ["Ada", "Grace"]

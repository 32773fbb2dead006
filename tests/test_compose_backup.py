"""Backup, verify and restore of Docker Compose projects on real Docker, with the same commands as an npm user:
each layout's project backed up while it serves, restored into a second Compose project (its own Compose file
and an empty database) that then serves the same items and byte-identical files, and takes new uploads (the
restored files belong to the container's user). The bad inputs a Docker user meets are refused in one line,
nothing changed."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Callable

import pytest

from compose_stacks import ComposeStack
from directus_ops.directus_api import DirectusClient
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, MARKER_EXTENSION, api_state, assert_one_line_error, run_cli, seed

NODE_UID = 1000


def _with_marker_extension(stack: ComposeStack) -> None:
    for relative, text in MARKER_EXTENSION.items():
        target = stack.directory / "extensions" / "directus-extension-marker" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if os.geteuid() == 0:
        for path in [stack.directory / "extensions", *(stack.directory / "extensions").rglob("*")]:
            os.chown(path, NODE_UID, NODE_UID)


def _empty_target(compose_stack: Callable[..., ComposeStack], layout: str) -> ComposeStack:
    """A second Compose project of ``layout``: its containers and volumes made, only its database running (an
    empty database for the restore)."""
    target = compose_stack(layout, start=False)
    target.run("up", "--no-start")
    if layout in ("pg-in-stack", "mariadb-in-stack"):
        target.run("up", "-d", "database")
        _wait_healthy(target, "database")
    return target


def _wait_healthy(stack: ComposeStack, service: str, timeout: float = 120) -> None:
    """Until the service's healthcheck passes (its database initialized and accepting connections)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container = stack.run("ps", "-q", service).stdout.strip()
        status = subprocess.run(["docker", "inspect", "--format", "{{.State.Health.Status}}", container],
                                capture_output=True, text=True).stdout.strip()
        if status == "healthy":
            return
        time.sleep(1)
    raise AssertionError(f"service {service} of {stack.directory} did not become healthy within {timeout:.0f} s")


def _owners(folder: Path) -> set[int]:
    return {path.stat().st_uid for path in folder.rglob("*")}


@pytest.mark.parametrize("layout", ["pg-in-stack", "pg-external", "mariadb-in-stack", "sqlite-volume"])
def test_round_trip_into_another_compose_project(layout: str, compose_stack: Callable[..., ComposeStack],
                                                 cli_env: dict[str, str], tmp_path: Path) -> None:
    source = compose_stack(layout, start=False, tag_in_env=layout == "pg-in-stack",
                           env_file=layout == "mariadb-in-stack")
    _with_marker_extension(source)
    source.up()
    with DirectusClient.login(source.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        seed(client, ["local"])
        before = api_state(client)
    repo = tmp_path / "repo"
    # The same command an npm user types; the app keeps serving meanwhile.
    backup = run_cli(cli_env, "backup", str(source.directory), "--repo", str(repo))
    assert backup.returncode == 0, backup.stderr
    assert source.ping()
    verify = run_cli(cli_env, "verify", "--repo", str(repo), "--read-data", "100")
    assert verify.returncode == 0, verify.stderr

    target = _empty_target(compose_stack, layout)
    compose_bytes = target.compose_file.read_bytes()
    restore = run_cli(cli_env, "restore", "--project-dir", str(target.directory), "--repo", str(repo))
    assert restore.returncode == 0, restore.stderr
    assert target.compose_file.read_bytes() == compose_bytes  # its own Compose file, untouched
    if os.geteuid() == 0:  # the official image's user owns what was restored into its mounts
        assert _owners(target.uploads) == {NODE_UID} and _owners(target.directory / "extensions") == {NODE_UID}
    target.up()
    with DirectusClient.login(target.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        after = api_state(client)
        assert after == before
        new = client.upload(content=b"uploaded after the restore", filename="new.txt")  # the app writes its mount
        assert client.asset(new["id"]) == b"uploaded after the restore"


def test_restore_replaces_a_running_projects_database(compose_stack: Callable[..., ComposeStack],
                                                      cli_env: dict[str, str], tmp_path: Path) -> None:
    stack = compose_stack("pg-in-stack")
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        kept = client.upload(content=b"kept", filename="kept.txt")
    repo = tmp_path / "repo"
    assert run_cli(cli_env, "backup", str(stack.directory), "--repo", str(repo)).returncode == 0
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        client.request("DELETE", f"/files/{kept['id']}")
    refused = run_cli(cli_env, "restore", "--project-dir", str(stack.directory), "--repo", str(repo))
    assert_one_line_error(refused, 5, "is not empty", "through the container of Compose service 'database'",
                          "--replace")
    done = run_cli(cli_env, "restore", "--project-dir", str(stack.directory), "--repo", str(repo), "--replace")
    assert done.returncode == 0, done.stderr
    stack.run("restart", "directus")
    stack.wait_ready()
    with DirectusClient.login(stack.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
        assert client.asset(kept["id"]) == b"kept"


def test_a_stopped_database_service_is_named(compose_stack: Callable[..., ComposeStack], cli_env: dict[str, str],
                                             tmp_path: Path) -> None:
    stack = compose_stack("mariadb-in-stack")
    stack.run("stop", "database")
    repo = tmp_path / "repo"
    done = run_cli(cli_env, "backup", str(stack.directory), "--repo", str(repo))
    assert_one_line_error(done, 4, "the database service 'database'", "is not running",
                          "docker compose up -d database")
    assert not (repo / "snapshots").exists() or not any((repo / "snapshots").iterdir())


BAD_PROJECTS: list[tuple[str, str, list[str], int, str]] = [
    ("no Directus service", "services:\n  web:\n    image: nginx:1\n", [], 2, "has no Directus service"),
    ("two, no --service", "services:\n  a:\n    image: directus/directus:12.4.0\n  b:\n"
     "    image: directus/directus:12.4.0\n", [], 2, "has 2 Directus services (a, b); pass --service NAME"),
    ("a local root without a mount", "services:\n  a:\n    image: directus/directus:12.4.0\n    environment:\n"
     "      DB_CLIENT: pg\n      DB_HOST: 127.0.0.1\n      DB_DATABASE: d\n", [], 2,
     "STORAGE_LOCAL_ROOT is /directus/uploads in the container of service 'a', which no volume"),
    ("--service without Compose", "", ["--service", "directus"], 2, "holds no Compose file"),
]


@pytest.mark.parametrize("case, compose, extra, code, fragment", BAD_PROJECTS, ids=[c[0] for c in BAD_PROJECTS])
def test_bad_compose_projects_change_nothing(case: str, compose: str, extra: list[str], code: int, fragment: str,
                                             compose_cli: None, cli_env_no_server: dict[str, str], tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    if compose:
        (project / "compose.yaml").write_text(compose)
    else:
        (project / ".env").write_text("DB_CLIENT=sqlite3\nDB_FILENAME=./data.db\n")
    before = {p.name: p.read_bytes() for p in project.iterdir()}
    repo = tmp_path / "repo"
    done = run_cli(cli_env_no_server, "backup", str(project), "--repo", str(repo), *extra)
    assert_one_line_error(done, code, fragment)
    assert {p.name: p.read_bytes() for p in project.iterdir()} == before
    assert not repo.exists()

"""The upgrade of a Directus deployed with Docker Compose (directus_ops.compose_upgrade, flows/upgrade.py), on real
stacks (tests/compose_stacks.py: PostgreSQL in the stack, reached through its container): 11.17.4 -> 12.4.0 with the
tag in the Compose file or in the .env variable it comes from; a migration of the target failing half-way ("...
already exists") rolls everything back; a target image that is not on the host is refused with nothing changed."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from compose_stacks import ComposeStack
from docker_images import directus_image, docker_env
from harness import ADMIN_EMAIL, ADMIN_PASSWORD

from directus_ops import compose_upgrade
from directus_ops import database as db
from directus_ops.errors import ProcedureFailed, VersionError
from directus_ops.project import load_project

FROM, TO = "11.17.4", "12.4.0"
# One of 12.4.0's own new migrations (the 4th of its 8 after 11.17.4), its column added by hand beforehand: the run
# fails on it ("... already exists") after the ones before it applied.
DRIFT_KEY = "20260512A"
DRIFT = "ALTER TABLE directus_collections ADD COLUMN autosave_revision_interval REAL"
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def images(docker_engine: None) -> None:
    directus_image(FROM)
    directus_image(TO)


@pytest.fixture
def stack(request, compose_stack, images: None) -> ComposeStack:
    return compose_stack("pg-in-stack", FROM, tag_in_env=getattr(request, "param", False))


def config_bytes(stack: ComposeStack) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in (stack.compose_file, stack.directory / ".env") if p.exists()}


def running_image(stack: ComposeStack) -> str:
    container = stack.run("ps", "-q", "directus").stdout.strip()
    return subprocess.run(["docker", "inspect", "--format", "{{.Config.Image}}", container], env=docker_env(),
                          capture_output=True, text=True, check=True).stdout.strip()


def applied(stack: ComposeStack) -> list[str]:
    return sorted(load_project(stack.directory).applied_migrations())


def image_migrations(version: str) -> list[str]:
    return compose_upgrade.image_migrations(compose_upgrade._image_id(f"directus/directus:{version}"))


def add_data(stack: ComposeStack) -> dict:
    """A project table with rows (SQL through the database's container) and a file uploaded through the API."""
    settings = load_project(stack.directory).database
    with db.connect(settings) as conn:
        conn.execute(sa.text("CREATE TABLE books (id INTEGER PRIMARY KEY, title VARCHAR(100))"))
        for number in range(1, 6):
            conn.execute(sa.text("INSERT INTO books VALUES (:i, :t)"), {"i": number, "t": f"Book {number}"})
        conn.commit()
    token = login(stack)
    content = b"kept across the upgrade\n" * 100
    response = httpx.post(f"{stack.url}/files", headers={"Authorization": f"Bearer {token}"},
                          files={"file": ("kept.txt", content, "text/plain")}, timeout=60)
    response.raise_for_status()
    return {"file": response.json()["data"]["id"], "content": content, "books": books(stack)}


def login(stack: ComposeStack) -> str:
    response = httpx.post(f"{stack.url}/auth/login", json={"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD},
                          timeout=60)
    response.raise_for_status()
    return response.json()["data"]["access_token"]


def books(stack: ComposeStack) -> list[tuple]:
    with db.connect(load_project(stack.directory).database) as conn:
        return [tuple(r) for r in conn.execute(sa.text("SELECT id, title FROM books ORDER BY id"))]


def data_kept(stack: ComposeStack, before: dict) -> None:
    assert books(stack) == before["books"]
    token = login(stack)
    asset = httpx.get(f"{stack.url}/assets/{before['file']}", headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert asset.status_code == 200 and asset.content == before["content"]


def pg_dump(stack: ComposeStack) -> str:
    """Schema and data as plain SQL, from inside the database's container (without pg_dump's random \\restrict key)."""
    text = stack.run("exec", "-T", "database", "pg_dump", "--no-owner", "-h", "127.0.0.1", "-p", str(stack.db_port),
                     "-U", "directus", "directus").stdout
    return "\n".join(l for l in text.splitlines() if not l.startswith(("\\restrict", "\\unrestrict")))


def only_the_tag_changed(before: bytes, after: bytes) -> None:
    assert after == before.replace(FROM.encode(), TO.encode()) and before.count(FROM.encode()) == 1


@pytest.mark.parametrize("stack", [False, True], indirect=True, ids=["tag-in-compose-file", "tag-in-env"])
def test_upgrade_of_a_compose_project(stack: ComposeStack, tmp_path: Path, prefect_server: None, request) -> None:
    from flows.upgrade import upgrade_directus

    before = add_data(stack)
    files_before = config_bytes(stack)
    assert applied(stack) == image_migrations(FROM)
    edited = ".env" if ".env" in files_before else "docker-compose.yml"

    started = time.monotonic()
    result = upgrade_directus(project_dir=str(stack.directory), repo=str(tmp_path / "repo"), to=TO,
                              accept_license_change=True)  # into 12.x: the license notice accepted
    TIMINGS[request.node.name] = time.monotonic() - started
    print(f"\n{request.node.name}: upgrade {FROM} -> {TO} took {TIMINGS[request.node.name]:.1f} s")

    assert result.upgraded and result.from_version == FROM and result.to_version == TO and result.snapshot
    assert result.health["status"] == "pong" and result.health["url"] == stack.url
    files_after = config_bytes(stack)
    for name, content in files_before.items():
        if name == edited:
            only_the_tag_changed(content, files_after[name])
        else:
            assert files_after[name] == content
    assert running_image(stack) == f"directus/directus:{TO}"
    assert stack.ping()
    assert applied(stack) == image_migrations(TO)
    data_kept(stack, before)
    assert load_project(stack.directory).directus_version == TO


@pytest.mark.parametrize("stack", [False, True], indirect=True, ids=["tag-in-compose-file", "tag-in-env"])
def test_a_failing_migration_rolls_the_compose_project_back(stack: ComposeStack, tmp_path: Path, prefect_server: None,
                                                            request) -> None:
    from flows.upgrade import upgrade_directus

    before = add_data(stack)
    with db.connect(load_project(stack.directory).database) as conn:
        conn.execute(sa.text(DRIFT))
        conn.commit()
    dump_before, files_before, applied_before = pg_dump(stack), config_bytes(stack), applied(stack)

    started = time.monotonic()
    with pytest.raises(ProcedureFailed) as failed:
        upgrade_directus(project_dir=str(stack.directory), repo=str(tmp_path / "repo"), to=TO,
                         accept_license_change=True)
    TIMINGS[request.node.name] = time.monotonic() - started
    print(f"\n{request.node.name}: failed upgrade and rollback took {TIMINGS[request.node.name]:.1f} s")
    message = str(failed.value)
    assert f"migration {DRIFT_KEY}" in message and "already exists" in message, message
    assert "database restored from the snapshot" in message and "FAILED" not in message, message
    assert "\n" not in message

    assert pg_dump(stack) == dump_before  # schema (the hand-made column too), rows and applied migrations
    assert applied(stack) == applied_before
    assert config_bytes(stack) == files_before
    assert running_image(stack) == f"directus/directus:{FROM}"
    assert stack.ping()
    data_kept(stack, before)


def test_a_target_image_not_on_the_host_is_refused_with_nothing_changed(tmp_path: Path, compose_stack, images: None,
                                                                        prefect_server: None) -> None:
    from flows.upgrade import upgrade_directus

    stack = compose_stack("pg-in-stack", FROM, start=False)  # refused before the database is read
    files_before = config_bytes(stack)
    with pytest.raises(VersionError) as refused:
        upgrade_directus(project_dir=str(stack.directory), repo=str(tmp_path / "repo"), to="99.0.0",
                         accept_license_change=True)
    message = str(refused.value)
    assert message.startswith("directus/directus:99.0.0 is not on this host and cannot be pulled (")
    assert message.endswith("); pull or build it first") and "\n" not in message
    assert config_bytes(stack) == files_before
    assert not (tmp_path / "repo").exists()  # no snapshot taken


# -- where the tag is written (Compose reads the files; no engine needed) ------------------------------------------
TAGGED = """\
# the stack
services:
  directus:
    image: "directus/directus:{tag}"   # pinned
    network_mode: host
    volumes:
      - ./uploads:/directus/uploads
    environment:
      SECRET: "s"
      DB_CLIENT: pg
      DB_HOST: 127.0.0.1
      DB_DATABASE: site
"""


@pytest.mark.parametrize("compose_text, env_text, edited, expected", [
    (TAGGED.format(tag="11.17.4"), None, "docker-compose.yml",
     TAGGED.format(tag="12.4.0")),
    (TAGGED.format(tag="${DIRECTUS_VERSION}"), "# versions\nexport DIRECTUS_VERSION='11.17.4'  # here\nOTHER=1\n", ".env",
     "# versions\nexport DIRECTUS_VERSION='12.4.0'  # here\nOTHER=1\n"),
    (TAGGED.format(tag="${DIRECTUS_VERSION:-11.17.4}"), None, "docker-compose.yml",
     TAGGED.format(tag="${DIRECTUS_VERSION:-12.4.0}")),
], ids=["in-compose-file", "in-env", "variable-default"])
def test_the_tag_is_changed_where_it_is_written(tmp_path: Path, compose_cli: None, compose_text: str,
                                                env_text: str | None, edited: str, expected: str) -> None:
    from directus_ops.upgrade import VersionPlan

    root = tmp_path / "site"
    root.mkdir()
    (root / "docker-compose.yml").write_text(compose_text)
    if env_text is not None:
        (root / ".env").write_text(env_text)
    project = load_project(root)
    assert project.compose is not None and project.compose.image() == "directus/directus:11.17.4"
    tag = compose_upgrade.find_tag(project.compose)
    assert Path(tag.path).name == edited
    target = compose_upgrade.ComposeTarget(str(root), "directus", "directus/directus:11.17.4",
                                           "directus/directus:12.4.0", tag)
    plan = VersionPlan(str(root), str(root / "docker-compose.yml"), FROM, TO, [], [], [], compose=target)
    before = (root / edited).read_bytes()
    compose_upgrade.set_tag(plan, TO)
    assert (root / edited).read_text() == expected
    assert load_project(root).compose.image() == "directus/directus:12.4.0"  # type: ignore[union-attr]
    compose_upgrade.put_back_tag(plan)
    assert (root / edited).read_bytes() == before


def test_a_tag_from_the_shells_environment_is_refused(tmp_path: Path, compose_cli: None, monkeypatch) -> None:
    from directus_ops.errors import ConfigError

    root = tmp_path / "site"
    root.mkdir()
    (root / "docker-compose.yml").write_text(TAGGED.format(tag="${DIRECTUS_VERSION}"))
    (root / ".env").write_text("DIRECTUS_VERSION=11.0.0\n")
    monkeypatch.setenv("DIRECTUS_VERSION", "11.17.4")
    project = load_project(root)
    with pytest.raises(ConfigError, match="the image tag comes from DIRECTUS_VERSION, which this shell's environment sets"):
        compose_upgrade.find_tag(project.compose)  # type: ignore[arg-type]


CUSTOM_MIGRATION = """export async function up(knex) {
  await knex.schema.createTable('ops_custom', (table) => { table.increments('id'); });
}
export async function down(knex) {
  await knex.schema.dropTable('ops_custom');
}
"""


def test_a_pending_custom_migration_is_refused_before_anything_changes(compose_stack, images: None) -> None:
    """The container would apply it at its next start, and if it failed the old version would not start either:
    refused in the plan (nothing changed), naming the migration."""
    from directus_ops.errors import ProjectError
    from directus_ops.upgrade import plan_upgrade

    stack = compose_stack("pg-in-stack", FROM, start=False)
    text = stack.compose_file.read_text()
    stack.compose_file.write_text(text.replace("      - ./extensions:/directus/extensions\n",
                                               "      - ./extensions:/directus/extensions\n"
                                               "      - ./migrations:/directus/migrations\n"))
    assert "./migrations:/directus/migrations" in stack.compose_file.read_text()
    (stack.directory / "migrations").mkdir()
    stack.up()
    (stack.directory / "migrations" / "20990101A-ops-custom.js").write_text(CUSTOM_MIGRATION)
    files_before = config_bytes(stack)
    with pytest.raises(ProjectError) as refused:
        plan_upgrade(str(stack.directory), TO)
    message = str(refused.value)
    assert "1 custom migration(s) in" in message and "not applied yet (first 20990101A)" in message, message
    assert "\n" not in message
    assert config_bytes(stack) == files_before
    assert running_image(stack) == f"directus/directus:{FROM}"

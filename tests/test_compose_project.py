"""A Docker Compose project read as Directus in its container sees it (directus_ops.compose, project): the
service's environment as Compose gives it, paths mapped through the mounts, the database reached directly or
through its service's container, and each bad input refused in one line. Compose reads the files (``config``):
no Docker engine is needed here."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from directus_ops.errors import ConfigError, ProjectError
from directus_ops.project import load_project

DOCS_EXAMPLE = """\
# The docs' example, as an operator keeps it: comments and all.
services:
  database:
    image: postgis/postgis:13-master
    volumes:
      - ./data/database:/var/lib/postgresql/data
    environment:
      POSTGRES_USER: "directus"
      POSTGRES_PASSWORD: "${DB_PASSWORD:-directus}"
      POSTGRES_DB: "directus"

  directus:
    image: directus/directus:${DIRECTUS_VERSION}
    ports:
      - 8055:8055
    volumes:
      - ./uploads:/directus/uploads
      - ./extensions:/directus/extensions
    depends_on:
      - database
    env_file: directus.env
    environment:
      SECRET: "replace-with-secure-random-value"
      DB_CLIENT: "pg"
      DB_HOST: "database"
      DB_PORT: "5432"
      DB_DATABASE: "directus"
      DB_USER: "directus"
      DB_PASSWORD: "${DB_PASSWORD:-directus}"
      ADMIN_EMAIL: "admin@example.com"
      KEY: "a$$dollar"
"""


def write_project(root: Path, compose: str = DOCS_EXAMPLE, env: str = "DIRECTUS_VERSION=12.4.0\nDB_PASSWORD=s3cret-pw\n",
                  env_file: str = "PUBLIC_URL=http://127.0.0.1:8055\n", name: str = "docker-compose.yml") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(compose)
    if env is not None:
        (root / ".env").write_text(env)
    if env_file is not None:
        (root / "directus.env").write_text(env_file)
    return root


def test_the_docs_example_reads_as_its_container_sees_it(tmp_path: Path, compose_cli: None) -> None:
    root = write_project(tmp_path / "site")
    project = load_project(root)
    assert project.compose is not None and project.compose.service == "directus"
    assert project.name == "site"
    assert project.directus_version == "12.4.0"  # the image tag, interpolated from .env
    config = project.config
    assert config.text("PUBLIC_URL") == "http://127.0.0.1:8055"  # from env_file
    assert config.text("KEY") == "a$dollar"  # "$$" is a literal dollar in Compose
    database = project.database
    assert (database.engine, database.host, database.port, database.database, database.password) == (
        "postgresql", "database", 5432, "directus", "s3cret-pw")
    # "database" is a service of the stack that this host cannot resolve: reached through its container.
    assert database.container is not None and database.container.service == "database"
    assert database.container.project == "site" and database.container.port == 5432
    assert [(l.name, l.driver, l.root) for l in project.storage] == [("local", "local", str(root / "uploads"))]
    assert project.extensions_path == root / "extensions"
    assert "migrations" in project.unmounted  # /directus/migrations is not mounted: the image's own
    # What a backup keeps as the project's config: the Compose file, the .env it is interpolated from, its env file.
    assert project.config_files() == [root / "docker-compose.yml", root / ".env", root / "directus.env"]


def test_a_database_outside_the_stack_is_reached_directly(tmp_path: Path, compose_cli: None) -> None:
    compose = DOCS_EXAMPLE.replace('DB_HOST: "database"', 'DB_HOST: "127.0.0.1"')
    project = load_project(write_project(tmp_path / "site", compose))
    assert project.database.host == "127.0.0.1" and project.database.container is None


def test_sqlite_and_a_config_file_through_their_mounts(tmp_path: Path, compose_cli: None) -> None:
    compose = textwrap.dedent("""\
        services:
          directus:
            image: directus/directus:11.17.4
            volumes:
              - ./db:/directus/database
              - ./files:/srv/files
              - ./config:/directus/config
            environment:
              CONFIG_PATH: /directus/config/directus.env
        """)
    root = write_project(tmp_path / "lite", compose, env=None, env_file=None)
    (root / "config").mkdir()
    (root / "config" / "directus.env").write_text("STORAGE_LOCAL_ROOT=/srv/files/uploads\nSECRET=x\n")
    project = load_project(root)
    # The official image's own default: DB_CLIENT=sqlite3, DB_FILENAME=/directus/database/database.sqlite.
    assert project.database.engine == "sqlite"
    assert project.database.filename == root / "db" / "database.sqlite"
    assert project.storage[0].root == str(root / "files" / "uploads")
    assert project.config_path == root / "config" / "directus.env"
    assert project.directus_version == "11.17.4"
    assert root / "config" / "directus.env" in project.config_files()


@pytest.mark.parametrize("case, compose, service, expected", [
    ("no Directus service", "services:\n  web:\n    image: nginx:1\n", None,
     (ProjectError, "has no Directus service")),
    ("two and no --service", "services:\n  a:\n    image: directus/directus:12.4.0\n  b:\n    image: directus/directus:12.4.0\n",
     None, (ConfigError, "has 2 Directus services (a, b); pass --service NAME")),
    ("an unknown --service", "services:\n  a:\n    image: directus/directus:12.4.0\n", "cms",
     (ConfigError, "has no service 'cms'")),
    ("a local root without a mount", "services:\n  a:\n    image: directus/directus:12.4.0\n    environment:\n"
     "      DB_CLIENT: pg\n      DB_HOST: 127.0.0.1\n      DB_DATABASE: d\n", None,
     (ConfigError, "STORAGE_LOCAL_ROOT is /directus/uploads in the container of service 'a', which no volume")),
    ("a broken Compose file", "services:\n  a:\n    image: [\n", None, (ConfigError, "Compose cannot read")),
])
def test_bad_compose_projects_are_refused_in_one_line(tmp_path: Path, compose_cli: None, case: str, compose: str,
                                                      service: str | None, expected: tuple[type, str]) -> None:
    root = write_project(tmp_path / "p", compose, env=None, env_file=None)
    before = sorted(p.name for p in root.iterdir())
    kind, text = expected
    with pytest.raises(kind) as raised:
        load_project(root, service=service)
    assert text in raised.value.message and "\n" not in raised.value.message, case
    assert sorted(p.name for p in root.iterdir()) == before  # nothing written


def test_two_directus_services_one_picked(tmp_path: Path, compose_cli: None) -> None:
    compose = ("services:\n  a:\n    image: directus/directus:12.4.0\n    volumes: ['./ua:/directus/uploads']\n"
               "  b:\n    image: directus/directus:11.17.4\n    volumes: ['./ub:/directus/uploads']\n"
               "    environment: {DB_CLIENT: mysql, DB_HOST: 127.0.0.1, DB_DATABASE: b}\n")
    root = write_project(tmp_path / "p", compose, env=None, env_file=None)
    project = load_project(root, service="b")
    assert project.compose is not None and project.compose.service == "b"
    assert project.directus_version == "11.17.4" and project.storage[0].root == str(root / "ub")
    assert project.database.engine == "mysql" and project.database.database == "b"


def test_an_unmounted_sqlite_file_names_the_folder_to_mount(tmp_path: Path, compose_cli: None) -> None:
    root = write_project(tmp_path / "p", "services:\n  a:\n    image: directus/directus:12.4.0\n", env=None, env_file=None)
    with pytest.raises(ConfigError, match=r"DB_FILENAME is /directus/database/database.sqlite .* `- ./database:/directus/database`"):
        load_project(root)


def test_service_is_for_compose_projects(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DB_CLIENT=sqlite3\nDB_FILENAME=./data.db\n")
    with pytest.raises(ConfigError, match="holds no Compose file; --service is for Docker Compose projects"):
        load_project(tmp_path, service="directus")


def test_downgrade_of_a_compose_project_is_refused_before_anything(tmp_path: Path, compose_cli: None) -> None:
    from directus_ops.upgrade import plan_downgrade

    root = write_project(tmp_path / "site")
    before = {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()}
    with pytest.raises(ProjectError, match="is a Docker Compose project, which directus-ops cannot downgrade yet"):
        plan_downgrade(str(root), "11.17.4")
    assert {p.name: p.read_bytes() for p in root.iterdir() if p.is_file()} == before

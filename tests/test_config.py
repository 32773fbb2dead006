"""Reading a project's config the way Directus does, checked against Directus's own reader
(``@directus/env`` from the installed package) and against the rules it documents."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from directus_ops import node
from directus_ops.config import cast, load_config, update_dotenv
from directus_ops.errors import ConfigError
from directus_ops.project import load_project
from harness import link_directus

TRICKY_DOTENV = """# comment
DB_CLIENT=pg
DB_HOST=db.internal
DB_PORT=5433
DB_DATABASE=app
DB_USER=directus
DB_PASSWORD=0123,abc
KEY="quoted value # not a comment"
SECRET='single ${NOT_EXPANDED}'
STORAGE_LOCATIONS=local,s3
STORAGE_LOCAL_ROOT=./files
STORAGE_S3_DRIVER=s3
STORAGE_S3_BUCKET=string:12345
STORAGE_S3_ROOT=number:42
CACHE_TTL=30m
TELEMETRY=false
CORS_ORIGIN=array:https://a.example,https://b.example
AUTH_PROVIDERS=json:["github"]
EXTENSIONS_PATH=./ext
"""


def directus_env(project_dir: Path, config_path: Path, env: dict[str, str] | None = None) -> dict:
    """The config as Directus itself reads it (``useEnv()`` of the installed @directus/env, on the Node the
    project's Directus runs on)."""
    script = ("import('@directus/env').then(m => { const e = m.useEnv(); const out = {};"
              " for (const [k, v] of Object.entries(e)) out[k] = v instanceof RegExp ? {regex: v.source} : v;"
              " process.stdout.write(JSON.stringify(out)); })")
    done = subprocess.run([node.for_project(project_dir).node, "-e", script], cwd=project_dir, capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin:/usr/local/bin", "CONFIG_PATH": str(config_path), **(env or {})})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name, text", [
    (".env", TRICKY_DOTENV),
    ("config.json", json.dumps({"DB_CLIENT": "mysql", "DB_PORT": 3307, "DB_DATABASE": "app", "DB_PASSWORD": "x,y",
                                "STORAGE_LOCATIONS": "local", "KEY": "number:7", "CACHE_ENABLED": True})),
    ("config.yaml", "DB_CLIENT: sqlite3\nDB_FILENAME: ./db/data.db\nSTORAGE_LOCATIONS: local,media\n"
                    "STORAGE_MEDIA_DRIVER: local\nSTORAGE_MEDIA_ROOT: /srv/media\nPORT: 8056\nSECRET: 'json:{\"a\": [1, 2]}'\n"),
    ("config.cjs", "module.exports = function (env) { return { DB_CLIENT: 'pg', DB_DATABASE: 'from_' + env.APP_NAME,"
                   " DB_PORT: '6543', STORAGE_LOCATIONS: 'local' }; };\n"),
])
def test_values_equal_what_directus_reads(tmp_path, directus, name, text):
    project = tmp_path / "project"
    link_directus(project, directus)
    config = project / name
    config.write_text(text)
    env = {"APP_NAME": "shop", "DB_HOST": "from-environment", "DB_USER": "env-user"}
    loaded = load_config(config, environ=env)
    ours = loaded.values
    theirs = directus_env(project, config, env)
    for key in set(ours) & set(theirs):
        if key == "CONFIG_PATH":
            continue
        mine = ours[key]
        mine = {"regex": mine.pattern} if hasattr(mine, "pattern") else mine
        assert mine == theirs[key], key
    # Every key the file sets is read by both; values from the file win over the environment.
    assert loaded.file_keys and {k.removesuffix("_FILE") for k in loaded.file_keys} <= set(theirs)
    if "DB_HOST" not in text:
        assert ours["DB_HOST"] == "from-environment"


def test_file_values_override_environment(tmp_path):
    config = tmp_path / ".env"
    config.write_text("DB_CLIENT=pg\nDB_DATABASE=from_file\n")
    values = load_config(config, environ={"DB_DATABASE": "from_env", "DB_USER": "env_user"}).values
    assert values["DB_DATABASE"] == "from_file"
    assert values["DB_USER"] == "env_user"


def test_file_suffix_reads_value_from_file(tmp_path):
    secret = tmp_path / "db_password"
    secret.write_text("s3cr3t-from-file")
    config = tmp_path / ".env"
    config.write_text(f"DB_CLIENT=pg\nDB_DATABASE=app\nDB_PASSWORD_FILE={secret}\n")
    assert load_config(config, environ={}).values["DB_PASSWORD"] == "s3cr3t-from-file"
    config.write_text("DB_CLIENT=pg\nDB_PASSWORD_FILE=/nonexistent/secret\n")
    with pytest.raises(ConfigError, match="DB_PASSWORD_FILE: cannot read /nonexistent/secret"):
        load_config(config, environ={})


def test_cast_prefixes():
    assert cast("string:0042") == "0042"
    assert cast("number:42") == 42
    assert cast("array:a,b,c") == ["a", "b", "c"]
    assert cast("json:{\"a\": 1}") == {"a": 1}
    assert cast("true") is True and cast("3000") == 3000 and cast("0123") == "0123"
    assert cast("a,b") == ["a", "b"]
    assert cast("12345", "DB_PASSWORD") == "12345"  # typed as string by Directus's map


def test_project_derives_database_storage_and_paths(tmp_path):
    project_dir = tmp_path / "site"
    project_dir.mkdir()
    (project_dir / ".env").write_text(
        "DB_CLIENT=pg\nDB_HOST=127.0.0.1\nDB_PORT=5432\nDB_DATABASE=shop\nDB_USER=app\nDB_PASSWORD=p@ss:w/rd\n"
        "DB_SEARCH_PATH=cms\nSTORAGE_LOCATIONS=local,s3\nSTORAGE_S3_DRIVER=s3\nSTORAGE_S3_BUCKET=media\n"
        "STORAGE_S3_KEY=AKIA\nSTORAGE_S3_SECRET=verysecret\nSTORAGE_S3_ROOT=/assets/\nSTORAGE_S3_ENDPOINT=http://127.0.0.1:9000\n"
        "MIGRATIONS_PATH=./db/migrations\n")
    project = load_project(project_dir, environ={})
    assert project.name == "site"
    url = project.database.url()
    assert url.drivername == "postgresql+psycopg" and url.password == "p@ss:w/rd" and url.database == "shop"
    assert "p@ss" not in url.render_as_string(hide_password=True)
    assert project.database.search_path == "cms"
    local, s3 = project.storage
    assert local.driver == "local" and local.root == str(project_dir / "uploads")
    assert s3.bucket == "media" and s3.root == "assets" and s3.path_of("a.jpg") == "media/assets/a.jpg"
    assert project.extensions_path == project_dir / "extensions"
    assert project.migrations_path == project_dir / "db" / "migrations"
    assert project.directus_version is None  # no node_modules here


def test_connection_string_and_mysql_socket(tmp_path):
    (tmp_path / ".env").write_text("DB_CLIENT=pg\nDB_CONNECTION_STRING=postgresql://u:pw@h.example:6000/appdb\n")
    settings = load_project(tmp_path, environ={}).database
    assert (settings.host, settings.port, settings.database, settings.user) == ("h.example", 6000, "appdb", "u")
    (tmp_path / ".env").write_text("DB_CLIENT=mysql\nDB_SOCKET_PATH=/run/mysqld/mysqld.sock\nDB_DATABASE=app\nDB_USER=root\n")
    settings = load_project(tmp_path, environ={}).database
    assert settings.url().query["unix_socket"] == "/run/mysqld/mysqld.sock" and settings.url().drivername == "mysql+pymysql"


def test_sqlite_path_is_relative_to_the_project(tmp_path):
    (tmp_path / ".env").write_text("DB_CLIENT=sqlite3\nDB_FILENAME=./database/data.db\n")
    assert load_project(tmp_path, environ={}).database.filename == tmp_path / "database" / "data.db"


def test_config_path_option_and_errors(tmp_path):
    (tmp_path / "prod.yaml").write_text("DB_CLIENT: sqlite3\nDB_FILENAME: /srv/data.db\n")
    assert load_project(tmp_path, "prod.yaml", environ={}).database.filename == Path("/srv/data.db")
    with pytest.raises(ConfigError, match="no Directus config at"):
        load_project(tmp_path, environ={})
    (tmp_path / ".env").write_text("DB_CLIENT=oracledb\n")
    with pytest.raises(ConfigError, match="DB_CLIENT=oracledb .* not supported"):
        load_project(tmp_path, environ={})
    (tmp_path / ".env").write_text("DB_CLIENT=sqlite3\nDB_FILENAME=x.db\nSTORAGE_LOCATIONS=local,az\nSTORAGE_AZ_DRIVER=azure\n")
    with pytest.raises(ConfigError, match="STORAGE_AZ_DRIVER=azure .* supported drivers: local, s3"):
        load_project(tmp_path, environ={})


def test_update_dotenv_keeps_other_lines(tmp_path):
    config = tmp_path / ".env"
    config.write_text("# my project\nDB_CLIENT=sqlite3\nDB_FILENAME=./old.db\nKEY=abc # trailing\n")
    text = update_dotenv(config, {"DB_CLIENT": "pg", "DB_DATABASE": "new db"}, remove=frozenset({"DB_FILENAME"}))
    assert text.splitlines() == ["# my project", "DB_CLIENT=pg", "KEY=abc # trailing", 'DB_DATABASE="new db"']

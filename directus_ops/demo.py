"""The embedded default: a SQLite Directus project with local storage, created if absent, backed up and
restored into a scratch copy, then checked through Directus's own API. What ``directus-ops demo`` runs."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import directus_cli, keys
from .app import free_port
from .config import load_config, render_dotenv, write_private_text
from .directus_api import DirectusClient

DEFAULT_VERSION = "12"  # the newest installable 12.x release
ADMIN_EMAIL = "admin@example.com"


def ensure_passphrase(directory: Path) -> None:
    """The repository needs a passphrase: without one in the environment the demo makes its own file."""
    if os.environ.get(keys.PASSPHRASE_ENV) or os.environ.get(keys.PASSPHRASE_FILE_ENV):
        return
    path = directory / "passphrase"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        write_private_text(path, secrets.token_urlsafe(24) + "\n")
    os.environ[keys.PASSPHRASE_FILE_ENV] = str(path)


@dataclass
class DemoProject:
    dir: Path
    url: str
    admin_password: str


def ensure_project(project_dir: Path, version: str = DEFAULT_VERSION, say: Callable[[str], None] = print) -> DemoProject:
    """Create the demo project if it does not exist: install Directus (``version``: a release, or a line such as
    "12" for its newest installable release), write .env, bootstrap, add content."""
    env_path = project_dir / ".env"
    if not (project_dir / "node_modules" / "directus").exists():
        # Installed on the Node it needs (Node 22 for 12.x: fetched from the npm registry if the machine's is older).
        directus_cli.install_newest(project_dir, version, say)
    if not env_path.exists():
        port = free_port()
        password = secrets.token_urlsafe(12)
        write_private_text(env_path, render_dotenv({
            "DB_CLIENT": "sqlite3", "DB_FILENAME": "./data/data.db",
            "STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local", "STORAGE_LOCAL_ROOT": "./uploads",
            "KEY": secrets.token_hex(16), "SECRET": secrets.token_hex(32),
            "PORT": port, "PUBLIC_URL": f"http://127.0.0.1:{port}", "TELEMETRY": False, "LOG_LEVEL": "warn",
            "ADMIN_EMAIL": ADMIN_EMAIL, "ADMIN_PASSWORD": password,
        }))
        (project_dir / "data").mkdir(exist_ok=True)
        say("bootstrapping a SQLite Directus project")
        directus_cli.bootstrap(project_dir, ADMIN_EMAIL, password)
        project = _describe(project_dir)
        say("adding sample content through the Directus API")
        with directus_cli.running_server(project_dir, project.url), \
                DirectusClient.login(project.url, ADMIN_EMAIL, password) as client:
            _seed(client)
    return _describe(project_dir)


def _describe(project_dir: Path) -> DemoProject:
    config = load_config(project_dir / ".env", environ={})
    return DemoProject(project_dir, f"http://127.0.0.1:{config.text('PORT')}", config.text("ADMIN_PASSWORD") or "")


def _seed(client: DirectusClient) -> None:
    # Every field with a meta: 11.17+ refuses a field created without one when it adds a cast flag to it.
    client.post("/collections", {"collection": "posts", "schema": {}, "meta": {"icon": "article"}, "fields": [
        {"field": "id", "type": "integer", "schema": {"is_primary_key": True, "has_auto_increment": True}, "meta": {}},
        {"field": "title", "type": "string", "schema": {}, "meta": {}},
        {"field": "body", "type": "text", "schema": {}, "meta": {}},
        {"field": "image", "type": "uuid", "schema": {}, "meta": {"interface": "file-image", "special": ["file"]}},
    ]})
    client.post("/relations", {"collection": "posts", "field": "image", "related_collection": "directus_files"})
    image = client.upload(content=_sample_png(), filename="hello.png", mime="image/png", title="Hello")
    client.post("/items/posts", [{"title": f"Post {n}", "body": f"Body of post {n}", "image": image["id"]} for n in (1, 2, 3)])


def _sample_png() -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + b"".join(bytes((x * 8 % 256, y * 8 % 256, 128)) for x in range(32)) for y in range(32))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 32, 32, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))


def api_view(project: DemoProject) -> dict[str, Any]:
    """What a user sees: the posts, the file rows, and every file's bytes from /assets."""
    with directus_cli.running_server(project.dir, project.url), \
            DirectusClient.login(project.url, ADMIN_EMAIL, project.admin_password) as client:
        files = client.get("/files", limit=-1, sort="id", fields="id,filename_disk,filesize")
        return {"posts": client.items("posts"), "files": files,
                "assets": {f["id"]: client.asset(f["id"]) for f in files}}


def link_node_modules(source: Path, target: Path) -> None:
    """The scratch copy runs on the source's installed Directus (a restore does not reinstall npm packages)."""
    link = target / "node_modules"
    if not link.exists():
        link.symlink_to((source / "node_modules").resolve())


def reset_scratch(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)


def summarize(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    return {
        "posts": len(before["posts"]),
        "posts_equal": before["posts"] == after["posts"],
        "files": len(before["files"]),
        "file_bytes_equal": before["assets"] == after["assets"],
        "files_equal": before["files"] == after["files"],
    }



"""The Docker test infrastructure itself: each Compose layout (tests/compose_stacks.py) comes up on the suite's
Directus image, answers, stores an upload in its ./uploads as the image's user, and goes with nothing left behind;
the images of other releases build, and a release for another Node is refused."""

from __future__ import annotations

import subprocess
import time

import httpx
import pytest

import docker_images
import harness
from compose_stacks import NODE_UID, ComposeStack
from docker_images import ImageBuildError, directus_image, docker_env

# Each layout once, the options spread over them: the tag in .env, the settings in an env_file.
CASES = [
    ("pg-in-stack", {}),
    ("pg-external", {"tag_in_env": True}),
    ("mariadb-in-stack", {"env_file": True}),
    ("sqlite-volume", {}),
]


def _bridges() -> list[str]:
    result = subprocess.run(["docker", "network", "ls", "--format", "{{.Name}} {{.Driver}}"], env=docker_env(),
                            capture_output=True, text=True, check=True)
    return [line for line in result.stdout.splitlines() if line.split()[-1] not in ("host", "null")]


def _upload(stack: ComposeStack, name: str, content: bytes) -> str:
    """Uploads a file through the API as the stack's admin; its filename_disk."""
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        login = client.post("/auth/login", json={"email": harness.ADMIN_EMAIL, "password": harness.ADMIN_PASSWORD})
        login.raise_for_status()
        token = login.json()["data"]["access_token"]
        uploaded = client.post("/files", headers={"Authorization": f"Bearer {token}"},
                               files={"file": (name, content, "text/plain")})
        uploaded.raise_for_status()
        return uploaded.json()["data"]["filename_disk"]


@pytest.mark.parametrize(("layout", "options"), CASES, ids=[layout for layout, _ in CASES])
def test_stack_comes_up_stores_uploads_and_goes(compose_stack, directus_image: str, layout: str,
                                                options: dict) -> None:
    start = time.monotonic()
    stack = compose_stack(layout, **options)
    up = time.monotonic() - start
    assert stack.ping()
    assert stack.image_in_use() == directus_image
    assert "networks" not in stack.leftovers()  # network_mode: host everywhere: Compose made no network
    assert _bridges() == []
    if options.get("tag_in_env"):
        assert "${DIRECTUS_VERSION}" in stack.compose_file.read_text()
        assert (stack.directory / ".env").read_text() == f"DIRECTUS_VERSION={harness.DIRECTUS_VERSION}\n"
    if options.get("env_file"):
        assert "environment:" not in stack.compose_file.read_text().split("directus:", 1)[1]
        assert "DB_PASSWORD=directus" in (stack.directory / "directus.env").read_text()

    content = f"uploaded to the {layout} stack\n".encode()
    stored = stack.uploads / _upload(stack, "hello.txt", content)
    assert stored.read_bytes() == content
    assert (stored.stat().st_uid, stored.stat().st_gid) == (NODE_UID, NODE_UID)

    start = time.monotonic()
    stack.down()
    down = time.monotonic() - start
    assert stack.leftovers() == {}
    assert not stack.directory.exists()
    if stack.external_database is not None:
        with harness.psycopg.connect(harness.PG_ADMIN) as conn:
            assert conn.execute("SELECT 1 FROM pg_database WHERE datname = %s",
                                (stack.external_database.name,)).fetchone() is None
    print(f"\n{layout}: up and answering in {up:.1f} s, down in {down:.1f} s")


def test_image_of_the_11_line(docker_engine: None) -> None:
    """The upgrade tests start from 11.17.4: its image builds from its npm install and runs its CLI."""
    start = time.monotonic()
    image = directus_image(harness.DIRECTUS_11)
    took = time.monotonic() - start
    result = subprocess.run(["docker", "run", "--rm", "--network", "host", image, "node", "/directus/cli.js", "--version"],
                            env=docker_env(), capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == harness.DIRECTUS_11, result.stdout + result.stderr
    print(f"\n{image}: ready in {took:.1f} s")


def test_release_for_another_node_is_refused(docker_engine: None) -> None:
    if docker_images._install_node_major("10.13.4") == docker_images.NODE_MAJOR:
        pytest.skip("this machine's Node installs directus@10.13.4 on Node 22 too")
    with pytest.raises(ImageBuildError, match="Node 22 only"):
        directus_image("10.13.4")

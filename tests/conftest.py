"""Fixtures: real PostgreSQL/MariaDB databases, a moto S3 server, a cached Directus install, Prefect.

Everything a test creates (databases, roles/users, buckets, directories) is removed afterwards.

Each test's markers follow from the fixtures it uses, directly or through other fixtures (SERVICES): a test that
uses none of them is marked ``fast`` (``./scripts/test --fast``). So a test reaches a service through its fixture,
never by calling the harness itself: harness.refuse_in_fast_test stops a fast test that would start one.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# Prefect must not touch the developer's ~/.prefect, and needs no network.
_PREFECT_HOME = Path(os.environ.get("DIRECTUS_OPS_TEST_PREFECT_HOME", "/tmp/directus-ops-test-prefect"))
os.environ.setdefault("PREFECT_HOME", str(_PREFECT_HOME))
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")  # Prefect's client-side telemetry
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "directus_ops")
os.environ.setdefault("PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW", "ignore")
os.environ.pop("PREFECT_API_URL", None)
# The project locks (directus_ops/project_lock.py) of test runs stay out of the user's state directory.
os.environ.setdefault("DIRECTUS_OPS_STATE_DIR", "/tmp/directus-ops-test-state")
# Warm runners (directus_ops/runner.py) that `directus-ops` commands start exit soon after the last one.
os.environ.setdefault("DIRECTUS_OPS_RUNNER_IDLE_SECONDS", "60")
# The repository passphrase every test run uses (the config artifact is always encrypted).
TEST_PASSPHRASE = "correct horse battery staple 7"
os.environ.setdefault("DIRECTUS_OPS_PASSPHRASE", TEST_PASSPHRASE)

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(Path(__file__).parent))

import harness
from harness import DIRECTUS_11, Databases, directus_install, moto_server
from prefect_server import Server
from prefect_server import prefect_server as start_prefect_server

if TYPE_CHECKING:
    import compose_stacks

# marker -> the fixtures that imply it: what the test needs running besides itself.
SERVICES = {
    # a Directus install (npm); the Docker images are built from it
    "directus": {"directus", "directus_11", "directus_release", "directus_tables", "directus_image", "compose_stack"},
    # the machine's PostgreSQL and MariaDB (the pg-external Compose layout's database)
    "database": {"databases", "module_databases", "compose_stack"},
    "s3": {"s3", "own_moto_server"},  # a moto S3 server
    # A Prefect server: the session's test server, a real one of the module's own, or the local one the
    # `directus-ops` command starts for its flow runs when no server is configured (cli_env_no_server).
    "prefect": {"prefect_server", "prefect_server_process", "prefect_home", "cli_env", "cli_env_no_server"},
    # Docker Compose (reading Compose files), Debian's Docker Engine (scripts/docker-engine), the test images
    # (tests/docker_images.py), Compose stacks (tests/compose_stacks.py)
    "docker": {"compose_cli", "docker_engine", "directus_image", "compose_stack"},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test by the services its fixtures need; ``fast`` when it needs none. ``item.fixturenames`` is
    the closure: the fixtures of its fixtures count too. A fixture parametrized over backends that requests the
    backend's fixture at run time (``request.getfixturevalue(request.param)``-style, e.g. params local/s3) counts
    for the tests of that parameter."""
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        if callspec is not None:
            used |= {value for value in callspec.params.values() if isinstance(value, str)}
        needs = [marker for marker, fixtures in SERVICES.items() if used & fixtures]
        for marker in needs or ["fast"]:
            item.add_marker(marker)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    harness.FAST_TEST = item.nodeid if item.get_closest_marker("fast") else None


@pytest.fixture(scope="session", autouse=True)
def background_services_stopped() -> Iterator[None]:
    """What commands started in the background for later ones (the local Prefect server of the test
    PREFECT_HOME, warm runners) is stopped when the session ends: services are left as they were found."""
    import shutil

    from directus_ops import header_cache, local_server, runner

    caches = [header_cache.cache_dir(), header_cache.cache_dir().parent / "pack-index"]
    there = [cache.exists() for cache in caches]
    yield
    runner.stop_all()
    local_server.stop(_PREFECT_HOME)
    for cache, was_there in zip(caches, there):
        if not was_there:  # the session's repositories are gone: so is what was cached of them
            shutil.rmtree(cache, ignore_errors=True)


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[None]:
    """One temporary Prefect server for every in-process flow call of the session."""
    from prefect.testing.utilities import prefect_test_harness

    harness.refuse_in_fast_test("a Prefect server")
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture(scope="session")
def directus() -> Path:
    """The cached real Directus install (npm), installed on first use."""
    return directus_install()


@pytest.fixture(scope="session")
def directus_11() -> Path:
    """The cached real Directus 11.x install (harness.DIRECTUS_11), for tests of an 11.x target whatever the suite's version."""
    return directus_install(DIRECTUS_11)


@pytest.fixture(scope="session")
def directus_release() -> Callable[[str], Path]:
    """harness.directus_install: the cached install of any release (harness.RELEASES, ...), installed on first use."""
    return directus_install


@pytest.fixture(scope="session")
def directus_tables(directus: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[set[str]]:
    """The tables a fresh bootstrap of the suite's Directus creates (harness.bootstrapped_tables, on SQLite)."""
    from harness import bootstrapped_tables

    scratch = Databases(tmp_path_factory.mktemp("bootstrapped"))
    yield bootstrapped_tables(tmp_path_factory.mktemp("bootstrapped-project"), directus, scratch)
    scratch.drop_all()


@pytest.fixture(scope="session")
def s3() -> Iterator:
    with moto_server() as server:
        yield server


@pytest.fixture
def own_moto_server() -> Callable[[], contextlib.AbstractContextManager[harness.S3]]:
    """harness.moto_server, for a test that needs an S3 server of its own (one it pauses, or whose auth it
    changes): ``with own_moto_server() as s3``."""
    return moto_server


@pytest.fixture
def databases(tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases(tmp_path / "sqlite")
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="module")
def module_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    """Databases shared by a module's tests (its module-scoped projects), dropped after its last test."""
    dbs = Databases(tmp_path_factory.mktemp("module-databases"))
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="module")
def prefect_server_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real `prefect server start` of the module's own (tests/prefect_server.py): deployments, workers, the API."""
    harness.refuse_in_fast_test("a Prefect server")
    with start_prefect_server(tmp_path_factory.mktemp("prefect-home")) as running:
        yield running


@pytest.fixture
def prefect_home(tmp_path: Path) -> Path:
    """An empty PREFECT_HOME of the test's own, for the local Prefect server it starts (directus_ops.local_server)."""
    home = tmp_path / "prefect-home"
    home.mkdir()
    return home


@pytest.fixture
def cli_env_no_server(tmp_path: Path) -> dict[str, str]:
    """Environment for the real ``directus-ops`` command with no Prefect server (ephemeral mode)."""
    env = dict(os.environ)
    env["PREFECT_HOME"] = str(_PREFECT_HOME)
    env.pop("DIRECTUS_OPS_REPO", None)
    env.pop("PREFECT_API_URL", None)
    return env


@pytest.fixture
def cli_env(cli_env_no_server: dict[str, str], prefect_server: None) -> dict[str, str]:
    """Environment for the real ``directus-ops`` command, its flows reporting to the session's Prefect server."""
    from prefect.settings import PREFECT_API_URL

    return {**cli_env_no_server, "PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.fixture(scope="session")
def compose_cli() -> None:
    """Docker Compose on PATH (scripts/docker-engine installs it): reading Compose files needs no engine."""
    harness.refuse_in_fast_test("Docker Compose")
    if not (shutil.which("docker-compose") or shutil.which("docker")):
        pytest.fail("Docker Compose is not installed; run scripts/docker-engine")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """Debian's Docker Engine, answering: scripts/docker-engine (installs it, writes its daemon.json and starts
    dockerd when needed) runs once per session; a failure to start it fails the test with the script's word."""
    import subprocess

    harness.refuse_in_fast_test("the Docker Engine")
    result = subprocess.run([str(ROOT / "scripts" / "docker-engine")], capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        pytest.fail(f"scripts/docker-engine failed (exit {result.returncode}):\n{result.stdout}{result.stderr}",
                    pytrace=False)


@pytest.fixture(scope="session")
def directus_image(docker_engine: None) -> str:
    """``directus/directus:<the suite's version>``, built from the cached npm install (tests/docker_images.py)."""
    import docker_images

    return docker_images.directus_image(harness.DIRECTUS_VERSION)


@pytest.fixture
def compose_stack(docker_engine: None, tmp_path: Path) -> Iterator[Callable[..., "compose_stacks.ComposeStack"]]:
    """``make(layout, version=..., **options)``: a Compose project (tests/compose_stacks.py: make_stack) up and
    answering, each one removed after the test with its containers, volumes, directory and database."""
    import compose_stacks

    made: list[compose_stacks.ComposeStack] = []

    def make(layout: str, version: str = harness.DIRECTUS_VERSION, **options: Any) -> compose_stacks.ComposeStack:
        stack = compose_stacks.make_stack(tmp_path / "stacks", layout, version, **options)
        made.append(stack)
        return stack

    yield make
    failures = []
    for stack in reversed(made):
        try:
            stack.down()
        except Exception as exc:  # every stack is taken down, then the first failure is told
            failures.append(exc)
    if failures:
        raise failures[0]

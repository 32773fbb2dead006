"""Fixtures: real PostgreSQL/MariaDB databases, a moto S3 server, a cached Directus install, Prefect.

Everything a test creates (databases, roles/users, buckets, directories) is removed afterwards.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

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

from harness import DIRECTUS_11, Databases, directus_install, moto_server  # noqa: E402


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
def databases(tmp_path: Path) -> Iterator[Databases]:
    dbs = Databases(tmp_path / "sqlite")
    yield dbs
    dbs.drop_all()


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

"""How directus-ops checks a running Directus, pinned against the real server of the suite's version: liveness
from /server/ping; health and version from /server/health, which Directus 12 refuses without a token (403),
answers 404 when HEALTHCHECK_ENABLED=false, and tells the version (releaseId) to admins only."""

from __future__ import annotations

import httpx
import pytest

from directus_ops import directus_cli
from directus_ops.directus_api import DirectusClient, check_health
from directus_ops.errors import DirectusApiError
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, DIRECTUS_VERSION, make_project, write_env

MAJOR = int(DIRECTUS_VERSION.split(".")[0])


def test_health_without_a_token_with_an_admin_token_and_disabled(tmp_path, directus, databases):
    project = make_project(tmp_path, directus, databases.create("sqlite3"), with_extras=False)
    with directus_cli.running_server(project.dir, project.url):
        anonymous = httpx.get(f"{project.url}/server/health", timeout=30)
        if MAJOR >= 12:  # the fact the procedures must respect: no health for anonymous callers
            assert anonymous.status_code == 403
            assert check_health(project.url) == {"status": "reachable", "version": None}
        else:
            assert anonymous.status_code == 200 and "releaseId" not in anonymous.json()
            assert check_health(project.url) == {"status": "ok", "version": None}
        with DirectusClient.login(project.url, ADMIN_EMAIL, ADMIN_PASSWORD) as client:
            token = client.http.headers["Authorization"].removeprefix("Bearer ")
        assert check_health(project.url, token, DIRECTUS_VERSION) == {"status": "ok", "version": DIRECTUS_VERSION}
        with pytest.raises(DirectusApiError, match=f"reports version {DIRECTUS_VERSION}, expected 1.0.0"):
            check_health(project.url, token, "1.0.0")
        with pytest.raises(DirectusApiError, match="refused the token .* give an admin's static token"):
            check_health(project.url, "not-a-token")
    write_env(project.dir / ".env", {**project.env, "HEALTHCHECK_ENABLED": "false"})
    with directus_cli.running_server(project.dir, project.url):
        assert httpx.get(f"{project.url}/server/health", timeout=30).status_code == 404
        assert check_health(project.url) == {"status": "reachable (health check disabled)", "version": None}

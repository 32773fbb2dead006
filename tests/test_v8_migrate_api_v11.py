"""The v8 migration, api mode, into Directus 11.1.0 on PostgreSQL: the shared v8.8.1 sample (loaded into a scratch
MariaDB) migrated with the real CLI into a fresh, running 11.x project through its REST API only, with an admin's
static token. 11.x roles have no admin/app access of their own: each custom v8 role becomes a role, a policy and the
access row linking them (the id map's UUIDs, as database mode gives), Public's permissions go on the target's own
public policy. Then the same read-back as every other target (tests/v8_checks.py), a second run changes nothing,
and a run killed between the roles and their policies completes when run again."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_v8_migrate_api as base
from harness import DIRECTUS_11, Databases, TestProject, free_project_slot, make_project
from test_v8_migrate import pg_digest, pg_rows, run_cli, storage_listing
from test_v8_migrate_v11 import check_completed_on_policies
from v8_checks import (
    COLLECTIONS,
    SYSTEM_TABLES,
    TEMP_PASSWORD,
    check_policies,
    check_report_counts,
    check_through_api,
)

pytestmark = pytest.mark.directus

# test_v8_migrate_api's module fixtures (the v8 sample in a scratch MariaDB, its uploads, the Prefect server's URL,
# a local work directory) and its helpers.
module_databases, v8_url, uploads, server_env, work = (base.module_databases, base.v8_url, base.uploads,
                                                       base.server_env, base.work)
TOKEN, api_args, serving, give_admin_a_token = base.TOKEN, base.api_args, base.serving, base.give_admin_a_token
ACCESS_TABLES = ["directus_policies", "directus_access"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, directus_11: Path, module_databases: Databases) -> TestProject:
    project = make_project(tmp_path_factory.mktemp("v8api11"), directus_11, module_databases.create("pg"),
                           with_extras=False)
    give_admin_a_token(project)
    return project


@pytest.fixture(scope="module")
def migrated(target: TestProject, work: Path, v8_url: str, uploads: Path, server_env: dict[str, str]) -> dict[str, Any]:
    with serving(target):
        result = run_cli(*api_args(v8_url, uploads, work, target.url, "--token", TOKEN,
                                   "--temporary-password-env", "V8_TEMP_PASSWORD"), env=server_env)
    assert result.returncode == 0, result.stderr
    return json.loads((work / "v8-migration" / "report.json").read_text())


def test_api_mode_into_11_migrates_what_database_mode_does(migrated: dict[str, Any], target: TestProject,
                                                           work: Path, v8_url: str, uploads: Path) -> None:
    assert (migrated["mode"], migrated["target"], migrated["directus"]) == ("api", target.url, DIRECTUS_11)
    check_report_counts(migrated, v8_url)
    assert (migrated["people"]["roles"], migrated["people"]["policies"], migrated["people"]["access"]) == (2, 2, 2)
    assert migrated["permissions"]["written"] == migrated["permissions"]["planned"] > 0
    assert migrated["items"]["foreign_keys"] == 16 and migrated["files"]["copied"] == 4
    id_map = json.loads((work / "v8-migration" / "id-map.json").read_text())
    assert id_map["directus_roles"]["2"] is None  # Public: no role in 11.x, its access row has none

    check_through_api(target, v8_url, uploads, authorship_kept=True)  # the Author's login and permissions among it
    with serving(target) as client:
        check_policies(client, v8_url, id_map)
        # Anonymous: v8's Public permissions on the public policy (published articles only).
        public = httpx.get(f"{target.url}/items/articles", params={"limit": -1, "fields": "status"})
        assert public.status_code == 200 and {a["status"] for a in public.json()["data"]} == {"published"}


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, work: Path, v8_url: str,
                                      uploads: Path, server_env: dict[str, str]) -> None:
    tables = COLLECTIONS + ["languages"] + SYSTEM_TABLES + ACCESS_TABLES + base.HISTORY
    before, files_before = pg_digest(target, tables), storage_listing(target)
    with serving(target):
        result = run_cli(*api_args(v8_url, uploads, work, target.url, "--token", TOKEN,
                                   "--temporary-password-env", "V8_TEMP_PASSWORD"), env=server_env)
    assert result.returncode == 0, result.stderr
    assert pg_digest(target, tables) == before and storage_listing(target) == files_before
    report = json.loads((work / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (0, 0, 0)
    assert report["schema"]["collections"] == report["items"]["relations"] == report["permissions"]["written"] == 0
    assert all(s["written"] == 0 for s in report["items"]["collections"].values())
    assert TOKEN not in result.stdout + result.stderr + json.dumps(report) and TEMP_PASSWORD not in json.dumps(report)


def test_bad_input_then_a_run_killed_before_the_policies_completes(
        tmp_path: Path, directus_11: Path, databases: Databases, v8_url: str, uploads: Path,
        cli_env: dict[str, str]) -> None:
    """11.x's own refusals (a token whose policies give no admin access; no public policy), nothing changed; then a
    run killed after the roles, before their policies and access rows: the re-run adds them and the rest."""
    project = make_project(tmp_path, directus_11, databases.create("pg"), with_extras=False)
    give_admin_a_token(project)
    work = tmp_path / "ops"
    env = {**cli_env, "DIRECTUS_OPS_TOKEN": TOKEN}
    args = api_args(v8_url, uploads, work, project.url)
    tables = COLLECTIONS + SYSTEM_TABLES + ACCESS_TABLES

    def refused(token: str, *phrases: str) -> None:
        before = pg_digest(project, tables)
        result = run_cli(*args, env={**env, "DIRECTUS_OPS_TOKEN": token})
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1, result.stderr
        assert lines[0].startswith("directus-ops: error: ") and all(p in lines[0] for p in phrases), lines[0]
        assert token not in result.stderr and pg_digest(project, tables) == before
        assert not (work / "v8-migration").exists()

    with serving(project) as client:
        # An editor: a role whose policy has app access, not admin access (11.x roles have neither of their own).
        policy = client.post("/policies", {"name": "Editing", "app_access": True, "admin_access": False})
        role = client.post("/roles", {"name": "Reader"})
        client.post("/access", {"role": role["id"], "policy": policy["id"]})
        reader = client.post("/users", {"email": "reader@example.com", "role": role["id"],
                                        "token": "reader-token-0123456789"})
        refused("reader-token-0123456789", "(reader@example.com) is not an administrator")
        public = client.get("/access", filter=json.dumps({"role": {"_null": True}, "user": {"_null": True}}))[0]
        client.request("DELETE", f"/access/{public['id']}")
        refused(TOKEN, "has no public policy")
        client.post("/access", {"id": public["id"], "policy": public["policy"], "sort": public["sort"]})
        for path in (f"/users/{reader['id']}", f"/roles/{role['id']}", f"/policies/{policy['id']}"):
            client.request("DELETE", path)  # the target as bootstrapped again

        killed = run_cli(*args, env={**env, "DIRECTUS_OPS_TEST_KILL_AT": "v8-roles-written"})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(work)
        assert pg_rows(project, "SELECT count(*) FROM directus_roles")[0][0] == 3
        assert pg_rows(project, "SELECT count(*) FROM directus_policies")[0][0] == 2  # the bootstrap's only
        finished = run_cli(*args, env=env)
        assert finished.returncode == 0, finished.stderr
    check_completed_on_policies(project, v8_url)

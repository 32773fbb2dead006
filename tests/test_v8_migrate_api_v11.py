"""The v8 migration, api mode, into the other line with policies (Directus 11, harness.DIRECTUS_11) on PostgreSQL:
what the suite's 12.x (without a license) cannot show, v8's permissions with custom rules (status filters, owner
filters, field lists, validations) written through ``POST /permissions`` onto the policies and taking effect. The
shared v8.8.1 sample migrated with the real CLI into a fresh, running 11.x project through its REST API only; then
the same read-back as every other target (tests/v8_checks.py: the Author's and Public's access among it) and the
policies through the API. The steps 11.x and 12.x share (second run, killed runs, refusals) are in
test_v8_migrate_api, on the suite's version."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import test_v8_migrate_api as base
from harness import DIRECTUS_11, Databases, TestProject, make_project
from test_v8_migrate import run_cli
from v8_checks import check_policies, check_report_counts, check_through_api

# test_v8_migrate_api's module fixtures (the v8 sample in a scratch MariaDB, its uploads, the Prefect server's URL,
# a local work directory) and its helpers.
v8_url, uploads, server_env, work = base.v8_url, base.uploads, base.server_env, base.work
TOKEN, api_args, serving, give_admin_a_token = base.TOKEN, base.api_args, base.serving, base.give_admin_a_token


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

    assert migrated["license"] is None  # 11.x has no licensing
    check_through_api(target, v8_url, uploads, authorship_kept=True,  # the Author's login and permissions among it
                      comments_authored=False)
    with serving(target) as client:
        check_policies(client, v8_url, id_map)
        # Anonymous: v8's Public permissions on the public policy (published articles only).
        public = httpx.get(f"{target.url}/items/articles", params={"limit": -1, "fields": "status"})
        assert public.status_code == 200 and {a["status"] for a in public.json()["data"]} == {"published"}

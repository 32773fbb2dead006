"""The v8 migration, database mode, into Directus 11.1.0 on PostgreSQL: the shared v8.8.1 sample (loaded into a
scratch MariaDB, as in test_v8_migrate) migrated by the real CLI into a fresh 11.x project, where roles have no
admin/app access of their own: each custom v8 role becomes a role, a policy and the directus_access row linking
them, Public's permissions go on the target's own public policy. Directus 11 then serves what v8 held (the shared
read-back checks of v8_checks), the policies carry v8's role settings, and a second run changes nothing."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import test_v8_migrate as base
from harness import DIRECTUS_11, Databases, TestProject, free_project_slot, link_directus, make_project, write_env
from v8_checks import COLLECTIONS, SYSTEM_TABLES, TEMP_PASSWORD, check_report_counts, check_through_api, v8_query

pytestmark = pytest.mark.directus

# test_v8_migrate's module fixtures (the v8 sample in a scratch MariaDB, its uploads, the Prefect server's URL)
# and its helpers for running the CLI and digesting the target.
module_databases, v8_url, uploads, server_env = base.module_databases, base.v8_url, base.uploads, base.server_env
migrate_args, pg_digest, run_cli, storage_listing = base.migrate_args, base.pg_digest, base.run_cli, base.storage_listing

ACCESS_TABLES = ["directus_policies", "directus_access"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, directus_11: Path, module_databases: Databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8target11"), directus_11, module_databases.create("pg"),
                        with_extras=False)


@pytest.fixture(scope="module")
def migrated(target: TestProject, v8_url: str, uploads: Path, server_env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    return json.loads((target.dir / "v8-migration" / "report.json").read_text())


def pg_rows(project: TestProject, sql: str) -> list[tuple]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{project.database.name}") as conn:
        return [tuple(r) for r in conn.execute(sql)]


def test_migrated_project_reads_back_through_the_api(migrated: dict[str, Any], target: TestProject, v8_url: str,
                                                     uploads: Path) -> None:
    assert migrated["directus"] == DIRECTUS_11
    check_report_counts(migrated, v8_url)
    assert (migrated["people"]["roles"], migrated["people"]["policies"], migrated["people"]["access"]) == (2, 2, 2)
    id_map = json.loads(Path(migrated["id_map"]).read_text())
    assert id_map["directus_roles"]["2"] is None  # Public: no role in 11.x either, its access row has none
    check_through_api(target, v8_url, uploads)


def test_roles_get_policies_linked_through_access(migrated: dict[str, Any], target: TestProject,
                                                  v8_url: str) -> None:
    v8_roles = {name: (description, ip or None, bool(tfa)) for name, description, ip, tfa in v8_query(
        v8_url, "SELECT name, description, ip_whitelist, enforce_2fa FROM directus_roles WHERE id > 2")}
    linked = {name: row for name, *row in pg_rows(target, """
        SELECT r.name, r.description, p.name, p.description, p.ip_access, p.enforce_tfa, p.app_access, p.admin_access
        FROM directus_roles r JOIN directus_access a ON a.role = r.id JOIN directus_policies p ON p.id = a.policy
        WHERE a."user" IS NULL""")}
    assert sorted(linked) == ["Administrator", "Author", "Editor"]
    assert linked["Administrator"][-1] is True  # the target's own admin policy, which the v8 Administrator became
    for name, (description, ip, tfa) in v8_roles.items():
        assert linked[name] == [description, name, description, ip, tfa, True, False]

    # One public access row (no role, no user), the bootstrap's: v8's Public permissions are on its policy.
    public = pg_rows(target, 'SELECT policy FROM directus_access WHERE role IS NULL AND "user" IS NULL')
    assert len(public) == 1
    public_policy = str(public[0][0])
    assert json.loads(Path(migrated["id_map"]).read_text())["directus_policies"]["2"] == public_policy
    granted = {(c, a) for c, a in pg_rows(target, "SELECT collection, action FROM directus_permissions "
                                                  f"WHERE policy = '{public_policy}'")}
    v8_public = {(c, action) for c, *levels in v8_query(
        v8_url, "SELECT collection, `create`, `read`, `update`, `delete` FROM directus_permissions WHERE role = 2")
        for action, level in zip(("create", "read", "update", "delete"), levels) if level != "none"}
    assert granted == v8_public | {("languages", "read")}  # + the languages of the readable translations

    # Every other permission is on the Author's or Editor's policy (the admin policy needs none).
    by_policy = dict(pg_rows(target, """
        SELECT coalesce(p.name, 'none'), count(*) FROM directus_permissions x LEFT JOIN directus_policies p
        ON p.id = x.policy GROUP BY 1"""))
    assert by_policy.keys() == {"Author", "Editor", pg_rows(target, f"SELECT name FROM directus_policies "
                                                                    f"WHERE id = '{public_policy}'")[0][0]}


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, v8_url: str, uploads: Path,
                                      server_env: dict[str, str]) -> None:
    tables = COLLECTIONS + ["languages"] + SYSTEM_TABLES + ACCESS_TABLES
    before, files_before = pg_digest(target, tables), storage_listing(target)
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True
    assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (0, 0, 0)
    assert report["permissions"]["written"] == 0 and report["files"]["copied"] == 0
    assert all(s["written"] == 0 for s in report["items"]["collections"].values())
    assert pg_digest(target, tables) == before and storage_listing(target) == files_before
    assert TEMP_PASSWORD not in (target.dir / "v8-migration" / "report.json").read_text()


def test_a_killed_run_completes_when_run_again(tmp_path: Path, directus_11: Path, databases: Databases, v8_url: str,
                                              uploads: Path, cli_env: dict[str, str]) -> None:
    """Killed after the roles, before their policies; then in the items; the third run completes all of it."""
    project = make_project(tmp_path, directus_11, databases.create("pg"), with_extras=False)
    args = migrate_args(v8_url, uploads, project.dir)
    for point in ("v8-roles-written", "v8-items-batch:3"):
        killed = run_cli(*args, env={**cli_env, "DIRECTUS_OPS_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(project.dir)
        if point == "v8-roles-written":
            assert pg_rows(project, "SELECT count(*) FROM directus_roles")[0][0] == 3
            assert pg_rows(project, "SELECT count(*) FROM directus_policies")[0][0] == 2  # the bootstrap's only
    finished = run_cli(*args, env=cli_env)
    assert finished.returncode == 0, finished.stderr
    check_completed_on_policies(project, v8_url)
    with project.server():  # the public policy's permissions work: v8's published articles, anonymously
        public = httpx.get(f"{project.url}/items/articles", params={"limit": -1, "fields": "status"})
        assert public.status_code == 200 and {a["status"] for a in public.json()["data"]} == {"published"}


def test_a_database_newer_than_the_installed_directus_is_refused(migrated: dict[str, Any], target: TestProject,
                                                                 v8_url: str, uploads: Path, directus: Path,
                                                                 tmp_path: Path, server_env: dict[str, str]) -> None:
    """Directus 10 installed over an 11.x database (policies present): refused before anything is written."""
    project = tmp_path / "downgraded"
    link_directus(project, directus)
    write_env(project / ".env", {**target.database.env(), "KEY": "k-1234567890", "SECRET": "s-1234567890",
                                 "STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local",
                                 "STORAGE_LOCAL_ROOT": "./uploads"})
    tables = COLLECTIONS + SYSTEM_TABLES + ACCESS_TABLES
    before = pg_digest(target, tables)
    result = run_cli(*migrate_args(v8_url, uploads, project), env=server_env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and lines[0].startswith("directus-ops: error: "), result.stderr
    assert "has Directus 11's directus_policies but Directus 10.13.4 is installed" in lines[0]
    assert "pw-" not in lines[0] and pg_digest(target, tables) == before
    assert not (project / "v8-migration").exists()


def check_completed_on_policies(project: TestProject, v8_url: str) -> None:
    """What a killed run re-run to the end leaves on 11.x: each custom role on its own policy, four access rows
    (admin, public, Author, Editor), every permission on a policy, every v8 row."""
    assert sorted(pg_rows(project, """
        SELECT r.name, p.name FROM directus_roles r JOIN directus_access a ON a.role = r.id
        JOIN directus_policies p ON p.id = a.policy WHERE NOT p.admin_access""")) == [("Author", "Author"),
                                                                                       ("Editor", "Editor")]
    assert pg_rows(project, "SELECT count(*) FROM directus_access")[0][0] == 4
    assert pg_rows(project, "SELECT count(*) FROM directus_permissions WHERE policy IS NULL")[0][0] == 0
    for collection in COLLECTIONS:
        assert pg_rows(project, f'SELECT count(*) FROM "{collection}"')[0][0] == \
            v8_query(v8_url, f"SELECT count(*) FROM `{collection}`")[0][0]

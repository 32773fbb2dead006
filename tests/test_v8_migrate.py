"""The v8 migration, database mode: the shared v8.8.1 sample (../shared/fixtures/v8, loaded into a scratch
MariaDB as test_v8_source does) migrated into a fresh Directus of the suite's version (harness.DIRECTUS_VERSION)
on PostgreSQL. Directus then starts and what a user checks is checked through its REST API against the v8
database itself (natural keys: file names, emails, names): item counts, every article's cover/author/creator/
tags/gallery/translations, file bytes, users' roles and statuses, the singleton, kept authorship and dates, the
comments, permissions (public and an Author with the temporary password; on 12.x without a license only those
without custom rules take effect), sequences. From 11.x each custom role gets a policy linked through
directus_access. A second run changes nothing. Bad input (on 12.x: a license without custom permission rules, not
accepted; Directus 10 installed over a newer database) fails with one line, changing nothing."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from harness import (
    DIRECTUS_VERSION,
    RELEASES,
    S3_REGION,
    Databases,
    TestProject,
    free_project_slot,
    latest_artifact,
    link_directus,
    make_project,
    write_env,
)
from v8_checks import (
    COLLECTIONS,
    FIXTURES,
    TEMP_PASSWORD,
    check_report_counts,
    check_through_api,
    extract_v8_uploads,
    v8_query,
)

from directus_ops.database import DatabaseSettings
from directus_ops.dumps import restore
from directus_ops.v8 import mapping
from directus_ops.v8.source import Comment, read_v8

CLI = Path(__file__).parent.parent / ".venv" / "bin" / "directus-ops"
MAJOR = int(DIRECTUS_VERSION.split(".")[0])  # 11+: roles get policies; 12+: a license, Core in these tests


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def v8_url(module_databases: Databases) -> str:
    database = module_databases.create("mysql")
    restore(DatabaseSettings.from_url(database.url), FIXTURES / "v8_sample.sql", "mysql-sql")
    return database.url


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_v8_uploads(tmp_path_factory.mktemp("v8uploads"))


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases: Databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8target"), directus, module_databases.create("pg"), with_extras=False)


def cli_environment() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PREFECT_API_URL", None)
    env["V8_TEMP_PASSWORD"] = TEMP_PASSWORD
    return env


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, env={**cli_environment(), **(env or {})},
                          timeout=300)


def migrate_args(v8_url: str, storage: Path | str, project: Path, *extra: str, accept: bool = True) -> list[str]:
    """``accept``: --accept-license-limits (12.x Core lacks custom permission rules; before 12 it changes nothing)."""
    return ["v8", "migrate", "--v8-database", v8_url, "--v8-storage", str(storage), "--project-dir", str(project),
            *extra, *(["--accept-license-limits"] if accept else [])]


@pytest.fixture(scope="module")
def server_env(prefect_server: None) -> dict[str, str]:
    """The commands report to the session's Prefect server (an ephemeral one costs ~20 s a command)."""
    from prefect.settings import PREFECT_API_URL

    return {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.fixture(scope="module")
def migrated(target: TestProject, v8_url: str, uploads: Path, server_env: dict[str, str]) -> dict[str, Any]:
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    return {"stdout": result.stdout, "report": report}


def pg_digest(project: TestProject, tables: list[str] | None = None) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of each table that exists (by default every table: the system tables
    of whichever version the target runs, and the project's)."""
    out = {}
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{project.database.name}") as conn:
        present = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        for table in sorted(present) if tables is None else tables:
            if table in present:
                rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
                out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        out["_tables"] = (len(present), ",".join(sorted(present)))
    return out


def storage_listing(project: TestProject) -> list[tuple[str, int]]:
    root = project.dir / "uploads"
    return sorted((p.name, p.stat().st_size) for p in root.iterdir()) if root.exists() else []


# -- the migrated project, through Directus --------------------------------------------------------------------
@pytest.mark.matrix
def test_migrated_project_reads_back_through_the_api(migrated: dict[str, Any], target: TestProject, v8_url: str,
                                                     uploads: Path) -> None:
    report = migrated["report"]
    assert report["directus"] == DIRECTUS_VERSION
    check_report_counts(report, v8_url)
    assert report["comments"] == {"written": 2, "planned": 2, "notes": [],
                                  "into": "directus_comments" if MAJOR >= 11 else "directus_activity"}
    assert report["permissions"]["written"] == report["permissions"]["planned"] > 0  # on Core too: all written
    if MAJOR >= 11:
        assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (2, 2, 2)
    markdown = latest_artifact("v8-migrate-project")  # the run's report in Prefect
    references = v8_query(v8_url, "SELECT count(created_by) + count(modified_by) + count(author) + count(cover) FROM articles")[0][0]
    assert f"| `articles` | read 9, written 9, references {references}, dangling 0 |" in markdown
    assert "v8 users that were already in the target (kept as they are): admin@example.com" in markdown
    assert "unmapped: articles.body: option toolbar (wysiwyg) has no v9 equivalent (dropped)" in markdown
    assert "pw-" not in markdown and TEMP_PASSWORD not in markdown
    id_map = json.loads(Path(report["id_map"]).read_text())
    assert set(id_map["directus_files"]) == {"1", "2", "3", "4"} and id_map["directus_roles"]["2"] is None
    if MAJOR >= 12:  # Core: the admin + Erin and Alex (Sam is suspended) of 3 seats; 8 collections of 25
        assert {k: report["license"][k] for k in ("name", "checked", "seats", "collections",
                                                  "custom_rules_entitled")} == {
            "name": "Core", "checked": True, "seats": [1, 2, 3], "collections": [0, 8, 25],
            "custom_rules_entitled": False}
        assert 0 < report["permissions"]["inactive"] == report["license"]["custom_rules"] < report["permissions"]["planned"]
        assert "| License (Directus 12) | Core (CORE_LICENSE of the installed @directus/license (no license)): seats " \
               "1 + 2 of 3, collections 0 + 8 of 25, custom permission rules not included" in markdown
        assert "permissions need custom permission rules, which the target's license does not include" in markdown
    else:
        assert report["license"] is None and "inactive" not in report["permissions"]

    check_through_api(target, v8_url, uploads)


def test_roles_get_policies_linked_through_access(migrated: dict[str, Any], target: TestProject,
                                                  v8_url: str) -> None:
    """11.x and later: each custom v8 role is a role, a policy with v8's settings and the access row linking them;
    v8's Public permissions are on the target's one public policy, every other one on the Author's or Editor's."""
    if MAJOR < 11:
        pytest.skip("Directus 10 has no policies")
    v8_roles = {name: (description, ip or None, bool(tfa)) for name, description, ip, tfa in v8_query(
        v8_url, "SELECT name, description, ip_whitelist, enforce_2fa FROM directus_roles WHERE id > 2")}
    linked = {name: list(row) for name, *row in pg_rows(target, """
        SELECT r.name, r.description, p.name, p.description, p.ip_access, p.enforce_tfa, p.app_access, p.admin_access
        FROM directus_roles r JOIN directus_access a ON a.role = r.id JOIN directus_policies p ON p.id = a.policy
        WHERE a."user" IS NULL""")}
    assert sorted(linked) == ["Administrator", "Author", "Editor"]
    assert linked["Administrator"][-1] is True  # the target's own admin policy, which the v8 Administrator became
    for name, (description, ip, tfa) in v8_roles.items():
        assert linked[name] == [description, name, description, ip, tfa, True, False]

    public = pg_rows(target, 'SELECT policy FROM directus_access WHERE role IS NULL AND "user" IS NULL')
    assert len(public) == 1  # the bootstrap's, no second one
    public_policy = str(public[0][0])
    assert json.loads(Path(migrated["report"]["id_map"]).read_text())["directus_policies"]["2"] == public_policy
    granted = {(c, a) for c, a in pg_rows(target, "SELECT collection, action FROM directus_permissions "
                                                  f"WHERE policy = '{public_policy}'")}
    v8_public = {(c, action) for c, *levels in v8_query(
        v8_url, "SELECT collection, `create`, `read`, `update`, `delete` FROM directus_permissions WHERE role = 2")
        for action, level in zip(("create", "read", "update", "delete"), levels) if level != "none"}
    assert granted == v8_public | {("languages", "read")}  # + the languages of the readable translations
    by_policy = dict(pg_rows(target, """
        SELECT coalesce(p.name, 'none'), count(*) FROM directus_permissions x LEFT JOIN directus_policies p
        ON p.id = x.policy GROUP BY 1"""))
    assert by_policy.keys() == {"Author", "Editor", pg_rows(target, f"SELECT name FROM directus_policies "
                                                                    f"WHERE id = '{public_policy}'")[0][0]}


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, v8_url: str, uploads: Path,
                                      server_env: dict[str, str]) -> None:
    before, files_before = pg_digest(target), storage_listing(target)  # every table
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    assert "(52 rows read, 0 written), 0 files copied" in result.stdout
    assert pg_digest(target) == before and storage_listing(target) == files_before
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    assert report["comments"]["written"] == report["permissions"]["written"] == 0
    if MAJOR >= 11:
        assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (0, 0, 0)
    for name in ("report.json", "plan.json", "source.json", "id-map.json"):
        text = (target.dir / "v8-migration" / name).read_text()
        assert TEMP_PASSWORD not in text and "pw-" not in text and "$2y$" not in text  # no password, no hash


def pg_rows(project: TestProject, sql: str) -> list[tuple]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{project.database.name}") as conn:
        return list(conn.execute(sql))


def test_a_killed_run_completes_when_run_again_from_s3(tmp_path: Path, directus: Path, databases: Databases,
                                                       v8_url: str, uploads: Path, s3, cli_env: dict[str, str]) -> None:
    """Killed after the second file, then in the items (from 11.x first after the roles, before their policies);
    the last run completes all of it, the files read from S3."""
    project = make_project(tmp_path, directus, databases.create("pg"), with_extras=False)
    bucket = s3.create_bucket()
    for path in (uploads / "originals").iterdir():
        s3.client().put_object(Bucket=bucket, Key=f"v8/uploads/_/originals/{path.name}", Body=path.read_bytes())
    args = migrate_args(v8_url, f"s3://{bucket}/v8/uploads/_", project.dir, "--v8-storage-endpoint", s3.endpoint,
                        "--v8-storage-region", S3_REGION)
    env = {**cli_env, "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret}
    points = [("v8-roles-written", "roles")] if MAJOR >= 11 else []
    for point, partial in (*points, ("v8-file-copied:2", "files"), ("v8-items-batch:3", "items")):
        killed = run_cli(*args, env={**env, "DIRECTUS_OPS_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(project.dir)
        if partial == "roles":
            assert pg_rows(project, "SELECT count(*) FROM directus_roles")[0][0] == 3
            assert pg_rows(project, "SELECT count(*) FROM directus_policies")[0][0] == 2  # the bootstrap's only
        elif partial == "files":
            assert len(storage_listing(project)) == 2 and not pg_rows(project, "SELECT 1 FROM pg_tables WHERE tablename = 'articles'")
        else:
            counts = [pg_rows(project, f'SELECT count(*) FROM "{c}"')[0][0] for c in COLLECTIONS]
            assert 0 < sum(counts) < 49  # some collections written, the rest not yet
    finished = run_cli(*args, env=env)
    assert finished.returncode == 0, finished.stderr
    for collection in COLLECTIONS:
        assert pg_rows(project, f'SELECT count(*) FROM "{collection}"')[0][0] == \
            v8_query(v8_url, f"SELECT count(*) FROM `{collection}`")[0][0]
    foreign_keys = pg_rows(project, "SELECT count(*) FROM pg_constraint WHERE contype = 'f' AND conrelid::regclass::text = ANY(%s)"
                           .replace("%s", "ARRAY[" + ",".join(f"'{c}'" for c in COLLECTIONS) + "]"))[0][0]
    assert foreign_keys == 16  # every reference the v8 reader found (15, test_v8_source) + translations → languages
    id_map = json.loads((project.dir / "v8-migration" / "id-map.json").read_text())["directus_files"]
    disks = dict(v8_query(v8_url, "SELECT id, filename_disk FROM directus_files"))
    for v8_id, file_id in id_map.items():
        disk = disks[int(v8_id)]
        stored = project.dir / "uploads" / (file_id + Path(disk).suffix)
        assert stored.read_bytes() == (uploads / "originals" / disk).read_bytes()
    assert len(storage_listing(project)) == 4  # no temporary leftovers of the killed copy
    if MAJOR >= 11:  # each custom role on its own policy; admin, public, Author and Editor access rows
        assert sorted(pg_rows(project, """
            SELECT r.name, p.name FROM directus_roles r JOIN directus_access a ON a.role = r.id
            JOIN directus_policies p ON p.id = a.policy WHERE NOT p.admin_access""")) == [("Author", "Author"),
                                                                                           ("Editor", "Editor")]
        assert pg_rows(project, "SELECT count(*) FROM directus_access")[0][0] == 4
        assert pg_rows(project, "SELECT count(*) FROM directus_permissions WHERE policy IS NULL")[0][0] == 0


# -- mapping (plain functions) ---------------------------------------------------------------------------------
def test_ids_are_deterministic_and_dangling_references_become_null(v8_url: str) -> None:
    source = read_v8(v8_url)
    first, again = (mapping.build_id_map(source, "admin-role", {}) for _ in range(2))
    assert first.to_json() == again.to_json()
    assert first.get("directus_roles", 1) == "admin-role" and first.get("directus_roles", 2) is None
    assert len(set(first.ids["directus_users"].values())) == 4
    plan = mapping.plan_schema(source).collection("articles")
    dangling: list[mapping.Dangling] = []
    row = {c.name: None for c in plan.columns} | {"id": 50, "title": "x", "cover": 99, "author": 42, "created_by": 3,
                                                   "keywords": "a, b,", "featured": 1, "seo": '{"k": 1}'}
    out = mapping.convert_row(plan, row, first, {"authors": {1, 2}}, timezone.utc, dangling, [])
    assert (out["cover"], out["author"]) == (None, None)  # never pointed at another row
    assert out["created_by"] == first.get("directus_users", 3)
    assert (out["keywords"], out["featured"], out["seo"]) == (["a", "b"], True, {"k": 1})
    assert sorted((d.field, d.value, d.target) for d in dangling) == [("author", 42, "authors"),
                                                                     ("cover", 99, "directus_files")]
    schema = mapping.plan_schema(source)
    language = schema.collection("article_translations").column("language")
    assert (language.type, language.length, language.references) == ("string", 5, "languages")
    assert schema.collection("languages").rows == [{"code": "en", "name": "English"}, {"code": "de", "name": "German"},
                                                   {"code": "fr", "name": "French"}]
    sam = source.users[3].model_copy(update={"status": "deleted"})
    users = mapping.map_users(source.model_copy(update={"users": [sam]}), first, {})
    assert [(u["email"], u["status"], u["role"]) for u in users.rows] == [
        ("sam.writer@example.com", "archived", first.get("directus_roles", 4))]
    assert users.needing_password == ["sam.writer@example.com"]
    # Comments: on migrated collections' items (and files, users: through the id map), ids a re-run finds again.
    comments = source.comments + [Comment(id=900, action_by=3, collection="directus_files", item="2", comment="file"),
                                  Comment(id=901, action_by=3, collection="tags", item="1", comment="left out")]
    rows, notes = mapping.map_comments(source.model_copy(update={"comments": comments}), first, {"articles"})
    users = first.ids["directus_users"]
    assert [(r["id"], r["collection"], r["item"], r["user_created"]) for r in rows] == [
        (str(uuid.uuid5(first.namespace, "directus_comments:216")), "articles", "1", users[2]),
        (str(uuid.uuid5(first.namespace, "directus_comments:217")), "articles", "4", users[1]),
        (str(uuid.uuid5(first.namespace, "directus_comments:900")), "directus_files", first.get("directus_files", 2),
         users[3])]
    assert notes == ["1 v8 comment on tags not carried: the collection is not migrated (or the item is gone)"]
    assert mapping.legacy_comments(rows)[0] == {"action": "comment", "user": users[2], "collection": "articles",
                                                "item": "1", "comment": "Great photos, ship it!",
                                                "timestamp": datetime(2026, 11, 26, 6, 25, 40, tzinfo=timezone.utc)}
    berlin = mapping.source_timezone("Europe/Berlin")
    converted = mapping.convert_row(plan, row | {"published_on": datetime(2020, 6, 1, 10, 0)}, first, {}, berlin, [], [])
    assert converted["published_on"] == datetime(2020, 6, 1, 8, 0)  # v8's local time → UTC


def test_compiled_row_converter_gives_what_convert_row_gives(v8_url: str) -> None:
    """The items step's fast path (RowConverter, tuples, JSON as text for COPY) against convert_row, on every row
    of every sample collection plus edge values, in UTC and in v8's local time."""
    source = read_v8(v8_url)
    ids = mapping.build_id_map(source, "admin-role", {})
    schema = mapping.plan_schema(source)
    keys = {"authors": {1, 2}, "tags": {1, 2, 3}, "articles": {1, 2, 3, 4, 5}, "languages": {"en", "de"}}
    compared = 0
    for tz in (timezone.utc, mapping.source_timezone("Europe/Berlin")):
        for plan in schema.collections:
            names = [c.name for c in plan.columns]
            rows = plan.rows if plan.rows is not None else [dict(zip(names, r)) for r in v8_query(
                v8_url, f"SELECT {', '.join(f'`{n}`' for n in names)} FROM `{plan.name}`")]
            if plan.name == "articles":
                rows = rows + [{n: None for n in names} | {"id": 50, "title": "x", "cover": 99, "author": 42,
                                                           "created_by": 3, "keywords": " , a, b,", "featured": 1,
                                                           "seo": "not json", "created_on": "0000-00-00"}]
            want_dangling: list[mapping.Dangling] = []
            want_unmapped: list[str] = []
            want = [mapping.convert_row(plan, row, ids, keys, tz, want_dangling, want_unmapped) for row in rows]
            got_dangling: list[mapping.Dangling] = []
            got_unmapped: list[str] = []
            got, found = mapping.RowConverter(plan, ids, keys, tz, got_dangling, got_unmapped).rows(
                [tuple(row.get(n) for n in names) for row in rows])
            for wanted, converted in zip(want, got, strict=True):
                as_dict = dict(zip(names, converted))
                for column in plan.columns:
                    value = as_dict[column.name]
                    if column.type == "json" and value is not None:
                        value = json.loads(value)
                    assert value == wanted[column.name], (plan.name, column.name)
                    assert type(value) is type(wanted[column.name]), (plan.name, column.name)
                compared += 1
            assert got_dangling == want_dangling and got_unmapped == want_unmapped
            references = sum(1 for row in rows for c in plan.columns if c.convert == "ref" and row.get(c.name) is not None)
            assert found == references - len(want_dangling)
    assert compared > 40


# -- bad input: one line, nothing changed ----------------------------------------------------------------------
@pytest.fixture(scope="module")
def clean_target(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases: Databases) -> TestProject:
    return make_project(tmp_path_factory.mktemp("v8clean"), directus, module_databases.create("pg"), with_extras=False)


def refused(args: list[str], project: TestProject, env: dict[str, str], *phrases: str, code: int | None = None) -> str:
    before, files_before = pg_digest(project), storage_listing(project)
    result = run_cli(*args, env=env)
    assert result.returncode != 0 and result.returncode == (code or result.returncode), result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "pw-" not in lines[0]  # no password
    assert pg_digest(project) == before and storage_listing(project) == files_before
    assert not (project.dir / "v8-migration").exists()
    return lines[0]


def licensed(project: TestProject, install: Path, root: Path, entitlements: dict[str, Any]) -> Path:
    """Another directory for ``project``'s database whose config sets a LICENSE_TOKEN granting ``entitlements``
    (over a plan of 10 seats and 25 collections); unsigned: the migration reads what a token grants, Directus
    verifies it (this one it would refuse)."""
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    granted = {"seats": {"limit": 10}, "collections": {"limit": 25}, "custom_permission_rules_enabled": {"default": False},
               **entitlements}
    token = ".".join([part({"alg": "none"}), part({"meta": {"name": "Test plan"}, "entitlements": granted,
                                                    "exp": int(time.time()) + 3600}), "unsigned"])
    directory = root / f"licensed-{len(list(root.glob('licensed-*')))}"
    link_directus(directory, install)
    write_env(directory / ".env", {**project.env, "LICENSE_TOKEN": token})
    return directory


def test_bad_input_is_refused_with_nothing_changed(clean_target: TestProject, v8_url: str, uploads: Path,
                                                   module_databases: Databases, directus: Path, directus_release,
                                                   tmp_path: Path, server_env: dict[str, str]) -> None:
    refused(migrate_args("mysql://root@127.0.0.1:1/nowhere", uploads, clean_target.dir), clean_target, server_env,
            "cannot connect to", "check --v8-database")
    other = module_databases.create("mysql")
    conn = pymysql.connect(host="127.0.0.1", user="root", database=other.name, autocommit=True)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE customers (id int PRIMARY KEY)")
    refused(migrate_args(other.url, uploads, clean_target.dir), clean_target, server_env, "not a Directus v8 database")
    refused(migrate_args(v8_url, uploads.parent, clean_target.dir), clean_target, server_env, "has no originals/ folder",
            "pass the folder holding originals/")

    bare = tmp_path / "bare"
    database = module_databases.create("pg")
    link_directus(bare, directus)
    write_env(bare / ".env", {**database.env(), "KEY": "k-1234567890", "SECRET": "s-1234567890"})
    not_bootstrapped = TestProject(bare, database, 0, {}, {})
    refused(migrate_args(v8_url, uploads, bare), not_bootstrapped, server_env, "is not a bootstrapped Directus database",
            "npx directus bootstrap")

    if MAJOR >= 12:  # Core: v8's permissions need custom rules, which it ignores; refused unless accepted
        refused(migrate_args(v8_url, uploads, clean_target.dir, accept=False), clean_target, server_env,
                "the target's Directus license (Core, from CORE_LICENSE of the installed @directus/license",
                "does not include custom permission rules", "which 18 of the 76 permissions v8 gives Author, Editor, Public need",
                "pass --accept-license-limits to migrate anyway", code=16)
    if MAJOR >= 12:  # a license token in the config: its entitlements count (read, not verified: Directus does)
        for entitlements, phrases in (
                ({"seats": {"limit": 2}}, (("(Test plan, from LICENSE_TOKEN in the config) allows 2 seats (active "
                                            "users with app or admin access); it has 1 and the migration adds 2"),
                                           "Directus would lock the project", "activate a license with more")),
                ({"collections": {"limit": 5, "overage": 2}},
                 ("allows 7 active collections; it has 0 and the migration adds 8", "--skip-collections"))):
            directory = licensed(clean_target, directus, tmp_path, entitlements)
            refused(migrate_args(v8_url, uploads, directory), TestProject(directory, clean_target.database, 0, {}, {}),
                    server_env, *phrases, code=2)
        entitled = licensed(clean_target, directus, tmp_path, {"custom_permission_rules_enabled": {"default": True}})
        dry = run_cli(*migrate_args(v8_url, uploads, entitled, "--dry-run", accept=False), env=server_env)
        assert dry.returncode == 0, dry.stderr  # entitled: nothing to accept
        found = json.loads((entitled / "v8-migration" / "plan.json").read_text())["license"]
        assert (found["name"], found["seats"], found["custom_rules_entitled"]) == ("Test plan", [1, 2, 10], True)
        shutil.rmtree(entitled / "v8-migration")
    if MAJOR >= 11:  # Directus 10 installed over this database (policies): refused, the version named
        older = tmp_path / "downgraded"
        link_directus(older, directus_release(RELEASES[0]))
        write_env(older / ".env", {**clean_target.database.env(), "KEY": "k-1234567890", "SECRET": "s-1234567890",
                                   "STORAGE_LOCATIONS": "local", "STORAGE_LOCAL_DRIVER": "local",
                                   "STORAGE_LOCAL_ROOT": "./uploads"})
        refused(migrate_args(v8_url, uploads, older), TestProject(older, clean_target.database, 0, {}, {}), server_env,
                f"has Directus 11's directus_policies but Directus {RELEASES[0]} is installed")

    before = pg_digest(clean_target)
    dry = run_cli(*migrate_args(v8_url, uploads, clean_target.dir, "--dry-run", "--work-dir", str(tmp_path / "dry")),
                  env=server_env)
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: checks passed; would migrate "), dry.stderr
    assert pg_digest(clean_target) == before and storage_listing(clean_target) == []
    assert (tmp_path / "dry" / "id-map.json").exists()

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{clean_target.database.name}", autocommit=True) as pg:
        pg.execute('CREATE TABLE tags (id serial PRIMARY KEY, label text)')
        pg.execute(f'ALTER TABLE tags OWNER TO "{clean_target.database.user}"')
    refused(migrate_args(v8_url, uploads, clean_target.dir), clean_target, server_env, "already has 1 collections named like v8 ones (tags)",
            "--skip-collections")

    # Leaving the conflicting collection out: the rest migrates, the target's own `tags` is untouched and the
    # junction to it becomes a plain one-to-many.
    theirs = pg_digest(clean_target, ["tags"])["tags"]
    result = run_cli(*migrate_args(v8_url, uploads, clean_target.dir, "--skip-collections", "tags"), env=server_env)
    assert result.returncode == 0, result.stderr
    assert pg_digest(clean_target, ["tags"])["tags"] == theirs
    with clean_target.server() as client:
        tagged = client.items("articles", fields="id,tags.tags_id", filter=json.dumps({"id": {"_eq": 1}}))
        assert sorted(t["tags_id"] for t in tagged[0]["tags"]) == sorted(
            r[0] for r in v8_query(v8_url, "SELECT tags_id FROM articles_tags WHERE articles_id = 1"))

"""The v8 migration, api mode: the shared v8.8.1 sample (loaded into a scratch MariaDB as test_v8_migrate does)
migrated with the real CLI into a fresh, running Directus of the suite's version on PostgreSQL through its REST API
only, with an admin's static token. Then the same read-back as database mode (tests/v8_checks.py) through
Directus (from 11.x the roles' policies and access rows too); a second run changes nothing; runs killed half way
(from 11.x also between the roles and their policies) complete, every request within the target's
MAX_PAYLOAD_SIZE; the token never shows in the report, the artifacts or the output; bad input (on 12.x: a license
without custom permission rules, not accepted) fails with one line, changing nothing."""

from __future__ import annotations

import contextlib
import json
import signal
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from harness import DIRECTUS_VERSION, Databases, TestProject, free_port, free_project_slot, make_project
from test_v8_migrate import (  # noqa: F401 (server_env: a fixture shared with the database mode's tests)
    MAJOR,
    latest_artifact,
    migrate_args,
    pg_digest,
    pg_rows,
    run_cli,
    server_env,
    storage_listing,
)
from v8_checks import (
    COLLECTIONS,
    TEMP_PASSWORD,
    check_policies,
    check_report_counts,
    check_through_api,
    extract_v8_uploads,
    load_v8_sample,
    v8_counts,
    v8_query,
)

from directus_ops import directus_cli
from directus_ops.directus_api import DirectusClient
from directus_ops.errors import ConfigError, DirectusApiError
from directus_ops.v8.api_target import json_arrays, payload_limit

TOKEN = "v8-api-test-token-7f3c9a1e5b2d4f60"


@contextlib.contextmanager
def serving(project: TestProject) -> Iterator[DirectusClient]:
    """The target running (api mode needs it up), and a client with the admin's static token."""
    with directus_cli.running_server(project.dir, project.url), DirectusClient(project.url, TOKEN) as client:
        yield client


def give_admin_a_token(project: TestProject) -> None:
    with project.server() as admin:
        admin.patch(f"/users/{admin.get('/users/me')['id']}", {"token": TOKEN})


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def flow_run_parameters() -> str:
    """The parameters of every v8_migrate run the Prefect server holds, as text."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["v8_migrate"])))
    assert runs
    return json.dumps([run.parameters for run in runs], default=str)


def api_args(v8_url: str, storage: Path, work: Path, url: str, *extra: str, accept: bool = True) -> list[str]:
    """--project-dir is a local directory for the work files in api mode (created if missing)."""
    return migrate_args(v8_url, storage, work, "--mode", "api", "--url", url, *extra, accept=accept)


@pytest.fixture(scope="module")
def v8_url(module_databases: Databases) -> str:
    return load_v8_sample(module_databases)


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return extract_v8_uploads(tmp_path_factory.mktemp("v8api-uploads"))


@pytest.fixture(scope="module")
def api_target(tmp_path_factory: pytest.TempPathFactory, directus: Path, module_databases: Databases) -> TestProject:
    project = make_project(tmp_path_factory.mktemp("v8api"), directus, module_databases.create("pg"), with_extras=False)
    give_admin_a_token(project)
    return project


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("v8api-ops") / "ops"


@pytest.fixture(scope="module")
def migrated(api_target: TestProject, work: Path, v8_url: str, uploads: Path,
             server_env: dict[str, str]) -> dict[str, Any]:  # noqa: F811
    with serving(api_target):
        result = run_cli(*api_args(v8_url, uploads, work, api_target.url, "--token", TOKEN,
                                   "--temporary-password-env", "V8_TEMP_PASSWORD"), env=server_env)
    assert result.returncode == 0, result.stderr
    return {"stdout": result.stdout, "stderr": result.stderr,
            "report": json.loads((work / "v8-migration" / "report.json").read_text())}


def test_api_mode_migrates_what_database_mode_does(migrated: dict[str, Any], api_target: TestProject, work: Path,
                                                   v8_url: str, uploads: Path) -> None:
    report = migrated["report"]
    check_report_counts(report, v8_url)
    assert (report["mode"], report["target"], report["directus"]) == ("api", api_target.url, DIRECTUS_VERSION)
    permissions = report["permissions"]
    if MAJOR >= 12:  # Core refuses permissions with custom rules: the rest is written, those listed
        assert report["license"]["source"] == f"GET {api_target.url}/license" and report["license"]["name"] == "Core"
        assert permissions["written"] + len(permissions["left_out"]) == permissions["planned"] > permissions["written"] > 0
        assert "Public: articles read" in permissions["left_out"] and "Author: articles create" in permissions["left_out"]
    else:
        assert permissions["written"] == permissions["planned"] > 0 and "left_out" not in permissions
    assert report["files"]["copied"] == 4
    assert (report["comments"]["written"], report["comments"]["into"]) == \
        (2, "directus_comments" if MAJOR >= 11 else "directus_activity")
    if MAJOR >= 11:
        assert (report["people"]["roles"], report["people"]["policies"], report["people"]["access"]) == (2, 2, 2)
    assert report["items"]["foreign_keys"] == 16  # as database mode: every v8 reference + translations → languages
    assert any(n.startswith("directus_files.modified_by and modified_on") for n in report["not_kept"])
    assert not (api_target.dir / "v8-migration").exists()  # the work files are in --project-dir, not beside the target
    id_map = json.loads((work / "v8-migration" / "id-map.json").read_text())
    assert set(id_map["directus_files"]) == {"1", "2", "3", "4"} and id_map["directus_roles"]["2"] is None

    port = api_target.url.rsplit(":", 1)[1]
    markdown = latest_artifact(f"v8-migrate-127-0-0-1-{port}")
    assert "not kept by api mode: directus_files.modified_by and modified_on" in markdown
    texts = [migrated["stdout"], migrated["stderr"], markdown] + \
        [p.read_text() for p in (work / "v8-migration").iterdir()]
    for text in texts + [flow_run_parameters()]:  # neither the token nor the temporary password is kept anywhere
        assert TOKEN not in text and TEMP_PASSWORD not in text

    if MAJOR >= 12:
        assert "left out (the target's license has no custom permission rules): Public: articles read" in markdown

    # Creator and dates are v8's (the fields get their specials after the items), the uploader and upload dates too;
    # the comments' author is the token's user.
    check_through_api(api_target, v8_url, uploads, authorship_kept=True, comments_authored=False)
    with serving(api_target) as client:
        if MAJOR >= 11:
            check_policies(client, v8_url, id_map)
        files = {f["filename_download"]: f for f in client.get("/files", fields="filename_download,uploaded_on,"
                                                                          "uploaded_by.email,title")}
        fields = {f["field"]: f["meta"]["special"] for f in client.get("/fields/articles")}
        assert fields["created_by"] == ["user-created"] and fields["created_on"] == ["date-created"]
    for name, title, uploader, uploaded_on in v8_query(v8_url, """
            SELECT f.filename_download, f.title, u.email, f.uploaded_on FROM directus_files f
            LEFT JOIN directus_users u ON u.id = f.uploaded_by"""):
        assert files[name]["title"] == title and files[name]["uploaded_by"]["email"] == uploader
        assert instant(files[name]["uploaded_on"]) == uploaded_on.replace(tzinfo=timezone.utc)


def test_a_second_run_changes_nothing(migrated: dict[str, Any], api_target: TestProject, work: Path, v8_url: str,
                                      uploads: Path, server_env: dict[str, str]) -> None:  # noqa: F811
    from prefect.blocks.system import Secret

    Secret(value=TOKEN).save("v8-api-token", overwrite=True)  # this time the token comes from a Secret block
    before, files_before = pg_digest(api_target), storage_listing(api_target)  # every table, activity too
    with serving(api_target):
        result = run_cli(*api_args(v8_url, uploads, work, api_target.url, "--temporary-password-env",
                                   "V8_TEMP_PASSWORD", "--token-secret-block", "v8-api-token"), env=server_env)
    assert result.returncode == 0, result.stderr
    assert "(52 rows read, 0 written), 0 files copied" in result.stdout
    assert pg_digest(api_target) == before and storage_listing(api_target) == files_before
    report = json.loads((work / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    assert report["schema"]["collections"] == report["items"]["relations"] == report["permissions"]["written"] == 0
    assert report["comments"]["written"] == 0
    assert TOKEN not in result.stdout + result.stderr


def test_bad_input_then_killed_runs_complete_within_a_small_payload_limit(
        tmp_path: Path, directus: Path, databases: Databases, v8_url: str, uploads: Path,
        cli_env: dict[str, str]) -> None:
    project = make_project(tmp_path, directus, databases.create("pg"), with_extras=False)
    with (project.dir / ".env").open("a") as env:
        env.write("MAX_PAYLOAD_SIZE=8kb\n")  # Directus answers 413 to a larger body: the limit is checked for real
    give_admin_a_token(project)
    work = tmp_path / "ops"
    args = api_args(v8_url, uploads, work, project.url, "--max-payload-size", "8kb")
    environment = {k: v for k, v in cli_env.items() if k != "DIRECTUS_OPS_TOKEN"}
    with_token = {**environment, "DIRECTUS_OPS_TOKEN": TOKEN}

    def refused(arguments: list[str], env: dict[str, str], *phrases: str, code: int | None = None) -> None:
        before, files_before = pg_digest(project), storage_listing(project)
        result = run_cli(*arguments, env=env)
        lines = result.stderr.strip().splitlines()
        assert result.returncode != 0 and len(lines) == 1, result.stderr
        assert result.returncode == (code or result.returncode), result.stderr
        assert lines[0].startswith("directus-ops: error: "), result.stderr
        for phrase in phrases:
            assert phrase in lines[0], lines[0]
        assert TOKEN not in result.stderr and "wrong-token" not in result.stderr
        assert pg_digest(project) == before and storage_listing(project) == files_before
        assert not (work / "v8-migration").exists()

    refused(api_args(v8_url, uploads, work, f"http://127.0.0.1:{free_port()}"), with_token,
            "cannot reach Directus at http://127.0.0.1:", "check --url")
    with serving(project) as client:
        refused(args, {**environment, "DIRECTUS_OPS_TOKEN": "wrong-token-0123456789"}, "refused the token", "--token")
        refused(args, environment, "needs an admin token", "DIRECTUS_OPS_TOKEN")
        refused(migrate_args(v8_url, uploads, work, "--mode", "api"), with_token, "needs --url")
        refused(migrate_args(v8_url, uploads, work, "--url", project.url), with_token, "are for --mode api")
        if MAJOR >= 11:  # an editor: a role whose policy has app access, not admin access (roles have neither)
            policy = client.post("/policies", {"name": "Editing", "app_access": True, "admin_access": False})
            role = client.post("/roles", {"name": "Reader"})
            client.post("/access", {"role": role["id"], "policy": policy["id"]})
        else:
            role = client.post("/roles", {"name": "Reader", "admin_access": False, "app_access": True})
        reader = client.post("/users", {"email": "reader@example.com", "role": role["id"],
                                        "token": "reader-token-0123456789"})
        refused(args, {**environment, "DIRECTUS_OPS_TOKEN": "reader-token-0123456789"},
                "(reader@example.com) is not an administrator")
        client.request("DELETE", f"/users/{reader['id']}")  # (on 12.x it would hold a seat)
        if MAJOR >= 11:
            public = client.get("/access", filter=json.dumps({"role": {"_null": True}, "user": {"_null": True}}))[0]
            client.request("DELETE", f"/access/{public['id']}")
            refused(args, with_token, "has no public policy")
            client.post("/access", {"id": public["id"], "policy": public["policy"], "sort": public["sort"]})
        if MAJOR >= 12:
            refused(api_args(v8_url, uploads, work, project.url, "--max-payload-size", "8kb", accept=False),
                    with_token, f"{project.url}'s Directus license (Core, from GET {project.url}/license)",
                    "does not include custom permission rules", "left out (Directus refuses them)",
                    "pass --accept-license-limits", code=16)
        client.post("/collections", {"collection": "tags", "schema": {}, "meta": {}})
        refused(args, with_token, "already has 1 collections named like v8 ones (tags)", "--skip-collections")
        client.request("DELETE", "/collections/tags")
        with pytest.raises(DirectusApiError, match="request entity too large"):  # the target's limit is real
            client.send_json("POST", "/roles", b'[{"name":"' + b"x" * 9000 + b'"}]')

        dry = run_cli(*args, "--dry-run", env=with_token)
        assert dry.returncode == 0 and dry.stdout.startswith("dry run: checks passed; would migrate "), dry.stderr
        assert (work / "v8-migration" / "id-map.json").exists() and not client.get("/files")
        assert "tags" not in {c["collection"] for c in client.get("/collections")}

        # Killed (from 11.x first after the roles, before their policies) after the second upload (before its
        # metadata), then after the third batch of items: the re-runs complete, with every batch within the 8 kB
        # the target accepts.
        roles_first = ("v8-roles-written",) if MAJOR >= 11 else ()
        for point in (*roles_first, "v8-file-copied:2", "v8-items-batch:3"):
            killed = run_cli(*args, env={**with_token, "DIRECTUS_OPS_TEST_KILL_AT": point})
            assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
            free_project_slot(work)
            if point == "v8-roles-written":
                assert [r["name"] for r in client.get("/roles", sort="name")] == ["Administrator", "Author", "Editor",
                                                                                 "Reader"]
                assert len(client.get("/policies")) == 3  # the bootstrap's two and Editing: none of the migration's
            elif point.startswith("v8-file"):
                assert len(client.get("/files")) == 2
                assert not pg_rows(project, "SELECT 1 FROM pg_tables WHERE tablename = 'articles'")
            else:
                counts = [pg_rows(project, f'SELECT count(*) FROM "{c}"')[0][0] for c in COLLECTIONS]
                assert 0 < sum(counts) < sum(v8_counts(v8_url).values())
        finished = run_cli(*args, env=with_token)
        assert finished.returncode == 0, finished.stderr

        # An upload cut short (a stopped run: the row is there, the bytes are not all there) is uploaded again.
        cut = client.get("/files", fields="id,filename_disk", sort="filename_download", limit=1)[0]
        stored = project.dir / "uploads" / cut["filename_disk"]
        stored.write_bytes(stored.read_bytes()[:100])
        pg_rows(project, f"UPDATE directus_files SET filesize = 100 WHERE id = '{cut['id']}' RETURNING id")
        again = run_cli(*args, env=with_token)
        assert again.returncode == 0 and "0 written), 1 files copied" in again.stdout, again.stderr

        files = {f["filename_download"]: f for f in client.get("/files", fields="id,filename_download,uploaded_on")}
        for name, uploaded_on, disk in v8_query(v8_url, "SELECT filename_download, uploaded_on, filename_disk "
                                                       "FROM directus_files"):
            assert instant(files[name]["uploaded_on"]) == uploaded_on.replace(tzinfo=timezone.utc)  # set on the re-run
            assert client.asset(files[name]["id"]) == (uploads / "originals" / disk).read_bytes()
    assert {c: pg_rows(project, f'SELECT count(*) FROM "{c}"')[0][0] for c in COLLECTIONS} == v8_counts(v8_url)


def test_bodies_stay_within_the_payload_limit() -> None:
    """Rows of every size up to the limit: each body is a JSON array of at most ``limit`` bytes, together they
    hold every row in order; a row too large alone is refused with the fix."""
    limit = payload_limit("2kb")
    assert (limit, payload_limit("1mb"), payload_limit("1048576")) == (2048, 1048576, 1048576)
    rows = [{"id": i, "text": "é" * (i * 37 % 1000)} for i in range(400)]
    bodies = list(json_arrays(rows, limit, "articles"))
    assert len(bodies) > 100 and all(len(body) <= limit for body, _ in bodies)
    assert [row for body, _ in bodies for row in json.loads(body)] == rows
    assert sum(count for _, count in bodies) == len(rows)
    with pytest.raises(ConfigError, match="raise MAX_PAYLOAD_SIZE on the target"):
        list(json_arrays([{"id": 1, "text": "x" * limit}], limit, "articles"))
    with pytest.raises(ConfigError, match="--max-payload-size"):
        payload_limit("lots")

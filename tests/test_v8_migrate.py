"""The v8 migration, database mode: the shared v8.8.1 sample (../shared/fixtures/v8, loaded into a scratch
MariaDB as test_v8_source does) migrated into a fresh Directus 10.13.4 on PostgreSQL. Directus then starts and
what a user checks is checked through its REST API against the v8 database itself (natural keys: file names,
emails, names): item counts, every article's cover/author/creator/tags/gallery/translations, file bytes, users'
roles and statuses, the singleton, kept authorship and dates, permissions (public and an Author with the
temporary password), sequences. A second run changes nothing. Bad input fails with one line, changing nothing."""

from __future__ import annotations

import hashlib
import signal
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pymysql
import pytest

from conftest import SHARED
from directus_ops.database import DatabaseSettings, restore
from directus_ops.directus_api import DirectusApiError, DirectusClient
from directus_ops.v8 import mapping
from directus_ops.v8.source import read_v8
from harness import S3_REGION, Databases, TestProject, free_project_slot, link_directus, make_project, write_env

pytestmark = pytest.mark.directus

FIXTURES = SHARED / "fixtures" / "v8"
COLLECTIONS = ["articles", "articles_tags", "articles_files", "article_translations", "authors", "tags", "site_settings"]
TEMP_PASSWORD = "Temporary-pass-42!"
CLI = Path(__file__).parent.parent / ".venv" / "bin" / "directus-ops"
SYSTEM_TABLES = ["directus_users", "directus_roles", "directus_files", "directus_folders", "directus_permissions",
                 "directus_collections", "directus_fields", "directus_relations"]


# -- fixtures ----------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def module_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    databases = Databases(tmp_path_factory.mktemp("v8migrate-db"))
    yield databases
    databases.drop_all()


@pytest.fixture(scope="module")
def v8_url(module_databases: Databases) -> str:
    database = module_databases.create("mysql")
    restore(DatabaseSettings.from_url(database.url), FIXTURES / "v8_sample.sql", "mysql-sql")
    return database.url


@pytest.fixture(scope="module")
def uploads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("v8uploads")
    with tarfile.open(FIXTURES / "v8_uploads.tar.gz") as archive:
        archive.extractall(root, filter="data")
    return root / "uploads" / "_"


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


def migrate_args(v8_url: str, storage: Path | str, project: Path, *extra: str) -> list[str]:
    return ["v8", "migrate", "--v8-database", v8_url, "--v8-storage", str(storage), "--project-dir", str(project), *extra]


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


# -- the v8 side, read straight from MariaDB (not through the code under test) ---------------------------------
def v8_query(url: str, sql: str) -> list[tuple]:
    settings = DatabaseSettings.from_url(url)
    conn = pymysql.connect(host="127.0.0.1", user="root", database=settings.database)
    with conn, conn.cursor() as cur:
        cur.execute(sql)
        return list(cur.fetchall())


def v8_articles(url: str) -> dict[int, dict[str, Any]]:
    """Each article with its relations by natural key, as v8 holds them."""
    articles = {}
    for (ident, title, cover, creator, author, created_on) in v8_query(url, """
            SELECT a.id, a.title, f.filename_download, u.email, au.name, a.created_on FROM articles a
            LEFT JOIN directus_files f ON f.id = a.cover LEFT JOIN directus_users u ON u.id = a.created_by
            LEFT JOIN authors au ON au.id = a.author ORDER BY a.id"""):
        articles[ident] = {"title": title, "cover": cover, "created_by": creator, "author": author,
                           "created_on": created_on.replace(tzinfo=timezone.utc), "tags": [], "gallery": [],
                           "translations": []}
    for article, name in v8_query(url, "SELECT j.articles_id, t.name FROM articles_tags j JOIN tags t ON t.id = j.tags_id ORDER BY j.id"):
        articles[article]["tags"].append(name)
    for article, name in v8_query(url, "SELECT j.articles_id, f.filename_download FROM articles_files j "
                                       "JOIN directus_files f ON f.id = j.directus_files_id ORDER BY j.id"):
        articles[article]["gallery"].append(name)
    for article, language, headline in v8_query(url, "SELECT article, language, headline FROM article_translations ORDER BY id"):
        articles[article]["translations"].append((language, headline))
    return articles


def pg_digest(project: TestProject, tables: list[str]) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row of each table that exists."""
    out = {}
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{project.database.name}") as conn:
        present = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        for table in tables:
            if table in present:
                rows = sorted(repr(r) for r in conn.execute(f'SELECT * FROM "{table}"'))
                out[table] = (len(rows), hashlib.sha256("\n".join(rows).encode()).hexdigest())
        out["_tables"] = (len(present), ",".join(sorted(present)))
    return out


def storage_listing(project: TestProject) -> list[tuple[str, int]]:
    root = project.dir / "uploads"
    return sorted((p.name, p.stat().st_size) for p in root.iterdir()) if root.exists() else []


def latest_artifact(key: str) -> str:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    return str(max(artifacts, key=lambda a: a.created).data)


# -- the migrated project, through Directus --------------------------------------------------------------------
def test_migrated_project_reads_back_through_the_api(migrated: dict[str, Any], target: TestProject, v8_url: str,
                                                     uploads: Path) -> None:
    expected = v8_articles(v8_url)
    v8_counts = {c: v8_query(v8_url, f"SELECT count(*) FROM `{c}`")[0][0] for c in COLLECTIONS}
    report = migrated["report"]
    made = {"languages": 3}  # from the translation field's options (v8 had no languages table)
    assert {c: s["read"] for c, s in report["items"]["collections"].items()} == v8_counts | made
    assert {c: s["written"] for c, s in report["items"]["collections"].items()} == v8_counts | made
    assert report["people"]["users_needing_password"] == []  # every created user got the temporary password
    assert report["people"]["users_merged"] == ["admin@example.com"]  # the target's admin is the v8 admin
    markdown = latest_artifact("v8-migrate-project")  # the run's report in Prefect
    references = v8_query(v8_url, "SELECT count(created_by) + count(modified_by) + count(author) + count(cover) FROM articles")[0][0]
    assert f"| `articles` | read 9, written 9, references {references}, dangling 0 |" in markdown
    assert "v8 users that were already in the target (kept as they are): admin@example.com" in markdown
    assert "unmapped: articles.body: option toolbar (wysiwyg) has no v9 equivalent (dropped)" in markdown
    assert "pw-" not in markdown and TEMP_PASSWORD not in markdown
    id_map = json.loads(Path(report["id_map"]).read_text())
    assert set(id_map["directus_files"]) == {"1", "2", "3", "4"} and id_map["directus_roles"]["2"] is None

    with target.server() as client:
        for collection in COLLECTIONS:
            if collection == "site_settings":
                continue
            count = client.get(f"/items/{collection}", **{"aggregate[count]": "*"})[0]["count"]
            assert int(count) == v8_counts[collection], collection  # soft-deleted rows included

        rows = client.items("articles", fields="id,title,created_on,cover.filename_download,created_by.email,"
                            "author.name,tags.id,tags.tags_id.name,gallery.id,gallery.directus_files_id.filename_download,"
                            "translations.id,translations.language.code,translations.headline,status")
        assert [r["id"] for r in rows] == sorted(expected)
        for row in rows:
            want = expected[row["id"]]
            assert row["title"] == want["title"]
            assert (row["cover"] or {}).get("filename_download") == want["cover"]
            assert (row["created_by"] or {}).get("email") == want["created_by"]  # authorship kept, not the migrator
            assert (row["author"] or {}).get("name") == want["author"]
            assert [t["tags_id"]["name"] for t in sorted(row["tags"], key=lambda t: t["id"])] == want["tags"]
            assert [g["directus_files_id"]["filename_download"] for g in sorted(row["gallery"], key=lambda g: g["id"])] \
                == want["gallery"]
            assert [(t["language"]["code"], t["headline"]) for t in sorted(row["translations"], key=lambda t: t["id"])] \
                == want["translations"]  # through v9's translations structure (a junction to languages)
            assert datetime.fromisoformat(row["created_on"].replace("Z", "+00:00")) == want["created_on"]  # v8's date
        assert sum(r["status"] == "deleted" for r in rows) == 1
        assert client.items("languages", sort="code") == [{"code": "de", "name": "German"}, {"code": "en", "name": "English"},
                                                          {"code": "fr", "name": "French"}]
        assert client.get("/fields/articles/translations")["meta"]["special"] == ["translations"]
        snapshot = client.get("/schema/snapshot")  # Directus reads the whole migrated schema back
        assert set(COLLECTIONS + ["languages"]) <= {c["collection"] for c in snapshot["collections"]}
        assert {(r["collection"], r["field"]) for r in snapshot["relations"]} >= {
            ("articles", "author"), ("articles_tags", "tags_id"), ("articles_files", "directus_files_id"),
            ("article_translations", "language"), ("articles", "cover"), ("authors", "account")}

        files = client.get("/files", limit=-1, fields="id,filename_download,filename_disk,tags,folder.name,uploaded_by.email")
        v8_files = {name: (disk, tags, folder) for name, disk, tags, folder in v8_query(v8_url, """
            SELECT f.filename_download, f.filename_disk, f.tags, d.name FROM directus_files f
            LEFT JOIN directus_folders d ON d.id = f.folder""")}
        assert sorted(f["filename_download"] for f in files) == sorted(v8_files)
        for file in files:
            disk, tags, folder = v8_files[file["filename_download"]]
            assert client.asset(file["id"]) == (uploads / "originals" / disk).read_bytes()  # identical bytes
            assert file["filename_disk"] == file["id"] + Path(disk).suffix
            assert (file["tags"] or []) == [t for t in (tags or "").split(",") if t]  # CSV became a JSON list
            assert (file["folder"] or {}).get("name") == folder and file["uploaded_by"]["email"] == "admin@example.com"
        folders = {f["name"]: f["parent"] for f in client.get("/folders", fields="name,parent.name")}
        assert folders == {"Media Library": None, "Covers": {"name": "Media Library"}, "Documents": None}

        users = {u["email"]: (u["status"], u["role"]["name"] if u["role"] else None, u["language"])
                 for u in client.get("/users", limit=-1, fields="email,status,role.name,language")}
        v8_users = {email: (status, role, locale) for email, status, role, locale in v8_query(v8_url, """
            SELECT u.email, u.status, r.name, u.locale FROM directus_users u LEFT JOIN directus_roles r ON r.id = u.role""")}
        assert set(users) == set(v8_users)
        for email, (status, role, locale) in v8_users.items():
            if email == "admin@example.com":
                assert users[email][:2] == ("active", "Administrator")  # the target's own admin, kept
                continue
            assert users[email] == ({"deleted": "archived"}.get(status, status), role, locale)
        avatar = client.get("/users", filter=json.dumps({"email": {"_eq": "alex.author@example.com"}}),
                            fields="avatar.filename_download")[0]["avatar"]
        assert avatar["filename_download"] == v8_query(v8_url, "SELECT f.filename_download FROM directus_users u "
                                                               "JOIN directus_files f ON f.id = u.avatar WHERE u.id = 3")[0][0]
        assert sorted(r["name"] for r in client.get("/roles")) == ["Administrator", "Author", "Editor"]

        settings = client.get("/items/site_settings", fields="site_title,logo.filename_download,featured_article.title")
        assert isinstance(settings, dict)  # a singleton answers with one object
        title, logo, featured = v8_query(v8_url, "SELECT s.site_title, f.filename_download, a.title FROM site_settings s "
                                                 "LEFT JOIN directus_files f ON f.id = s.logo "
                                                 "LEFT JOIN articles a ON a.id = s.featured_article")[0]
        assert (settings["site_title"], settings["logo"]["filename_download"], settings["featured_article"]["title"]) \
            == (title, logo, featured)
        meta = client.get("/collections/articles")["meta"]
        assert (meta["archive_field"], meta["archive_value"], meta["sort_field"]) == ("status", "deleted", "sort")
        assert client.get("/collections/site_settings")["meta"]["singleton"] is True

        # Public (v8 role 2): published articles only, without the blacklisted fields.
        public = httpx.get(f"{target.url}/items/articles", params={"limit": -1}).json()["data"]
        assert sorted(a["id"] for a in public) == sorted(i for i, a in expected.items()
                                                         if v8_query(v8_url, f"SELECT status FROM articles WHERE id={i}")[0][0] == "published")
        assert public and not {"seo", "rating"} & set(public[0])
        first = httpx.get(f"{target.url}/items/articles/1", params={"fields": "translations.language.name"}).json()["data"]
        assert sorted(t["language"]["name"] for t in first["translations"]) == ["English", "German"]  # languages readable

        # Sequences were reset: a new tag gets the next id, not a duplicate key.
        created = client.post("/items/tags", {"name": "after-migration"})
        assert created["id"] == v8_counts["tags"] + 1
        client.request("DELETE", f"/items/tags/{created['id']}")

        # An Author (v8: published ones, and own drafts) with the temporary password.
        with DirectusClient.login(target.url, "alex.author@example.com", TEMP_PASSWORD) as alex:
            seen = alex.items("articles", fields="id,status,created_by")
            statuses = {i: s for i, s in v8_query(v8_url, "SELECT id, status FROM articles")}
            own = {i for (i,) in v8_query(v8_url, "SELECT id FROM articles WHERE created_by = 3")}
            assert sorted(a["id"] for a in seen) == sorted(i for i, s in statuses.items()
                                                           if s == "published" or (s == "draft" and i in own))
            assert "rating" not in seen[0]
            assert len(alex.get("/files", limit=-1)) == len(files)  # v8: Authors read every file
            with pytest.raises(DirectusApiError, match="HTTP 40"):  # v8: Authors create drafts only
                alex.post("/items/articles", {"title": "Mine", "status": "published"})
            draft = alex.post("/items/articles", {"title": "Mine", "status": "draft"})
            assert draft["created_by"] == alex.get("/users/me")["id"]
            alex.request("DELETE", f"/items/articles/{draft['id']}")  # v8: own drafts may be deleted

        # Public read directus_files in v8: the assets are public.
        for file in files:
            disk = v8_files[file["filename_download"]][0]
            assert httpx.get(f"{target.url}/assets/{file['id']}").content == (uploads / "originals" / disk).read_bytes()


def test_a_second_run_changes_nothing(migrated: dict[str, Any], target: TestProject, v8_url: str, uploads: Path,
                                      server_env: dict[str, str]) -> None:
    tables = COLLECTIONS + ["languages"] + SYSTEM_TABLES
    before, files_before = pg_digest(target, tables), storage_listing(target)
    result = run_cli(*migrate_args(v8_url, uploads, target.dir, "--temporary-password-env", "V8_TEMP_PASSWORD"),
                     env=server_env)
    assert result.returncode == 0, result.stderr
    assert "(52 rows read, 0 written), 0 files copied" in result.stdout
    assert pg_digest(target, tables) == before and storage_listing(target) == files_before
    report = json.loads((target.dir / "v8-migration" / "report.json").read_text())
    assert report["resumed"] is True and report["files"]["already_there"] == 4
    for name in ("report.json", "plan.json", "source.json", "id-map.json"):
        text = (target.dir / "v8-migration" / name).read_text()
        assert TEMP_PASSWORD not in text and "pw-" not in text and "$2y$" not in text  # no password, no hash


def pg_rows(project: TestProject, sql: str) -> list[tuple]:
    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{project.database.name}") as conn:
        return list(conn.execute(sql))


def test_a_killed_run_completes_when_run_again_from_s3(tmp_path: Path, directus: Path, databases: Databases,
                                                       v8_url: str, uploads: Path, s3, cli_env: dict[str, str]) -> None:
    project = make_project(tmp_path, directus, databases.create("pg"), with_extras=False)
    bucket = s3.create_bucket()
    for path in (uploads / "originals").iterdir():
        s3.client().put_object(Bucket=bucket, Key=f"v8/uploads/_/originals/{path.name}", Body=path.read_bytes())
    args = migrate_args(v8_url, f"s3://{bucket}/v8/uploads/_", project.dir, "--v8-storage-endpoint", s3.endpoint,
                        "--v8-storage-region", S3_REGION)
    env = {**cli_env, "AWS_ACCESS_KEY_ID": s3.key_id, "AWS_SECRET_ACCESS_KEY": s3.secret}
    for point, partial in (("v8-file-copied:2", "files"), ("v8-items-batch:3", "items")):
        killed = run_cli(*args, env={**env, "DIRECTUS_OPS_TEST_KILL_AT": point})
        assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
        free_project_slot(project.dir)
        if partial == "files":
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


def refused(args: list[str], project: TestProject, env: dict[str, str], *phrases: str) -> str:
    tables = COLLECTIONS + SYSTEM_TABLES
    before, files_before = pg_digest(project, tables), storage_listing(project)
    result = run_cli(*args, env=env)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: "), result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    assert "pw-" not in lines[0]  # no password
    assert pg_digest(project, tables) == before and storage_listing(project) == files_before
    assert not (project.dir / "v8-migration").exists()
    return lines[0]


def test_bad_input_is_refused_with_nothing_changed(clean_target: TestProject, v8_url: str, uploads: Path,
                                                   module_databases: Databases, directus: Path,
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

    before = pg_digest(clean_target, COLLECTIONS + SYSTEM_TABLES)
    dry = run_cli(*migrate_args(v8_url, uploads, clean_target.dir, "--dry-run", "--work-dir", str(tmp_path / "dry")),
                  env=server_env)
    assert dry.returncode == 0 and dry.stdout.startswith("dry run: checks passed; would migrate "), dry.stderr
    assert pg_digest(clean_target, COLLECTIONS + SYSTEM_TABLES) == before and storage_listing(clean_target) == []
    assert (tmp_path / "dry" / "id-map.json").exists()

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{clean_target.database.name}", autocommit=True) as pg:
        pg.execute('CREATE TABLE tags (id serial PRIMARY KEY, label text)')
        pg.execute(f'ALTER TABLE tags OWNER TO "{clean_target.database.user}"')
    refused(migrate_args(v8_url, uploads, clean_target.dir), clean_target, server_env, "already has 1 collections named like v8 ones (tags)",
            "--skip-collections")

    mariadb_dir = tmp_path / "mariadb-target"
    link_directus(mariadb_dir, directus)
    write_env(mariadb_dir / ".env", {**module_databases.create("mysql").env(), "KEY": "k-1234567890", "SECRET": "s-1234567890"})
    result = run_cli(*migrate_args(v8_url, uploads, mariadb_dir), env=server_env)
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "PostgreSQL targets only" in result.stderr
    assert not (mariadb_dir / "v8-migration").exists()

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

"""What a user checks after a v8 migration, shared by every target (engine, Directus version, mode): read straight
from the v8 MariaDB (not through the code under test) and, on the migrated project, through Directus's REST API
by natural keys (file names, emails, names)."""

from __future__ import annotations

import json
import tarfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pymysql
import pytest
from conftest import SHARED
from harness import Databases, TestProject

from directus_ops.database import DatabaseSettings
from directus_ops.directus_api import DirectusClient
from directus_ops.dumps import restore
from directus_ops.errors import DirectusApiError

FIXTURES = SHARED / "fixtures" / "v8"
COLLECTIONS = ["articles", "articles_tags", "articles_files", "article_translations", "authors", "tags", "site_settings"]
TEMP_PASSWORD = "Temporary-pass-42!"
SYSTEM_TABLES = ["directus_users", "directus_roles", "directus_files", "directus_folders", "directus_permissions",
                 "directus_collections", "directus_fields", "directus_relations"]


def load_v8_sample(databases: Databases) -> str:
    """The shared v8 sample in a new scratch MariaDB database; its URL."""
    database = databases.create("mysql")
    restore(DatabaseSettings.from_url(database.url), FIXTURES / "v8_sample.sql", "mysql-sql")
    return database.url


def extract_v8_uploads(root: Path) -> Path:
    """The sample's upload folder (the one holding originals/), extracted under ``root``."""
    with tarfile.open(FIXTURES / "v8_uploads.tar.gz") as archive:
        archive.extractall(root, filter="data")
    return root / "uploads" / "_"


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


def v8_counts(v8_url: str) -> dict[str, int]:
    return {c: v8_query(v8_url, f"SELECT count(*) FROM `{c}`")[0][0] for c in COLLECTIONS}


def check_report_counts(report: dict[str, Any], v8_url: str) -> None:
    """Every v8 row read and written, per collection; every created user got the temporary password."""
    made = {"languages": 3}  # from the translation field's options (v8 had no languages table)
    counts = v8_counts(v8_url)
    assert {c: s["read"] for c, s in report["items"]["collections"].items()} == counts | made
    assert {c: s["written"] for c, s in report["items"]["collections"].items()} == counts | made
    assert report["people"]["users_needing_password"] == []
    assert report["people"]["users_merged"] == ["admin@example.com"]  # the target's admin is the v8 admin


def major_of(client: DirectusClient) -> int:
    return int(str(client.server_info()["version"]).split(".")[0])


def check_through_api(target: TestProject, v8_url: str, uploads: Path, *, authorship_kept: bool = True,
                      comments_authored: bool = True) -> None:
    """Directus started on the migrated project serves what v8 held. ``authorship_kept``: created_by/created_on
    are v8's; ``comments_authored``: the comments' authors and dates too (database mode; through the API
    Directus makes the migrating user their author). A 12.x target runs
    without a license here (Core): it ignores permissions with custom rules (filters, field lists, validation),
    so there only v8's permissions without one grant access (the rest is written: test_v8_migrate)."""
    expected = v8_articles(v8_url)
    v8_counts_ = v8_counts(v8_url)
    with target.server() as client:
        major = major_of(client)
        for collection in COLLECTIONS:
            if collection == "site_settings":
                continue
            count = client.get(f"/items/{collection}", **{"aggregate[count]": "*"})[0]["count"]
            assert int(count) == v8_counts_[collection], collection  # soft-deleted rows included

        rows = client.items("articles", fields="id,title,created_on,cover.filename_download,created_by.email,"
                            "author.name,tags.id,tags.tags_id.name,gallery.id,gallery.directus_files_id.filename_download,"
                            "translations.id,translations.language.code,translations.headline,status")
        assert [r["id"] for r in rows] == sorted(expected)
        for row in rows:
            want = expected[row["id"]]
            assert row["title"] == want["title"]
            assert (row["cover"] or {}).get("filename_download") == want["cover"]
            if authorship_kept:
                assert (row["created_by"] or {}).get("email") == want["created_by"]  # authorship kept, not the migrator
            assert (row["author"] or {}).get("name") == want["author"]
            assert [t["tags_id"]["name"] for t in sorted(row["tags"], key=lambda t: t["id"])] == want["tags"]
            assert [g["directus_files_id"]["filename_download"] for g in sorted(row["gallery"], key=lambda g: g["id"])] \
                == want["gallery"]
            assert [(t["language"]["code"], t["headline"]) for t in sorted(row["translations"], key=lambda t: t["id"])] \
                == want["translations"]  # through v9's translations structure (a junction to languages)
            if authorship_kept:
                assert datetime.fromisoformat(row["created_on"].replace("Z", "+00:00")) == want["created_on"]  # v8's date
        assert sum(r["status"] == "deleted" for r in rows) == 1
        assert client.items("languages", sort="code") == [{"code": "de", "name": "German"}, {"code": "en", "name": "English"},
                                                          {"code": "fr", "name": "French"}]
        assert client.get("/fields/articles/translations")["meta"]["special"] == ["translations"]
        assert client.get("/collections/languages")["meta"]["display_template"] == "{{name}}"  # names in the app
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

        check_comments(client, v8_url, major, authored=comments_authored)

        # Sequences were reset: a new tag gets the next id, not a duplicate key.
        created = client.post("/items/tags", {"name": "after-migration"})
        assert created["id"] == v8_counts_["tags"] + 1
        client.request("DELETE", f"/items/tags/{created['id']}")

        if major >= 12:
            check_permissions_on_core(target, v8_url, files)
            return

        # Public (v8 role 2): published articles only, without the blacklisted fields.
        public = httpx.get(f"{target.url}/items/articles", params={"limit": -1}).json()["data"]
        assert sorted(a["id"] for a in public) == sorted(i for i, a in expected.items()
                                                         if v8_query(v8_url, f"SELECT status FROM articles WHERE id={i}")[0][0] == "published")
        assert public and not {"seo", "rating"} & set(public[0])
        first = httpx.get(f"{target.url}/items/articles/1", params={"fields": "translations.language.name"}).json()["data"]
        assert sorted(t["language"]["name"] for t in first["translations"]) == ["English", "German"]  # languages readable

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


def check_permissions_on_core(target: TestProject, v8_url: str, files: list[dict[str, Any]]) -> None:
    """Directus 12 without a license: v8's permissions without a custom rule grant what they did in v8 (Public
    reads authors, tags, the languages and every file; an Author reads every file), those with one nothing
    (Public's and the Author's articles: a status filter and field lists)."""
    assert httpx.get(f"{target.url}/items/articles").status_code == 403
    public = httpx.get(f"{target.url}/items/authors", params={"limit": -1}).json()["data"]
    assert len(public) == v8_counts(v8_url)["authors"]  # v8: Public reads every author (no status, no blacklist)
    assert len(httpx.get(f"{target.url}/items/languages").json()["data"]) == 3
    for file in files:
        assert httpx.get(f"{target.url}/assets/{file['id']}").status_code == 200  # v8: Public reads directus_files
    with DirectusClient.login(target.url, "alex.author@example.com", TEMP_PASSWORD) as alex:
        assert len(alex.get("/files", limit=-1)) == len(files)  # v8: Authors read every file
        with pytest.raises(DirectusApiError, match="HTTP 403"):  # their articles rule has a status filter
            alex.items("articles")


def v8_comments(v8_url: str) -> list[tuple[str, str, str, str | None, datetime]]:
    """v8's comments not deleted: (collection, item, text, author's email, when, in UTC)."""
    return [(c, str(i), t, e, on.replace(tzinfo=timezone.utc)) for c, i, t, e, on in v8_query(v8_url, """
        SELECT a.collection, a.item, a.comment, u.email, a.action_on FROM directus_activity a
        LEFT JOIN directus_users u ON u.id = a.action_by
        WHERE a.action = 'comment' AND a.comment_deleted_on IS NULL ORDER BY a.id""")]


def check_comments(client: DirectusClient, v8_url: str, major: int, *, authored: bool = True) -> None:
    """v8's comments where the target keeps comments: ``/comments`` from 11.x on (directus_comments), on 10.x
    the activity with action ``comment``; ``authored``: with v8's author and date (database mode)."""
    want = v8_comments(v8_url)
    assert want  # the sample has some
    if major >= 11:
        rows = client.get("/comments", limit=-1, sort="date_created,id",
                          fields="collection,item,comment,user_created.email,date_created")
        got = [(r["collection"], r["item"], r["comment"], (r["user_created"] or {}).get("email"),
                r["date_created"]) for r in rows]
    else:
        rows = client.get("/activity", limit=-1, sort="id", filter=json.dumps({"action": {"_eq": "comment"}}),
                          fields="collection,item,comment,user.email,timestamp")
        got = [(r["collection"], str(r["item"]), r["comment"], (r["user"] or {}).get("email"), r["timestamp"])
               for r in rows]
    assert sorted(g[:3] for g in got) == sorted(w[:3] for w in want)
    if authored:
        assert sorted((g[:4], datetime.fromisoformat(g[4].replace("Z", "+00:00"))) for g in got) == \
            sorted((w[:4], w[4]) for w in want)


def check_policies(client: DirectusClient, v8_url: str, id_map: dict[str, Any]) -> None:
    """Directus 11.x, through its API: each custom v8 role is a role with the id map's id, linked by the map's
    access row to the map's policy, which holds v8's settings; v8's Public permissions are on the target's one
    public policy; every other permission is on the Author's or Editor's policy."""
    v8_roles = {name: (ident, description, [i for i in (ip or "").split(",") if i] or None, bool(tfa))
                for ident, name, description, ip, tfa in v8_query(
                    v8_url, "SELECT id, name, description, ip_whitelist, enforce_2fa FROM directus_roles WHERE id > 2")}
    roles = {r["name"]: r for r in client.get("/roles", fields="id,name,description,policies.id,policies.user,"
                                              "policies.policy.id,policies.policy.name,policies.policy.description,"
                                              "policies.policy.ip_access,policies.policy.enforce_tfa,"
                                              "policies.policy.app_access,policies.policy.admin_access")}
    assert sorted(roles) == ["Administrator", "Author", "Editor"]
    assert [a["policy"]["admin_access"] for a in roles["Administrator"]["policies"]] == [True]  # the target's own
    for name, (ident, description, ip, tfa) in v8_roles.items():
        role = roles[name]
        assert (role["id"], role["description"]) == (id_map["directus_roles"][str(ident)], description)
        [access] = role["policies"]
        policy = access["policy"]
        assert (access["id"], access["user"], policy["id"]) == (id_map["directus_access"][str(ident)], None,
                                                                id_map["directus_policies"][str(ident)])
        assert (policy["name"], policy["description"], policy["ip_access"], policy["enforce_tfa"],
                policy["app_access"], policy["admin_access"]) == (name, description, ip, tfa, True, False)

    # One public access row (no role, no user), the bootstrap's: v8's Public permissions are on its policy.
    public = client.get("/access", fields="policy.id,policy.name",
                        filter=json.dumps({"role": {"_null": True}, "user": {"_null": True}}))
    assert len(public) == 1 and public[0]["policy"]["id"] == id_map["directus_policies"]["2"]
    # (11.x adds its built-in app permissions, without id or policy, to every read of /permissions: left out)
    permissions = [p for p in client.get("/permissions", limit=-1, fields="id,collection,action,policy.name")
                   if p.get("id") is not None]
    granted = {(p["collection"], p["action"]) for p in permissions
               if p["policy"]["name"] == public[0]["policy"]["name"]}
    v8_public = {(c, action) for c, *levels in v8_query(
        v8_url, "SELECT collection, `create`, `read`, `update`, `delete` FROM directus_permissions WHERE role = 2")
        for action, level in zip(("create", "read", "update", "delete"), levels) if level != "none"}
    if major_of(client) >= 12:  # Core: v8's Public articles rule (published only, fields hidden) is a custom rule
        v8_public -= {("articles", "read")}
    assert granted == v8_public | {("languages", "read")}  # + the languages of the readable translations
    assert {(p["policy"] or {}).get("name") for p in permissions} == {"Author", "Editor", public[0]["policy"]["name"]}


# A collection Directus itself creates with the field types of migrated columns: probe field -> ((type, schema),
# (table, column) of the migrated column that must match it).
PROBE_FIELDS: dict[str, Any] = {
    "id": (("integer", {"is_primary_key": True, "has_auto_increment": True}), ("articles", "id")),
    "file": (("uuid", {}), ("articles", "cover")),
    "flag": (("boolean", {"default_value": False}), ("articles", "featured")),
    "amount": (("decimal", {"numeric_precision": 3, "numeric_scale": 1}), ("articles", "rating")),
    "stamp": (("timestamp", {}), ("articles", "created_on")),
    "moment": (("dateTime", {}), ("articles", "published_on")),
    "label": (("string", {"max_length": 200, "is_nullable": False}), ("authors", "name")),
    "body": (("text", {}), ("articles", "summary")),
    "data": (("json", {}), ("articles", "seo")),
    "day": (("date", {}), ("authors", "birthday")),
    "article": (("integer", {}), ("site_settings", "featured_article")),
    "code": (("string", {"max_length": 5}), ("article_translations", "language")),
}


def create_probe(client: Any) -> None:
    """The probe collection ``v8_probe``, with its file and article relations, through Directus's own API."""
    # A meta each: 11.17+ gives a boolean or json field without one a cast flag it then refuses.
    client.post("/collections", {"collection": "v8_probe", "schema": {}, "meta": {}, "fields": [
        {"field": name, "type": kind, "schema": schema, "meta": {}}
        for name, ((kind, schema), _) in PROBE_FIELDS.items()]})
    client.post("/relations", {"collection": "v8_probe", "field": "file", "related_collection": "directus_files"})
    client.post("/relations", {"collection": "v8_probe", "field": "article", "related_collection": "articles"})

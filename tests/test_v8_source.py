"""Reading a Directus v8 project: the shared v8.8.1 sample (../shared/fixtures/v8) is loaded into scratch
MariaDB databases and read back; the inventory must match what the dump holds. A fresh v8 install is a v8
database with no user collections; a Directus 9+ database, a random database and a partial one are refused
with one line naming what was expected. The upload folder check passes on the sample's uploads and fails
clearly on a folder without originals/ or with a file missing."""

from __future__ import annotations

import tarfile
from datetime import datetime
from pathlib import Path

import pymysql
import pytest

from conftest import SHARED
from directus_ops.database import DatabaseSettings
from directus_ops.dumps import restore
from directus_ops.errors import DatabaseUnreachable
from directus_ops.errors import ConfigError
from directus_ops.storage import StorageLocation
from directus_ops.errors import NotAV8Database, V8StorageError
from directus_ops.v8.source import V8Source, check_storage, read_v8
from harness import S3_REGION, Databases, make_project

FIXTURES = SHARED / "fixtures" / "v8"
USER_COLLECTIONS = {"articles": 23, "articles_files": 3, "articles_tags": 3, "article_translations": 5, "authors": 14,
                    "site_settings": 7, "tags": 4}  # directus_fields rows per collection (= columns + aliases)
ROW_COUNTS = {"articles": 9, "articles_tags": 14, "articles_files": 7, "article_translations": 8, "authors": 4,
              "tags": 6, "site_settings": 1}  # the fixture README


def load(databases: Databases, dump: str) -> str:
    database = databases.create("mysql")
    restore(DatabaseSettings.from_url(database.url), FIXTURES / dump, "mysql-sql")
    return database.url


@pytest.fixture(scope="module")
def sample_url(module_databases: Databases) -> str:
    return load(module_databases, "v8_sample.sql")


@pytest.fixture(scope="module")
def sample(sample_url: str) -> V8Source:
    return read_v8(sample_url)


def server_counts(url: str, tables: list[str]) -> dict[str, int]:
    """Row counts straight from the server (not through the reader)."""
    settings = DatabaseSettings.from_url(url)
    conn = pymysql.connect(host="127.0.0.1", user="root", database=settings.database)
    with conn, conn.cursor() as cur:
        counts = {}
        for table in tables:
            cur.execute(f"SELECT count(*) FROM `{table}`")
            counts[table] = cur.fetchone()[0]
        return counts


def test_collections_fields_and_rows(sample: V8Source, sample_url: str) -> None:
    assert {c.name: len(c.fields) for c in sample.collections} == USER_COLLECTIONS
    assert {c.name: c.row_count for c in sample.collections} == ROW_COUNTS
    assert server_counts(sample_url, list(ROW_COUNTS)) == ROW_COUNTS
    assert all(c.primary_key == "id" for c in sample.collections)
    assert sum(1 for c in (*sample.collections, *sample.system_collections) for f in c.fields if f.id) == 229
    assert sample.singletons == ["site_settings"]
    assert sample.warnings == []  # every column of the sample has its directus_fields row, every option is JSON

    articles = sample.collection("articles")
    assert (articles.managed, articles.hidden, articles.single, articles.icon, articles.note) == \
        (True, False, False, "description", "Magazine articles")
    assert sample.collection("articles_tags").hidden and sample.collection("articles_tags").note == "Junction Collection"
    assert [f.field for f in articles.fields[:5]] == ["id", "status", "sort", "created_by", "created_on"]  # by sort

    translations = [(c.name, f.field) for c in sample.collections for f in c.fields_of_type("translation")]
    assert translations == [("articles", "translations")]
    field = articles.field("translations")
    assert field.is_alias and field.options["languages"] == {"en": "English", "de": "German", "fr": "French"}
    assert field.options["languageField"] == "language"
    assert sample.collection("article_translations").field("language").type == "lang"

    status = articles.field("status")
    assert (status.type, status.required, status.column.default, status.column.nullable) == ("status", True, "draft", False)
    assert articles.status_field == status and articles.soft_delete_statuses == ["deleted"]
    assert articles.sort_field.field == "sort"
    rating = articles.field("rating").column
    assert (rating.data_type, rating.numeric_precision, rating.numeric_scale) == ("decimal", 3, 1)
    keywords = articles.field("keywords")
    assert (keywords.type, keywords.interface, keywords.column.column_type) == ("array", "tags", "varchar(255)")
    assert articles.field("seo").type == "json" and articles.field("seo").column.comment == "Free-form SEO metadata"
    featured = articles.field("featured").column
    assert (featured.column_type, featured.default) == ("tinyint(1) unsigned", "0")
    ident = articles.field("id")
    assert ident.interface == "primary-key" and ident.column.auto_increment and ident.column.primary_key
    assert articles.field("slug").column.unique
    assert articles.field("category").options == {"choices": {"news": "News", "travel": "Travel",
                                                              "culture": "Culture", "tech": "Technology"}}
    assert articles.field("reading_time").note == "Minutes" and articles.field("rating").width == "half"
    for alias in ("gallery", "tags", "translations"):
        assert articles.field(alias).column is None and articles.field(alias).type in ("o2m", "translation")
    assert (articles.field("tags").interface, articles.field("gallery").interface) == ("many-to-many", "files")

    authors = sample.collection("authors")
    owner, modified_by, avatar = authors.field("owner"), authors.field("modified_by"), authors.field("avatar")
    assert (owner.type, owner.readonly, owner.hidden_detail, owner.hidden_browse) == ("owner", True, True, True)
    assert (owner.references, modified_by.references, avatar.references) == \
        ("directus_users", "directus_users", "directus_files")
    assert authors.field("email").validation == r"/^[^@\s]+@[^@\s]+\.[^@\s]+$/"
    assert authors.field("articles").is_alias and authors.field("birthday").column.data_type == "date"


def test_relations_and_references(sample: V8Source) -> None:
    assert len(sample.relations) + len(sample.skipped_relations) == 18
    assert sorted((s.relation.id, s.reason) for s in sample.skipped_relations) == [
        (2, "table directus_collections_presets does not exist"),
        (3, "table directus_collections_presets does not exist"),
        (8, "table directus_groups does not exist")]
    junctions = {j.collection: j for j in sample.junctions}
    assert set(junctions) == {"articles_tags", "articles_files"}
    tags = junctions["articles_tags"]
    assert (tags.left.collection, tags.left.junction_field, tags.left.alias_field) == ("articles", "articles_id", "tags")
    assert (tags.right.collection, tags.right.junction_field, tags.right.alias_field) == ("tags", "tags_id", None)
    gallery = junctions["articles_files"]
    assert (gallery.left.alias_field, gallery.right.collection, gallery.right.junction_field) == \
        ("gallery", "directus_files", "directus_files_id")
    m2o = {(r.collection_many, r.field_many): (r.collection_one, r.field_one) for r in sample.relations if r.kind == "m2o"}
    assert m2o[("articles", "author")] == ("authors", "articles")
    assert m2o[("article_translations", "article")] == ("articles", "translations")
    assert m2o[("site_settings", "featured_article")] == ("articles", None)
    assert sum(r.kind == "m2m" for r in sample.relations) == 4

    references = {(r.collection, r.field): (r.target, r.via) for r in sample.references()}
    assert references[("articles", "cover")] == ("directus_files", "type")
    assert references[("articles", "created_by")] == ("directus_users", "type")
    assert references[("authors", "account")] == ("directus_users", "type")
    assert references[("site_settings", "logo")] == ("directus_files", "type")
    assert references[("articles", "author")] == ("authors", "relation")
    assert references[("articles_files", "directus_files_id")] == ("directus_files", "relation")
    assert len(references) == 15


def test_roles_users_folders_files_permissions(sample: V8Source) -> None:
    assert [(r.id, r.name, r.is_admin, r.is_public) for r in sample.roles] == [
        (1, "Administrator", True, False), (2, "Public", False, True), (3, "Editor", False, False),
        (4, "Author", False, False)]
    editor = sample.roles[2]
    assert editor.external_id == "a8cd0664-3c4e-43ed-a504-6c146e491235" and editor.ip_whitelist == []

    assert [(u.id, u.email, u.status, u.role) for u in sample.users] == [
        (1, "admin@example.com", "active", 1), (2, "erin.editor@example.com", "active", 3),
        (3, "alex.author@example.com", "active", 4), (4, "sam.writer@example.com", "suspended", 4)]
    alex = sample.users[2]
    assert (alex.avatar, alex.locale, alex.timezone, alex.theme, alex.title, alex.company) == \
        (3, "en-US", "America/New_York", "auto", "Staff Writer", "Acme Media")
    assert all(u.has_password for u in sample.users) and sample.users[3].locale == "en-GB"
    assert "$2y$10$" not in sample.model_dump_json()  # bcrypt hashes never enter the model

    assert [(f.id, f.name, f.parent_folder) for f in sample.folders] == [
        (1, "Media Library", None), (2, "Covers", 1), (3, "Documents", None)]  # parents first (the dump has 2 first)
    assert sample.folder_path(2) == "Media Library/Covers"

    assert len(sample.files) == 4
    cover = sample.files[0]
    assert (cover.filename_disk, cover.filename_download, cover.type, cover.filesize, cover.width, cover.height) == \
        ("ed47ace9-f027-4aff-9ef5-71235fc5a66f.jpg", "mountain-cover.jpg", "image/jpeg", 8325, 640, 360)
    assert (cover.tags, cover.folder, cover.uploaded_by, cover.storage, cover.private_hash) == \
        (["travel", "nature"], 2, 1, "local", "nmiswkme4lc4sc84")
    assert cover.uploaded_on == datetime(2026, 11, 26, 6, 25, 30) and cover.checksum == "293f52ef957e3dfa37993749b9bd5a1b"
    guide = sample.files[3]
    assert (guide.type, guide.tags, guide.folder, guide.width, guide.metadata) == ("text/plain", [], 3, None, None)

    assert len(sample.permissions) == 55
    by_key = {(p.role, p.collection, p.status): p for p in sample.permissions}
    draft = by_key[(4, "articles", "draft")]
    assert (draft.create, draft.read, draft.update, draft.delete, draft.comment) == ("full", "mine", "mine", "mine", "create")
    assert draft.write_field_blacklist == ["featured", "rating"] and draft.read_field_blacklist == []
    published = by_key[(4, "articles", "published")]
    assert (published.read, published.read_field_blacklist, published.explain) == ("full", ["rating"], "always")
    public = by_key[(2, "articles", "published")]
    assert public.read_field_blacklist == ["seo", "rating"] and public.create == "none"
    assert by_key[(3, "site_settings", None)].update == "full"
    assert sum(p.role == 2 for p in sample.permissions) == 8
    assert sample.settings["project_name"] == "Acme Editorial (v8 sample)"
    # Comments: directus_activity rows with action comment (a deleted one has comment_deleted_on: none here).
    assert [(c.id, c.action_by, c.collection, c.item, c.comment, c.action_on) for c in sample.comments] == [
        (216, 2, "articles", "1", "Great photos, ship it!", datetime(2026, 11, 26, 6, 25, 40)),
        (217, 1, "articles", "4", "Needs a stronger intro.", datetime(2026, 11, 26, 6, 25, 40))]


def test_fresh_install_is_a_v8_database_without_user_collections(module_databases: Databases) -> None:
    fresh = read_v8(load(module_databases, "v8_fresh_install.sql"))
    assert fresh.collections == [] and fresh.files == [] and fresh.folders == [] and fresh.permissions == []
    assert [r.name for r in fresh.roles] == ["Administrator", "Public"]
    assert [u.email for u in fresh.users] == ["admin@example.com"]
    assert {s.relation.id for s in fresh.skipped_relations} == {2, 3, 8}


def _database(databases: Databases, *statements: str) -> str:
    database = databases.create("mysql")
    conn = pymysql.connect(host="127.0.0.1", user="root", database=database.name, autocommit=True)
    with conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
    return database.url


V9_TABLES = (
    "CREATE TABLE directus_collections (collection varchar(64) PRIMARY KEY, icon varchar(30), note text, "
    "hidden tinyint(1), singleton tinyint(1), translations json, archive_field varchar(64), sort_field varchar(64))",
    "CREATE TABLE directus_fields (id int unsigned AUTO_INCREMENT PRIMARY KEY, collection varchar(64), "
    "field varchar(64), special varchar(64), interface varchar(64), options json, display varchar(64), "
    "readonly tinyint(1), hidden tinyint(1), sort int, width varchar(30), translations json, note text, "
    "required tinyint(1), `group` varchar(64), validation json)",
    "CREATE TABLE directus_relations (id int unsigned AUTO_INCREMENT PRIMARY KEY, many_collection varchar(64), "
    "many_field varchar(64), one_collection varchar(64), one_field varchar(64), junction_field varchar(64))",
    "CREATE TABLE directus_users (id char(36) PRIMARY KEY, email varchar(128), status varchar(16), role char(36))",
)


def test_refuses_a_directus_9_database(module_databases: Databases) -> None:
    url = _database(module_databases, *V9_TABLES)
    with pytest.raises(NotAV8Database) as raised:
        read_v8(url)
    message = str(raised.value)
    assert "is a Directus 9+ database" in message and "special" in message and "pass the v8 project's database" in message
    assert "\n" not in message and "pw-" not in message  # one line, no password


def test_refuses_a_bootstrapped_directus_database(directus: Path, databases: Databases, tmp_path: Path) -> None:
    database = databases.create("mysql")
    make_project(tmp_path, directus, database, with_extras=False)
    with pytest.raises(NotAV8Database, match=r"is a Directus 9\+ database \(directus_fields has the v9 column special"):
        read_v8(database.url)


def test_refuses_a_random_database(module_databases: Databases) -> None:
    url = _database(module_databases, "CREATE TABLE customers (id int PRIMARY KEY, name varchar(50))")
    with pytest.raises(NotAV8Database) as raised:
        read_v8(url)
    message = str(raised.value)
    assert "has no directus_fields table: not a Directus v8 database" in message
    assert "directus_collections, directus_fields, directus_relations" in message

    with pytest.raises(NotAV8Database, match="has no directus_fields table"):
        read_v8(_database(module_databases))  # empty


def test_refuses_a_partial_v8_database(module_databases: Databases) -> None:
    url = _database(module_databases, "CREATE TABLE directus_fields (id int PRIMARY KEY, collection varchar(64), "
                                  "field varchar(64), type varchar(64), interface varchar(64), options text, "
                                  "locked tinyint, hidden_detail tinyint, hidden_browse tinyint)")
    with pytest.raises(NotAV8Database) as raised:
        read_v8(url)
    assert "is not a complete Directus v8 database: it lacks directus_collections, directus_relations" in str(raised.value)


def test_refuses_other_engines_and_unreachable_servers() -> None:
    with pytest.raises(ConfigError, match="MySQL/MariaDB"):
        read_v8("postgresql://u:p@127.0.0.1:5432/v8")
    with pytest.raises(DatabaseUnreachable, match="cannot connect"):
        read_v8("mysql://root:secret-pw-1@127.0.0.1:1/v8")


# -- the upload folder -------------------------------------------------------------------------------------------
@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    with tarfile.open(FIXTURES / "v8_uploads.tar.gz") as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path / "uploads"


def test_storage_check_passes_on_the_sample_uploads(sample: V8Source, uploads: Path) -> None:
    check = check_storage(sample, str(uploads / "_"))
    assert (check.found, check.missing, check.size_mismatch, check.extra) == (4, [], [], 0)
    check.require_complete()


def test_storage_check_names_the_folder_missing_originals(sample: V8Source, uploads: Path, tmp_path: Path) -> None:
    with pytest.raises(V8StorageError) as raised:
        check_storage(sample, str(uploads))
    message = str(raised.value)
    assert "has no originals/ folder" in message and str(uploads / "_") in message and "pass the folder holding originals/" in message
    with pytest.raises(V8StorageError, match="does not exist"):
        check_storage(sample, str(tmp_path / "nowhere"))


def test_storage_check_lists_missing_and_changed_files(sample: V8Source, uploads: Path) -> None:
    originals = uploads / "_" / "originals"
    (originals / "f3578d89-b5d3-49e3-bfe2-9549a86b26ef.txt").unlink()
    (originals / "60443da4-6e2a-47d4-926e-a7c0211fd410.png").write_bytes(b"not the portrait")
    (originals / "stray.bin").write_bytes(b"x")
    check = check_storage(sample, str(uploads / "_"))
    assert check.found == 3 and check.missing == ["f3578d89-b5d3-49e3-bfe2-9549a86b26ef.txt"]
    assert check.size_mismatch == ["60443da4-6e2a-47d4-926e-a7c0211fd410.png"] and check.extra == 1
    with pytest.raises(V8StorageError, match=r"1 of the v8 files are missing from .*f3578d89"):
        check.require_complete()


def test_storage_check_on_s3(sample: V8Source, uploads: Path, s3) -> None:
    bucket = s3.create_bucket()
    client = s3.client()
    for path in (uploads / "_" / "originals").iterdir():
        client.put_object(Bucket=bucket, Key=f"v8/uploads/_/originals/{path.name}", Body=path.read_bytes())
    like = StorageLocation(name="v8", driver="s3", root="", bucket=bucket, region=S3_REGION, endpoint=s3.endpoint,
                           key_id=s3.key_id, secret=s3.secret, force_path_style=True)
    check = check_storage(sample, f"s3://{bucket}/v8/uploads/_", like=like)
    assert (check.found, check.missing, check.size_mismatch) == (4, [], [])
    with pytest.raises(V8StorageError, match="has no originals/ folder"):
        check_storage(sample, f"s3://{bucket}/v8/uploads", like=like)

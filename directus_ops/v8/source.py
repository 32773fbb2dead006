"""Read a Directus v8 project: its MySQL/MariaDB database (into typed models) and its upload folder.

``read_v8(url)`` opens the database through ``database.connect`` (the one opener), refuses anything that is not
a v8 database with one line naming what was expected, and reads everything a migration needs in one
consistent snapshot (a read-only REPEATABLE READ transaction, so a live v8 project can be read):

- user collections (every base table not named ``directus_*``) with their ``directus_collections`` row, every
  ``directus_fields`` row merged with the column the catalog describes (type, length, nullability, default,
  key, auto increment: v8 kept those only in ``INFORMATION_SCHEMA``), primary key and row count;
- relations (m2o rows, M2M junction pairs; rows naming tables that do not exist are skipped, with the reason);
- roles, users, folders, files, permissions and settings.

Secrets stay out: a user's bcrypt hash becomes ``has_password``; static tokens and 2FA secrets are
``SecretStr`` (hidden in reprs and logs) and registered for redaction.

``check_storage(source, root)`` checks the v8 upload folder (the one holding ``originals/``, local or S3):
every ``directus_files.filename_disk`` is looked for under ``originals/``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field as PydanticField, SecretStr
from sqlalchemy.engine import Connection

from ..database import DatabaseSettings, connect, list_tables
from ..errors import ConfigError, DatabaseError, NotAV8Database, V8StorageError
from ..redact import redact, register_secret
from ..storage import StorageLocation

log = logging.getLogger("directus_ops.v8.source")


# v8 field types without a column, and the types that reference a system table without a relation row.
ALIAS_TYPES = frozenset({"alias", "o2m", "group", "translation"})
TYPE_REFERENCES = {"file": "directus_files", "user": "directus_users", "owner": "directus_users",
                   "user_updated": "directus_users"}
ADMIN_ROLE_ID, PUBLIC_ROLE_ID = 1, 2

# What a v8 database must have (checked before anything is read). Other columns are read when present:
# v8 added some during 8.x (enforce_2fa, checksum, 2fa_secret, comment/explain…).
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "directus_collections": ("collection", "managed", "hidden", "single"),
    "directus_fields": ("id", "collection", "field", "type", "interface", "options", "locked", "hidden_detail",
                        "hidden_browse"),
    "directus_relations": ("id", "collection_many", "field_many", "collection_one", "field_one", "junction_field"),
    "directus_roles": ("id", "name"),
    "directus_users": ("id", "status", "role", "email"),
    "directus_files": ("id", "filename_disk", "filename_download"),
    "directus_folders": ("id", "name", "parent_folder"),
    "directus_permissions": ("id", "collection", "role", "status", "create", "read", "update", "delete"),
    "directus_settings": ("key", "value"),
}
_V9_MARKERS = {"directus_fields": "special", "directus_collections": "singleton", "directus_relations": "many_collection"}

PermissionLevel = Literal["none", "mine", "role", "full"]


# -- models ------------------------------------------------------------------------------------------------------
class _Model(BaseModel):
    model_config = ConfigDict(frozen=True)


class Column(_Model):
    """A table column as the database catalog describes it."""

    name: str
    data_type: str  # int, varchar, text, datetime, decimal, tinyint…
    column_type: str  # the full SQL type, e.g. "int(10) unsigned", "decimal(3,1)", "varchar(255)"
    nullable: bool
    default: str | None = None  # the default value (unquoted), or an expression when default_is_expression
    default_is_expression: bool = False  # e.g. current_timestamp()
    max_length: int | None = None  # characters, for string types
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    unsigned: bool = False
    auto_increment: bool = False
    primary_key: bool = False
    unique: bool = False
    comment: str | None = None


class Field(_Model):
    """One field of a collection: its ``directus_fields`` row (if any) merged with its column (if any)."""

    collection: str
    field: str
    id: int | None = None  # directus_fields.id; None for a column v8 never managed (no directus_fields row)
    type: str | None = None  # the v8 type (string, m2o, owner, translation…); None without a directus_fields row
    interface: str | None = None
    options: Any = None  # parsed JSON (dict/list), or the raw text when it is not JSON (see V8Source.warnings)
    locked: bool = False
    required: bool = False
    readonly: bool = False
    hidden_detail: bool = False
    hidden_browse: bool = False
    sort: int | None = None
    width: str | None = None  # half, half-left, half-right, full, fill (and the old half-space)
    group: int | None = None  # directus_fields.id of the group field holding this one
    group_field: str | None = None  # that group field's name (v9's group is a name)
    note: str | None = None
    translation: Any = None  # parsed JSON: [{locale, translation}]
    validation: str | None = None
    column: Column | None = None  # None for alias fields (o2m, translation, group, alias)

    @property
    def is_alias(self) -> bool:
        return self.column is None

    @property
    def references(self) -> str | None:
        """The system table a file/user/owner/user_updated field points to (v8 relates those by type)."""
        return TYPE_REFERENCES.get(self.type or "")


class Collection(_Model):
    name: str
    managed: bool = True  # False: no directus_collections row, or managed = 0 (v8 showed it unmanaged)
    hidden: bool = False
    single: bool = False  # a singleton
    icon: str | None = None
    note: str | None = None
    translation: Any = None  # parsed JSON: [{locale, translation}]
    fields: list[Field] = PydanticField(default_factory=list)  # ordered by sort, then directus_fields id
    primary_key: str | None = None
    row_count: int = 0

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.field == name:
                return field
        raise KeyError(f"{self.name}.{name}")

    def fields_of_type(self, *types: str) -> list[Field]:
        return [f for f in self.fields if f.type in types]

    @property
    def status_field(self) -> Field | None:
        return next(iter(self.fields_of_type("status")), None)

    @property
    def sort_field(self) -> Field | None:
        return next(iter(self.fields_of_type("sort")), None)

    @property
    def soft_delete_statuses(self) -> list[str]:
        """The status values v8's API hid unless asked with status=* (``soft_delete: true`` in status_mapping)."""
        status = self.status_field
        mapping = status.options.get("status_mapping") if status and isinstance(status.options, dict) else None
        if not isinstance(mapping, dict):
            return []
        return [str(value) for value, spec in mapping.items() if isinstance(spec, dict) and spec.get("soft_delete")]


class Relation(_Model):
    """A ``directus_relations`` row. ``kind``: m2o (one row; field_one is the optional o2m alias on
    collection_one) or m2m (one half of a junction: see V8Source.junctions)."""

    id: int
    collection_many: str
    field_many: str
    collection_one: str | None
    field_one: str | None = None
    junction_field: str | None = None
    kind: Literal["m2o", "m2m"] = "m2o"


class SkippedRelation(_Model):
    relation: Relation
    reason: str


class JunctionSide(_Model):
    collection: str  # the related collection (may be directus_files)
    junction_field: str  # the column in the junction pointing at it
    alias_field: str | None = None  # the o2m/M2M alias on that collection (v8's field_one), if any
    relation_id: int


class Junction(_Model):
    """An M2M: two relation rows whose collection_many is the junction; ``left`` is the side with an alias."""

    collection: str
    left: JunctionSide
    right: JunctionSide


class Reference(_Model):
    """A column holding another row's key: through a relation row, or by its v8 type (file/user/owner/…)."""

    collection: str
    field: str
    target: str
    via: Literal["relation", "type"]


class Role(_Model):
    id: int
    name: str
    description: str | None = None
    ip_whitelist: list[str] = PydanticField(default_factory=list)  # CSV in v8
    external_id: str | None = None
    module_listing: Any = None
    collection_listing: Any = None
    enforce_2fa: bool = False

    @property
    def is_admin(self) -> bool:
        return self.id == ADMIN_ROLE_ID

    @property
    def is_public(self) -> bool:
        return self.id == PUBLIC_ROLE_ID


class User(_Model):
    id: int
    status: str  # draft, active, invited, suspended, deleted
    role: int | None = None
    first_name: str | None = None
    last_name: str | None = None
    email: str
    has_password: bool = False  # the bcrypt hash itself is never read into the model (v9 cannot use it)
    token: SecretStr | None = None  # static API token
    timezone: str | None = None
    locale: str | None = None
    locale_options: Any = None
    avatar: int | None = None  # directus_files id
    company: str | None = None
    title: str | None = None
    email_notifications: bool = True
    last_access_on: datetime | None = None
    last_page: str | None = None
    external_id: str | None = None
    theme: str | None = None
    tfa_secret: SecretStr | None = None  # v8's 2fa_secret


class Folder(_Model):
    id: int
    name: str
    parent_folder: int | None = None


class File(_Model):
    id: int
    storage: str = "local"
    private_hash: str | None = None
    filename_disk: str
    filename_download: str
    title: str | None = None
    type: str | None = None  # mime type
    uploaded_by: int | None = None
    uploaded_on: datetime | None = None
    charset: str | None = None
    filesize: int = 0
    width: int | None = None
    height: int | None = None
    duration: int | None = None
    embed: str | None = None
    folder: int | None = None
    description: str | None = None
    location: str | None = None
    tags: list[str] = PydanticField(default_factory=list)  # CSV in v8
    checksum: str | None = None  # md5
    metadata: Any = None  # parsed JSON


class Permission(_Model):
    id: int
    collection: str
    role: int
    status: str | None = None  # None: every status (or a collection without a status field)
    create: PermissionLevel = "none"
    read: PermissionLevel = "none"
    update: PermissionLevel = "none"
    delete: PermissionLevel = "none"
    comment: str | None = None  # none, read, create, update, full
    explain: str | None = None  # none, on_create, on_update, always
    read_field_blacklist: list[str] = PydanticField(default_factory=list)
    write_field_blacklist: list[str] = PydanticField(default_factory=list)
    status_blacklist: list[str] = PydanticField(default_factory=list)


class Comment(_Model):
    """A comment on an item: a ``directus_activity`` row with action ``comment`` (not deleted: v8 marks a
    deleted one with ``comment_deleted_on``)."""

    id: int  # the activity row's
    action_by: int | None = None  # the v8 user (0: none)
    action_on: datetime | None = None  # UTC (v8's system tables)
    edited_on: datetime | None = None
    collection: str
    item: str
    comment: str


class V8Source(_Model):
    """Everything read from a v8 database."""

    database: str  # describe() of the database: no secrets
    server_version: str
    collections: list[Collection] = PydanticField(default_factory=list)  # user collections, by name
    system_collections: list[Collection] = PydanticField(default_factory=list)  # directus_* tables, by name
    relations: list[Relation] = PydanticField(default_factory=list)
    skipped_relations: list[SkippedRelation] = PydanticField(default_factory=list)
    junctions: list[Junction] = PydanticField(default_factory=list)
    roles: list[Role] = PydanticField(default_factory=list)
    users: list[User] = PydanticField(default_factory=list)
    folders: list[Folder] = PydanticField(default_factory=list)  # parents before children
    files: list[File] = PydanticField(default_factory=list)
    permissions: list[Permission] = PydanticField(default_factory=list)
    comments: list[Comment] = PydanticField(default_factory=list)
    settings: dict[str, str | None] = PydanticField(default_factory=dict)
    warnings: list[str] = PydanticField(default_factory=list)  # oddities the migration should report

    def collection(self, name: str) -> Collection:
        for collection in (*self.collections, *self.system_collections):
            if collection.name == name:
                return collection
        raise KeyError(name)

    @property
    def singletons(self) -> list[str]:
        return [c.name for c in self.collections if c.single]

    def folder_path(self, folder_id: int) -> str:
        """``Media Library/Covers``: the folder's names from the root down."""
        by_id = {f.id: f for f in self.folders}
        names, seen, current = [], set(), by_id.get(folder_id)
        while current is not None and current.id not in seen:
            seen.add(current.id)
            names.append(current.name)
            current = by_id.get(current.parent_folder) if current.parent_folder is not None else None
        return "/".join(reversed(names))

    def references(self) -> list[Reference]:
        """Every user-collection column that holds the key of another row (user, file, role, folder or item)."""
        found: dict[tuple[str, str], Reference] = {}
        user = {c.name for c in self.collections}
        for relation in self.relations:
            if relation.collection_many in user and relation.collection_one:
                key = (relation.collection_many, relation.field_many)
                found[key] = Reference(collection=key[0], field=key[1], target=relation.collection_one, via="relation")
        for collection in self.collections:
            for field in collection.fields:
                if field.references and field.column is not None and (collection.name, field.field) not in found:
                    found[(collection.name, field.field)] = Reference(collection=collection.name, field=field.field,
                                                                      target=field.references, via="type")
        return sorted(found.values(), key=lambda r: (r.collection, r.field))


# -- opening and detection -----------------------------------------------------------------------------------
def v8_settings(url: str) -> DatabaseSettings:
    settings = DatabaseSettings.from_url(url)
    if settings.engine != "mysql":
        raise ConfigError(f"{settings.describe()}: Directus v8 databases are MySQL/MariaDB; pass a mysql:// URL "
                          "of the v8 project's database")
    return settings


def detect_v8(conn: Connection, where: str) -> dict[str, set[str]]:
    """Refuse a database that is not v8-shaped; return the columns of each v8 system table."""
    expected = ", ".join(REQUIRED_COLUMNS)
    tables = set(list_tables(conn))
    columns = _columns_by_table(conn, [t for t in tables if t.startswith("directus_")])
    if "directus_fields" not in tables:
        raise NotAV8Database(f"{where} has no directus_fields table: not a Directus v8 database (expected the v8 "
                             f"system tables {expected}); pass the v8 project's database")
    for table, marker in _V9_MARKERS.items():
        if marker in columns.get(table, set()):
            raise NotAV8Database(f"{where} is a Directus 9+ database ({table} has the v9 column {marker}, not v8's "
                                 "shape); pass the v8 project's database, not the new one")
    missing = [f"{table}.{column}" if table in tables else table
               for table, required in REQUIRED_COLUMNS.items()
               for column in (required if table in tables else required[:1])
               if table not in tables or column not in columns.get(table, set())]
    if missing:
        shown = ", ".join(dict.fromkeys(missing))
        raise NotAV8Database(f"{where} is not a complete Directus v8 database: it lacks {shown} (a v8 database has "
                             f"{expected}); pass the v8 project's database")
    return columns


def read_v8(source: str | DatabaseSettings) -> V8Source:
    """Detect and read a v8 database (a ``mysql://`` URL or settings)."""
    settings = v8_settings(source) if isinstance(source, str) else source
    if settings.engine != "mysql":
        raise ConfigError(f"{settings.describe()}: Directus v8 databases are MySQL/MariaDB")
    where = settings.describe()
    with connect(settings) as conn:
        try:
            # One read-only snapshot: row counts agree with the metadata even while v8 is still running.
            conn.execute(sa.text("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
            conn.execute(sa.text("START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT"))
            found = _Reader(conn, where).read()
            conn.execute(sa.text("COMMIT"))
            return found
        except sa.exc.DBAPIError as exc:
            reason = redact(str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc))
            raise DatabaseError(f"cannot read {where}: {reason}; check the user's SELECT rights") from None


class _Reader:
    def __init__(self, conn: Connection, where: str) -> None:
        self.conn = conn
        self.where = where
        self.warnings: list[str] = []
        self.mariadb = False

    def rows(self, table: str, wanted: Iterable[str], order: str = "id") -> list[dict[str, Any]]:
        """SELECT the wanted columns that exist (older 8.x releases lack some); missing ones read as None."""
        present = self.columns.get(table, set())
        selected = [c for c in wanted if c in present]
        sql = f"SELECT {', '.join(_q(c) for c in selected)} FROM {_q(table)}"
        if order in present:
            sql += f" ORDER BY {_q(order)}"
        result = [dict(row._mapping) for row in self.conn.execute(sa.text(sql))]
        for row in result:
            for column in wanted:
                row.setdefault(column, None)
        return result

    def read(self) -> V8Source:
        self.columns = detect_v8(self.conn, self.where)
        version = str(self.conn.execute(sa.text("SELECT VERSION()")).scalar())
        self.mariadb = "mariadb" in version.lower()
        tables = list_tables(self.conn)
        catalog = self.catalog()
        counts = {t: int(self.conn.execute(sa.text(f"SELECT count(*) FROM {_q(t)}")).scalar() or 0) for t in tables}
        field_rows = self.rows("directus_fields", ("id", "collection", "field", "type", "interface", "options",
                                                   "locked", "validation", "required", "readonly", "hidden_detail",
                                                   "hidden_browse", "sort", "width", "group", "note", "translation"))
        collection_rows = {r["collection"]: r for r in self.rows(
            "directus_collections", ("collection", "managed", "hidden", "single", "icon", "note", "translation"),
            order="collection")}
        for name in collection_rows:
            if name not in catalog:
                self.warn(f"directus_collections names {name}, which has no table: skipped")
        user = [t for t in tables if not t.startswith("directus_")]
        system = [t for t in tables if t.startswith("directus_")]
        collections = [self.collection(t, collection_rows.get(t), field_rows, catalog[t], counts[t]) for t in user]
        system_collections = [self.collection(t, collection_rows.get(t), field_rows, catalog[t], counts[t],
                                              report=False) for t in system]
        known = {(r["collection"], r["field"]) for r in field_rows}
        for collection, field in sorted(known):
            if collection not in catalog:
                self.warn(f"directus_fields has {collection}.{field}, but there is no table {collection}: skipped")
        relations, skipped, junctions = self.relations(catalog)
        return V8Source(
            database=self.where, server_version=version, collections=collections,
            system_collections=system_collections, relations=relations, skipped_relations=skipped,
            junctions=junctions, roles=self.roles(), users=self.users(), folders=self.folders(),
            files=self.files(), permissions=self.permissions(), comments=self.comments(), settings=self.settings(),
            warnings=self.warnings)

    def warn(self, text: str) -> None:
        self.warnings.append(text)
        log.info("v8 source: %s", text)

    # schema ---------------------------------------------------------------------------------------------------
    def catalog(self) -> dict[str, dict[str, Column]]:
        rows = self.conn.execute(sa.text(
            "SELECT c.table_name, c.column_name, c.data_type, c.column_type, c.is_nullable, c.column_default, "
            "c.character_maximum_length, c.numeric_precision, c.numeric_scale, c.extra, c.column_key, "
            "c.column_comment FROM information_schema.columns c JOIN information_schema.tables t "
            "ON t.table_schema = c.table_schema AND t.table_name = c.table_name "
            "WHERE c.table_schema = DATABASE() AND t.table_type = 'BASE TABLE' ORDER BY c.table_name, c.ordinal_position"))
        catalog: dict[str, dict[str, Column]] = {}
        for (table, name, data_type, column_type, nullable, default, max_length, precision, scale, extra, key,
             comment) in rows:
            value, expression = self.default(default, str(extra or ""))
            catalog.setdefault(table, {})[name] = Column(
                name=name, data_type=str(data_type).lower(), column_type=str(column_type), nullable=nullable == "YES",
                default=value, default_is_expression=expression,
                max_length=int(max_length) if max_length is not None else None,
                numeric_precision=int(precision) if precision is not None else None,
                numeric_scale=int(scale) if scale is not None else None,
                unsigned="unsigned" in str(column_type).lower(), auto_increment="auto_increment" in str(extra).lower(),
                primary_key=key == "PRI", unique=key == "UNI", comment=comment or None)
        return catalog

    def default(self, raw: Any, extra: str) -> tuple[str | None, bool]:
        """COLUMN_DEFAULT as a value: MariaDB 10.2.7+ writes SQL literals ('x', NULL, 0, current_timestamp()),
        MySQL the bare value (and DEFAULT_GENERATED in EXTRA for expressions)."""
        if raw is None:
            return None, False
        text = str(raw)
        if self.mariadb:
            if text == "NULL":
                return None, False
            if len(text) >= 2 and text[0] == "'" and text[-1] == "'":
                return text[1:-1].replace("''", "'").replace("\\\\", "\\"), False
            try:
                Decimal(text)
                return text, False
            except Exception:
                return text, True
        return text, "DEFAULT_GENERATED" in extra.upper()

    def collection(self, table: str, meta: dict[str, Any] | None, field_rows: list[dict[str, Any]],
                   columns: dict[str, Column], count: int, report: bool = True) -> Collection:
        rows = [r for r in field_rows if r["collection"] == table]
        names_by_id = {r["id"]: r["field"] for r in rows}
        fields: list[Field] = []
        for row in rows:
            column = columns.get(row["field"])
            if column is None and row["type"] not in ALIAS_TYPES and report:
                self.warn(f"{table}.{row['field']} (type {row['type']}) has a directus_fields row but no column")
            fields.append(Field(
                collection=table, field=row["field"], id=row["id"], type=row["type"], interface=row["interface"],
                options=self.json(row["options"], f"{table}.{row['field']} options"),
                locked=bool(row["locked"]), required=bool(row["required"]), readonly=bool(row["readonly"]),
                hidden_detail=bool(row["hidden_detail"]), hidden_browse=bool(row["hidden_browse"]),
                sort=row["sort"], width=row["width"], group=row["group"],
                group_field=names_by_id.get(row["group"]) if row["group"] is not None else None,
                note=row["note"], translation=self.json(row["translation"], f"{table}.{row['field']} translation"),
                validation=row["validation"], column=column))
        managed_names = {f.field for f in fields}
        for name, column in columns.items():
            if name not in managed_names:
                fields.append(Field(collection=table, field=name, column=column))
                if report:
                    self.warn(f"{table}.{name} is a column without a directus_fields row (v8 did not manage it)")
        fields.sort(key=lambda f: (f.sort is None, f.sort or 0, f.id is None, f.id or 0))
        primary = [c.name for c in columns.values() if c.primary_key]
        if len(primary) > 1 and report:
            self.warn(f"{table} has a composite primary key ({', '.join(primary)}): v8 and v9 need a single one")
        elif not primary and report:
            self.warn(f"{table} has no primary key: v9 needs one")
        return Collection(
            name=table, managed=bool(meta and meta["managed"]), hidden=bool(meta and meta["hidden"]),
            single=bool(meta and meta["single"]), icon=meta["icon"] if meta else None,
            note=meta["note"] if meta else None,
            translation=self.json(meta["translation"], f"{table} translation") if meta else None,
            fields=fields, primary_key=primary[0] if len(primary) == 1 else None, row_count=count)

    def relations(self, catalog: dict[str, dict[str, Column]]) -> tuple[list[Relation], list[SkippedRelation], list[Junction]]:
        rows = [Relation(**r) for r in self.rows("directus_relations", (
            "id", "collection_many", "field_many", "collection_one", "field_one", "junction_field"))]
        kept, skipped = [], []
        for relation in rows:
            missing = [t for t in (relation.collection_many, relation.collection_one) if t and t not in catalog]
            if missing:
                skipped.append(SkippedRelation(relation=relation, reason=f"table {missing[0]} does not exist"))
            elif relation.field_many not in catalog[relation.collection_many]:
                skipped.append(SkippedRelation(relation=relation, reason=(
                    f"column {relation.collection_many}.{relation.field_many} does not exist")))
            else:
                kept.append(relation)
        junctions, paired = [], set()
        by_junction: dict[str, list[Relation]] = {}
        for relation in kept:
            if relation.junction_field:
                by_junction.setdefault(relation.collection_many, []).append(relation)
        for junction, halves in by_junction.items():
            for a in halves:
                for b in halves:
                    if a.id < b.id and a.junction_field == b.field_many and b.junction_field == a.field_many:
                        left, right = (a, b) if a.field_one or not b.field_one else (b, a)
                        junctions.append(Junction(collection=junction,
                                                  left=_side(left), right=_side(right)))
                        paired |= {a.id, b.id}
        final = []
        for relation in kept:
            if relation.id in paired:
                final.append(relation.model_copy(update={"kind": "m2m"}))
            else:
                if relation.junction_field:
                    self.warn(f"relation {relation.id} ({relation.collection_many}.{relation.field_many}) names "
                              f"junction field {relation.junction_field} but has no matching other half: read as m2o")
                final.append(relation)
        return final, skipped, junctions

    # system data ----------------------------------------------------------------------------------------------
    def roles(self) -> list[Role]:
        return [Role(id=r["id"], name=r["name"], description=r["description"],
                     ip_whitelist=_csv_list(r["ip_whitelist"]), external_id=r["external_id"],
                     module_listing=self.json(r["module_listing"], f"role {r['id']} module_listing"),
                     collection_listing=self.json(r["collection_listing"], f"role {r['id']} collection_listing"),
                     enforce_2fa=bool(r["enforce_2fa"]))
                for r in self.rows("directus_roles", ("id", "name", "description", "ip_whitelist", "external_id",
                                                      "module_listing", "collection_listing", "enforce_2fa"))]

    def users(self) -> list[User]:
        users = []
        for r in self.rows("directus_users", ("id", "status", "role", "first_name", "last_name", "email", "password",
                                              "token", "timezone", "locale", "locale_options", "avatar", "company",
                                              "title", "email_notifications", "last_access_on", "last_page",
                                              "external_id", "theme", "2fa_secret")):
            for secret in (r["token"], r["2fa_secret"]):
                register_secret(secret)
            users.append(User(
                id=r["id"], status=r["status"], role=r["role"], first_name=r["first_name"], last_name=r["last_name"],
                email=r["email"], has_password=bool(r["password"]), token=r["token"] or None,
                timezone=r["timezone"], locale=r["locale"],
                locale_options=self.json(r["locale_options"], f"user {r['id']} locale_options"), avatar=r["avatar"],
                company=r["company"], title=r["title"],
                email_notifications=bool(r["email_notifications"]) if r["email_notifications"] is not None else True,
                last_access_on=r["last_access_on"], last_page=r["last_page"], external_id=r["external_id"],
                theme=r["theme"], tfa_secret=r["2fa_secret"] or None))
        return users

    def folders(self) -> list[Folder]:
        folders = {r["id"]: Folder(**r) for r in self.rows("directus_folders", ("id", "name", "parent_folder"))}
        ordered: list[Folder] = []
        placed: set[int] = set()
        for folder in folders.values():
            if folder.parent_folder is not None and folder.parent_folder not in folders:
                self.warn(f"folder {folder.id} ({folder.name}) has parent {folder.parent_folder}, which does not exist")
        # Parents first (v8 keeps no order: the sample lists a child before its parent).
        while len(placed) < len(folders):
            progress = False
            for folder in folders.values():
                parent = folder.parent_folder
                if folder.id not in placed and (parent is None or parent in placed or parent not in folders):
                    ordered.append(folder)
                    placed.add(folder.id)
                    progress = True
            if not progress:
                cycle = sorted(set(folders) - placed)
                self.warn(f"folders {cycle} form a cycle of parents: read in id order")
                ordered += [folders[i] for i in cycle]
                break
        return ordered

    def files(self) -> list[File]:
        files = []
        for r in self.rows("directus_files", ("id", "storage", "private_hash", "filename_disk", "filename_download",
                                              "title", "type", "uploaded_by", "uploaded_on", "charset", "filesize",
                                              "width", "height", "duration", "embed", "folder", "description",
                                              "location", "tags", "checksum", "metadata")):
            r["tags"] = _csv_list(r["tags"])
            r["metadata"] = self.json(r["metadata"], f"file {r['id']} metadata")
            r["storage"] = r["storage"] or "local"
            r["filesize"] = int(r["filesize"] or 0)
            files.append(File(**r))
        return files

    def permissions(self) -> list[Permission]:
        permissions = []
        for r in self.rows("directus_permissions", ("id", "collection", "role", "status", "create", "read", "update",
                                                    "delete", "comment", "explain", "read_field_blacklist",
                                                    "write_field_blacklist", "status_blacklist")):
            for action in ("create", "read", "update", "delete"):
                level = (r[action] or "none").lower()
                if level not in ("none", "mine", "role", "full"):
                    self.warn(f"permission {r['id']} has {action}={level!r}, not a v8 level: read as none")
                    level = "none"
                r[action] = level
            for name in ("read_field_blacklist", "write_field_blacklist", "status_blacklist"):
                r[name] = _csv_list(r[name])
            permissions.append(Permission(**r))
        return permissions

    def comments(self) -> list[Comment]:
        present = self.columns.get("directus_activity", set())
        if not {"id", "action", "collection", "item", "comment"} <= present:
            return []
        wanted = [c for c in ("id", "action_by", "action_on", "edited_on", "collection", "item", "comment")
                  if c in present]
        deleted = " AND comment_deleted_on IS NULL" if "comment_deleted_on" in present else ""
        comments = []
        for row in self.conn.execute(sa.text(f"SELECT {', '.join(_q(c) for c in wanted)} FROM directus_activity "
                                             f"WHERE action = 'comment' AND comment IS NOT NULL{deleted} ORDER BY id")):
            values = dict(row._mapping)
            for name in ("action_on", "edited_on"):  # a zero date comes as text: no date
                if not isinstance(values.get(name), datetime):
                    values[name] = None
            comments.append(Comment(**{**values, "item": str(values["item"])}))
        return comments

    def settings(self) -> dict[str, str | None]:
        return {r["key"]: r["value"] for r in self.rows("directus_settings", ("key", "value"), order="key")}

    def json(self, text: Any, what: str) -> Any:
        if text is None or text == "":
            return None
        try:
            return json.loads(text)
        except (TypeError, ValueError):
            self.warn(f"{what} is not JSON: kept as text")
            return text


def _side(relation: Relation) -> JunctionSide:
    assert relation.collection_one is not None
    return JunctionSide(collection=relation.collection_one, junction_field=relation.field_many,
                        alias_field=relation.field_one, relation_id=relation.id)


def _columns_by_table(conn: Connection, tables: list[str]) -> dict[str, set[str]]:
    columns: dict[str, set[str]] = {}
    for table, column in conn.execute(sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = DATABASE()")):
        if table in tables:
            columns.setdefault(table, set()).add(column)
    return columns


def _q(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _csv_list(value: Any) -> list[str]:
    if value is None:
        return []
    return [part.strip() for part in str(value).split(",") if part.strip()]


# -- storage -----------------------------------------------------------------------------------------------------
class StorageCheck(_Model):
    root: str  # describe() of the upload folder
    found: int = 0
    missing: list[str] = PydanticField(default_factory=list)  # filename_disk values not under originals/
    size_mismatch: list[str] = PydanticField(default_factory=list)  # present, but not directus_files.filesize
    extra: int = 0  # objects under originals/ no directus_files row names

    def require_complete(self) -> None:
        if self.missing:
            shown = ", ".join(self.missing[:5]) + (f" and {len(self.missing) - 5} more" if len(self.missing) > 5 else "")
            raise V8StorageError(f"{len(self.missing)} of the v8 files are missing from {self.root}/originals: {shown}; "
                                 "copy them there (or point at the right upload folder)")


def check_storage(source: V8Source, root: str, like: StorageLocation | None = None) -> StorageCheck:
    """Check the v8 upload folder (``…/uploads/<project>``, the one holding ``originals/``): local or S3."""
    location = StorageLocation.from_url("v8", root, like=like)
    fs = location.filesystem()
    where = location.describe()
    try:
        present = fs.isdir(location.path_of("originals"))
        root_present = present or fs.exists(location.base)
    except Exception as exc:
        raise V8StorageError(f"cannot read {where}: {redact(str(exc)) or type(exc).__name__}; check the path and "
                             "credentials") from None
    if not present:
        hint = ""
        if root_present and location.driver == "local":
            try:
                below = sorted(e for e in fs.ls(location.base, detail=False) if fs.isdir(f"{e}/originals"))
            except Exception:
                below = []
            if below:
                hint = f" (found one in {below[0]})"
        what = "has no originals/ folder" if root_present else "does not exist"
        raise V8StorageError(f"the v8 upload folder {where} {what}{hint}; pass the folder holding originals/, "
                             "e.g. public/uploads/_ of the v8 project")
    originals = StorageLocation.from_url("v8", f"{root.rstrip('/')}/originals", like=like)
    objects = {o.key: o.size for o in originals.list_objects(fs)}
    missing, changed, found = [], [], 0
    for file in source.files:
        size = objects.get(file.filename_disk)
        if size is None:
            missing.append(file.filename_disk)
        else:
            found += 1
            if file.filesize and size != file.filesize:
                changed.append(file.filename_disk)
    extra = len(set(objects) - {f.filename_disk for f in source.files})
    return StorageCheck(root=where, found=found, missing=missing, size_mismatch=changed, extra=extra)


__all__ = ["Collection", "Column", "Comment", "Field", "File", "Folder", "Junction", "JunctionSide",
           "Permission", "Reference", "Relation", "Role", "SkippedRelation", "StorageCheck", "User", "V8Source",
           "check_storage", "detect_v8", "read_v8", "v8_settings"]

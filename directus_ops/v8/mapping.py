"""The v8 → v9+ mapping, as plain functions over the reader's models (``source.py``); no I/O here.

- ``IdMap``: v8 integer ids of roles, users, folders and files → v9 UUIDs. The UUIDs are uuid5 of a namespace
  derived from the v8 project (``project_namespace``) and ``table:id``, so a re-run assigns the same ones: that
  is what makes the import idempotent and resumable. Two exceptions are recorded in the map: the v8
  Administrator role becomes the target's existing admin role, a v8 user whose email the target already has
  becomes that user (v9 emails are unique), and the v8 Public role is ``None`` (v10's public role is no role).
- ``map_roles`` / ``map_users`` / ``map_folders`` / ``map_files``: rows for the v9 system tables.
- ``plan_schema``: every user collection as v9 would create it (``CollectionPlan``: columns with v9 types,
  lengths, nullability, defaults and keys; ``directus_collections`` / ``directus_fields`` / ``directus_relations``
  rows; foreign keys) and how each column's values are converted (``ColumnPlan.convert``).
- ``convert_row``: one v8 row → its v9 row (CSV arrays, JSON text, booleans, exact decimals, datetimes in UTC,
  references rewritten; a reference to a row that no longer exists becomes NULL and is reported).
- ``map_permissions``: v8 per-role, per-status levels and field blacklists → v9 ``directus_permissions`` rows.
- Directus 11.x (``assign_policies``, ``map_roles_v11``, ``permissions_on_policies``): admin/app/IP/2FA settings
  and permissions belong to policies; each custom v8 role becomes a role, a policy of the same name and the
  ``directus_access`` row linking them; Public is the target's existing public policy.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError
from .source import Collection, Field, Permission, V8Source

# Fixed root of every project namespace (uuid5 of this and the project's identity).
ROOT_NAMESPACE = uuid.UUID("6f1b0d2e-8a43-5c7e-9d21-3b5a7c9e0f41")
SYSTEM_TARGETS = ("directus_users", "directus_files", "directus_roles", "directus_folders")

USER_STATUS = {"active": "active", "draft": "draft", "invited": "invited", "suspended": "suspended",
               "deleted": "archived"}
WIDTHS = {"half": "half", "half-left": "half", "half-right": "half", "full": "full", "fill": "fill",
          "half-space": "half"}

# v8 interface → v9 interface (the community tool's table, corrected for v9.26+ names).
INTERFACES = {
    "text-input": "input", "numeric": "input", "slug": "input", "sort": "input", "rating": "input",
    "language": "select-dropdown", "color-palette": "select-color", "button-group": "select-radio",
    "textarea": "input-multiline", "wysiwyg": "input-rich-text-html", "markdown": "input-rich-text-md",
    "code": "input-code", "json": "input-code", "hashed": "input-hash", "password": "input-hash",
    "dropdown": "select-dropdown", "status": "select-dropdown", "multiselect": "select-multiple-dropdown",
    "checkboxes": "select-multiple-checkbox", "radio-buttons": "select-radio", "color": "select-color",
    "icon": "select-icon", "switch": "boolean", "toggle": "boolean", "toggle-icon": "boolean",
    "calendar": "datetime", "date": "datetime", "time": "datetime", "datetime": "datetime",
    "datetime-created": "datetime", "datetime-updated": "datetime", "divider": "presentation-divider",
    "many-to-one": "select-dropdown-m2o", "user": "select-dropdown-m2o", "owner": "select-dropdown-m2o",
    "user-updated": "select-dropdown-m2o", "one-to-many": "list-o2m", "many-to-many": "list-m2m",
    "checkboxes-relational": "list-m2m", "files": "files", "file": "file", "translation": "list-o2m",
    "repeater": "list", "tags": "tags", "primary-key": "input", "uuid": "input", "group": "group-detail",
}
CHOICE_INTERFACES = {"dropdown", "multiselect", "checkboxes", "radio-buttons", "button-group", "language"}
# v8 options with a v9 equivalent of the same meaning (kept as they are); everything else is reported.
KEPT_OPTIONS = {"placeholder", "trim", "template", "iconLeft", "iconRight", "font", "allowOther", "language"}
DISPLAYS = {"file": "image", "owner": "user", "user_updated": "user", "user": "user", "datetime_created": "datetime",
            "datetime_updated": "datetime", "datetime": "datetime", "date": "datetime", "boolean": "boolean",
            "m2o": "related-values", "status": "labels"}


# -- ids ---------------------------------------------------------------------------------------------------------
def project_namespace(source: V8Source) -> uuid.UUID:
    """The project's namespace: from what identifies the v8 project wherever its database is loaded
    (the project name and the first user's email), not from the database's name."""
    first = min(source.users, key=lambda u: u.id).email.lower() if source.users else ""
    name = source.settings.get("project_name") or ""
    return uuid.uuid5(ROOT_NAMESPACE, f"v8-project:{name}:{first}")


@dataclass
class IdMap:
    namespace: uuid.UUID
    ids: dict[str, dict[int, str | None]] = field(default_factory=dict)  # table -> v8 id -> uuid (None: public)

    def assign(self, table: str, v8_id: int, value: str | None = None) -> str | None:
        mapped = self.ids.setdefault(table, {})
        if v8_id not in mapped:
            mapped[v8_id] = value or str(uuid.uuid5(self.namespace, f"{table}:{v8_id}"))
        return mapped[v8_id]

    def get(self, table: str, v8_id: Any) -> str | None:
        """The UUID of a v8 row that exists; None for one that does not (a dangling reference)."""
        if v8_id is None:
            return None
        return self.ids.get(table, {}).get(int(v8_id))

    def has(self, table: str, v8_id: Any) -> bool:
        return v8_id is not None and int(v8_id) in self.ids.get(table, {})

    def to_json(self) -> dict[str, Any]:
        return {"namespace": str(self.namespace),
                **{table: {str(k): v for k, v in sorted(ids.items())} for table, ids in sorted(self.ids.items())}}


def build_id_map(source: V8Source, admin_role: str, existing_users: dict[str, str],
                 namespace: uuid.UUID | None = None) -> IdMap:
    """Every v8 role/user/folder/file id → its v9 UUID. ``existing_users``: target email (lowercase) → id."""
    ids = IdMap(namespace or project_namespace(source))
    for role in source.roles:
        if role.is_admin:
            ids.assign("directus_roles", role.id, admin_role)
        elif role.is_public:
            ids.ids.setdefault("directus_roles", {})[role.id] = None
        else:
            ids.assign("directus_roles", role.id)
    for user in source.users:
        ids.assign("directus_users", user.id, existing_users.get(user.email.lower()))
    for folder in source.folders:
        ids.assign("directus_folders", folder.id)
    for file in source.files:
        ids.assign("directus_files", file.id)
    return ids


# -- system rows -----------------------------------------------------------------------------------------------
def map_roles(source: V8Source, ids: IdMap) -> list[dict[str, Any]]:
    """Custom roles only: Administrator is the target's admin role, Public its public (null) role."""
    return [{"id": ids.get("directus_roles", r.id), "name": r.name, "description": r.description,
             "ip_access": ",".join(r.ip_whitelist) or None, "enforce_tfa": r.enforce_2fa, "admin_access": False,
             "app_access": True, "icon": "supervised_user_circle"}
            for r in source.roles if not r.is_admin and not r.is_public]


# -- Directus 11.x: policies and access -----------------------------------------------------------------------
def assign_policies(ids: IdMap, source: V8Source, public_policy: str) -> None:
    """Policy and access ids of every custom v8 role (uuid5, like the rest), Public → the target's public policy.
    The Administrator needs neither: the target's admin role has its admin policy already."""
    for role in source.roles:
        if role.is_public:
            ids.ids.setdefault("directus_policies", {})[role.id] = public_policy
        elif not role.is_admin:
            ids.assign("directus_policies", role.id)
            ids.assign("directus_access", role.id)


def map_roles_v11(source: V8Source, ids: IdMap) -> tuple[list[dict[str, Any]], list[dict[str, Any]],
                                                          list[dict[str, Any]]]:
    """Rows for directus_roles, directus_policies and directus_access (in that order: access references both)
    of the custom roles. The policy carries what 10.x kept on the role: app access, IP list, 2FA flag."""
    roles, policies, access = [], [], []
    for r in source.roles:
        if r.is_admin or r.is_public:
            continue
        role, policy = ids.get("directus_roles", r.id), ids.get("directus_policies", r.id)
        roles.append({"id": role, "name": r.name, "description": r.description, "icon": "supervised_user_circle"})
        policies.append({"id": policy, "name": r.name, "description": r.description, "icon": "badge",
                         "ip_access": ",".join(r.ip_whitelist) or None, "enforce_tfa": r.enforce_2fa,
                         "admin_access": False, "app_access": True})
        access.append({"id": ids.get("directus_access", r.id), "role": role, "user": None, "policy": policy,
                       "sort": 1})
    return roles, policies, access


def permissions_on_policies(rows: list[dict[str, Any]], source: V8Source, ids: IdMap) -> list[dict[str, Any]]:
    """``map_permissions``'s rows (by role, ``None`` = public) attached to the roles' policies instead."""
    policy_of = {ids.get("directus_roles", r.id): ids.get("directus_policies", r.id)
                 for r in source.roles if not r.is_admin}
    return [{**{k: v for k, v in row.items() if k != "role"}, "policy": policy_of[row["role"]]} for row in rows]


@dataclass
class UserRows:
    rows: list[dict[str, Any]]
    merged: list[str]  # v8 emails the target already had: mapped to those users, not written
    needing_password: list[str]  # emails of created users without a usable password


def map_users(source: V8Source, ids: IdMap, existing: dict[str, str], password_hash: str | None = None) -> UserRows:
    """``existing``: the target's users, lowercase email → id. One of them with the UUID this migration gives
    the v8 user was written by an earlier run (skipped); another is a different user, kept (``merged``)."""
    rows, merged, needing = [], [], []
    for user in source.users:
        if user.email.lower() in existing:
            if existing[user.email.lower()] != str(uuid.uuid5(ids.namespace, f"directus_users:{user.id}")):
                merged.append(user.email)
            continue
        role = ids.get("directus_roles", user.role) if user.role is not None else None
        rows.append({
            "id": ids.get("directus_users", user.id), "first_name": user.first_name, "last_name": user.last_name,
            "email": user.email, "password": password_hash, "title": user.title,
            "description": f"Company: {user.company}" if user.company else None,
            "avatar": ids.get("directus_files", user.avatar), "language": user.locale,
            "appearance": user.theme if user.theme in ("auto", "light", "dark") else None,
            "theme": user.theme, "tfa_secret": user.tfa_secret.get_secret_value() if user.tfa_secret else None,
            "status": USER_STATUS.get(user.status, "draft"), "role": role,
            "token": user.token.get_secret_value() if user.token else None,
            "last_access": _utc(user.last_access_on, timezone.utc), "last_page": user.last_page,
            "external_identifier": user.external_id, "email_notifications": user.email_notifications,
            "provider": "default"})
        if password_hash is None:
            needing.append(user.email)
    return UserRows(rows, merged, needing)


def map_folders(source: V8Source, ids: IdMap) -> list[dict[str, Any]]:
    """Parents before children (the reader's order), so the tree can be inserted row by row."""
    return [{"id": ids.get("directus_folders", f.id), "name": f.name,
             "parent": ids.get("directus_folders", f.parent_folder)} for f in source.folders]


def filename_disk(file_id: str, v8_name: str) -> str:
    """v9's ``<uuid><ext>`` for a file (the extension of the v8 name, lower-cased)."""
    return file_id + posixpath.splitext(v8_name)[1].lower()


def map_files(source: V8Source, ids: IdMap, storage: str) -> list[dict[str, Any]]:
    """Every v8 file row, with its metadata; ``uploaded_on`` is UTC already (a system table)."""
    rows = []
    for f in source.files:
        file_id = ids.get("directus_files", f.id)
        assert file_id is not None
        uploaded_on = _utc(f.uploaded_on, timezone.utc)
        rows.append({
            "id": file_id, "storage": storage, "filename_disk": filename_disk(file_id, f.filename_disk),
            "filename_download": f.filename_download, "title": f.title, "type": f.type,
            "folder": ids.get("directus_folders", f.folder), "uploaded_by": ids.get("directus_users", f.uploaded_by),
            "uploaded_on": uploaded_on, "created_on": uploaded_on, "modified_on": uploaded_on,
            "charset": f.charset or None, "filesize": f.filesize, "width": f.width, "height": f.height,
            "duration": f.duration, "embed": f.embed or None, "description": f.description, "location": f.location,
            "tags": json.dumps(f.tags) if f.tags else None, "metadata": f.metadata})
    return rows


# -- schema ------------------------------------------------------------------------------------------------------
@dataclass
class ColumnPlan:
    name: str
    type: str  # v9 type: integer, bigInteger, string, text, boolean, decimal, float, dateTime, date, time, timestamp, json, uuid, binary
    length: int | None = None
    precision: int | None = None
    scale: int | None = None
    nullable: bool = True
    default: Any = None
    primary: bool = False
    auto_increment: bool = False
    unique: bool = False
    comment: str | None = None
    convert: str = "plain"  # plain, bool, json, csv_json, datetime, timestamp, decimal, ref
    references: str | None = None  # the referenced collection (ref columns)


@dataclass
class ForeignKey:
    column: str
    table: str
    target_column: str


@dataclass
class CollectionPlan:
    name: str
    primary_key: str | None
    columns: list[ColumnPlan]
    collection_row: dict[str, Any]
    field_rows: list[dict[str, Any]]
    foreign_keys: list[ForeignKey]
    row_count: int
    rows: list[dict[str, Any]] | None = None  # rows made here (the languages collection), not read from v8

    def column(self, name: str) -> ColumnPlan:
        return next(c for c in self.columns if c.name == name)


@dataclass
class SchemaPlan:
    collections: list[CollectionPlan]  # in insert order: referenced collections first where possible
    relation_rows: list[dict[str, Any]]
    unmapped: list[str]  # interfaces/options/values with no v9 form (for the report)
    notes: list[str]

    def collection(self, name: str) -> CollectionPlan:
        return next(c for c in self.collections if c.name == name)


def plan_schema(source: V8Source, skip: frozenset[str] | set[str] = frozenset()) -> SchemaPlan:
    collections = [c for c in source.collections if c.name not in skip]
    names = {c.name for c in collections}
    unmapped: list[str] = []
    notes: list[str] = []
    references = {(r.collection, r.field): r.target for r in source.references()
                  if r.collection in names and (r.target in names or r.target in SYSTEM_TARGETS)}
    junction_of = {j.collection: j for j in source.junctions}
    aliases: dict[tuple[str, str], tuple[str, str]] = {}  # (collection, alias) -> (special, interface)
    dropped: set[tuple[str, str]] = set()  # alias fields whose related collection is left out (--skip-collections)
    for junction in source.junctions:
        for side, other in ((junction.left, junction.right), (junction.right, junction.left)):
            if side.alias_field and side.collection in names:
                if junction.collection not in names:
                    dropped.add((side.collection, side.alias_field))
                elif other.collection in names or other.collection in SYSTEM_TARGETS:
                    files = other.collection == "directus_files"
                    aliases[(side.collection, side.alias_field)] = ("files", "files") if files else ("m2m", "list-m2m")
                else:
                    aliases[(side.collection, side.alias_field)] = ("o2m", "list-o2m")
    for relation in source.relations:
        if relation.kind == "m2o" and relation.field_one and relation.collection_many not in names:
            dropped.add((relation.collection_one or "", relation.field_one))
    # v8 translation fields become v9's translations: the translations collection is the junction between the
    # parent and a `languages` collection built from the field's options (v8 had no languages table).
    translations = _translation_links(source, names)
    language_plan = _languages_plan(translations, source) if translations else None
    for link in translations:
        references[(link.collection, link.language_field)] = LANGUAGES
        aliases[(link.parent, link.alias)] = ("translations", "translations")
    pk_columns: dict[str, ColumnPlan] = {LANGUAGES: language_plan.columns[0]} if language_plan else {}
    for collection in collections:
        if collection.primary_key:
            pk_columns[collection.name] = _column(collection, collection.field(collection.primary_key), None, unmapped)

    plans = []
    for collection in collections:
        columns, rows, fks = [], [], []
        for sort, f in enumerate(collection.fields, start=1):
            if (collection.name, f.field) in dropped:
                notes.append(f"{collection.name}.{f.field}: left out with the collection it lists (--skip-collections)")
                continue
            target = references.get((collection.name, f.field))
            if f.column is not None:
                column = _column(collection, f, target, unmapped, pk_columns.get(target or ""))
                columns.append(column)
                if target:
                    fks.append(ForeignKey(f.field, target, "id" if target in SYSTEM_TARGETS else
                                          "code" if target == LANGUAGES else source.collection(target).primary_key or "id"))
            row = _field_row(collection, f, sort, target, aliases, junction_of, unmapped, notes)
            if target == LANGUAGES:
                row.update(interface="select-dropdown-m2o", options={"template": "{{name}}"}, display="related-values")
            elif f.type == "translation" and (collection.name, f.field) in aliases:
                row.update(options={"languageField": "name"}, display="translations",
                           display_options={"template": next((f"{{{{{t.template_field}}}}}" for t in translations
                                                              if t.alias == f.field and t.template_field), None),
                                            "languageField": "name"})
            rows.append(row)
        plans.append(CollectionPlan(collection.name, collection.primary_key, columns,
                                    _collection_row(collection, junction_of), rows, fks, collection.row_count))
    if language_plan:
        plans.append(language_plan)
        for plan in plans:
            if any(link.collection == plan.name for link in translations):
                plan.collection_row.update(hidden=True, icon=plan.collection_row["icon"] or "import_export")
    relation_rows = _relation_rows(source, names)
    for link in translations:
        for row in relation_rows:
            if (row["many_collection"], row["many_field"]) == (link.collection, link.parent_field):
                row["junction_field"] = link.language_field
        relation_rows.append(_relation(link.collection, link.language_field, LANGUAGES, None, link.parent_field))
    return SchemaPlan(_insert_order(plans), relation_rows, unmapped, notes)


LANGUAGES = "languages"


@dataclass
class _TranslationLink:
    parent: str  # the collection with the v8 translation field
    alias: str  # that field
    collection: str  # the translations collection (v9: the junction to languages)
    parent_field: str  # its m2o to the parent
    language_field: str  # its language code column
    languages: dict[str, str]  # code -> name, from the field's options
    template_field: str | None = None


def _translation_links(source: V8Source, names: set[str]) -> list[_TranslationLink]:
    """The v8 translation fields that fit v9's structure: the translations collection is migrated, has the
    language column the options name, and the v8 project has no `languages` collection of its own."""
    if LANGUAGES in {c.name for c in source.collections}:
        return []
    links = []
    for relation in source.relations:
        if relation.kind != "m2o" or not relation.collection_one or not relation.field_one:
            continue
        if relation.collection_many not in names or relation.collection_one not in names:
            continue
        alias = next((f for f in source.collection(relation.collection_one).fields
                      if f.field == relation.field_one and f.type == "translation"), None)
        if alias is None or not isinstance(alias.options, dict) or not isinstance(alias.options.get("languages"), dict):
            continue
        translations = source.collection(relation.collection_many)
        language = alias.options.get("languageField") or next(
            (f.field for f in translations.fields if f.type == "lang"), "language")
        if not any(f.field == language and f.column is not None for f in translations.fields):
            continue
        template = alias.options.get("template")
        template_field = template.strip("{} ") if isinstance(template, str) and template.count("{{") == 1 else None
        links.append(_TranslationLink(relation.collection_one, alias.field, relation.collection_many,
                                      relation.field_many, language, dict(alias.options["languages"]), template_field))
    return links


def _languages_plan(links: list[_TranslationLink], source: V8Source) -> CollectionPlan:
    codes: dict[str, str] = {}
    for link in links:
        codes.update({str(k): str(v) for k, v in link.languages.items()})
    length = max([source.collection(l.collection).field(l.language_field).column.max_length or 255  # type: ignore[union-attr]
                  for l in links])
    columns = [ColumnPlan(name="code", type="string", length=length, nullable=False, primary=True),
               ColumnPlan(name="name", type="string", length=255)]
    field_rows = [
        {"collection": LANGUAGES, "field": "code", "special": None, "interface": "input", "options": None,
         "display": None, "display_options": None, "readonly": False, "hidden": False, "sort": 1, "width": "half", "translations": None,
         "note": None, "required": True, "group": None, "validation": None},
        {"collection": LANGUAGES, "field": "name", "special": None, "interface": "input", "options": None,
         "display": None, "display_options": None, "readonly": False, "hidden": False, "sort": 2, "width": "half", "translations": None,
         "note": None, "required": False, "group": None, "validation": None}]
    collection_row = {"collection": LANGUAGES, "icon": "translate", "note": "Languages of the v8 translation fields",
                      "hidden": False, "singleton": False, "translations": None, "archive_field": None,
                      "archive_app_filter": True, "archive_value": None, "unarchive_value": None, "sort_field": None,
                      "accountability": "all", "display_template": "{{name}}"}
    return CollectionPlan(LANGUAGES, "code", columns, collection_row, field_rows, [], len(codes),
                          rows=[{"code": code, "name": name} for code, name in codes.items()])


def _column(collection: Collection, f: Field, target: str | None, unmapped: list[str],
            target_pk: ColumnPlan | None = None) -> ColumnPlan:
    col = f.column
    assert col is not None
    data_type, v8_type = col.data_type, f.type
    plan = ColumnPlan(name=f.field, type="string", nullable=col.nullable, primary=col.primary_key,
                      auto_increment=col.auto_increment, unique=col.unique and not col.primary_key,
                      comment=col.comment)
    if target in SYSTEM_TARGETS:
        plan.type, plan.convert, plan.references, plan.nullable = "uuid", "ref", target, True
        return plan
    if target is not None:
        # An m2o column takes the related primary key's type (a string key stays a string: see the notes' §3).
        pk = target_pk or ColumnPlan(name="id", type="integer")
        plan.type, plan.length, plan.convert, plan.references, plan.nullable = pk.type, pk.length, "ref", target, True
        return plan
    if v8_type == "boolean" or (col.column_type.startswith("tinyint(1)") and v8_type in (None, "boolean")):
        plan.type, plan.convert = "boolean", "bool"
    elif v8_type == "array":
        plan.type, plan.convert = "json", "csv_json"
    elif v8_type == "json":
        plan.type, plan.convert = "json", "json"
    elif v8_type in ("datetime_created", "datetime_updated"):
        plan.type, plan.convert = "timestamp", "timestamp"
    elif data_type in ("datetime", "timestamp"):
        plan.type, plan.convert = "dateTime", "datetime"
    elif data_type == "date":
        plan.type = "date"
    elif data_type == "time":
        plan.type = "time"
    elif data_type in ("decimal", "numeric"):
        plan.type, plan.precision, plan.scale, plan.convert = "decimal", col.numeric_precision, col.numeric_scale, "decimal"
    elif data_type in ("float", "double", "real"):
        plan.type = "float"
    elif data_type == "bigint":
        plan.type = "bigInteger"
    elif data_type in ("int", "integer", "mediumint", "smallint", "tinyint", "year"):
        plan.type = "integer"
    elif data_type in ("varchar", "char"):
        plan.type, plan.length = "string", col.max_length
    elif data_type in ("text", "tinytext", "mediumtext", "longtext", "enum", "set"):
        plan.type = "text"
    elif data_type in ("blob", "tinyblob", "mediumblob", "longblob", "binary", "varbinary", "bit"):
        plan.type = "binary"
    elif data_type == "json":
        plan.type, plan.convert = "json", "json"
    else:
        plan.type = "text"
        unmapped.append(f"{collection.name}.{f.field}: column type {col.column_type} stored as text")
    if v8_type == "uuid" and plan.type in ("string",) and (col.max_length or 36) >= 36:
        plan.type, plan.length = "uuid", None
    plan.default = _default(plan, col.default, col.default_is_expression, f"{collection.name}.{f.field}", unmapped)
    return plan


def _default(plan: ColumnPlan, value: str | None, expression: bool, where: str, unmapped: list[str]) -> Any:
    if value is None:
        return None
    if expression:
        if value.lower().startswith("current_timestamp") and plan.type in ("timestamp", "dateTime"):
            return "CURRENT_TIMESTAMP"
        unmapped.append(f"{where}: default expression {value} dropped")
        return None
    if plan.type == "boolean":
        return value not in ("0", "", "false")
    if plan.type in ("integer", "bigInteger"):
        return int(Decimal(value))
    if plan.type in ("decimal", "float"):
        return value
    if plan.type in ("json", "uuid", "binary"):
        return None
    return value


def _special(f: Field, target: str | None, aliases: dict[tuple[str, str], tuple[str, str]]) -> list[str]:
    kind = f.type or ""
    if (f.collection, f.field) in aliases:
        return [aliases[(f.collection, f.field)][0]]
    return {
        "owner": ["user-created"], "user_updated": ["user-updated"], "datetime_created": ["date-created"],
        "datetime_updated": ["date-updated"], "boolean": ["cast-boolean"], "json": ["cast-json"],
        "array": ["cast-json"], "hash": ["hash"], "uuid": ["uuid"], "file": ["file"], "user": ["m2o"],
        "m2o": ["m2o"], "o2m": ["o2m"], "translation": ["o2m"], "group": ["alias", "no-data", "group"],
        "alias": ["alias", "no-data"],
    }.get(kind, ["m2o"] if target and target != "directus_files" else [])


def _field_row(collection: Collection, f: Field, sort: int, target: str | None,
               aliases: dict[tuple[str, str], tuple[str, str]], junction_of: dict[str, Any],
               unmapped: list[str], notes: list[str]) -> dict[str, Any]:
    where = f"{collection.name}.{f.field}"
    special = _special(f, target, aliases)
    interface = aliases[(f.collection, f.field)][1] if (f.collection, f.field) in aliases else None
    if interface is None and f.interface:
        interface = INTERFACES.get(f.interface)
        if interface is None:
            unmapped.append(f"{where}: interface {f.interface} has no v9 equivalent (set none)")
    if interface is None and target and f.interface is None:
        interface = "file" if target == "directus_files" else "select-dropdown-m2o"
    if f.type == "file" and f.interface in ("file", None):
        interface = "file"
    options = _options(f, where, unmapped)
    if f.type == "translation" and (f.collection, f.field) not in aliases:
        notes.append(f"{where}: a v8 translation field without a language list in its options (or a v8 "
                     "`languages` collection exists): created as a one-to-many list")
    validation = None
    if f.validation:
        pattern = f.validation
        if pattern.startswith("/") and pattern.rfind("/") > 0:
            pattern = pattern[1:pattern.rfind("/")]
        validation = {"_and": [{f.field: {"_regex": pattern}}]}
    if f.width and f.width not in WIDTHS:
        unmapped.append(f"{where}: width {f.width} has no v9 equivalent (full)")
    hidden = f.hidden_detail or (f.column is not None and f.column.primary_key and collection.name in junction_of)
    return {
        "collection": collection.name, "field": f.field, "special": ",".join(special) or None,
        "interface": interface, "options": options, "display": DISPLAYS.get(f.type or ""), "display_options": None,
        "readonly": f.readonly or bool(f.column and f.column.primary_key and f.column.auto_increment),
        "hidden": bool(hidden), "sort": f.sort if f.sort is not None else sort,
        "width": WIDTHS.get(f.width or "full", "full"),
        "translations": _translations(f.translation), "note": f.note or (f.column.comment if f.column else None),
        "required": f.required, "group": f.group_field, "validation": validation}


def _options(f: Field, where: str, unmapped: list[str]) -> dict[str, Any] | None:
    options = f.options if isinstance(f.options, dict) else {}
    if f.options is not None and not isinstance(f.options, dict):
        unmapped.append(f"{where}: options are not a JSON object (dropped)")
    result: dict[str, Any] = {}
    for key, value in options.items():
        if key == "choices" and f.interface in CHOICE_INTERFACES | {"status"}:
            result["choices"] = _choices(value)
        elif key == "status_mapping" and isinstance(value, dict):
            result["choices"] = [{"text": (spec or {}).get("name", v) if isinstance(spec, dict) else v, "value": v}
                                 for v, spec in value.items()]
        elif key in ("languages", "languageField") and f.type == "translation":
            continue  # the language field's choices (plan_schema)
        elif key in KEPT_OPTIONS:
            result[key] = value
        elif value not in (None, "", [], {}, False):
            unmapped.append(f"{where}: option {key} ({f.interface}) has no v9 equivalent (dropped)")
    return result or None


def _choices(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, dict):
        return [{"text": str(text), "value": key} for key, text in value.items()]
    if isinstance(value, list):
        return [{"text": str(v), "value": v} for v in value]
    return []


def _translations(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    out = [{"language": t.get("locale"), "translation": t.get("translation")} for t in value
           if isinstance(t, dict) and t.get("locale")]
    return out or None


def _collection_row(collection: Collection, junction_of: dict[str, Any]) -> dict[str, Any]:
    status, sort = collection.status_field, collection.sort_field
    soft = collection.soft_delete_statuses
    unarchive = None
    if status is not None:
        unarchive = (status.column.default if status.column and status.column.default else None) or "draft"
    translations = None
    if isinstance(collection.translation, list):
        translations = [{"language": t.get("locale"), "translation": t.get("translation"),
                         "singular": t.get("translation"), "plural": t.get("translation")}
                        for t in collection.translation if isinstance(t, dict) and t.get("locale")] or None
    return {
        "collection": collection.name, "icon": collection.icon or ("import_export" if collection.name in junction_of else None),
        "note": collection.note, "hidden": collection.hidden or collection.name in junction_of,
        "singleton": collection.single, "translations": translations,
        "archive_field": status.field if status is not None and soft else None,
        "archive_app_filter": True, "archive_value": soft[0] if status is not None and soft else None,
        "unarchive_value": unarchive if soft else None, "sort_field": sort.field if sort is not None else None,
        # Every row has the languages row's keys: one INSERT of many rows takes its columns from the first.
        "accountability": "all", "display_template": None}


def _relation_rows(source: V8Source, names: set[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    junction_halves = {j.left.relation_id for j in source.junctions} | {j.right.relation_id for j in source.junctions}
    for relation in source.relations:
        if relation.id in junction_halves or relation.collection_many not in names:
            continue
        if relation.collection_one not in names and relation.collection_one not in SYSTEM_TARGETS:
            continue
        rows.append(_relation(relation.collection_many, relation.field_many, relation.collection_one,
                              relation.field_one, None))
    for junction in source.junctions:
        if junction.collection not in names:
            continue
        left_here, right_here = (s.collection in names or s.collection in SYSTEM_TARGETS
                                 for s in (junction.left, junction.right))
        for side, other, here, there in ((junction.left, junction.right, left_here, right_here),
                                         (junction.right, junction.left, right_here, left_here)):
            if here:
                # With the other side left out (--skip-collections) the junction is a plain o2m of this side.
                one_field = side.alias_field if side.collection in names else None
                rows.append(_relation(junction.collection, side.junction_field, side.collection, one_field,
                                      other.junction_field if there else None))
    for collection in source.collections:
        if collection.name not in names:
            continue
        for f in collection.fields:
            if f.references and f.column is not None:
                rows.append(_relation(collection.name, f.field, f.references, None, None))
    return rows


def _relation(many: str, many_field: str, one: str | None, one_field: str | None, junction: str | None) -> dict[str, Any]:
    return {"many_collection": many, "many_field": many_field, "one_collection": one, "one_field": one_field,
            "junction_field": junction, "one_deselect_action": "nullify"}


def _insert_order(plans: list[CollectionPlan]) -> list[CollectionPlan]:
    """Referenced collections first (foreign keys are added after the rows, so a cycle is only an order)."""
    by_name = {p.name: p for p in plans}
    ordered: list[CollectionPlan] = []
    visiting: set[str] = set()

    def visit(plan: CollectionPlan) -> None:
        if plan in ordered or plan.name in visiting:
            return
        visiting.add(plan.name)
        for fk in plan.foreign_keys:
            if fk.table in by_name and fk.table != plan.name:
                visit(by_name[fk.table])
        ordered.append(plan)

    for plan in sorted(plans, key=lambda p: p.name):
        visit(plan)
    return ordered


# -- items -------------------------------------------------------------------------------------------------------
def source_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown time zone {name!r} for --v8-timezone; give an IANA name such as UTC or "
                          "Europe/Berlin (v8's API time zone)") from None


@dataclass
class Dangling:
    collection: str
    key: Any
    field: str
    value: Any
    target: str


def convert_row(plan: CollectionPlan, row: dict[str, Any], ids: IdMap, keys: dict[str, set[Any]],
                tz: ZoneInfo | timezone, dangling: list[Dangling], unmapped: list[str]) -> dict[str, Any]:
    """One v8 row → its v9 row. ``keys``: the primary keys of every referenced user collection."""
    out: dict[str, Any] = {}
    for column in plan.columns:
        value = row.get(column.name)
        if value is not None:
            value = _convert(plan, column, value, ids, keys, tz, row, dangling, unmapped)
        out[column.name] = value
    return out


def _convert(plan: CollectionPlan, column: ColumnPlan, value: Any, ids: IdMap, keys: dict[str, set[Any]],
             tz: ZoneInfo | timezone, row: dict[str, Any], dangling: list[Dangling], unmapped: list[str]) -> Any:
    kind = column.convert
    if kind == "ref":
        target = column.references or ""
        if target in SYSTEM_TARGETS:
            mapped = ids.get(target, value)
            if target == "directus_roles" and int(value) == 2:
                return None
        else:
            mapped = value if value in keys.get(target, ()) else None
        if mapped is None:
            dangling.append(Dangling(plan.name, row.get(plan.primary_key or ""), column.name, value, target))
        return mapped
    if kind == "bool":
        return bool(int(value)) if not isinstance(value, bool) else value
    if kind == "csv_json":
        return [part.strip() for part in str(value).split(",") if part.strip()] if str(value).strip() else []
    if kind == "json":
        if isinstance(value, (dict, list)):
            return value
        text = value.decode() if isinstance(value, bytes) else str(value)
        if not text.strip():
            return None
        try:
            return json.loads(text)
        except ValueError:
            unmapped.append(f"{plan.name}.{column.name} of {row.get(plan.primary_key or '')}: not JSON, kept as a JSON string")
            return text
    if kind == "decimal":
        return value if isinstance(value, Decimal) else Decimal(str(value))
    if kind in ("datetime", "timestamp"):
        if not isinstance(value, datetime):
            return None  # MySQL's zero date '0000-00-00' comes back as a string or None
        utc = _utc(value, tz)
        return utc if kind == "timestamp" else utc.replace(tzinfo=None) if utc else None
    if column.type == "date" and not isinstance(value, date):
        return None
    if column.type == "time" and isinstance(value, timedelta):
        return (datetime.min + value).time()
    if column.type == "integer" and isinstance(value, bool):
        return int(value)
    return value


class RowConverter:
    """``convert_row`` compiled for one collection: each column's converter chosen once, rows as tuples in
    ``plan.columns`` order, id-map lookups as plain dicts. Gives the same values as ``convert_row``; JSON columns
    come out as their JSON text (what the JSON type would send), ready for COPY."""

    def __init__(self, plan: CollectionPlan, ids: IdMap, keys: dict[str, set[Any]], tz: ZoneInfo | timezone,
                 dangling: list[Dangling], unmapped: list[str]) -> None:
        self.plan, self.dangling = plan, dangling
        self.key_index = next((i for i, c in enumerate(plan.columns) if c.name == plan.primary_key), None)
        self.refs: list[tuple[int, ColumnPlan, Any, bool]] = []  # (index, column, lookup, is a system target)
        self.values: list[tuple[int, Any]] = []  # (index, converter) of the columns that need one
        for index, column in enumerate(plan.columns):
            if column.convert == "ref":
                target = column.references or ""
                lookup: Any = ids.ids.get(target, {}) if target in SYSTEM_TARGETS else keys.get(target, set())
                self.refs.append((index, column, lookup, target in SYSTEM_TARGETS))
            else:
                converter = _value_converter(plan, column, tz, unmapped)
                if column.type == "json":
                    converter = _as_json_text(converter)
                if converter is not None:
                    self.values.append((index, converter))

    def rows(self, batch: Sequence[tuple[Any, ...]]) -> tuple[list[tuple[Any, ...]], int]:
        """The converted rows and how many references they carry that point at a row that exists."""
        out, found = [], 0
        for row in batch:
            values = list(row)
            for index, column, lookup, system in self.refs:
                value = values[index]
                if value is None:
                    continue
                if system:
                    if column.references == "directus_roles" and int(value) == 2:
                        values[index] = None  # v8's public role: no role in v9, not a dangling reference
                        found += 1
                        continue
                    mapped = lookup.get(value) if isinstance(value, int) else lookup.get(int(value))
                else:
                    mapped = value if value in lookup else None
                if mapped is None:
                    key = values[self.key_index] if self.key_index is not None else None
                    self.dangling.append(Dangling(self.plan.name, key, column.name, value, column.references or ""))
                else:
                    found += 1
                values[index] = mapped
            for index, converter in self.values:
                value = values[index]
                if value is not None:
                    values[index] = converter(value, row)
            out.append(tuple(values))
        return out, found


def _as_json_text(converter: Any) -> Any:
    def to_text(value: Any, row: Any) -> Any:
        value = converter(value, row) if converter is not None else value
        return None if value is None else json.dumps(value)
    return to_text


def _value_converter(plan: CollectionPlan, column: ColumnPlan, tz: ZoneInfo | timezone, unmapped: list[str]) -> Any:
    """``_convert`` for one non-reference column, decided once: a function of (value, source row), or None when
    the value passes unchanged. Each branch is ``_convert``'s, inlined."""
    kind = column.convert
    utc = timezone.utc
    if kind == "bool":
        return lambda value, row: value if isinstance(value, bool) else bool(int(value))
    if kind == "decimal":
        return lambda value, row: value if isinstance(value, Decimal) else Decimal(str(value))
    if kind == "csv_json":
        def csv_list(value: Any, row: tuple[Any, ...]) -> list[str]:
            parts = (part.strip() for part in str(value).split(","))
            return [part for part in parts if part]  # a blank value gives [] too
        return csv_list
    if kind == "timestamp":
        return lambda value, row: value.replace(tzinfo=tz).astimezone(utc) if isinstance(value, datetime) else None
    if kind == "datetime":
        if tz is utc:
            return lambda value, row: value if isinstance(value, datetime) else None  # naive UTC stays as it is
        return lambda value, row: value.replace(tzinfo=tz).astimezone(utc).replace(tzinfo=None) \
            if isinstance(value, datetime) else None
    if kind == "json":
        names = [c.name for c in plan.columns]

        def convert_json(value: Any, row: tuple[Any, ...]) -> Any:
            if isinstance(value, (dict, list)):
                return value
            text = value.decode() if isinstance(value, bytes) else str(value)
            if not text.strip():
                return None
            try:
                return json.loads(text)
            except ValueError:  # the rare case: _convert reports it
                return _convert(plan, column, value, _NO_IDS, {}, tz, dict(zip(names, row)), [], unmapped)
        return convert_json
    if column.type in ("date", "time", "integer"):
        return lambda value, row: _convert(plan, column, value, _NO_IDS, {}, tz, {}, [], unmapped)
    return None


_NO_IDS = IdMap(uuid.UUID(int=0))


def _utc(value: datetime | None, tz: ZoneInfo | timezone) -> datetime | None:
    """A naive v8 datetime written in ``tz`` → an aware UTC datetime."""
    if value is None:
        return None
    return value.replace(tzinfo=tz).astimezone(timezone.utc)


# -- comments ----------------------------------------------------------------------------------------------------
COMMENT_ITEMS = {"directus_files": "directus_files", "directus_users": "directus_users"}  # system items via the id map


def map_comments(source: V8Source, ids: IdMap, collections: set[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """v8's comments (on items of ``collections`` and on files and users) as ``directus_comments`` rows, the form
    of 11.1.2+ (ids uuid5 of the activity row, so a re-run finds them; the author through the id map; v8's dates,
    UTC); ``legacy_comments`` turns them into 10.x's. Notes name what is left out."""
    rows, notes = [], []
    left: dict[str, int] = {}
    for comment in source.comments:
        item: str | None = comment.item
        if comment.collection in COMMENT_ITEMS:
            item = ids.get(COMMENT_ITEMS[comment.collection], comment.item) if comment.item.isdigit() else None
        elif comment.collection not in collections:
            item = None
        if item is None:
            left[comment.collection] = left.get(comment.collection, 0) + 1
            continue
        author = ids.get("directus_users", comment.action_by) if comment.action_by else None
        created = _utc(comment.action_on, timezone.utc)
        rows.append({"id": str(uuid.uuid5(ids.namespace, f"directus_comments:{comment.id}")),
                     "collection": comment.collection, "item": item, "comment": comment.comment,
                     "date_created": created, "date_updated": _utc(comment.edited_on, timezone.utc) or created,
                     "user_created": author, "user_updated": author if comment.edited_on else None})
    for collection, count in sorted(left.items()):
        notes.append(f"{count} v8 comment{'s' if count != 1 else ''} on {collection} not carried: the collection "
                     "is not migrated (or the item is gone)")
    return rows, notes


def legacy_comments(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``map_comments``'s rows as Directus 10's: ``directus_activity`` rows with action ``comment``."""
    return [{"action": "comment", "user": r["user_created"], "collection": r["collection"], "item": r["item"],
             "comment": r["comment"], **({"timestamp": r["date_created"]} if r["date_created"] else {})}
            for r in rows]


# -- permissions -------------------------------------------------------------------------------------------------
ACTIONS = ("create", "read", "update", "delete")
# System collections whose v8 permissions carry over: their "owner" (what mine/role compare) and status field.
# The others (collections, fields, relations, settings, presets, activity…) are what 10.x and 11.x grant with app
# access.
SYSTEM_PERMISSIONS: dict[str, tuple[str | None, str | None]] = {
    "directus_files": ("uploaded_by", None), "directus_folders": (None, None), "directus_users": ("id", "status")}
V8_USER_STATUSES = ["active", "draft", "invited", "suspended", "deleted"]


@dataclass
class _Target:
    name: str
    owner: str | None  # the field mine/role compare (a user id)
    status: str | None  # the status field, if per-status rows apply
    statuses: list[str]  # v8 status values
    fields: list[str] | None  # every field (None: "*", blacklists do not apply)
    owner_is_user: bool = False  # directus_users: the row itself is the user
    key: str = "id"  # the primary key (a filter on it being NULL matches no row)


def map_permissions(source: V8Source, ids: IdMap, schema: SchemaPlan) -> tuple[list[dict[str, Any]], list[str]]:
    """v8 rows (one per role, collection and status) → one v9 row per role, collection and action.

    A level becomes a filter: full → none, mine → the owner field is ``$CURRENT_USER``, role → the owner's role
    is ``$CURRENT_ROLE``; per-status rows are OR-ed, each with its status (a row without a status covers the
    statuses that have none). v9 has one field list per action, so a field blacklisted for any status is left
    out for all (the stricter reading; reported). A create has no row to filter: its allowed statuses become a
    validation."""
    notes: list[str] = []
    targets: dict[str, _Target] = {}
    for plan in schema.collections:
        if plan.rows is not None:
            continue  # made by the migration (languages): v8 had no permissions on it
        collection = source.collection(plan.name)
        status = collection.status_field
        owner = next((f.field for f in collection.fields_of_type("owner")), None)
        # Relational alias fields are named too: Directus 11 refuses a query of an alias a field list leaves out.
        listed = ("o2m", "m2m", "files", "translations")
        fields = [c.name for c in plan.columns] + [r["field"] for r in plan.field_rows
                                                    if r["special"] and r["special"].split(",")[0] in listed]
        targets[plan.name] = _Target(plan.name, owner, status.field if status else None,
                                     _statuses(collection) if status else [], fields, key=plan.primary_key or "id")
    for name, (system_owner, system_status) in SYSTEM_PERMISSIONS.items():
        targets[name] = _Target(name, system_owner, system_status, V8_USER_STATUSES if system_status else [], None,
                                owner_is_user=name == "directus_users")
    groups: dict[tuple[int, str], list[Permission]] = {}
    skipped: set[str] = set()
    for permission in source.permissions:
        if permission.role == 1:
            continue  # the admin role bypasses permissions in v9 too
        if permission.collection in targets:
            groups.setdefault((permission.role, permission.collection), []).append(permission)
        elif permission.collection.startswith("directus_"):
            skipped.add(permission.collection)
    if skipped:
        notes.append(f"v8 permissions on {', '.join(sorted(skipped))} not carried: Directus grants what the app "
                     "needs of those to roles (11.x: policies) with app access")
    rows = []
    for (role_id, name), permissions in sorted(groups.items()):
        rows += _permission_rows(targets[name], permissions, ids.get("directus_roles", role_id), role_id, notes)
    # The languages collection is new: whoever reads a translations collection reads the languages too.
    junctions = {r["many_collection"] for r in schema.relation_rows if r["one_collection"] == LANGUAGES}
    readers = list(dict.fromkeys(r["role"] for r in rows if r["action"] == "read" and r["collection"] in junctions))
    rows += [{"role": role, "collection": LANGUAGES, "action": "read", "permissions": {}, "validation": {},
              "presets": None, "fields": "*"} for role in readers]
    return rows, notes


def _permission_rows(target: _Target, permissions: list[Permission], role: str | None, role_id: int,
                     notes: list[str]) -> list[dict[str, Any]]:
    default = next((p for p in permissions if p.status is None), None)
    by_status = {p.status: p for p in permissions if p.status is not None}
    cases: list[tuple[str | None, Permission]] = []
    if target.status and by_status:
        cases = [(v, by_status.get(v, default)) for v in target.statuses if by_status.get(v, default) is not None]  # type: ignore[misc]
    elif default is not None:
        cases = [(None, default)]
    where = f"{target.name} role {role_id}"
    rows = []
    for action in ACTIONS:
        granted = [(v, p) for v, p in cases if getattr(p, action) != "none"]
        if not granted:
            continue
        blacklists = {tuple(p.read_field_blacklist if action == "read" else
                            p.write_field_blacklist if action in ("create", "update") else ()) for _, p in granted}
        hidden = sorted({f for b in blacklists for f in b})
        if len(blacklists) > 1:
            notes.append(f"{where} {action}: fields {hidden} hidden for every status (v8 hid them for some)")
        conditions, unrestricted = [], False
        for value, permission in granted:
            level = _level_filter(getattr(permission, action), target, where, notes)
            status_value = USER_STATUS.get(value, value) if target.owner_is_user and value else value
            parts = ([{target.status: {"_eq": status_value}}] if value is not None and target.status else []) + \
                ([level] if level else [])
            if not parts:
                unrestricted = True
            conditions.append(parts[0] if len(parts) == 1 else {"_and": parts} if parts else {})
        permission_filter: dict[str, Any] | None = None
        validation: dict[str, Any] | None = None
        if action == "create":
            allowed = [USER_STATUS.get(v, v) if target.owner_is_user else v for v, _ in granted if v is not None]
            if target.status and allowed and len(allowed) < len(target.statuses):
                validation = {target.status: {"_in": allowed}}
        elif not unrestricted:
            permission_filter = conditions[0] if len(conditions) == 1 else {"_or": conditions}
        if target.fields is None or not hidden:
            fields = "*"
        else:
            fields = ",".join(f for f in target.fields if f not in hidden)
        rows.append({"role": role, "collection": target.name, "action": action, "permissions": permission_filter or {},
                     "validation": validation or {}, "presets": None, "fields": fields})
    return rows


def _statuses(collection: Collection) -> list[str]:
    status = collection.status_field
    mapping = status.options.get("status_mapping") if status and isinstance(status.options, dict) else None
    return [str(v) for v in mapping] if isinstance(mapping, dict) else []


def _level_filter(level: str, target: _Target, where: str, notes: list[str]) -> dict[str, Any] | None:
    if level == "full":
        return None
    if target.owner is None:
        notes.append(f"{where}: level {level} needs an owner field; the collection has none (no access)")
        return {target.key: {"_null": True}}  # matches no row
    if level == "mine":
        return {target.owner: {"_eq": "$CURRENT_USER"}}
    if target.owner_is_user:
        return {"role": {"_eq": "$CURRENT_ROLE"}}
    return {target.owner: {"role": {"_eq": "$CURRENT_ROLE"}}}


__all__ = ["CollectionPlan", "ColumnPlan", "Dangling", "ForeignKey", "IdMap", "SchemaPlan", "UserRows",
           "assign_policies", "build_id_map", "convert_row", "filename_disk", "legacy_comments", "map_comments",
           "map_files", "map_folders",
           "map_permissions", "map_roles", "map_roles_v11", "map_users", "permissions_on_policies", "plan_schema",
           "project_namespace", "source_timezone"]

"""Writing a v8 project into a running Directus 10, 11 or 12 through its REST API (api mode), for when only HTTP
reaches the target.

The mapping is database mode's (``mapping.py``: the same UUIDs, rows, conversions, references and permissions);
only the writing differs. Every writer first reads what the target has (ids, collections, fields, relations,
permission keys) and sends only what is missing, so a second run changes nothing and a killed run completes
when run again (each POST is one transaction in Directus: a batch is in, or not).

Directus applies some field specials on create whatever the payload says: ``user-created``/``date-created``
(the creator and the date would become the migrating user and now) and ``hash`` (a v8 hash would be hashed
again); and it checks ``required`` and ``validation`` on every create (v8 did not, for rows older than the
rule). So fields are created without those (and collections as non-singletons without activity tracking),
the items written, and then each field and collection gets its own settings (``finish_schema``). An update
keeps a given creator and date, so a file is uploaded with its id and ``filename_disk`` and its v8 metadata
(uploader, dates, tags…) is PATCHed after. What the API still cannot keep is ``NOT_KEPT``.

On 11.x and 12.x (``/server/info``'s version) admin and app access live on policies, as in database mode: the admin role
is the one an admin policy is attached to, v8's Public becomes the target's public policy (the access row with no
role and no user), each custom role is POSTed to ``/roles``, its policy to ``/policies`` and the access row linking
them to ``/access`` (ids from the same id map), and permissions carry ``policy`` instead of ``role``.

JSON bodies are built row by row and sent in batches no larger than the target's ``MAX_PAYLOAD_SIZE``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from decimal import Decimal
from typing import IO, Any
from uuid import UUID, uuid5
from zoneinfo import ZoneInfo

import httpx

from .. import faults
from ..database import DatabaseSettings, connect
from ..directus_api import DirectusApiError, DirectusClient
from ..errors import ConfigError, StorageError, V8TargetConflict, V8TargetNotReady, V8TargetUnreachable
from ..redact import register_secret
from ..storage import StorageLocation
from ..app import TOKEN_ENV  # an admin token, never a flow parameter
from .mapping import CollectionPlan, ColumnPlan, IdMap, RowConverter, SchemaPlan
from .source import V8Source
from .target import _stream, check_supported, referenced_keys
from .target_writer import ItemStats, TargetInfo, TargetWriter

log = logging.getLogger("directus_ops.v8.api_target")

DEFAULT_MAX_PAYLOAD = "1mb"  # Directus's MAX_PAYLOAD_SIZE default
BATCH_ROWS = 5000  # at most this many rows a request, whatever their size
DEFERRED_SPECIALS = ("user-created", "date-created", "hash")  # applied on create: set after the items
SYSTEM_PATHS = {"directus_roles": "/roles", "directus_policies": "/policies", "directus_access": "/access",
                "directus_users": "/users", "directus_folders": "/folders", "directus_files": "/files"}
NOT_KEPT = [
    "directus_files.modified_by and modified_on: the migrating user and the time of the migration (the upload "
    "is followed by an update that sets the v8 uploader and dates; Directus stamps that update)",
    "directus_activity and directus_revisions: the roles (11.x+: and policies and access rows), users, folders, "
    "files, collections, fields, relations, permissions and comments written are recorded as the migrating user's "
    "actions of today (the items are not: their collections track no activity until the import is done)",
    "the author and date of v8's comments: Directus makes the migrating user the author and now the date (it "
    "refuses to change a comment's author)",
]


# -- token and limits --------------------------------------------------------------------------------------------
def admin_token(value: str | None = None) -> str:
    """The admin token: ``value`` if given (e.g. a Prefect Secret block's, read by the task), else
    ``DIRECTUS_OPS_TOKEN``'s; registered as a secret."""
    token = (os.environ.get(TOKEN_ENV, "") if value is None else value).strip()
    if not token:
        raise ConfigError("--mode api needs an admin token of the target: pass --token, set DIRECTUS_OPS_TOKEN, or "
                          "name a Prefect Secret block holding it with --token-secret-block")
    register_secret(token)
    return token


_UNITS = {"b": 1, "kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3}


def payload_limit(value: str | int) -> int:
    """``MAX_PAYLOAD_SIZE`` in bytes, read as Directus reads it (the ``bytes`` package: 1mb = 1024 * 1024)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]?b)?\s*", str(value).lower())
    if not match or float(match[1]) * _UNITS[match[2] or "b"] < 1024:
        raise ConfigError(f"--max-payload-size {value!r}: give the target's MAX_PAYLOAD_SIZE, e.g. 1mb, 512kb or "
                          "1048576 (at least 1kb)")
    return int(float(match[1]) * _UNITS[match[2] or "b"])


def client_for(url: str, token: str) -> DirectusClient:
    return DirectusClient(url, token, timeout=300)


# -- preflight ---------------------------------------------------------------------------------------------------
def inspect_api_target(client: DirectusClient, collections: list[str],
                       ids_probe: list[tuple[str, str]] | None = None) -> TargetInfo:
    """Check the target through its API, writing nothing: it answers, runs 10.x, 11.x or 12.x, the token is an admin's,
    and no collection is named like a v8 one unless an earlier run of this migration made it (``ids_probe``: the
    (system table, uuid) pairs only such a run wrote). On 11.x also its public policy."""
    url = client.url
    try:  # without the token: an invalid one makes Directus refuse even the ping
        ping = httpx.get(f"{url}/server/ping", timeout=15)
    except httpx.HTTPError as exc:
        raise V8TargetUnreachable(f"cannot reach Directus at {url} ({type(exc).__name__}); check --url and that the "
                                "server is running") from None
    if ping.status_code != 200 or "pong" not in ping.text:
        raise V8TargetNotReady(f"{url} does not answer like Directus (/server/ping: HTTP {ping.status_code}); "
                             "check --url (the address the app is served at)")
    me = client.http.get("/users/me", params={"fields": "id,email"})
    if me.status_code in (401, 403):
        raise ConfigError(f"Directus at {url} refused the token (HTTP {me.status_code}); give a valid admin "
                          "user's static token with --token, DIRECTUS_OPS_TOKEN or --token-secret-block")
    if me.status_code != 200:
        raise DirectusApiError(f"GET /users/me at {url} failed: HTTP {me.status_code}")
    user = me.json()["data"]
    version = str(client.server_info().get("version") or "")  # given to any signed-in user
    policies = check_supported(version, url) >= 11  # 11.x and 12.x: the access model of policies
    if not _is_admin(client, policies):
        who = user.get("email") or user.get("id")  # only the id when the user may not read its own row
        raise ConfigError(f"the token's user ({who}) is not an administrator of {url}; use an admin "
                          "user's token (the migration creates collections, roles and permissions)")
    # 11.x roles have no admin_access: the role an admin policy is attached to (as database mode's _admin_role_v11).
    admin_filter = {"policies": {"policy": {"admin_access": {"_eq": True}}}} if policies else \
        {"admin_access": {"_eq": True}}
    admin = client.get("/roles", fields="id", sort="name,id", limit=1, filter=json.dumps(admin_filter))
    if not admin:
        raise V8TargetNotReady(f"{url} has no role with admin access; bootstrap the project first")
    public_policy = _public_policy(client) if policies else None
    users = {str(u["email"]).lower(): str(u["id"]) for u in client.pages("/users", fields="id,email", sort="id")
             if u.get("email")}
    present = {c["collection"] for c in client.get("/collections")}
    existing = sorted(c for c in collections if c in present)
    resuming = False
    if existing:
        by_table: dict[str, list[str]] = {}
        for table, value in ids_probe or []:
            by_table.setdefault(table, []).append(value)
        resuming = any(client.get(SYSTEM_PATHS[table], fields="id", limit=1,
                                  filter=json.dumps({"id": {"_in": values}})) for table, values in by_table.items())
        if not resuming:
            shown = ", ".join(existing[:5]) + (f" and {len(existing) - 5} more" if len(existing) > 5 else "")
            raise V8TargetConflict(f"{url} already has {len(existing)} collections named like v8 ones ({shown}), not "
                                 "from this migration; migrate into a fresh Directus project or leave them out with "
                                 "--skip-collections")
    return TargetInfo(url, version, 0, str(admin[0]["id"]), users, "", resuming, existing, policies=policies,
                      public_policy=public_policy)


def _is_admin(client: DirectusClient, policies: bool) -> bool:
    """10.x: the user's role has admin access; 11.x: one of the user's policies (through role or user) has."""
    if policies:
        return bool((client.get("/policies/me/globals") or {}).get("admin_access"))
    return bool((client.get("/users/me", fields="role.admin_access").get("role") or {}).get("admin_access"))


def _public_policy(client: DirectusClient) -> str:
    """11.x: the policy of the public access row (no role, no user), where v8's Public permissions go (never a
    second public policy)."""
    rows = client.get("/access", fields="policy", sort="sort,id", limit=1,
                      filter=json.dumps({"role": {"_null": True}, "user": {"_null": True}}))
    if not rows or not rows[0].get("policy"):
        raise V8TargetNotReady(f"{client.url} has no public policy (an access row without role and user); migrate "
                             "into a project bootstrapped by Directus 11 (it creates one)")
    return str(rows[0]["policy"])


# -- JSON bodies within MAX_PAYLOAD_SIZE -------------------------------------------------------------------------
def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)  # exact: Directus hands the text to the database
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, UUID):
        return str(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON")


def encode(value: Any) -> bytes:
    return json.dumps(value, default=_json_value, separators=(",", ":"), ensure_ascii=False).encode()


def json_arrays(rows: Iterable[dict[str, Any]], limit: int, where: str) -> Iterator[tuple[bytes, int]]:
    """JSON array bodies of ``rows``, each at most ``limit`` bytes (and ``BATCH_ROWS`` rows); with its row count."""
    parts: list[bytes] = []
    size = 1  # "[" … "]" and the commas: 1 + sum(len(part) + 1)
    for row in rows:
        data = encode(row)
        if len(data) + 2 > limit:
            raise ConfigError(f"a row of {where} is {len(data)} bytes as JSON, more than the target accepts "
                              f"(MAX_PAYLOAD_SIZE, {limit} bytes); raise MAX_PAYLOAD_SIZE on the target and pass "
                              "the same value to --max-payload-size")
        if parts and (size + len(data) + 1 > limit or len(parts) >= BATCH_ROWS):
            yield b"[" + b",".join(parts) + b"]", len(parts)
            parts, size = [], 1
        parts.append(data)
        size += len(data) + 1
    if parts:
        yield b"[" + b",".join(parts) + b"]", len(parts)


def send(client: DirectusClient, method: str, path: str, body: bytes, **params: Any) -> Any:
    """A JSON body already encoded; "too large" means the target's limit is lower than the one given (10.13
    answers 400 "request entity too large", a proxy 413)."""
    try:
        return client.send_json(method, path, body, **params)
    except DirectusApiError as exc:
        if getattr(exc, "status", None) == 413 or "entity too large" in str(exc):
            raise ConfigError(f"the target refused a {len(body)}-byte request as too large: its MAX_PAYLOAD_SIZE "
                              "(or a proxy's limit) is smaller than --max-payload-size; pass its value") from None
        raise


def post_rows(client: DirectusClient, path: str, rows: Iterable[dict[str, Any]], limit: int, key: str = "id",
              after_batch: Callable[[], None] | None = None) -> int:
    """POST ``rows`` as arrays within ``limit``; returns how many were sent (each batch one transaction)."""
    written = 0
    for body, count in json_arrays(rows, limit, path):
        send(client, "POST", path, body, fields=key)
        written += count
        if after_batch:
            after_batch()
    return written


def _ids(client: DirectusClient, path: str, key: str = "id", **params: Any) -> set[str]:
    return {str(row[key]) for row in client.pages(path, fields=key, sort=key, **params)}


def _field_names(client: DirectusClient, collection: str) -> set[str]:
    return {f["field"] for f in client.get(f"/fields/{collection}")}


def _only(rows: list[dict[str, Any]], names: set[str]) -> list[dict[str, Any]]:
    """The keys the target's collection has (10.x minor versions differ: theme vs appearance…)."""
    return [{k: v for k, v in row.items() if k in names} for row in rows]


# -- roles, users, folders ---------------------------------------------------------------------------------------
def write_rows(client: DirectusClient, table: str, rows: list[dict[str, Any]], limit: int) -> int:
    """Roles, policies, access rows, users or folders (parents first: one POST creates its rows in order) whose
    id the target lacks; users without their avatars (a user row cannot name a file that is not there yet: they
    come with the files, ``set_avatars``)."""
    path = SYSTEM_PATHS[table]
    have = _ids(client, path)
    missing = [_ip_list(r) for r in rows if str(r["id"]) not in have]
    if table == "directus_users":
        missing = [{**r, "avatar": None} for r in _only(missing, _field_names(client, "directus_users"))]
    return post_rows(client, path, missing, limit)


def _ip_list(row: dict[str, Any]) -> dict[str, Any]:
    """``ip_access`` as the API takes it: a list (stored as CSV; 11.x checks each entry is an IP or range)."""
    if isinstance(row.get("ip_access"), str):
        return {**row, "ip_access": row["ip_access"].split(",")}
    return row


def set_avatars(client: DirectusClient, users: list[dict[str, Any]]) -> int:
    """Each migrated user's avatar, once the files are in (a user row cannot name a file that is not there)."""
    wanted = {str(u["id"]): u["avatar"] for u in users if u.get("avatar")}
    if not wanted:
        return 0
    have = {str(u["id"]): u["avatar"] for u in client.pages("/users", fields="id,avatar", sort="id")}
    changed = 0
    for user_id, avatar in wanted.items():
        if user_id in have and have[user_id] != avatar:
            client.patch(f"/users/{user_id}", {"avatar": avatar})
            changed += 1
    return changed


# -- files -------------------------------------------------------------------------------------------------------
@dataclass
class FileUploads:
    uploaded: int = 0
    skipped: int = 0  # there already (a re-run)
    bytes: int = 0
    metadata_set: int = 0
    checksum_mismatch: list[str] | None = None


class _Hashing:
    """A readable that hashes what is read through it (the upload streams; the md5 is v8's checksum)."""

    def __init__(self, handle: IO[bytes]) -> None:
        self.handle, self.md5, self.size = handle, hashlib.md5(), 0

    def read(self, size: int = -1) -> bytes:
        chunk = self.handle.read(size)
        self.md5.update(chunk)
        self.size += len(chunk)
        return chunk


# The v8 metadata an update sets after the upload (the upload itself makes the uploader and date today's).
FILE_METADATA = ("title", "description", "tags", "location", "metadata", "uploaded_by", "uploaded_on", "created_on",
                 "charset", "duration", "embed", "width", "height", "folder")


def _same_instant(a: Any, b: Any) -> bool:
    def parse(value: Any) -> datetime | None:
        if value is None or isinstance(value, datetime):
            return value
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    left, right = parse(a), parse(b)
    if left is None or right is None:
        return left is right
    as_utc = [d if d.tzinfo else d.replace(tzinfo=timezone.utc) for d in (left, right)]
    return as_utc[0] == as_utc[1]


def write_files(client: DirectusClient, source: V8Source, rows: list[dict[str, Any]],
                originals: StorageLocation) -> FileUploads:
    """Upload each file that is not there with its id and ``filename_disk``, streamed from ``originals/``; then
    set its v8 metadata where the target's differs (an upload stopped before that gets it on the re-run)."""
    result = FileUploads(checksum_mismatch=[])
    fields = _field_names(client, "directus_files")
    have = {str(f["id"]): f for f in client.pages("/files", fields="id,filesize,uploaded_on,uploaded_by", sort="id")}
    fs = originals.filesystem()
    sizes = {o.key: o.size for o in originals.list_objects(fs)}
    for file, row in zip(source.files, rows):
        file_id = str(row["id"])
        there = have.get(file_id)
        if there is not None and int(there.get("filesize") or -1) == sizes.get(file.filename_disk):
            result.skipped += 1
        else:  # not there, or cut short by a stopped run: (re)uploaded
            with originals.open(file.filename_disk, fs=fs) as handle:
                reader = _Hashing(handle)
                saved = client.upload(content=reader, filename=row["filename_download"],  # type: ignore[arg-type]
                                      mime=row["type"] or "application/octet-stream",
                                      replace=file_id if there is not None else None,
                                      **({} if there is not None else {"id": file_id,
                                                                       "filename_disk": row["filename_disk"]}))
            if int(saved.get("filesize") or 0) != reader.size:
                raise StorageError(f"Directus stored {saved.get('filesize')} bytes of {file.filename_disk}, not "
                                   f"{reader.size}; check the target's storage and run the migration again")
            if file.checksum and file.checksum != reader.md5.hexdigest():
                result.checksum_mismatch.append(file.filename_disk)  # type: ignore[union-attr]
            result.uploaded += 1
            result.bytes += reader.size
            have[file_id] = {"uploaded_on": None, "uploaded_by": None}  # the metadata comes next
            faults.checkpoint("v8-file-copied")
        target = have[file_id]
        if not (_same_instant(target.get("uploaded_on"), row["uploaded_on"])
                and target.get("uploaded_by") == row["uploaded_by"]):
            metadata = {k: row[k] for k in FILE_METADATA if k in fields}
            metadata["tags"] = json.loads(row["tags"]) if row["tags"] else None  # a JSON list, not its text
            send(client, "PATCH", f"/files/{file_id}", encode(metadata), fields="id")
            result.metadata_set += 1
    return result


# -- schema ------------------------------------------------------------------------------------------------------
def _specials(row: dict[str, Any], deferred: bool) -> list[str] | None:
    specials = [s for s in (row.get("special") or "").split(",") if s]
    if deferred:
        specials = [s for s in specials if s not in DEFERRED_SPECIALS]
    return specials or None


def _field_meta(row: dict[str, Any], deferred: bool = True) -> dict[str, Any]:
    """A field's meta; ``deferred``: as written while its items are (no create-time specials, and no
    ``required``/``validation``, which Directus checks on every create and v8 rows may not meet)."""
    meta = {k: v for k, v in row.items() if k not in ("collection", "field")}
    meta["special"] = _specials(row, deferred)
    if deferred:
        meta.update(required=False, validation=None)
    return meta


def _finished_meta(row: dict[str, Any]) -> dict[str, Any]:
    """The part of a field's meta ``finish_schema`` sets."""
    return {"special": _specials(row, deferred=False), "required": bool(row.get("required")),
            "validation": row.get("validation")}


def _field_schema(column: ColumnPlan) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "is_nullable": column.nullable and not column.primary, "is_primary_key": column.primary,
        "has_auto_increment": column.auto_increment and column.primary, "is_unique": column.unique,
        "default_value": column.default, "comment": column.comment}
    if column.type == "string":
        schema["max_length"] = column.length or 255
    if column.type == "decimal":
        schema["numeric_precision"], schema["numeric_scale"] = column.precision or 10, column.scale or 0
    return schema


def field_payloads(plan: CollectionPlan) -> list[dict[str, Any]]:
    """The fields of a collection as POST /collections or /fields takes them: columns with their schema, the
    rest (o2m, m2m, translations, groups) as alias fields; specials Directus applies on create left out."""
    columns = {c.name: c for c in plan.columns}
    payloads = []
    for row in plan.field_rows:
        column = columns.get(row["field"])
        if column is None:
            payloads.append({"field": row["field"], "type": "alias", "schema": None, "meta": _field_meta(row)})
        else:
            payloads.append({"field": column.name, "type": column.type, "schema": _field_schema(column),
                             "meta": _field_meta(row)})
    described = {p["field"] for p in payloads}
    payloads += [{"field": c.name, "type": c.type, "schema": _field_schema(c), "meta": None}
                 for c in plan.columns if c.name not in described]
    return payloads


def _import_meta(row: dict[str, Any]) -> dict[str, Any]:
    """A collection's meta while its items are written: not a singleton (items are POSTed), no activity."""
    meta = {k: v for k, v in row.items() if k != "collection"}
    return {**meta, "singleton": False, "accountability": None}


def create_schema(client: DirectusClient, schema: SchemaPlan, limit: int) -> dict[str, int]:
    """Each missing collection with all its fields in one request (one transaction), or, when that body would
    be over ``limit``, with its key first; then any field the collection lacks on its own (a re-run completes
    a collection whose fields were being added)."""
    counts = {"tables": 0, "collections": 0, "fields": 0, "relations": 0}
    present = {c["collection"] for c in client.get("/collections")}
    have = {(f["collection"], f["field"]) for f in client.get("/fields")}
    for plan in schema.collections:
        fields = field_payloads(plan)
        if plan.name not in present:
            body: dict[str, Any] = {"collection": plan.name, "meta": _import_meta(plan.collection_row), "schema": {},
                                    "fields": fields}
            if len(encode(body)) > limit:
                body["fields"] = [f for f in fields if (f["schema"] or {}).get("is_primary_key")]
            send(client, "POST", "/collections", encode(body), fields="collection")
            counts["tables"] += 1
            counts["collections"] += 1
            counts["fields"] += len(body["fields"])
            have |= {(plan.name, f["field"]) for f in body["fields"]}
        for payload in fields:
            if (plan.name, payload["field"]) not in have:
                client.post(f"/fields/{plan.name}", payload)
                counts["fields"] += 1
    return counts


def create_relations(client: DirectusClient, schema: SchemaPlan) -> dict[str, int]:
    """The relations, after the rows (Directus makes each a foreign key, ON DELETE SET NULL as v9's nullify)."""
    have = {(r["collection"], r["field"]) for r in client.get("/relations")}
    created = foreign_keys = 0
    for row in schema.relation_rows:
        if (row["many_collection"], row["many_field"]) in have:
            continue
        meta = {k: row.get(k) for k in ("one_field", "junction_field", "one_deselect_action", "sort_field")
                if row.get(k) is not None}
        client.post("/relations", {"collection": row["many_collection"], "field": row["many_field"],
                                   "related_collection": row["one_collection"], "meta": meta,
                                   "schema": {"on_delete": "SET NULL"} if row["one_collection"] else None})
        created += 1
        foreign_keys += row["one_collection"] is not None
    return {"relations": created, "foreign_keys": foreign_keys}


def finish_schema(client: DirectusClient, schema: SchemaPlan) -> int:
    """Give fields their specials and collections their singleton/activity settings (left out while the items
    were written); only where the target's differ, so a re-run changes nothing."""
    changed = 0
    metas = {(f["collection"], f["field"]): f.get("meta") or {} for f in client.get("/fields")}
    for plan in schema.collections:
        for row in plan.field_rows:
            if (plan.name, row["field"]) not in metas:
                continue
            wanted, meta = _finished_meta(row), metas[(plan.name, row["field"])]
            have = {"special": meta.get("special") or None, "required": bool(meta.get("required")),
                    "validation": meta.get("validation")}
            if have != wanted:
                client.patch(f"/fields/{plan.name}/{row['field']}", {"meta": wanted})
                changed += 1
    collection_metas = {c["collection"]: c.get("meta") or {} for c in client.get("/collections")}
    for plan in schema.collections:
        wanted = {k: plan.collection_row.get(k) for k in ("singleton", "accountability")}
        meta = collection_metas.get(plan.name, {})
        if any(meta.get(k) != v for k, v in wanted.items()):
            client.patch(f"/collections/{plan.name}", {"meta": wanted})
            changed += 1
    return changed


# -- items -------------------------------------------------------------------------------------------------------
def _existing_keys(client: DirectusClient, plan: CollectionPlan, singleton: bool) -> set[str]:
    key = plan.primary_key or "id"
    if singleton:  # an object, not a list (defaults when there is no row)
        row = client.get(f"/items/{plan.name}", fields=key) or {}
        return {str(row[key])} if row.get(key) is not None else set()
    return _ids(client, f"/items/{plan.name}", key)


def _rows_to_send(batches: Iterable[Sequence[tuple[Any, ...]]], plan: CollectionPlan, converter: RowConverter,
                  stat: ItemStats, have: set[str]) -> Iterator[dict[str, Any]]:
    """The converted rows whose key the target lacks, as dicts of JSON-ready values; counts what was read."""
    names = [c.name for c in plan.columns]
    key_index = names.index(plan.primary_key) if plan.primary_key in names else None
    json_columns = [i for i, c in enumerate(plan.columns) if c.type == "json"]
    for batch in batches:
        rows, references = converter.rows(batch)
        stat.read += len(rows)
        stat.references += references
        for row in rows:
            if key_index is not None and str(row[key_index]) in have:
                continue
            values = list(row)
            for index in json_columns:  # the converter gives JSON text (for COPY): send the value
                if values[index] is not None:
                    values[index] = json.loads(values[index])
            yield dict(zip(names, values))


def write_items(client: DirectusClient, v8: DatabaseSettings, schema: SchemaPlan, ids: IdMap,
                tz: ZoneInfo | timezone, unmapped: list[str], limit: int) -> dict[str, ItemStats]:
    """Every row the target lacks, read from v8 in batches, converted by the same RowConverter as database mode
    and POSTed in bodies within ``limit``."""
    keys = referenced_keys(v8, schema)
    singletons = {c["collection"] for c in client.get("/collections") if (c.get("meta") or {}).get("singleton")}
    stats: dict[str, ItemStats] = {}
    with connect(v8) as source:
        for plan in schema.collections:
            stat = stats[plan.name] = ItemStats()
            names = [c.name for c in plan.columns]
            key = plan.primary_key or "id"
            converter = RowConverter(plan, ids, keys, tz, stat.dangling, unmapped)
            batches = [[tuple(r.get(n) for n in names) for r in plan.rows]] if plan.rows is not None else \
                _stream(source, plan.name, names, plan.primary_key)
            rows = _rows_to_send(batches, plan, converter, stat, _existing_keys(client, plan, plan.name in singletons))
            if plan.name in singletons:  # made a singleton by an earlier run's end: PATCH creates its row
                for row in rows:
                    send(client, "PATCH", f"/items/{plan.name}", encode(row), fields=key)
                    stat.written += 1
            else:
                stat.written = post_rows(client, f"/items/{plan.name}", rows, limit, key,
                                         lambda: faults.checkpoint("v8-items-batch"))
            log.info("v8 items (api): %s read %d, written %d", plan.name, stat.read, stat.written)
    return stats


# -- permissions -------------------------------------------------------------------------------------------------
def write_permissions(client: DirectusClient, rows: list[dict[str, Any]], limit: int, owner: str = "role") -> int:
    """The rows whose (``owner``, collection, action) the target lacks; ``owner``: ``role`` (10.x, None =
    public) or ``policy`` (11.x)."""
    # 11.x appends the app's built-in permissions (no id, no policy) to every read of /permissions: left out.
    params: dict[str, Any] = {"filter": json.dumps({"policy": {"_nnull": True}})} if owner == "policy" else {}
    have = {(str(p[owner]) if p.get(owner) else None, p["collection"], p["action"])
            for p in client.pages("/permissions", fields=f"id,{owner},collection,action", sort="id", **params)}
    missing = [{**r, "fields": r["fields"].split(",") if isinstance(r["fields"], str) else r["fields"]}
               for r in rows if (r[owner], r["collection"], r["action"]) not in have]
    return post_rows(client, "/permissions", missing, limit)




# -- comments ----------------------------------------------------------------------------------------------------
def write_comments(client: DirectusClient, rows: list[dict[str, Any]], limit: int) -> tuple[int, str]:
    """``mapping.map_comments``'s rows the target lacks: ``POST /comments`` with the map's ids where the target
    has ``directus_comments`` (11.1.2+), else ``POST /activity/comment`` (10.x; one with the same collection, item
    and text counts as there). Directus makes the token's user the author and now the date (``NOT_KEPT``)."""
    from .mapping import legacy_comments

    if "directus_comments" in {c["collection"] for c in client.get("/collections")}:
        have = _ids(client, "/comments")
        missing = [{k: r[k] for k in ("id", "collection", "item", "comment")} for r in rows if r["id"] not in have]
        return post_rows(client, "/comments", missing, limit), "directus_comments"
    there = [(a["collection"], str(a["item"]), a["comment"]) for a in client.pages(
        "/activity", fields="id,collection,item,comment", sort="id", filter=json.dumps({"action": {"_eq": "comment"}}))]
    written = 0
    for row in legacy_comments(rows):
        key = (row["collection"], str(row["item"]), row["comment"])
        if key in there:
            there.remove(key)
            continue
        client.post("/activity/comment", {k: row[k] for k in ("collection", "item", "comment")})
        written += 1
    return written, "directus_activity"


# -- the target writer of api mode ------------------------------------------------------------------------------
class ApiTarget(TargetWriter):
    """The running target's REST API (api mode), through the functions above; ``limit``: its MAX_PAYLOAD_SIZE in
    bytes (``payload_limit``)."""

    writes_unlicensed_rules = False  # Directus refuses to create them

    def __init__(self, url: str, token: str, limit: int) -> None:
        self.url, self.token, self.limit = url.rstrip("/"), token, limit
        self._client: DirectusClient | None = None

    @property
    def client(self) -> DirectusClient:
        if self._client is None:  # opened at the first request
            self._client = client_for(self.url, self.token)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def inspect(self, collections: list[str], ids_probe: list[tuple[str, str]]) -> TargetInfo:
        return inspect_api_target(self.client, collections, ids_probe)

    def license(self) -> Any:
        from . import entitlements

        return entitlements.from_api(self.client)  # GET /license

    def user_password(self, password: str | None) -> str | None:
        register_secret(password)
        return password  # Directus hashes it, with its password policy

    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        return write_rows(self.client, table, rows, self.limit)

    def write_files(self, source: V8Source, ids: IdMap, rows: list[dict[str, Any]], originals: StorageLocation,
                    storage: str) -> dict[str, Any]:
        """Each upload and its v8 metadata; then the avatars of the users this migration created (not of target
        users a v8 one was merged into)."""
        avatars = [{"id": ids.get("directus_users", u.id), "avatar": ids.get("directus_files", u.avatar)}
                   for u in source.users
                   if u.avatar and ids.get("directus_users", u.id) == str(uuid5(ids.namespace, f"directus_users:{u.id}"))]
        uploads = write_files(self.client, source, rows, originals)
        avatars_set = set_avatars(self.client, avatars)
        return {"rows": uploads.uploaded, "copied": uploads.uploaded, "already_there": uploads.skipped,
                "bytes": uploads.bytes, "checksum_mismatch": uploads.checksum_mismatch or [],
                "metadata_set": uploads.metadata_set, "avatars_set": avatars_set}

    def create_schema(self, schema: SchemaPlan) -> dict[str, int]:
        return create_schema(self.client, schema, self.limit)

    def write_items(self, v8: DatabaseSettings, schema: SchemaPlan, ids: IdMap, tz: ZoneInfo | timezone,
                    unmapped: list[str]) -> dict[str, ItemStats]:
        return write_items(self.client, v8, schema, ids, tz, unmapped, self.limit)

    def after_items(self, schema: SchemaPlan) -> dict[str, int]:
        """The relations (foreign keys after the rows, as database mode) and the fields' and collections' own
        settings."""
        relations = create_relations(self.client, schema)
        settings = finish_schema(self.client, schema)
        return {"foreign_keys": relations["foreign_keys"], "relations": relations["relations"],
                "settings_restored": settings}

    def write_permissions(self, rows: list[dict[str, Any]], owner: str) -> int:
        return write_permissions(self.client, rows, self.limit, owner)

    def write_comments(self, rows: list[dict[str, Any]]) -> tuple[int, str]:
        return write_comments(self.client, rows, self.limit)

    def finish(self, schema: SchemaPlan) -> dict[str, Any]:
        return {"not_kept": NOT_KEPT}


__all__ = ["DEFAULT_MAX_PAYLOAD", "NOT_KEPT", "TOKEN_ENV", "ApiTarget", "FileUploads",
           "admin_token", "client_for", "create_relations", "create_schema", "encode", "field_payloads",
           "finish_schema", "inspect_api_target", "json_arrays", "payload_limit", "post_rows", "send", "set_avatars",
           "write_comments", "write_files", "write_items", "write_permissions", "write_rows"]

"""The steps of the v8 migration, as plain functions over a work directory, each writing through a
``TargetWriter`` (``target_writer.py``): ``target.DatabaseTarget`` (database mode) or ``api_target.ApiTarget``
(api mode). The steps map, the writer writes: one list of steps for both modes.

Steps hand each other paths, not values: ``source.json`` (the v8 model, without secrets), ``plan.json``
(target facts, options and the id map) in the work directory; the id map is also written as ``id-map.json``
next to the report. Every step after ``prepare`` is idempotent (the writers write only what the target lacks),
so a stopped run is simply run again.
"""

from __future__ import annotations

import datetime
import json
import logging
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .. import faults
from ..database import DatabaseSettings, DatabaseUnreachable
from ..errors import ConfigError
from ..project import load_project
from ..storage import StorageLocation
from . import entitlements, mapping
from .api_target import DEFAULT_MAX_PAYLOAD, ApiTarget, admin_token, payload_limit
from .source import V8Source, check_storage, read_v8, v8_settings
from .target import DatabaseTarget
from .target_writer import TargetWriter

log = logging.getLogger("directus_ops.v8.migrate")
SECRET_FIELDS = {"users": {"__all__": {"token", "tfa_secret"}}}  # never written to the work directory


@dataclass
class Plan:
    """What ``prepare`` decided (plan.json)."""

    v8_database: str  # describe(): no password
    v8_storage: str
    project_dir: str
    directus_version: str
    storage: str
    admin_role: str
    users_by_email: dict[str, str]
    skip: list[str]
    timezone: str
    resuming: bool
    ids: dict[str, Any]
    collections: list[str] = field(default_factory=list)
    policies: bool = False  # a Directus 11+ target: roles get policies, permissions go on policies
    target_url: str = ""  # api mode: the target Directus (project_dir then only holds the work files)
    license: dict[str, Any] | None = None  # 12.x: entitlements.LicenseCheck (None: a target without licensing)

    def id_map(self) -> mapping.IdMap:
        ids = mapping.IdMap(uuid.UUID(self.ids["namespace"]))
        for table, values in self.ids.items():
            if table != "namespace":
                ids.ids[table] = {int(k): v for k, v in values.items()}
        return ids

    def tz(self) -> ZoneInfo | datetime.timezone:  # datetime.: the field ``timezone`` shadows the class here
        return timezone.utc if self.timezone.upper() == "UTC" else mapping.source_timezone(self.timezone)


def load_source(work_dir: Path) -> V8Source:
    return V8Source.model_validate_json((work_dir / "source.json").read_text())


def load_plan(work_dir: Path) -> Plan:
    return Plan(**json.loads((work_dir / "plan.json").read_text()))


def s3_source(v8_storage: str, endpoint: str | None, region: str | None) -> StorageLocation | None:
    """How to reach an ``s3://`` v8 upload folder: endpoint and region given, credentials from the AWS
    environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile), never from flow parameters."""
    if not v8_storage.startswith("s3://"):
        return None
    return StorageLocation(name="v8", driver="s3", root="", endpoint=endpoint, region=region, force_path_style=True)


def originals_location(v8_storage: str, like: StorageLocation | None = None) -> StorageLocation:
    return StorageLocation.from_url("v8-originals", f"{v8_storage.rstrip('/')}/originals", like=like)


def prepare(v8_url: str, v8_storage: str, project_dir: str, work_dir: Path, target: TargetWriter,
            skip: list[str] | None = None, v8_timezone: str = "UTC", storage_like: StorageLocation | None = None,
            accept_license_limits: bool = False) -> Plan:
    """Check everything, write nothing to the target: the v8 database (reachable, v8-shaped), its upload folder
    (``originals/`` with every file), the target (bootstrapped Directus 10, 11 or 12: database mode on PostgreSQL,
    MySQL/MariaDB or SQLite; no conflicting collections; on 12.x within its license, see ``entitlements``). Then
    write source.json, plan.json and id-map.json into ``work_dir``. ``project_dir``: the target's project
    (database mode), or in api mode only where the work files go (the target's files may be on another machine)."""
    checked = check_source(v8_url, v8_storage, skip, v8_timezone, storage_like)
    info = target.inspect(checked.collections, checked.probes)
    license = target.license()
    plan = Plan(v8_database=checked.settings.describe(), v8_storage=v8_storage,
                project_dir=str(Path(project_dir).expanduser().resolve()), directus_version=info.directus_version,
                storage=info.storage, admin_role=info.admin_role, users_by_email=info.users_by_email,
                skip=checked.skip, timezone=v8_timezone, resuming=info.resuming, ids={},
                collections=checked.collections, policies=info.policies, target_url=target.url)
    return write_plan(work_dir, checked, plan, info.public_policy, license, info.existing, accept_license_limits)


@dataclass
class CheckedSource:
    """The v8 side, read and checked (``check_source``)."""

    settings: DatabaseSettings
    source: V8Source
    skip: list[str]
    collections: list[str]  # the target collections the migration makes
    namespace: uuid.UUID
    probes: list[tuple[str, str]]  # (system table, uuid) pairs only an earlier run of this migration wrote


def check_source(v8_url: str, v8_storage: str, skip: list[str] | None = None, v8_timezone: str = "UTC",
                 storage_like: StorageLocation | None = None) -> CheckedSource:
    """The v8 database (reachable, v8-shaped), its upload folder (``originals/`` with every file) and the
    options; what both modes check before looking at the target."""
    if v8_timezone.upper() != "UTC":
        mapping.source_timezone(v8_timezone)
    settings = v8_settings(v8_url)
    try:
        source = read_v8(settings)
    except DatabaseUnreachable as exc:
        raise DatabaseUnreachable(str(exc).replace("check the DB_* settings", "check --v8-database")) from None
    skip = sorted(set(skip or []))
    unknown = [s for s in skip if s not in {c.name for c in source.collections}]
    if unknown:
        raise ConfigError(f"--skip-collections names {', '.join(unknown)}, which the v8 database does not have; "
                          f"its collections are {', '.join(c.name for c in source.collections)}")
    check_storage(source, v8_storage, like=storage_like).require_complete()
    collections = [p.name for p in mapping.plan_schema(source, set(skip)).collections]  # + languages, if made
    namespace = mapping.project_namespace(source)
    probe_ids = mapping.build_id_map(source, "", {}, namespace)
    probes = [(t, v) for t in ("directus_roles", "directus_folders", "directus_files")
              for k, v in probe_ids.ids.get(t, {}).items() if v and not (t == "directus_roles" and k <= 2)]
    probes += [("directus_users", v) for k, v in probe_ids.ids.get("directus_users", {}).items() if v]
    return CheckedSource(settings, source, skip, collections, namespace, probes)


def write_plan(work_dir: Path, checked: CheckedSource, plan: Plan, public_policy: str | None = None,
               license: entitlements.License | None = None, existing: list[str] | None = None,
               accept_license_limits: bool = False) -> Plan:
    """The id map (the admin role and existing users from ``plan``; on 11.x+ the policies, ``public_policy`` the
    target's own) into ``plan``; the migration checked against the target's ``license`` (12.x; ``existing``: the
    plan's collections the target has already); then source.json, plan.json and id-map.json into ``work_dir``."""
    ids = mapping.build_id_map(checked.source, plan.admin_role, plan.users_by_email, checked.namespace)
    if plan.policies:
        assert public_policy is not None  # inspect_target found it
        mapping.assign_policies(ids, checked.source, public_policy)
    if license is not None:
        found = check_license(license, checked, plan, ids, existing or [], accept_license_limits)
        plan.license = found.to_json() if found else None
    plan.ids = ids.to_json()
    work_dir.mkdir(parents=True, exist_ok=True)
    source_json = checked.source.model_dump_json(exclude=SECRET_FIELDS)
    (work_dir / "source.json").write_text(source_json)
    (work_dir / "plan.json").write_text(json.dumps(asdict(plan), indent=1))
    (work_dir / "id-map.json").write_text(json.dumps(ids.to_json(), indent=1))
    return plan


def planned_permissions(source: V8Source, ids: mapping.IdMap, plan: Plan) -> tuple[list[dict[str, Any]], list[str]]:
    """The permission rows the target gets (on 11.x+ on policies) and the mapping's notes."""
    rows, notes = mapping.map_permissions(source, ids, mapping.plan_schema(source, set(plan.skip)))
    return (mapping.permissions_on_policies(rows, source, ids) if plan.policies else rows), notes


def check_license(license: entitlements.License, checked: CheckedSource, plan: Plan, ids: mapping.IdMap,
                  existing: list[str], accept: bool) -> entitlements.LicenseCheck | None:
    """What the migration adds that Directus 12's license counts (collections, seats of the users it creates,
    permissions with custom rules), checked against ``license`` (see ``entitlements``)."""
    source = checked.source
    users = mapping.map_users(source, ids, plan.users_by_email).rows
    roles, policies, access = mapping.map_roles_v11(source, ids)
    granting = {p["id"] for p in policies if p["app_access"] or p["admin_access"]}
    seat_roles = {plan.admin_role} | {a["role"] for a in access if a["policy"] in granting}
    names: dict[str | None, str] = {r["id"]: r["name"] for r in roles} | {p["id"]: p["name"] for p in policies}
    permissions, _ = planned_permissions(source, ids, plan)
    return entitlements.check(
        license, new_collections=[c for c in checked.collections if c not in existing],
        new_seat_users=[u["email"] for u in users if u["status"] == "active" and u["role"] in seat_roles],
        permissions=permissions, role_names=names, mode="api" if plan.target_url else "database", accept=accept,
        where=plan.target_url or "the target")


def open_target(plan: Plan, token: str | None = None, limit: int | None = None) -> TargetWriter:
    """The writer of the target ``plan`` was made for: its REST API when it has an address (``token``: an admin's,
    else DIRECTUS_OPS_TOKEN's; ``limit``: its MAX_PAYLOAD_SIZE in bytes), else its project's database and storage."""
    if plan.target_url:
        return ApiTarget(plan.target_url, admin_token(token), limit or payload_limit(DEFAULT_MAX_PAYLOAD))
    return DatabaseTarget(load_project(plan.project_dir))


def write_people(work_dir: Path, target: TargetWriter, temporary_password: str | None = None) -> dict[str, Any]:
    """Roles (on 11.x+ with their policies and access rows), users and folders (parents first)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    ids = plan.id_map()
    users = mapping.map_users(source, ids, plan.users_by_email, target.user_password(temporary_password))
    roles: dict[str, Any] = {}
    if plan.policies:
        role_rows, policy_rows, access_rows = mapping.map_roles_v11(source, ids)
        roles["roles"] = target.write_rows("directus_roles", role_rows)
        faults.checkpoint("v8-roles-written")  # roles without their policies yet: what a re-run must complete
        roles["policies"] = target.write_rows("directus_policies", policy_rows)
        roles["access"] = target.write_rows("directus_access", access_rows)
    else:
        roles["roles"] = target.write_rows("directus_roles", mapping.map_roles(source, ids))
    return {
        **roles,
        "users": target.write_rows("directus_users", users.rows),
        "folders": target.write_rows("directus_folders", mapping.map_folders(source, ids)),
        "users_merged": users.merged, "users_needing_password": users.needing_password,
    }


def write_files(work_dir: Path, target: TargetWriter, storage_like: StorageLocation | None = None) -> dict[str, Any]:
    """Every file row and its bytes (database mode: into the target's first storage location)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    ids = plan.id_map()
    rows = mapping.map_files(source, ids, plan.storage)
    return target.write_files(source, ids, rows, originals_location(plan.v8_storage, storage_like), plan.storage)


def write_schema(work_dir: Path, target: TargetWriter) -> dict[str, Any]:
    source, plan = load_source(work_dir), load_plan(work_dir)
    schema = mapping.plan_schema(source, set(plan.skip))
    counts = target.create_schema(schema)
    return {**counts, "unmapped": schema.unmapped, "notes": schema.notes}


def write_items(work_dir: Path, target: TargetWriter, v8_url: str) -> dict[str, Any]:
    """Every row of every collection; then what waits for the rows (``TargetWriter.after_items``: the foreign
    keys, after the rows: a cycle is only an order)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    schema = mapping.plan_schema(source, set(plan.skip))
    unmapped: list[str] = []
    stats = target.write_items(v8_settings(v8_url), schema, plan.id_map(), plan.tz(), unmapped)
    after = target.after_items(schema)
    return {"collections": {name: {"read": s.read, "written": s.written, "references": s.references,
                                   "dangling": len(s.dangling)} for name, s in stats.items()},
            "dangling": [asdict(d) for s in stats.values() for d in s.dangling],
            **after, "unmapped": unmapped}


def write_permissions(work_dir: Path, target: TargetWriter) -> dict[str, Any]:
    """Every permission row. On a 12.x target whose license lacks custom permission rules (accepted in
    ``prepare``) those needing one are written where the target takes them (database mode: Directus ignores
    them until a license includes the rules; counted as ``inactive``), else left out (api mode: Directus
    refuses them; listed as ``left_out``)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    rows, notes = planned_permissions(source, plan.id_map(), plan)
    unlicensed = bool(plan.license and not plan.license["custom_rules_entitled"])
    left_out: list[dict[str, Any]] = []
    if unlicensed and not target.writes_unlicensed_rules:
        left_out = [r for r in rows if entitlements.has_custom_rule(r)]
        rows = [r for r in rows if not entitlements.has_custom_rule(r)]
    written = target.write_permissions(rows, "policy" if plan.policies else "role")
    result: dict[str, Any] = {"written": written, "planned": len(rows) + len(left_out), "notes": notes}
    if unlicensed and target.writes_unlicensed_rules:
        result["inactive"] = sum(1 for r in rows if entitlements.has_custom_rule(r))
    if left_out:
        names = {r.id: r.name for r in source.roles}
        owner = {plan.id_map().get("directus_policies", i): n for i, n in names.items()}
        result["left_out"] = [f"{owner.get(r.get('policy'), 'Public')}: {r['collection']} {r['action']}"
                              for r in left_out]
    return result


def write_comments(work_dir: Path, target: TargetWriter) -> dict[str, Any]:
    """v8's comments on the migrated items (after them), where the target keeps comments."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    rows, notes = mapping.map_comments(source, plan.id_map(), set(plan.collections))
    written, table = target.write_comments(rows)
    return {"written": written, "planned": len(rows), "into": table, "notes": notes}


def finish(work_dir: Path, target: TargetWriter) -> dict[str, Any]:
    """The last step's report entries: database mode resets each auto-increment counter past the ids written
    (``sequences``); api mode writes nothing and lists what it cannot keep (``not_kept``)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    return target.finish(mapping.plan_schema(source, set(plan.skip)))


__all__ = ["CheckedSource", "Plan", "check_license", "check_source", "finish", "load_plan", "load_source",
           "open_target", "originals_location", "planned_permissions", "prepare", "s3_source", "write_comments",
           "write_files", "write_items", "write_people", "write_permissions", "write_plan", "write_schema"]

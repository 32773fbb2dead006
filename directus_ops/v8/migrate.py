"""The steps of the database-mode v8 migration, as plain functions over a work directory.

Steps hand each other paths, not values: ``source.json`` (the v8 model, without secrets), ``plan.json``
(target facts, options and the id map) in the work directory; the id map is also written as ``id-map.json``
next to the report. Every step after ``prepare`` is idempotent (see ``target.py``), so a stopped run is simply
run again.
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
from ..project import Project, load_project
from ..storage import StorageLocation
from . import entitlements, mapping, target
from .source import V8Source, check_storage, read_v8, v8_settings

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


def prepare(v8_url: str, v8_storage: str, project_dir: str, work_dir: Path, skip: list[str] | None = None,
            v8_timezone: str = "UTC", storage_like: StorageLocation | None = None,
            accept_license_limits: bool = False) -> Plan:
    """Check everything, write nothing to the target: the v8 database (reachable, v8-shaped), its upload folder
    (``originals/`` with every file), the target (bootstrapped Directus 10, 11 or 12 on PostgreSQL,
    MySQL/MariaDB or SQLite, no conflicting tables; on 12.x within its license, see ``entitlements``). Then write
    source.json, plan.json and id-map.json into ``work_dir``."""
    project = load_project(project_dir)
    checked = check_source(v8_url, v8_storage, skip, v8_timezone, storage_like)
    info = target.inspect_target(project, checked.collections, checked.probes)
    plan = Plan(v8_database=checked.settings.describe(), v8_storage=v8_storage, project_dir=str(project.root),
                directus_version=info.directus_version, storage=info.storage, admin_role=info.admin_role,
                users_by_email=info.users_by_email, skip=checked.skip, timezone=v8_timezone, resuming=info.resuming,
                ids={}, collections=checked.collections, policies=info.policies)
    license = target.target_license(project)
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


def _project(plan: Plan) -> Project:
    return load_project(plan.project_dir)


def write_people(work_dir: Path, password_hash: str | None = None) -> dict[str, Any]:
    """Roles (on 11.x with their policies and access rows), users and folders (parents first)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    ids, settings = plan.id_map(), _project(plan).database
    users = mapping.map_users(source, ids, plan.users_by_email, password_hash)
    roles: dict[str, Any] = {}
    if plan.policies:
        role_rows, policy_rows, access_rows = mapping.map_roles_v11(source, ids)
        roles["roles"] = target.write_system_rows(settings, "directus_roles", role_rows)
        faults.checkpoint("v8-roles-written")  # roles without their policies yet: what a re-run must complete
        roles["policies"] = target.write_system_rows(settings, "directus_policies", policy_rows)
        roles["access"] = target.write_system_rows(settings, "directus_access", access_rows)
    else:
        roles["roles"] = target.write_system_rows(settings, "directus_roles", mapping.map_roles(source, ids))
    return {
        **roles,
        "users": target.write_system_rows(settings, "directus_users", users.rows),
        "folders": target.write_system_rows(settings, "directus_folders", mapping.map_folders(source, ids)),
        "users_merged": users.merged, "users_needing_password": users.needing_password,
    }


def write_files(work_dir: Path, storage_like: StorageLocation | None = None) -> dict[str, Any]:
    """Every file row, then its bytes into the target's first storage location."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    project = _project(plan)
    rows = mapping.map_files(source, plan.id_map(), plan.storage)
    written = target.write_system_rows(project.database, "directus_files", rows)
    pairs = [(f.filename_disk, row["filename_disk"]) for f, row in zip(source.files, rows)]
    copy = target.copy_files(source, originals_location(plan.v8_storage, storage_like), project.location(plan.storage), pairs)
    return {"rows": written, "copied": copy.copied, "already_there": copy.skipped, "bytes": copy.bytes,
            "checksum_mismatch": copy.checksum_mismatch}


def write_schema(work_dir: Path) -> dict[str, Any]:
    source, plan = load_source(work_dir), load_plan(work_dir)
    schema = mapping.plan_schema(source, set(plan.skip))
    counts = target.create_schema(_project(plan).database, schema)
    return {**counts, "unmapped": schema.unmapped, "notes": schema.notes}


def write_items(work_dir: Path, v8_url: str) -> dict[str, Any]:
    """Every row of every collection; then the foreign keys (after the rows: a cycle is only an order; SQLite's
    came with the tables)."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    schema = mapping.plan_schema(source, set(plan.skip))
    unmapped: list[str] = []
    settings = _project(plan).database
    stats = target.write_items(v8_settings(v8_url), settings, schema, plan.id_map(), plan.tz(), unmapped)
    foreign_keys = target.add_foreign_keys(settings, schema)
    return {"collections": {name: {"read": s.read, "written": s.written, "references": s.references,
                                   "dangling": len(s.dangling)} for name, s in stats.items()},
            "dangling": [asdict(d) for s in stats.values() for d in s.dangling],
            "foreign_keys": foreign_keys, "unmapped": unmapped}


def write_permissions(work_dir: Path) -> dict[str, Any]:
    """Every permission row; on a 12.x target whose license lacks custom permission rules (accepted in
    ``prepare``) those rows are written too: Directus ignores them until a license includes the rules."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    rows, notes = planned_permissions(source, plan.id_map(), plan)
    result: dict[str, Any] = {"written": target.write_permissions(_project(plan).database, rows),
                              "planned": len(rows), "notes": notes}
    if plan.license and not plan.license["custom_rules_entitled"]:
        result["inactive"] = sum(1 for r in rows if entitlements.has_custom_rule(r))
    return result


def write_comments(work_dir: Path) -> dict[str, Any]:
    """v8's comments on the migrated items (after them), where the target keeps comments."""
    source, plan = load_source(work_dir), load_plan(work_dir)
    rows, notes = mapping.map_comments(source, plan.id_map(), set(plan.collections))
    written, table = target.write_comments(_project(plan).database, rows)
    return {"written": written, "planned": len(rows), "into": table, "notes": notes}


def reset_sequences(work_dir: Path) -> int:
    source, plan = load_source(work_dir), load_plan(work_dir)
    return target.reset_sequences(_project(plan).database, mapping.plan_schema(source, set(plan.skip)))


def hash_password(project_dir: str, password: str) -> str:
    """An argon2 hash of ``password``, made by the target's own ``argon2`` package (what Directus verifies with)."""
    from .. import node as node_runtime
    from .. import process
    from ..redact import register_secret

    register_secret(password)
    script = "require('argon2').hash(process.env.DIRECTUS_OPS_TEMP_PASSWORD).then(h => process.stdout.write(h))"
    output = process.run([node_runtime.for_project(project_dir).node, "-e", script], cwd=project_dir,
                         env={"DIRECTUS_OPS_TEMP_PASSWORD": password}, timeout=60, quiet=True)
    hashed = output.strip().splitlines()[-1] if output.strip() else ""
    if not hashed.startswith("$argon2"):
        raise ConfigError(f"cannot hash the temporary password with {project_dir}/node_modules/argon2; check that "
                          "Directus is installed there")
    return hashed


__all__ = ["CheckedSource", "Plan", "check_license", "check_source", "hash_password", "planned_permissions", "load_plan", "load_source", "originals_location", "prepare", "reset_sequences",
           "s3_source", "write_comments", "write_files", "write_plan", "write_items", "write_people", "write_permissions", "write_schema"]

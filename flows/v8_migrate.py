"""v8_migrate: a Directus v8 project (its MySQL/MariaDB database and upload folder) into a bootstrapped
Directus 10, 11 or 12 project: check (12.x: against its license) → read → roles (11.x+: with policies and access
rows)/users/folders → files (rows and bytes) → schema → items (then foreign keys) → permissions (11.x+: on
policies) → comments → finish (database mode: sequences) → report. One list of steps for both modes, each writing
through the target's writer: database mode into its database (PostgreSQL, MySQL/MariaDB or SQLite), api mode
(only HTTP reaches the target) through its REST API, the report and id map in the local project_dir.
Idempotent: run it again to resume or to confirm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from directus_ops.errors import ConfigError
from directus_ops.redact import redact
from directus_ops.results import V8MigrateResult
from directus_ops.v8 import api_target, migrate
from tasks.v8 import (TargetAccess, comments_task, files_task, finish_task, items_task, people_task, permissions_task,
                      prepare_task, schema_task)

from . import parameters as p
from .exclusive import exclusive
from .report import artifact_key, human_bytes, publish
from directus_ops.database_password import with_password

NOTES_SHOWN = 200  # report lines per list (the JSON report next to the id map has them all)


@flow(name="v8_migrate", description="Migrate a Directus v8 project into a Directus 10, 11 or 12 project (database or api mode).")
@exclusive("v8-migrate")
def v8_migrate(
    v8_database_url: p.V8DatabaseUrl,
    v8_storage: p.V8Storage,
    project_dir: p.V8TargetDir,
    mode: p.V8Mode = "database",
    skip_collections: p.SkipCollections = None,
    dry_run: p.V8DryRun = False,
    temporary_password_env: p.TemporaryPasswordEnv = None,
    v8_timezone: p.V8Timezone = "UTC",
    work_dir: p.WorkDir = None,
    v8_storage_endpoint: p.V8StorageEndpoint = None,
    v8_storage_region: p.V8StorageRegion = None,
    url: p.V8TargetUrl = None,
    token_secret_block: p.TokenSecretBlock = None,
    max_payload_size: p.MaxPayloadSize = api_target.DEFAULT_MAX_PAYLOAD,
    accept_license_limits: p.AcceptLicenseLimits = False,
) -> V8MigrateResult:
    """``url``, ``token_secret_block`` and ``max_payload_size`` are api mode's: the target's address, the name of
    a Prefect Secret block holding an admin token (else DIRECTUS_OPS_TOKEN on the worker; the token is never a
    parameter), and the target's MAX_PAYLOAD_SIZE. In api mode ``project_dir`` is a local directory for the
    work files, report and id map (created if missing), not the target's project. ``accept_license_limits``: on a
    Directus 12 target whose license lacks custom permission rules, migrate anyway (directus_ops.v8.entitlements)."""
    logger = get_run_logger()
    started = time.monotonic()
    if mode not in ("database", "api"):
        raise ConfigError(f"--mode {mode}: use --mode database (writes into the target database) or --mode api "
                          "(writes through the target's REST API)")
    if mode == "database" and (url or token_secret_block):
        raise ConfigError("--url and --token-secret-block are for --mode api; add --mode api or leave them out")
    if mode == "api" and not url:
        raise ConfigError("--mode api needs --url, the target Directus's address (e.g. https://cms.example.com)")
    if temporary_password_env and not os.environ.get(temporary_password_env):  # read again by the people step
        raise ConfigError(f"--temporary-password-env {temporary_password_env}: that environment variable is not "
                          "set or empty; export it with the temporary password")
    limit = api_target.payload_limit(max_payload_size)
    v8_url = with_password(v8_database_url) or v8_database_url
    work = Path(work_dir or Path(project_dir) / "v8-migration")
    like = migrate.s3_source(v8_storage, v8_storage_endpoint, v8_storage_region)
    access = TargetAccess(mode, url, token_secret_block, limit)
    plan = prepare_task(v8_url, v8_storage, project_dir, str(work), access, skip_collections or [], v8_timezone, like,
                        accept_license_limits)
    report: dict[str, Any] = {"v8_database": plan.v8_database, "target": plan.target_url or plan.project_dir,
                              "mode": mode, "directus": plan.directus_version, "resumed": plan.resuming,
                              "dry_run": dry_run, "id_map": str(work / "id-map.json"), "license": plan.license}
    if dry_run:
        report["collections"] = plan.collections
        logger.info("dry run: checks passed, nothing written; plan in %s", work)
        return V8MigrateResult(**report)
    report["people"] = people_task(str(work), access, temporary_password_env)
    report["files"] = files_task(str(work), access, like)
    report["schema"] = schema_task(str(work), access)
    report["items"] = items_task(str(work), access, v8_url)
    if "relations" in report["items"]:  # api mode makes the relations after the rows
        report["schema"]["relations"] = report["items"]["relations"]
    report["permissions"] = permissions_task(str(work), access)
    report["comments"] = comments_task(str(work), access)
    report.update(finish_task(str(work), access))  # database mode: "sequences"; api mode: "not_kept"
    report["seconds"] = round(time.monotonic() - started, 1)
    (work / "report.json").write_text(redact(json.dumps(report, indent=1, default=str)))
    _publish(report, work)
    logger.info("v8 migration into %s done in %.1f s", report["target"], report["seconds"])
    return V8MigrateResult(**report)


def _license_line(found: dict[str, Any]) -> str:
    """The target's tier and what the migration uses of it (entitlements.LicenseCheck)."""
    if not found["checked"]:
        return f"{found['name']} ({found['source']}): entitlements known once Directus activates it; not checked"
    def use(counts: list[int]) -> str:
        return f"{counts[0]} + {counts[1]} of {'no limit' if counts[2] == -1 else counts[2]}"
    rules = "included" if found["custom_rules_entitled"] else "not included"
    return (f"{found['name']} ({found['source']}): seats {use(found['seats'])}, collections "
            f"{use(found['collections'])}, custom permission rules {rules} ({found['custom_rules']} needed)")


def _publish(report: dict[str, Any], work: Path) -> None:
    items, people, files, schema = report["items"], report["people"], report["files"], report["schema"]
    rows: list[tuple[str, object]] = [
        ("Source", report["v8_database"]), ("Target", f"{report['target']} (Directus {report['directus']})"),
        ("Resumed an earlier run", "yes" if report["resumed"] else "no"),
        ("Roles / users / folders written", f"{people['roles']} / {people['users']} / {people['folders']}"),
        *([("Policies / access rows written (Directus 11+)", f"{people['policies']} / {people['access']}")]
          if "policies" in people else []),
        *([("License (Directus 12)", _license_line(report["license"]))] if report.get("license") else []),
        ("Files", f"{files['rows']} rows, {files['copied']} copied ({human_bytes(files['bytes'])}), "
                  f"{files['already_there']} already there"),
        ("Schema", f"{schema['tables']} tables, {schema['fields']} fields, {schema['relations']} relations, "
                   f"{schema.get('foreign_keys', 0) + items['foreign_keys']} foreign keys"),  # SQLite: with the tables
        ("Permissions", f"{report['permissions']['written']} written of {report['permissions']['planned']}"),
        ("Comments", f"{report['comments']['written']} written of {report['comments']['planned']} "
                     f"(into {report['comments']['into']})"),
        ("Id map", report["id_map"]), ("Full report", str(work / "report.json")),
        ("Duration", f"{report['seconds']} s"),
    ]
    for name, stat in items["collections"].items():
        rows.append((f"`{name}`", f"read {stat['read']}, written {stat['written']}, references {stat['references']}, "
                                  f"dangling {stat['dangling']}"))
    notes = [f"dangling reference (set to NULL): {d['collection']} {d['key']}.{d['field']} = {d['value']} "
             f"({d['target']} has no such row)" for d in items["dangling"]][:NOTES_SHOWN]
    notes += [f"users needing a password: {', '.join(people['users_needing_password'])}"] \
        if people["users_needing_password"] else []
    notes += [f"v8 users that were already in the target (kept as they are): {', '.join(people['users_merged'])}"] \
        if people["users_merged"] else []
    notes += [f"unmapped: {u}" for u in (schema["unmapped"] + items["unmapped"])[:NOTES_SHOWN]]
    notes += [f"note: {n}" for n in (schema["notes"] + report["permissions"]["notes"]
                                     + report["comments"]["notes"])[:NOTES_SHOWN]]
    notes += [f"v8 checksum did not match its original (copied as it is): {n}" for n in files["checksum_mismatch"]]
    notes += [f"not kept by api mode: {n}" for n in report.get("not_kept", [])]
    permissions = report["permissions"]
    if permissions.get("inactive"):
        notes.append(f"{permissions['inactive']} permissions need custom permission rules, which the target's license "
                     "does not include: written, ignored by Directus until a license includes them")
    notes += [f"left out (the target's license has no custom permission rules): {n}"
              for n in permissions.get("left_out", [])[:NOTES_SHOWN]]
    key = artifact_key("v8-migrate", Path(report["target"]).name)  # api mode: host and port
    publish(key, f"v8 migration into {report['target']}", rows, notes)
    create_link_artifact(key=artifact_key("v8-id-map", Path(report["target"]).name), link=f"file://{report['id_map']}",
                         description="v8 id → v9 UUID map (JSON)")

"""v8_migrate: a Directus v8 project (its MySQL/MariaDB database and upload folder) into a bootstrapped
Directus 10 project on PostgreSQL, in database mode: check → read → roles/users/folders → files (rows and
bytes) → schema → items → permissions → sequences → report. Idempotent: run it again to resume or to confirm."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact

from directus_ops import project_lock
from directus_ops.errors import ConfigError
from directus_ops.redact import redact
from directus_ops.v8 import migrate
from tasks.v8 import (files_task, items_task, people_task, permissions_task, prepare_task, schema_task,
                      sequences_task)

from . import parameters as p
from .report import artifact_key, human_bytes, publish
from .restore import with_password

NOTES_SHOWN = 200  # report lines per list (the JSON report next to the id map has them all)


@flow(name="v8_migrate", description="Migrate a Directus v8 project into a Directus 10 project (database mode).")
@project_lock.exclusive("v8-migrate")
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
) -> dict[str, Any]:
    logger = get_run_logger()
    started = time.monotonic()
    if mode != "database":
        raise ConfigError(f"--mode {mode} is not available yet; use --mode database (writes into the target database)")
    password = None
    if temporary_password_env:
        password = os.environ.get(temporary_password_env)
        if not password:
            raise ConfigError(f"--temporary-password-env {temporary_password_env}: that environment variable is not "
                              "set or empty; export it with the temporary password")
    v8_url = with_password(v8_database_url) or v8_database_url
    work = Path(work_dir or Path(project_dir) / "v8-migration")
    like = migrate.s3_source(v8_storage, v8_storage_endpoint, v8_storage_region)
    plan = prepare_task(v8_url, v8_storage, project_dir, str(work), skip_collections or [], v8_timezone, like)
    report: dict[str, Any] = {"v8_database": plan.v8_database, "target": plan.project_dir,
                              "directus": plan.directus_version, "resumed": plan.resuming, "dry_run": dry_run,
                              "id_map": str(work / "id-map.json")}
    if dry_run:
        report["collections"] = plan.collections
        logger.info("dry run: checks passed, nothing written; plan in %s", work)
        return report
    password_hash = migrate.hash_password(plan.project_dir, password) if password else None
    report["people"] = people_task(str(work), password_hash)
    report["files"] = files_task(str(work), like)
    report["schema"] = schema_task(str(work))
    report["items"] = items_task(str(work), v8_url)
    report["permissions"] = permissions_task(str(work))
    report["sequences"] = sequences_task(str(work))
    report["seconds"] = round(time.monotonic() - started, 1)
    (work / "report.json").write_text(redact(json.dumps(report, indent=1, default=str)))
    _publish(report, work)
    logger.info("v8 migration into %s done in %.1f s", plan.project_dir, report["seconds"])
    return report


def _publish(report: dict[str, Any], work: Path) -> None:
    items, people, files, schema = report["items"], report["people"], report["files"], report["schema"]
    rows: list[tuple[str, object]] = [
        ("Source", report["v8_database"]), ("Target", f"{report['target']} (Directus {report['directus']})"),
        ("Resumed an earlier run", "yes" if report["resumed"] else "no"),
        ("Roles / users / folders written", f"{people['roles']} / {people['users']} / {people['folders']}"),
        ("Files", f"{files['rows']} rows, {files['copied']} copied ({human_bytes(files['bytes'])}), "
                  f"{files['already_there']} already there"),
        ("Schema", f"{schema['tables']} tables, {schema['fields']} fields, {schema['relations']} relations, "
                   f"{items['foreign_keys']} foreign keys"),
        ("Permissions", f"{report['permissions']['written']} written of {report['permissions']['planned']}"),
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
    notes += [f"note: {n}" for n in (schema["notes"] + report["permissions"]["notes"])[:NOTES_SHOWN]]
    notes += [f"v8 checksum did not match its original (copied as it is): {n}" for n in files["checksum_mismatch"]]
    key = artifact_key("v8-migrate", Path(report["target"]).name)
    publish(key, f"v8 migration into {report['target']}", rows, notes)
    create_link_artifact(key=artifact_key("v8-id-map", Path(report["target"]).name), link=f"file://{report['id_map']}",
                         description="v8 id → v9 UUID map (JSON)")

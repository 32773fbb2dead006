"""Directus 12's licensing (directus_ops/licensing.py): each fact the notices state is read back from the installed
directus 12.4.0 package, so a release that changes one fails here; the notices for real projects: an upgrade
from 11.17.4 to 12.4.0 is refused without --yes (nothing changed) and states the project's standing against the
Core limits; delete, move and restore name an activated license key. No test contacts the licensing service:
a key is only written into a database, never started with."""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import ADMIN_EMAIL, DIRECTUS_11, directus_install, make_project, write_env

from directus_ops import licensing
from directus_ops.database import open_engine
from directus_ops.project import load_project

CLI = [sys.executable, "-m", "directus_ops.cli"]
LICENSED = "12.4.0"
A_KEY = "DABCD-EFGHJ-KMNPQ-RSTVW-XYZ0C"  # the key format; never sent anywhere here


# -- the facts, read from the package --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def package() -> Path:
    return directus_install(LICENSED) / "node_modules"


def text(package: Path, relative: str) -> str:
    return (package / relative).read_text(encoding="utf-8")


def product(expression: str) -> float:
    """A constant the bundle writes as a product (``720 * 60 * 60 * 1e3``)."""
    value = 1.0
    for factor in expression.split("*"):
        value *= float(factor.strip())
    return value


def test_the_package_is_the_licensed_line(package):
    version = json.loads(text(package, "directus/package.json"))["version"]
    assert licensing.crosses_into_licensing("11.17.4", version)
    assert text(package, "directus/license").startswith("# Monospace Sustainable Core License")
    assert not licensing.crosses_into_licensing("11.17.4", "11.99.0")
    assert not licensing.crosses_into_licensing("12.0.0", version)
    assert licensing.crosses_into_licensing("10.13.4", "12.0.0")


def test_core_limits_and_history_are_the_core_license(package):
    bundle = text(package, "@directus/license/dist/index.mjs")
    core = bundle[bundle.index("const CORE_LICENSE"):]
    core = core[: core.index("};") + 2]
    for name, limit in licensing.CORE_LIMITS.items():
        assert re.search(rf"\b{name}: {{ limit: {limit} }}", core), name
    for name in ("activity_historical_timeframe", "revision_historical_timeframe"):
        seconds = re.search(rf"{name}: {{ limit: ([0-9 *]+) }}", core).group(1)
        assert product(seconds) == licensing.HISTORY_DAYS * 86400, name
    for name in ("sso_enabled", "custom_permission_rules_enabled", "custom_llms_enabled"):
        assert re.search(rf"{name}: {{ default: false }}", core), name  # what Core turns off
    assert re.search(r"telemetry_required: { default: true }", core)
    assert f'"{licensing.LICENSING_SERVICE}"' in bundle


def test_grace_is_thirty_days_after_the_v12_migration_and_none_for_a_fresh_install(package):
    grace = text(package, "@directus/api/dist/license/utils/get-core-grace-expires-at.js")
    assert f'V12_MIGRATION_VERSION = "{licensing.V12_MIGRATION}"' in grace
    assert product(re.search(r"GRACE_PERIOD_MS = ([0-9e *]+);", grace).group(1)) == licensing.GRACE_DAYS * 86400e3
    assert product(re.search(r"CLEAN_INSTALL_MS = ([0-9e *]+);", grace).group(1)) == licensing.FRESH_INSTALL_HOURS * 3600e3
    status = text(package, "@directus/api/dist/license/utils/compute-license-status.js")
    assert 'if (isWithinLimits === false && isWithinCoreGracePeriod) return "grace";' in status
    assert 'if (isWithinLimits === false) return "locked";' in status


def test_the_license_lives_in_the_settings_and_the_environment(package):
    migration = text(package, f"@directus/api/dist/database/migrations/{licensing.V12_MIGRATION}-add-licensing.js")
    assert 'alterTable("directus_settings"' in migration
    for column in licensing.SETTINGS_COLUMNS:
        assert f'"{column}"' in migration
    manager = text(package, "@directus/api/dist/license/manager.js")
    assert f'env["{licensing.KEY_VARIABLE}"]' in manager and f'env["{licensing.TOKEN_VARIABLE}"]' in manager
    # The key binds to the project id and PUBLIC_URL, and deactivating frees it (DELETE /license).
    assert re.search(r"activateKey\(\{\s*license_key: key,\s*project_id,\s*public_url: env\[\"PUBLIC_URL\"\]", manager)
    assert "deactivateKey({" in manager
    controller = text(package, "@directus/api/dist/controllers/license.js")
    method, path = licensing.DEACTIVATE.split()
    assert re.search(rf'router\.{method.lower()}\("{path.removeprefix("/license") or "/"}", is_admin_default, '
                     r"async_handler_default\(async \(_req, _res, next\) => \{\s*await getLicenseManager\(\)\.deactivate\(\)",
                     controller)
    assert 'app.use("/license"' in text(package, "@directus/api/dist/app.js")


def test_what_a_lock_refuses(package):
    api = package / "@directus/api/dist"
    guarded = {p.stem for p in (api / "controllers").rglob("*.js") if "is-locked.js" in p.read_text(encoding="utf-8")}
    assert {"items", "files", "assets", "graphql", "flows"} <= guarded and (api / "controllers/mcp/index.js").read_text(
        encoding="utf-8").count("is_locked_default") >= 2
    assert "/mcp" in licensing.LOCKED_ENDPOINTS and "flow webhooks" in licensing.LOCKED_ENDPOINTS
    assert "isLocked()" in (api / "websocket/controllers/base.js").read_text(encoding="utf-8")
    login = (api / "services/authentication.js").read_text(encoding="utf-8")
    assert 'isLocked() && globalAccess.admin === false) throw new ResourceRestrictedError({ category: "login" })' in login


def test_what_core_takes_away_from_the_first_start(package):
    api = package / "@directus/api/dist"
    permissions = (api / "services/permissions.js").read_text(encoding="utf-8")
    read = permissions[permissions.index("async readByQuery"):]
    assert read.index('isEntitled("custom_permission_rules_enabled")') < read.index("hasCustomRule(p)")
    for service, entitlement in (("activity", "activity_historical_timeframe"),
                                 ("revisions", "revision_historical_timeframe")):
        assert f'"{entitlement}"' in (api / f"services/{service}.js").read_text(encoding="utf-8")
    assert 'isEntitled("custom_llms_enabled")' in (api / "services/settings.js").read_text(encoding="utf-8")
    assert 'isEntitled("telemetry_required")' in (api / "schedules/telemetry.js").read_text(encoding="utf-8")
    sso = (api / "license/entitlements/lib/sso-enabled.js").read_text(encoding="utf-8")
    assert "provider: { _neq: DEFAULT_AUTH_PROVIDER }" in sso
    assert f'DEFAULT_AUTH_PROVIDER = "{licensing.DEFAULT_PROVIDER}"' in (api / "constants.js").read_text(encoding="utf-8")


# -- the notices -------------------------------------------------------------------------------------------------------
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def test_upgrade_notice_per_standing():
    assert licensing.upgrade_notice("11.17.4", "11.17.5") is None
    assert licensing.upgrade_notice("12.0.0", "12.4.0") is None
    within = licensing.upgrade_notice("11.17.4", "12.4.0", licensing.CoreUsage(2, 10, 1, 0, 900.0), now=NOW)
    assert "runs on the Core tier" in within and "ignores custom permission rules" in within
    assert "older than 30 days" in within and "Studio users 2 of 3, collections 10 of 25, active flows 1 of 5" in within
    assert "not locked while it stays within them" in within and "30 days after" not in within
    over = licensing.upgrade_notice("11.17.4", "12.4.0", licensing.CoreUsage(4, 26, 6, 2, 900.0), now=NOW)
    assert ("4 Studio users (Core: 3), 26 collections (Core: 25), 6 active flows (Core: 5), 2 SSO users (Core: none)"
            in over)
    assert "runs as now for 30 days after the upgrade (until about 2026-12-26) and is then locked" in over
    assert "/items, /files, /assets, /graphql, /mcp, flow webhooks, WebSockets refused; only admins can log in" in over
    fresh = licensing.upgrade_notice("11.17.4", "12.4.0", licensing.CoreUsage(4, 0, 0, 0, 2.0), now=NOW)
    assert "installed less than 24 hours ago" in fresh and "from its first start" in fresh
    unknown = licensing.upgrade_notice("10.13.4", "12.4.0", None)
    assert "with more than 3 Studio users, 25 collections or 5 active flows, or any SSO user" in unknown
    keyed = licensing.upgrade_notice("11.17.4", "12.4.0", None, "LICENSE_KEY", "/")
    assert "the config sets LICENSE_KEY" in keyed and "PUBLIC_URL must be an absolute URL" in keyed
    for notice in (within, over, fresh, unknown, keyed):
        assert "\n" not in notice and licensing.DOCS in notice


def test_public_url_move_and_delete_notices():
    settings = licensing.ActivatedLicense("settings", "https://cms.example.com")
    assert licensing.public_url_notice(None, "https://a.example.com", "https://b.example.com") is None
    assert licensing.public_url_notice(settings, "https://cms.example.com/", "https://cms.example.com") is None
    moved = licensing.public_url_notice(settings, "https://cms.example.com", "http://127.0.0.1:8055")
    assert "bound to PUBLIC_URL https://cms.example.com" in moved and "runs at http://127.0.0.1:8055" in moved
    assert "until the stored license token expires, then drops to the Core tier" in moved
    assert "PUBLIC_URL https://cms.example.com, so the moved project revalidates" in licensing.move_notice(settings)
    deleted = licensing.delete_notice(settings)
    assert "deactivate it before deleting" in deleted and "DELETE /license" in deleted
    assert "while Directus still runs at https://cms.example.com" in deleted
    from_env = licensing.delete_notice(licensing.ActivatedLicense("LICENSE_KEY", "https://cms.example.com"))
    assert "remove LICENSE_KEY from the config, restart Directus, then" in from_env
    assert licensing.delete_notice(None) is None and licensing.move_notice(None) is None


# -- real projects ---------------------------------------------------------------------------------------------------
def run_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)


def sql(project_dir: Path, statement: str, **values: object) -> None:
    engine = open_engine(load_project(project_dir).database)
    with engine.begin() as conn:
        conn.execute(sa.text(statement), values)
    engine.dispose()


def add_users(project_dir: Path, count: int, provider: str = "default") -> None:
    """Active users in the admin's role (app access through its policy): Studio seats."""
    engine = open_engine(load_project(project_dir).database)
    with engine.begin() as conn:
        role = conn.execute(sa.text("SELECT role FROM directus_users WHERE email = :e"), {"e": ADMIN_EMAIL}).scalar()
        for _ in range(count):
            conn.execute(sa.text("INSERT INTO directus_users (id, email, status, role, provider) "
                                 "VALUES (:id, :email, 'active', :role, :provider)"),
                         {"id": str(uuid.uuid4()), "email": f"u{secrets.token_hex(3)}@example.com", "role": role,
                          "provider": provider})
    engine.dispose()


def state(project_dir: Path) -> dict:
    return {"packages": {n: (project_dir / n).read_bytes() for n in ("package.json", "package-lock.json")},
            "migrations": load_project(project_dir).applied_migrations()}


@pytest.mark.directus
def test_upgrade_into_12_needs_yes_and_states_the_core_tier(tmp_path, databases, cli_env_no_server):
    made = make_project(tmp_path, directus_install(DIRECTUS_11), databases.create("pg"), with_extras=False)
    project, repo = made.dir, tmp_path / "repo"
    before = state(project)

    done = run_cli(cli_env_no_server, "upgrade", str(project), "--repo", str(repo), "--to", LICENSED,
                   "--install-node")
    assert done.returncode == 16, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("directus-ops: error: Directus 12.4.0 is licensed under the MSCL")
    assert "runs on the Core tier" in lines[0] and "ignores custom permission rules" in lines[0]
    assert "within the Core limits (Studio users 1 of 3, collections 0 of 25, active flows 0 of 5" in lines[0]
    assert lines[0].endswith("Re-run with --yes (a deployment: accept_license_change) to accept this")
    assert state(project) == before and not repo.exists()  # no backup started, nothing installed or migrated

    # Over the limits (seats, an SSO user), installed just now: no grace; 40 days old: 30 days of grace.
    add_users(project, 3)
    add_users(project, 1, provider="openid")
    sql(project, "INSERT INTO directus_collections (collection) VALUES ('ops_unregistered_folder')")  # a folder
    from directus_ops import upgrade
    from directus_ops.errors import NeedsConfirmation

    usage = licensing.core_usage(load_project(project).database)
    assert (usage.seats, usage.collections, usage.flows, usage.sso_users) == (5, 0, 0, 1)  # a folder is no collection
    plan = upgrade.plan_upgrade(str(project), LICENSED, install_node=True)
    assert "5 Studio users (Core: 3), 1 SSO user (Core: none)" in plan.license_notice
    assert "installed less than 24 hours ago" in plan.license_notice
    with pytest.raises(NeedsConfirmation):
        upgrade.confirm_license_change(plan, False)
    upgrade.confirm_license_change(plan, True)
    sql(project, "UPDATE directus_migrations SET timestamp = timestamp - INTERVAL '40 days'")
    plan = upgrade.plan_upgrade(str(project), LICENSED, install_node=True)
    assert "it runs as now for 30 days after the upgrade (until about" in plan.license_notice


@pytest.mark.directus
@pytest.mark.parametrize("engine", ["sqlite3", "mysql"])
def test_the_upgrade_flow_refuses_before_its_backup(engine, tmp_path, databases, prefect_server):
    from directus_ops.errors import NeedsConfirmation
    from flows.upgrade import upgrade_directus

    made = make_project(tmp_path, directus_install(DIRECTUS_11), databases.create(engine), with_extras=False)
    before = state(made.dir)
    usage = licensing.core_usage(load_project(made.dir).database)  # each engine's timestamps read right
    assert (usage.seats, usage.sso_users) == (1, 0) and 0 <= usage.installed_hours < 1, usage
    with pytest.raises(NeedsConfirmation, match="accept_license_change"):
        upgrade_directus(project_dir=str(made.dir), repo=str(tmp_path / "repo"), to=LICENSED,
                         install_node=True)
    assert state(made.dir) == before and not (tmp_path / "repo").exists()


@pytest.fixture(scope="module")
def licensed_source(tmp_path_factory):
    """A Directus 12.4.0 project (SQLite) whose settings hold an activated key, as the Studio leaves it."""
    from harness import Databases

    root = tmp_path_factory.mktemp("licensed")
    databases = Databases(root / "sqlite")
    made = make_project(root, directus_install(LICENSED), databases.create("sqlite3"), with_extras=False)
    sql(made.dir, "UPDATE directus_settings SET license_key = :key, license_token = 'header.payload.signature'",
        key=A_KEY)
    yield made
    databases.drop_all()


@pytest.mark.directus
def test_delete_plan_says_deactivate_first(licensed_source, tmp_path, cli_env):
    import shutil

    project = tmp_path / "shop"
    shutil.copytree(licensed_source.dir, project, symlinks=True)
    write_env(project / ".env", {**licensed_source.env, "DB_FILENAME": str(project / "data.db")})
    shutil.copyfile(licensed_source.database.filename, project / "data.db")
    done = run_cli(cli_env, "delete", str(project), "--dry-run", "--backup-database", "none")
    assert done.returncode == 0, done.stderr
    line = next(l for l in done.stdout.splitlines() if l.startswith("license: "))
    assert "activated Directus license (directus_settings.license_key): deactivate it before deleting" in line
    assert f"while Directus still runs at {licensing_url(licensed_source)}" in line and "DELETE /license" in line
    assert A_KEY not in done.stdout + done.stderr

    write_env(project / ".env", {**licensed_source.env, "DB_FILENAME": str(project / "data.db"), "LICENSE_KEY": A_KEY})
    done = run_cli(cli_env, "delete", str(project), "--dry-run", "--backup-database", "none")
    assert "remove LICENSE_KEY from the config, restart Directus" in done.stdout
    assert A_KEY not in done.stdout + done.stderr

    sql(project, "UPDATE directus_settings SET license_key = NULL, license_token = NULL")
    write_env(project / ".env", {**licensed_source.env, "DB_FILENAME": str(project / "data.db")})
    done = run_cli(cli_env, "delete", str(project), "--dry-run", "--backup-database", "none")
    assert done.returncode == 0 and "license:" not in done.stdout  # Core: nothing to deactivate


def licensing_url(made) -> str:
    return made.env["PUBLIC_URL"]


@pytest.mark.directus
def test_move_names_the_license_the_copy_takes(licensed_source, tmp_path):
    from directus_ops import move

    plan = move.plan_move(str(licensed_source.dir), to_database=f"sqlite:///{tmp_path / 'moved.db'}",
                          config_out=str(tmp_path / "moved.env"), repo_given=True)
    assert len(plan.warnings) == 1
    assert f"the move keeps PUBLIC_URL {licensing_url(licensed_source)}" in plan.warnings[0]
    storage_only = move.plan_move(str(licensed_source.dir), to_storage={"local": str(tmp_path / "files")})
    assert storage_only.warnings == ()


@pytest.mark.directus
def test_restore_under_another_public_url_reports_the_license(licensed_source, tmp_path, prefect_server):
    from flows.backup import backup
    from flows.restore import restore

    repo = str(tmp_path / "repo")
    snapshot_id = backup(project_dir=str(licensed_source.dir), repo=repo)
    elsewhere = tmp_path / "staging"
    elsewhere.mkdir()
    write_env(elsewhere / ".env", {**licensed_source.env, "DB_FILENAME": str(elsewhere / "data.db"),
                                   "PUBLIC_URL": "https://staging.example.com",
                                   "STORAGE_LOCAL_ROOT": str(elsewhere / "uploads")})
    result = restore(repo=repo, project_dir=str(elsewhere), snapshot_id=snapshot_id)
    notice = result.license_notice
    assert f"bound to PUBLIC_URL {licensing_url(licensed_source)}" in notice
    assert "this copy runs at https://staging.example.com" in notice and "drops to the Core tier" in notice

    same = tmp_path / "same"  # a new directory gets the snapshot's own config: the same PUBLIC_URL
    result = restore(repo=repo, project_dir=str(same), snapshot_id=snapshot_id,
                     database_url=f"sqlite:///{tmp_path / 'same.db'}", storage={"local": str(tmp_path / "same-files")})
    assert result.license_notice is None


# -- what 12.4.0 itself does without a license ---------------------------------------------------------------------
def age_migrations(project_dir: Path, all_days: int, v12_days: int) -> None:
    """Make the project look installed ``all_days`` ago and upgraded to 12 ``v12_days`` ago."""
    sql(project_dir, "UPDATE directus_migrations SET timestamp = now() - make_interval(days => :d)", d=all_days)
    sql(project_dir, "UPDATE directus_migrations SET timestamp = now() - make_interval(days => :d) WHERE version = :v",
        d=v12_days, v=licensing.V12_MIGRATION)


def reader_view(made, password: str) -> tuple[int, str]:
    """(status, body) of the API-only reader's login, or of its read of notes once logged in."""
    import httpx

    login = httpx.post(f"{made.url}/auth/login", json={"email": "reader@example.com", "password": password}, timeout=30)
    if login.status_code != 200:
        return login.status_code, login.text
    token = login.json()["data"]["access_token"]
    read = httpx.get(f"{made.url}/items/notes", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    return read.status_code, read.text


@pytest.mark.directus
def test_core_tier_as_12_4_0_applies_it(tmp_path, databases):
    """Started without a license and over the Core limits (4 Studio users): in the 30 days after the v12
    migration it reports grace and serves, after them it is locked (items refused, non-admins cannot log in),
    and an install younger than 24 hours is locked at once; a permission's custom rule is ignored even in grace."""
    from directus_ops.directus_api import DirectusApiError

    made = make_project(tmp_path, directus_install(LICENSED), databases.create("pg"), with_extras=False)
    password = f"pw-{secrets.token_hex(6)}"
    with made.server() as admin:
        admin.post("/collections", {"collection": "notes", "schema": {}, "meta": {}, "fields": [
            {"field": "id", "type": "integer", "meta": {}, "schema": {"is_primary_key": True, "has_auto_increment": True}},
            {"field": "text", "type": "string", "meta": {}, "schema": {}}]})
        admin.post("/items/notes", [{"text": "one"}, {"text": "two"}])
        reader = admin.post("/users", {"email": "reader@example.com", "password": password})["id"]
    policy = str(uuid.uuid4())  # API-only (no app access): the reader takes no seat
    sql(made.dir, "INSERT INTO directus_policies (id, name) VALUES (:p, 'readers')", p=policy)
    sql(made.dir, 'INSERT INTO directus_access (id, "user", policy) VALUES (:id, :u, :p)', id=str(uuid.uuid4()),
        u=reader, p=policy)
    sql(made.dir, "INSERT INTO directus_permissions (collection, action, fields, policy) "
                  "VALUES ('notes', 'read', '*', :p)", p=policy)
    add_users(made.dir, 3)

    def license_state() -> dict:
        with made.server() as admin:
            state = admin.get("/license")
            try:
                admin.get("/items/notes")
                state["items"] = "served"
            except DirectusApiError as exc:
                state["items"] = "RESOURCE_RESTRICTED" if "RESOURCE_RESTRICTED" in str(exc) else str(exc)
            state["reader"] = reader_view(made, password)
        return state

    # Installed and upgraded just now: a new install, no grace.
    now = license_state()
    assert (now["name"], now["status"], now["usage"]["seats"]) == ("Core", "locked", 4), now
    assert now["items"] == "RESOURCE_RESTRICTED"
    assert now["reader"][0] == 403 and "RESOURCE_RESTRICTED" in now["reader"][1]  # non-admin login refused

    # Installed 60 days ago, upgraded yesterday: grace until 30 days after the upgrade, everything served.
    age_migrations(made.dir, 60, 1)
    grace = license_state()
    assert grace["status"] == "grace" and grace["grace_period"] == licensing.GRACE_DAYS * 86400, grace
    assert grace["items"] == "served" and grace["reader"][0] == 200 and len(json.loads(grace["reader"][1])["data"]) == 2

    # The same permission with an item rule is ignored even in grace: the reader has no read permission left.
    sql(made.dir, "UPDATE directus_permissions SET permissions = :rule WHERE policy = :p",
        rule=json.dumps({"id": {"_eq": 1}}), p=policy)
    ruled = license_state()
    assert ruled["status"] == "grace" and ruled["reader"][0] == 403, ruled

    # Upgraded 40 days ago: the grace is over.
    age_migrations(made.dir, 80, 40)
    over = license_state()
    assert over["status"] == "locked" and over["items"] == "RESOURCE_RESTRICTED"
    assert over["reader"][0] == 403 and "RESOURCE_RESTRICTED" in over["reader"][1]

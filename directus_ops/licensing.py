"""Directus 12's licensing, as the facts an operator needs before an upgrade into it, a restore or move under
another ``PUBLIC_URL``, or a delete: what an instance without a license loses and when, and what becomes of an
activated license.

Where each fact comes from (tests/test_licensing.py reads them back from the installed 12.x package, so a
release that changes one fails there):

- the package, ``node_modules`` of directus 12.4.0 (@directus/api 39.2.0, @directus/license 0.4.0):
  ``@directus/license/dist/index.mjs`` (CORE_LICENSE: the Core tier's entitlements; the licensing service;
  activate/refresh/deactivate bind a key to ``project_id`` + ``public_url``);
  ``@directus/api/dist/database/migrations/20260507A-add-licensing.js`` (directus_settings.license_key and
  license_token); ``@directus/api/dist/license/utils/get-core-grace-expires-at.js`` (the 30-day grace after
  that migration, none for an install younger than 24 hours); ``.../license/utils/compute-license-status.js``
  (no license: locked when over the Core limits and out of grace); ``.../middleware/is-locked.js`` and the
  controllers using it (what a lock refuses); ``.../services/permissions.js``, ``services/activity.js``,
  ``services/revisions.js``, ``services/settings.js``, ``schedules/telemetry.js`` (what Core takes away at
  once); ``.../controllers/license.js`` (``DELETE /license`` deactivates); ``.../license/manager.js``.
- the docs (github.com/directus/docs): content/licensing/1.overview.md (directus.com/docs/licensing/overview:
  "PUBLIC_URL and Licensing", "Deactivating a License", "Moving an Instance to a New URL", "Upgrading to
  Directus 12"), content/licensing/3.open-innovation-grant.md ("Restoring Database Dumps"),
  content/releases/3.breaking-changes/3.version-12.md ("License Enforcement", "Locked-Down Behavior").
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import semantic_version as semver
import sqlalchemy as sa

from . import database as db
from .database import DatabaseSettings
from .errors import DatabaseUnreachable
from .project import Project

log = logging.getLogger("directus_ops.licensing")

# -- the facts ----------------------------------------------------------------------------------------------------
LICENSED_FROM = "12.0.0"  # the first release under the MSCL that enforces it (docs: breaking changes, 12.0.0)
V12_MIGRATION = "20260507A"  # adds the license columns; the grace is counted from when it ran
SETTINGS_COLUMNS = ("license_key", "license_token")  # in directus_settings
KEY_VARIABLE, TOKEN_VARIABLE = "LICENSE_KEY", "LICENSE_TOKEN"  # the env alternative (a token is offline: no binding)
CORE_LIMITS = {"seats": 3, "collections": 25, "flows": 5}  # CORE_LICENSE entitlements; SSO users: none
HISTORY_DAYS = 30  # Core's activity_historical_timeframe and revision_historical_timeframe
GRACE_DAYS = 30  # GRACE_PERIOD_MS (720 h) after the v12 migration, for an instance over the Core limits
FRESH_INSTALL_HOURS = 24  # CLEAN_INSTALL_MS: an install younger than this when the v12 migration ran gets no grace
LICENSING_SERVICE = "https://licensing.directus.com"
DEACTIVATE = "DELETE /license"  # admin only; refused for a key set in the environment
LOCKED_ENDPOINTS = ("/items", "/files", "/assets", "/graphql", "/mcp", "flow webhooks", "WebSockets")
DOCS = "https://directus.com/docs/licensing/overview"
DEFAULT_PROVIDER = "default"  # directus_users.provider of email/password users; anything else is SSO


def crosses_into_licensing(current: str, target: str) -> bool:
    """An upgrade from a release before the MSCL's enforcement to one with it."""
    start = semver.Version(LICENSED_FROM)
    return semver.Version(current) < start <= semver.Version(target)


# -- what a project has -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CoreUsage:
    """What Directus 12 counts against the Core limits, read from a project's database (any 10.x to 12.x schema)."""

    seats: int  # active users with app or admin access (a policy of their own or of their role or its parents)
    collections: int  # registered collections that are tables (not folders, not directus_*, not excluded)
    flows: int  # active flows
    sso_users: int  # active users whose provider is not the default (email/password) one
    installed_hours: float | None  # hours from the project's first migration until now (None: unknown)

    def over(self) -> list[str]:
        parts = [f"{getattr(self, name)} {label} (Core: {CORE_LIMITS[name]})"
                 for name, label in (("seats", "Studio users"), ("collections", "collections"), ("flows", "active flows"))
                 if getattr(self, name) > CORE_LIMITS[name]]
        if self.sso_users:
            parts.append(f"{self.sso_users} SSO user{'s' if self.sso_users != 1 else ''} (Core: none)")
        return parts

    @property
    def fresh_install(self) -> bool:
        return self.installed_hours is not None and self.installed_hours < FRESH_INSTALL_HOURS


@dataclass(frozen=True)
class ActivatedLicense:
    """A license key bound (or to be bound on the next start) to a project and its PUBLIC_URL."""

    source: str  # "settings" (activated in the Studio, kept in directus_settings) or "LICENSE_KEY" (the config)
    public_url: str | None  # the project's PUBLIC_URL: what the activation is bound to (with directus_settings.project_id)

    @property
    def where(self) -> str:
        return ("directus_settings.license_key" if self.source == "settings"
                else f"{KEY_VARIABLE} in the config")


def _own_tables(conn: sa.engine.Connection, settings: DatabaseSettings) -> set[str]:
    schema = db.project_schema(settings)
    names = set()
    for table in db.list_tables(conn):
        if "." not in table and schema in (None, "public"):
            names.add(table)
        elif schema and table.startswith(f"{schema}."):
            names.add(table.split(".", 1)[1])
    return names


def _settings_row(conn: sa.engine.Connection) -> Mapping[Any, Any]:  # RowMapping: str or Column keys
    row = conn.execute(sa.text("SELECT * FROM directus_settings")).mappings().first()
    return row or {}


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def _seats(conn: sa.engine.Connection, tables: set[str]) -> int:
    quote = conn.dialect.identifier_preparer.quote
    users = {str(r[0]): (str(r[1]) if r[1] is not None else None) for r in conn.execute(sa.text(
        "SELECT id, role FROM directus_users WHERE status = 'active'"))}
    if "directus_access" not in tables:  # 10.x: access is a property of the role
        roles = {str(r[0]) for r in conn.execute(sa.text("SELECT id, admin_access, app_access FROM directus_roles"))
                 if _truthy(r[1]) or _truthy(r[2])}
        return sum(1 for role in users.values() if role in roles)
    rows = conn.execute(sa.text(
        f"SELECT a.role, a.{quote('user')}, p.admin_access, p.app_access FROM directus_access a "
        "JOIN directus_policies p ON p.id = a.policy"))
    roles, direct = set(), set()
    for role, user, admin, app in rows:
        if _truthy(admin) or _truthy(app):
            if role is not None:
                roles.add(str(role))
            if user is not None:
                direct.add(str(user))
    # A role inherits its parents' access (fetch-access-roles.js).
    parents = {str(r[0]): str(r[1]) for r in conn.execute(sa.text(
        "SELECT id, parent FROM directus_roles WHERE parent IS NOT NULL"))}
    changed = True
    while changed:
        added = {child for child, parent in parents.items() if parent in roles and child not in roles}
        roles |= added
        changed = bool(added)
    return sum(1 for user, role in users.items() if user in direct or role in roles)


def _hours_since_install(conn: sa.engine.Connection) -> float | None:
    """Hours since the first migration, by the database's own clock (its timestamps and its now in one zone)."""
    first, now = conn.execute(sa.text("SELECT min(timestamp), CURRENT_TIMESTAMP FROM directus_migrations")).one()
    try:
        first, now = _naive_utc(first), _naive_utc(now)
    except ValueError:
        return None
    if first is None or now is None:
        return None
    return (now - first).total_seconds() / 3600


def _naive_utc(value: Any) -> dt.datetime | None:
    """A timestamp as the database gave it: a datetime, ISO text, or (SQLite, written by Directus) epoch ms."""
    if value is None:
        return None
    if isinstance(value, (int, float)) or (isinstance(value, str) and value.isdigit()):
        return dt.datetime.fromtimestamp(int(value) / 1000, dt.UTC).replace(tzinfo=None)
    parsed = value if isinstance(value, dt.datetime) else dt.datetime.fromisoformat(str(value))
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def core_usage(settings: DatabaseSettings) -> CoreUsage:
    with db.connect(settings) as conn:
        tables = _own_tables(conn, settings)
        registered = {r[0] for r in conn.execute(sa.text("SELECT collection FROM directus_collections"))}
        collections = [c for c in registered & tables
                       if not db.is_system_table(c) and c not in settings.exclude_tables]
        flows = conn.execute(sa.text("SELECT count(*) FROM directus_flows WHERE status = 'active'")).scalar() or 0
        sso = conn.execute(sa.text("SELECT count(*) FROM directus_users WHERE status = 'active' AND provider IS NOT NULL "
                                   "AND provider <> :default"), {"default": DEFAULT_PROVIDER}).scalar() or 0
        return CoreUsage(seats=_seats(conn, tables), collections=len(collections), flows=int(flows),
                         sso_users=int(sso), installed_hours=_hours_since_install(conn))


def settings_license(settings: DatabaseSettings, public_url: str | None) -> ActivatedLicense | None:
    """A license key activated in the Studio, as a database keeps it (directus_settings.license_key; a database
    before 12 has no such column: None)."""
    try:
        with db.connect(settings) as conn:
            row = _settings_row(conn) if "directus_settings" in _own_tables(conn, settings) else {}
    except (DatabaseUnreachable, sa.exc.SQLAlchemyError) as exc:
        log.warning("could not read directus_settings of %s for a license key: %s", settings.describe(), exc)
        return None
    if not row.get("license_key"):
        return None
    return ActivatedLicense("settings", public_url)


def activated_license(project: Project) -> ActivatedLicense | None:
    """The license key the project's Directus 12 binds to its project id and PUBLIC_URL: LICENSE_KEY in its config
    (which wins over the settings, manager.js) or one activated in the Studio. None without one: Core, or an
    offline LICENSE_TOKEN, which no licensing service binds (Directus clears a key kept in the settings then)."""
    public_url = project.config.text("PUBLIC_URL")
    if project.config.text(KEY_VARIABLE):
        return ActivatedLicense(KEY_VARIABLE, public_url)
    if project.config.text(TOKEN_VARIABLE):
        return None
    return settings_license(project.database, public_url)


def configured_license(project: Project) -> str | None:
    """The variable of the project's config that sets a license (LICENSE_KEY, else LICENSE_TOKEN), if any."""
    return next((name for name in (KEY_VARIABLE, TOKEN_VARIABLE) if project.config.text(name)), None)


# -- what to tell ---------------------------------------------------------------------------------------------------
def notice_for_upgrade(project: Project, current: str, target: str) -> str | None:
    """``upgrade_notice`` for this project: its usage read from its database (the general limits if that fails)."""
    if not crosses_into_licensing(current, target):
        return None
    try:
        usage: CoreUsage | None = core_usage(project.database)
    except (sa.exc.SQLAlchemyError, DatabaseUnreachable):
        usage = None  # an unexpected schema: the notice states the limits instead of this project's standing
    return upgrade_notice(current, target, usage, configured_license(project), project.config.text("PUBLIC_URL"))


def upgrade_notice(current: str, target: str, usage: CoreUsage | None = None, key_configured: str | None = None,
                   public_url: str | None = None, now: dt.datetime | None = None) -> str | None:
    """One line for an upgrade from before 12 to 12 or later (None for any other): what the upgraded project,
    without a license, loses at once and what later, for this project's usage."""
    if not crosses_into_licensing(current, target):
        return None
    now = now or dt.datetime.now(dt.UTC)
    locked = (f"locked ({', '.join(LOCKED_ENDPOINTS)} refused; only admins can log in) until a license is added "
              "or usage is brought within the Core limits")
    if usage is None:
        when = (f"with more than {CORE_LIMITS['seats']} Studio users, {CORE_LIMITS['collections']} collections or "
                f"{CORE_LIMITS['flows']} active flows, or any SSO user, it runs as now for {GRACE_DAYS} days after "
                f"the upgrade and is then {locked}")
    elif not usage.over():
        when = (f"this project is within the Core limits (Studio users {usage.seats} of {CORE_LIMITS['seats']}, "
                f"collections {usage.collections} of {CORE_LIMITS['collections']}, active flows {usage.flows} of "
                f"{CORE_LIMITS['flows']}, no SSO users), so it is not locked while it stays within them")
    elif usage.fresh_install:
        when = (f"this project is over the Core limits ({', '.join(usage.over())}) and was installed less than "
                f"{FRESH_INSTALL_HOURS} hours ago, which Directus treats as a new install without grace: it is "
                f"{locked} from its first start")
    else:
        until = (now + dt.timedelta(days=GRACE_DAYS)).date().isoformat()
        when = (f"this project is over the Core limits ({', '.join(usage.over())}): it runs as now for {GRACE_DAYS} "
                f"days after the upgrade (until about {until}) and is then {locked}")
    key = ""
    if key_configured:
        key = (f"; the config sets {key_configured}, which Directus {target} activates at its first start for this "
               f"project at PUBLIC_URL {public_url or '(unset)'} (it will not start if the key does not validate"
               + ("; PUBLIC_URL must be an absolute URL for that" if not _absolute(public_url) else "")
               + "): what that license covers replaces the Core limits")
    return (f"Directus {target} is licensed under the MSCL and enforces it: without a license (LICENSE_KEY, or "
            f"Settings > License) the upgraded project runs on the Core tier, which from its first start ignores "
            f"custom permission rules (item filters, field limits, validation, presets), hides activity and revisions "
            f"older than {HISTORY_DAYS} days, turns off custom LLMs and keeps telemetry on; {when}; no data is "
            f"deleted{key} (see {DOCS})")


def _absolute(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("http://", "https://"))


def public_url_notice(license: ActivatedLicense | None, source_url: str | None, target_url: str | None) -> str | None:
    """For a copy of a project's database (restore, move) that runs under ``target_url`` while its license key
    was activated under ``source_url``; None when there is no key or the URL is the same."""
    if license is None or (source_url or "").rstrip("/") == (target_url or "").rstrip("/"):
        return None
    return (f"the database carries an activated Directus license ({license.where}) bound to PUBLIC_URL "
            f"{source_url or '(unset)'}; this copy runs at {target_url or '(unset)'}, where revalidation fails: it "
            "keeps its license only until the stored license token expires, then drops to the Core tier (locked if "
            f"over the Core limits); to keep it licensed, activate the key for this URL in Settings > License (each "
            f"activation counts against the key's limit; see {DOCS})")


def delete_notice(license: ActivatedLicense | None) -> str | None:
    """For deleting a project whose license key is activated: deactivate it first, and how."""
    if license is None:
        return None
    how = (f"Settings > License > Deactivate License (or {DEACTIVATE} as an admin) while Directus still runs at "
           f"{license.public_url or 'its PUBLIC_URL'}")
    if license.source == KEY_VARIABLE:
        how = (f"remove {KEY_VARIABLE} from the config, restart Directus, then {how} (removing the variable alone "
               "does not free the activation)")
    return (f"this project has an activated Directus license ({license.where}): deactivate it before deleting: "
            f"{how}; deleting without that leaves the activation bound on the licensing service, counting against "
            f"the key's activations, with no self-service way to release it (see {DOCS})")


def move_notice(license: ActivatedLicense | None) -> str | None:
    """For a move of a project's database (PUBLIC_URL unchanged): its activated license goes with it."""
    if license is None:
        return None
    return (f"the copied database carries the activated Directus license ({license.where}); the move keeps PUBLIC_URL "
            f"{license.public_url or '(unset)'}, so the moved project revalidates the same activation; under another "
            "PUBLIC_URL it would keep the license only until its stored license token expires: deactivate first, "
            f"then activate the key there (see {DOCS})")

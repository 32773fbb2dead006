"""Directus 12's license limits, as they touch a v8 migration: checked before anything is written.

Directus 12 counts and restricts, whatever the tier's numbers (``@directus/api/dist/license/entitlements``):

- **seats**: active users with app or admin access (through a policy of their own, of their role, or of a role's
  parent); **collections**: active user collections (``directus_collections.status = 'active'``, a table, not
  ``directus_*``). Over either limit and out of the grace (a fresh install has none) the project is *locked*:
  /items, /files, /assets refused, only admins log in (``license/utils/compute-license-status.js``). The
  migration would put it there: refused before anything is written (a license with more, or fewer collections).
- **custom permission rules** (an item filter, a field list other than ``*``, a validation or presets:
  ``entitlements/lib/custom-permission-rules-enabled.js``): without the entitlement Directus leaves such
  permissions out of every permission read (they grant nothing) and refuses to create them through the API
  (``services/permissions.js``). Most v8 permissions need one (per-status rows, ``mine``/``role`` levels, field
  blacklists), so the roles would get less access than in v8: refused unless accepted
  (``accept_license_limits``); then database mode writes them (they take effect once a license includes the rules)
  and api mode leaves them out (listed in the report).

The numbers are the target's own, never a list kept here: api mode reads ``GET /license`` (entitlements and
usage, admin only); database mode decodes the license token (``LICENSE_TOKEN`` in the config, else
``directus_settings.license_token``; Directus verifies its signature, this only reads what it grants), else takes
``CORE_LICENSE`` from the target's installed ``@directus/license``, and counts the usage in the database as
Directus does (``licensing.core_usage``). A target without licensing (no ``license_token`` column, no ``/license``: before 12) is not checked.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..errors import ConfigError, NeedsConfirmation
from ..licensing import KEY_VARIABLE, TOKEN_VARIABLE, core_usage
from ..project import Project

log = logging.getLogger("directus_ops.v8.entitlements")

SEATS, COLLECTIONS, CUSTOM_RULES = "seats", "collections", "custom_permission_rules_enabled"
ACCEPT_OPTION = "--accept-license-limits"  # the CLI's; the flow parameter is accept_license_limits


@dataclass
class License:
    """What the target's Directus is entitled to and uses now."""

    name: str  # "Core", or the license's plan name
    source: str  # where the entitlements were read
    entitlements: dict[str, Any] | None  # Directus's own shape; None: not known before Directus starts
    seats: int = 0
    collections: int = 0

    def limit(self, key: str) -> int:
        """The hard limit of a countable entitlement (limit + overage + addon), -1 for none (getEntitlementLimit)."""
        value = (self.entitlements or {}).get(key) or {}
        parts = [value.get(k) for k in ("limit", "overage", "addon")]
        if value.get("limit") is None or -1 in parts:
            return -1
        return sum(int(p or 0) for p in parts)

    def entitled(self, key: str) -> bool:
        """A feature flag: its override, else its default (isEntitled)."""
        value = (self.entitlements or {}).get(key) or {}
        return bool(value["override"] if value.get("override") is not None else value.get("default", True))


@dataclass
class LicenseCheck:
    """The outcome, kept in the plan and the report."""

    name: str
    source: str
    checked: bool  # False: the entitlements are not known (a key Directus activates when it starts)
    seats: list[int] = field(default_factory=list)  # [in use, added by the migration, limit]
    collections: list[int] = field(default_factory=list)
    custom_rules: int = 0  # v8 permissions that need custom permission rules
    custom_rules_entitled: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def has_custom_rule(row: dict[str, Any]) -> bool:
    """Directus 12's hasCustomRule: a field list other than ``*``, or an item filter, validation or presets."""
    fields = row.get("fields")
    names = fields.split(",") if isinstance(fields, str) else list(fields or [])
    return "*" not in names or any(row.get(k) for k in ("permissions", "validation", "presets"))


# -- reading the target's license -------------------------------------------------------------------------------
def from_api(client: Any) -> License | None:
    """``GET /license`` of a running target (admin only); None when it has none (before 12)."""
    response = client.http.get("/license")
    if response.status_code in (403, 404):
        return None
    response.raise_for_status()
    data = response.json()["data"]
    usage = data.get("usage") or {}
    return License(str(data.get("name") or "?"), f"GET {client.url}/license", data.get("entitlements") or {},
                   seats=int(usage.get(SEATS) or 0), collections=int(usage.get(COLLECTIONS) or 0))


def from_database(project: Project, conn: Connection) -> License | None:
    """The target's entitlements and usage from its database and config; None when it has no licensing."""
    settings_table = sa.Table("directus_settings", sa.MetaData(), autoload_with=conn)
    if "license_token" not in settings_table.c:
        return None
    row = conn.execute(sa.select(settings_table.c.license_key, settings_table.c.license_token)).first()
    stored_key, stored_token = (row[0], row[1]) if row else (None, None)
    token, where = project.config.text(TOKEN_VARIABLE), f"{TOKEN_VARIABLE} in the config"
    if not token and stored_token:
        token, where = str(stored_token), "the license token in directus_settings"
    counted = core_usage(project.database)
    usage = {"seats": counted.seats, "collections": counted.collections}
    if token:
        payload = _jwt_payload(token)
        expires = payload.get("exp") if payload else None
        if payload and isinstance(payload.get("entitlements"), dict) and not (expires and expires < time.time()):
            name = str((payload.get("meta") or {}).get("name") or "licensed")
            return License(name, where, payload["entitlements"], **usage)
        log.info("v8 migrate: the license token (%s) is unreadable or expired: Directus falls back to Core", where)
    elif project.config.text(KEY_VARIABLE) or stored_key:
        return License("a license key", KEY_VARIABLE if project.config.text(KEY_VARIABLE) else
                       "directus_settings.license_key", None, **usage)
    core = core_license(project)
    return License(str(core["meta"]["name"]), "CORE_LICENSE of the installed @directus/license (no license)",
                   core["entitlements"], **usage)


def _jwt_payload(token: str) -> dict[str, Any] | None:
    """The claims of a JWT, unverified (Directus verifies the signature; this only reads what it grants)."""
    try:
        part = token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None


def core_license(project: Any) -> dict[str, Any]:
    """``CORE_LICENSE`` as the target's installed Directus has it (resolved from @directus/api, which imports it):
    in its project directory, or for a Docker Compose project in its Directus image."""
    from .. import node as node_runtime
    from .. import process

    if project.compose is not None:
        script = ("const {createRequire} = await import('node:module'); const fs = await import('node:fs');"
                  "const {pathToFileURL} = await import('node:url');"
                  "const api = ['node_modules/@directus/api', 'node_modules/directus/node_modules/@directus/api']"
                  ".map(p => '/directus/' + p + '/package.json').find(p => fs.existsSync(p));"
                  "const found = createRequire(api).resolve('@directus/license');"
                  "const {CORE_LICENSE} = await import(pathToFileURL(found).href);"
                  "process.stdout.write(JSON.stringify(CORE_LICENSE));")
        output = process.run(project.compose.node_argv("--input-type=module", "-e", script), timeout=120, quiet=True)
        return json.loads(output.strip().splitlines()[-1])
    root = Path(project.root)
    api = next((p for p in (root / "node_modules" / "@directus" / "api",
                            root / "node_modules" / "directus" / "node_modules" / "@directus" / "api")
                if (p / "package.json").exists()), None)
    if api is None:
        raise ConfigError(f"{root}/node_modules has no @directus/api: cannot read the Core tier's limits; install "
                          "Directus there")
    script = ("const {createRequire} = await import('node:module'); const {pathToFileURL} = await import('node:url');"
              f"const found = createRequire({json.dumps(str(api / 'package.json'))}).resolve('@directus/license');"
              "const {CORE_LICENSE} = await import(pathToFileURL(found).href);"
              "process.stdout.write(JSON.stringify(CORE_LICENSE));")
    output = process.run([node_runtime.for_project(root).node, "--input-type=module", "-e", script], cwd=root,
                         timeout=60, quiet=True)
    return json.loads(output.strip().splitlines()[-1])


# -- the check ----------------------------------------------------------------------------------------------------
def check(license: License | None, *, new_collections: list[str], new_seat_users: list[str],
          permissions: list[dict[str, Any]], role_names: dict[str | None, str], mode: str, accept: bool,
          where: str) -> LicenseCheck | None:
    """Refuse a migration that would lock the target or leave v8's permissions without effect (unless
    ``accept``); what was found, for the plan and the report."""
    if license is None:
        return None
    custom = [r for r in permissions if has_custom_rule(r)]
    if license.entitlements is None:
        return LicenseCheck(license.name, license.source, False, custom_rules=len(custom))
    result = LicenseCheck(license.name, license.source, True,
                          seats=[license.seats, len(new_seat_users), license.limit(SEATS)],
                          collections=[license.collections, len(new_collections), license.limit(COLLECTIONS)],
                          custom_rules=len(custom), custom_rules_entitled=license.entitled(CUSTOM_RULES))
    tier = f"{where}'s Directus license ({license.name}, from {license.source})"
    over, fix = [], ""
    for label, (used, added, limit) in (("seats (active users with app or admin access)", result.seats),
                                        ("active collections", result.collections)):
        if limit != -1 and used + added > limit:
            over.append(f"{limit} {label}; it has {used} and the migration adds {added}")
            fix = "leave collections out with --skip-collections, or " if label == "active collections" else fix
    if over:
        raise ConfigError(f"{tier} allows {' and '.join(over)}: Directus would lock the project (/items, /files and "
                          f"/assets refused, only admins log in); {fix}activate a license with more first (LICENSE_KEY, "
                          "or Settings > License); nothing was changed")
    if custom and not result.custom_rules_entitled and not accept:
        owners = sorted({role_names.get(r.get("policy", r.get("role")), "Public") for r in custom})
        effect = ("written, but Directus ignores them until a license includes custom permission rules"
                  if mode == "database" else "left out (Directus refuses them) and listed in the report")
        raise NeedsConfirmation(
            f"{tier} does not include custom permission rules, which {len(custom)} of the {len(permissions)} "
            f"permissions v8 gives {', '.join(owners)} need (item filters, field lists, validations): they would "
            f"grant nothing, so those roles would get less access than in v8; activate a license that includes them "
            f"first (LICENSE_KEY, or Settings > License), or pass {ACCEPT_OPTION} to migrate anyway (they are "
            f"{effect}); nothing was changed")
    return result


__all__ = ["ACCEPT_OPTION", "License", "LicenseCheck", "check", "core_license", "from_api", "from_database",
           "has_custom_rule"]

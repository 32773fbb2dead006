"""What the v8 migration's steps (``migrate.py``) ask of the target, whichever way it is reached.

The steps map the v8 project (``mapping.py``) and hand the rows to a ``TargetWriter``; two implement it:
``target.DatabaseTarget`` (database mode: the target's database and storage, through ``database.connect``) and
``api_target.ApiTarget`` (api mode: the running Directus's REST API). Every method writes only what the target
lacks, so a step run again changes nothing and a stopped run completes.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import timezone
from typing import TYPE_CHECKING, Any, Self
from zoneinfo import ZoneInfo

from .mapping import Dangling, IdMap, SchemaPlan
from .source import V8Source

if TYPE_CHECKING:
    from ..database import DatabaseSettings
    from ..storage import StorageLocation
    from .entitlements import License


@dataclass
class TargetInfo:
    database: str  # describe(): no secrets (api mode: the target's address)
    directus_version: str
    migrations: int
    admin_role: str
    users_by_email: dict[str, str]  # lowercase email -> id
    storage: str  # the first storage location's name ("" in api mode: Directus picks)
    resuming: bool = False
    existing: list[str] = field(default_factory=list)  # v8 collection names already in the target
    policies: bool = False  # Directus 11+: roles get policies, permissions are attached to policies
    public_policy: str | None = None  # 11.x+: the policy the public access row (no role, no user) links to


@dataclass
class ItemStats:
    read: int = 0
    written: int = 0
    references: int = 0  # reference values rewritten (or kept: item keys) to a row that exists
    dangling: list[Dangling] = field(default_factory=list)
    path: str = "python"  # "sql": converted by the database servers (sqlitems.py)


class TargetWriter(ABC):
    """One target of the migration. Used as a context manager (api mode closes its HTTP client)."""

    url = ""  # api mode: the target's address; "" for database mode
    # Permissions needing custom rules the target's license lacks (accepted in ``prepare``): written anyway
    # (database mode: Directus ignores them until a license includes the rules), or left out (api mode: refused).
    writes_unlicensed_rules = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Let go of what the writer holds open."""

    # -- check (writes nothing) ----------------------------------------------------------------------------------
    @abstractmethod
    def inspect(self, collections: list[str], ids_probe: list[tuple[str, str]]) -> TargetInfo:
        """Check the target: a bootstrapped Directus 10, 11 or 12, no collection named like ``collections`` unless
        an earlier run of this migration made it (``ids_probe``: (system table, uuid) pairs only such a run wrote)."""

    @abstractmethod
    def license(self) -> License | None:
        """The target's Directus 12 license and usage; None before 12 (no licensing)."""

    # -- the writes, in the steps' order -------------------------------------------------------------------------
    @abstractmethod
    def user_password(self, password: str | None) -> str | None:
        """What the migrated users' ``password`` gets for a temporary ``password`` (None: none)."""

    @abstractmethod
    def write_rows(self, table: str, rows: list[dict[str, Any]]) -> int:
        """Rows of a system table (roles, policies, access, users, folders; parents first); how many were new."""

    @abstractmethod
    def write_files(self, source: V8Source, ids: IdMap, rows: list[dict[str, Any]], originals: StorageLocation,
                    storage: str) -> dict[str, Any]:
        """The file rows and their bytes, read from ``originals/``, into ``storage``: the files step's report."""

    @abstractmethod
    def create_schema(self, schema: SchemaPlan) -> dict[str, int]:
        """The collections, fields and relations the target lacks (database mode: the tables too)."""

    @abstractmethod
    def write_items(self, v8: DatabaseSettings, schema: SchemaPlan, ids: IdMap, tz: ZoneInfo | timezone,
                    unmapped: list[str]) -> dict[str, ItemStats]:
        """Every row of every collection, read from the v8 database and converted."""

    @abstractmethod
    def after_items(self, schema: SchemaPlan) -> dict[str, int]:
        """What waits for the rows (the foreign keys; api mode: the relations and the fields' own settings)."""

    @abstractmethod
    def write_permissions(self, rows: list[dict[str, Any]], owner: str) -> int:
        """The permission rows the target lacks, keyed by ``owner``: ``role`` (10.x) or ``policy`` (11.x+)."""

    @abstractmethod
    def write_comments(self, rows: list[dict[str, Any]]) -> tuple[int, str]:
        """The comments the target lacks; how many, and the table they went into."""

    @abstractmethod
    def finish(self, schema: SchemaPlan) -> dict[str, Any]:
        """The last step's report entries (database mode: the counters reset; api mode: what it cannot keep)."""


__all__ = ["ItemStats", "TargetInfo", "TargetWriter"]

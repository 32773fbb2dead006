"""Every error of directus-ops: one class per kind, each with a message that names the fix and an exit code.

Tree::

    OpsError (exit 1)
    ├── ConfigError (2)            the project's config cannot be read or is not supported
    │   └── PassphraseMissing (12) the repository is encrypted and no passphrase was given
    ├── ProjectError (2)           the project directory is missing or not a Directus project
    ├── ToolMissing (3)            a native tool (pg_dump, mariadb-dump, ...) is not installed
    ├── DatabaseError (4)          the database cannot be reached or refused an operation
    │   ├── DatabaseUnreachable (4) the server did not accept a connection (transient: retried)
    │   ├── NotAV8Database (4)     v8 migrate: the source is not a Directus v8 database
    │   ├── V8TargetNotReady (4)   v8 migrate: the target is not a bootstrapped Directus 10/11/12
    │   ├── V8TargetConflict (5)   v8 migrate: the target has tables named like v8 collections
    │   └── TargetNotEmpty (5)     a restore target holds data and --replace was not given
    ├── StorageError (6)           a storage location cannot be listed, read or written (transient)
    │   ├── StorageUnreadable (6)  an object the backup may not read (permissions)
    │   ├── StorageRootMissing (6) a local location's root does not exist (whether that fails: the caller's call)
    │   ├── StorageUnlistable (6)  a location that answers but cannot be listed
    │   ├── UnsafeTarget (6)       a restore would write through a symlink (or over a folder) in its target
    │   └── V8StorageError (6)     v8 migrate: the upload folder is missing or incomplete
    ├── RepositoryError (7)        the snapshot repository cannot be opened, read or written
    │   ├── ManifestRejected (7)   a manifest that cannot be trusted (no MAC, a wrong one, or not parseable)
    │   ├── SnapshotNotFound (8)
    │   ├── WrongPassphrase (12)
    │   └── RepositoryLocked (13)  a backup or prune holds the repository's lock
    ├── IntegrityError (9)         bytes do not match their recorded checksum or size
    │   ├── UnsafeSnapshot (9)     a manifest names a path that would leave its target (tampered or damaged)
    │   └── VerificationFailed (9) verify found problems (its report and drill attached)
    ├── ProcessFailed (10)         a subprocess exited non-zero
    ├── DirectusApiError (11)      the Directus API refused a request, or Directus did not come up
    │   └── V8TargetUnreachable (11) v8 migrate, api mode: the target does not answer
    ├── VersionError (14)          a Directus version cannot be the target (unknown, wrong direction, Node too old)
    ├── ProcedureFailed (15)       an upgrade/downgrade failed after its backup, and was rolled back
    │   └── AppStillRunning (15)   the stop command returned but the app still answers (app.wait_until_stopped)
    ├── NeedsConfirmation (16)     a step that loses data needs --yes / --confirm
    ├── ProjectBusy (17)           another mutating procedure holds the project (project_lock)
    ├── LocalServerFailed (1)      the local Prefect server for ad-hoc runs did not start (local_server)
    └── NotAV8Query (2)            v8 rewrite-query: the input is not a v8 API query

    IndexRejected (a ValueError)   a pack index that fails its check: never shown, its objects count as missing

Only the CLI decides how errors are shown; everything below it raises these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # only for VerificationFailed's attributes: verify imports this module
    from .verify import DrillResult, VerifyReport


class OpsError(Exception):
    exit_code = 1
    transient = False  # True for failures a retry may cure (a server restarting, a dropped connection)

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(OpsError):
    exit_code = 2


class PassphraseMissing(ConfigError):
    exit_code = 12


class ProjectError(OpsError):
    exit_code = 2


class ToolMissing(OpsError):
    exit_code = 3


class DatabaseError(OpsError):
    exit_code = 4


class DatabaseUnreachable(DatabaseError):
    """The server did not accept a connection (may be transient: flows retry it)."""

    transient = True


class TargetNotEmpty(DatabaseError):
    exit_code = 5


class StorageError(OpsError):
    exit_code = 6
    transient = True


class StorageUnreadable(StorageError):
    """A storage object the backup may not read (permissions): a retry cannot cure it."""

    transient = False


class StorageRootMissing(StorageError):
    """A local location's root directory does not exist (whether that is an error depends on the caller)."""

    transient = False


class StorageUnlistable(StorageError):
    """A location that answers but cannot be listed (no such bucket, access denied, a root that is a file):
    a retry cannot cure it."""

    transient = False


class UnsafeTarget(StorageError):
    """The target holds a symlink (or a file or folder) where a restore would have to write through it."""

    transient = False  # the target stays as it is until someone changes it


class RepositoryError(OpsError):
    exit_code = 7


class ManifestRejected(RepositoryError):
    """A manifest that cannot be trusted: no MAC, a MAC that does not match, or authenticated bytes that do
    not parse or name another snapshot. The message names the file and what to do; ``reason`` is what is
    wrong and ``file`` the manifest's path in the repository, for callers that give their own advice."""

    def __init__(self, message: str, reason: str = "", file: str = "") -> None:
        super().__init__(message)
        self.reason, self.file = reason or message, file


class SnapshotNotFound(RepositoryError):
    exit_code = 8


class WrongPassphrase(RepositoryError):
    exit_code = 12


class RepositoryLocked(RepositoryError):
    exit_code = 13
    transient = False  # waiting is the caller's choice (``wait``), not a blind retry


class IntegrityError(OpsError):
    exit_code = 9


class UnsafeSnapshot(IntegrityError):
    """A key of a manifest climbs out of its target (``..``, absolute, NUL, ...): refused before anything is written."""


class VerificationFailed(IntegrityError):
    """Problems were found; ``report`` and ``drill`` hold them all."""

    def __init__(self, message: str, report: VerifyReport, drill: DrillResult | None) -> None:
        super().__init__(message)
        self.report, self.drill = report, drill

    def report_lines(self) -> list[str]:
        """Every problem, by snapshot, location and key (the CLI prints them on stdout before the error)."""
        from .verify import problems_text  # verify raises this error: imported when a report is shown

        lines = problems_text(self.report.problems, limit=1000)
        if self.drill and not self.drill.ok:
            lines += [f"restore drill: table {table} has {got} rows, the manifest recorded {want}"
                      for table, (want, got) in self.drill.mismatches.items()]
        return lines


class ProcessFailed(OpsError):
    """A subprocess exited non-zero; ``output_tail`` holds the end of what it printed (already redacted)."""

    exit_code = 10

    def __init__(self, message: str, returncode: int | None = None, output_tail: str = "") -> None:
        super().__init__(message)
        self.returncode = returncode
        self.output_tail = output_tail


class DirectusApiError(OpsError):
    exit_code = 11


class VersionError(OpsError):
    exit_code = 14


class ProcedureFailed(OpsError):
    """A procedure failed after its safety net existed; what was done to undo it is in the message."""

    exit_code = 15


class AppStillRunning(ProcedureFailed):
    """The stop command returned, but the app still answers: nothing may be copied or switched."""


class NeedsConfirmation(OpsError):
    """A step that loses data was asked for without the option that accepts it (--yes, --confirm)."""

    exit_code = 16


class ProjectBusy(OpsError):
    """Another mutating procedure (backup, restore, upgrade, ...) holds the project; see project_lock."""

    exit_code = 17


class LocalServerFailed(OpsError):
    """The local Prefect server that records ad-hoc runs could not be started (its log says why)."""


class IndexRejected(ValueError):
    """An index file that is not authentic or not well-formed (the reason only)."""


# -- the v8 migration's ------------------------------------------------------------------------------------------
class NotAV8Query(OpsError):
    """The input is not a v8 API URL/query string, or asks for something v9 has no form of."""

    exit_code = 2


class NotAV8Database(DatabaseError):
    """The database is reachable but is not a Directus v8 database."""


class V8StorageError(StorageError):
    """The v8 upload folder is missing or incomplete (not transient: a retry cannot fix it)."""

    transient = False


class V8TargetNotReady(DatabaseError):
    """The target is not a bootstrapped Directus 10/11/12 database (nothing was written)."""


class V8TargetConflict(DatabaseError):
    """The target already has tables named like the v8 collections, not from this migration."""

    exit_code = 5


class V8TargetUnreachable(DirectusApiError):
    """Api mode: the target Directus does not answer, or refuses the token."""

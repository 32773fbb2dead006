"""``directus-ops``: ad-hoc runs of the same flows the deployments run.

Each command parses its options, checks its inputs with the same plain functions the flow's first task
uses (so bad input fails fast, with one line and nothing changed), then calls the flow.
Exit codes: 0 ok, 1 other failure, 2 config/project, 3 tool missing, 4 database, 5 target not empty,
6 storage, 7 repository, 8 snapshot not found, 9 integrity, 10 subprocess, 11 Directus API, 12 passphrase,
13 repository locked, 14 version refused, 15 procedure failed and rolled back, 16 confirmation needed,
130 interrupted.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import logging
import os
import sys
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer

import tasks  # noqa: F401 (importing it sets Prefect's environment defaults, before anything imports Prefect)

from . import local_server, progress
from .cli_binding import (REPOSITORY_OPTIONS, Binding, CliOption, cli_parameters, flow_arguments,
                          repository_options, required_repository_parameters)
from .database_password import hide_password
from .errors import ConfigError, OpsError
from .redact import redact

if TYPE_CHECKING:
    from flows.parameters import RepositoryOptions

app = typer.Typer(
    name="directus-ops",
    help="Back up, restore and operate self-hosted Directus projects (each procedure is a Prefect flow).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

_state: dict[str, Any] = {"verbose": False, "prefect_ready": False, "local_server_url": None}


@app.callback()
def main(verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Prefect's and the tools' logs.")] = False) -> None:
    _state["verbose"] = verbose


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """A user error becomes one line on stderr and its documented exit code; Ctrl-C exits 130."""
    try:
        yield
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    except OpsError as exc:
        for line in getattr(exc, "report_lines", list)():  # a failure's whole report (verify's problems): stdout
            typer.echo(line)
        raise fail(exc) from None


def fail(exc: BaseException) -> typer.Exit:
    code = exc.exit_code if isinstance(exc, OpsError) else 1
    message = str(exc) if isinstance(exc, OpsError) else f"{type(exc).__name__}: {exc}"
    typer.echo(f"directus-ops: error: {redact(message).splitlines()[0] if message else type(exc).__name__}", err=True)
    return typer.Exit(code)


def _watch_prefect_server() -> None:
    """Have the process watchdog kill Prefect's temporary server (~190 MB) should this run die without stopping
    it (SIGKILL): Prefect starts it with a plain Popen in our process group and stops it only at exit."""
    from prefect.settings import PREFECT_API_URL

    if PREFECT_API_URL.value():
        return  # a real server: no temporary one (and its module's seconds-long import is not paid)
    from prefect.server.api import server

    runner = getattr(server.SubprocessASGIServer, "_run_uvicorn_command", None)
    if runner is None or getattr(runner, "_directus_ops_watched", False):
        return  # another Prefect version: nothing to hook (the server then outlives a killed run, as before)

    def run_watched(self: Any) -> Any:
        from .process import watch

        popen = runner(self)
        watch(popen.pid)
        return popen

    run_watched._directus_ops_watched = True  # type: ignore[attr-defined]
    server.SubprocessASGIServer._run_uvicorn_command = run_watched  # type: ignore[method-assign]


_prefect_settings = contextlib.ExitStack()  # entered once per command, left when the process exits


def _use_prefect() -> None:
    """Where this command's flow runs are recorded, and how, for the rest of the process:

    - a configured server (PREFECT_API_URL) as it is; else the local server (``local_server``), started in
      the background by the first command that needs it and reused by every later one, instead of a temporary
      server per command (6–9 s each); ``DIRECTUS_OPS_LOCAL_SERVER=off`` keeps Prefect's temporary server;
    - no flow-run heartbeats: the sync flow engine joins its heartbeat thread, which sleeps in 1 s steps, at
      the end of every flow run (a second per command). Heartbeats let a server mark a run whose process
      vanished as crashed; here the user's terminal sees that, and deployed runs (workers) keep them.
    """
    if _state.get("prefect_ready"):
        return
    _state["prefect_ready"] = True
    from prefect.context import SettingsContext, get_settings_context
    from prefect.settings import get_current_settings

    current = get_current_settings()
    api = current.api
    if not api.url:
        if local_server.enabled():
            say = (lambda line: typer.echo(f"directus-ops: {line}", err=True)) if sys.stderr.isatty() else None
            server = local_server.ensure(say=say)
            _state["local_server_url"] = server.url
            api = api.model_copy(update={"url": server.api_url})
        else:
            _watch_prefect_server()
    # Copies, not Prefect's temporary_settings: that re-validates every setting (0.1 s); these two are plain values.
    settings = current.model_copy(update={
        "api": api, "flows": current.flows.model_copy(update={"heartbeat_frequency": None})})
    _prefect_settings.enter_context(SettingsContext(profile=get_settings_context().profile, settings=settings))


def _quiet_prefect() -> None:
    """Prefect's console logs (run states, tracebacks) only with --verbose; the run's logs still reach the API."""
    from prefect.logging.handlers import PrefectConsoleHandler

    level = logging.INFO if _state["verbose"] else logging.CRITICAL
    for logger in [logging.getLogger(), *[l for l in logging.root.manager.loggerDict.values() if isinstance(l, logging.Logger)]]:
        for handler in logger.handlers:
            if isinstance(handler, PrefectConsoleHandler):
                handler.setLevel(level)
    _use_prefect()


class _RichReporter:
    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 TimeRemainingColumn(), console=Console(stderr=True), transient=True)

    def start(self, label: str, total: int | None) -> Any:
        task_id = self.progress.add_task(label[:70], total=total)
        progress_bar = self.progress

        class _Tracker:
            def advance(self, amount: int) -> None:
                progress_bar.advance(task_id, amount)

        tracker = _Tracker()
        tracker.task_id = task_id  # type: ignore[attr-defined]
        return tracker

    def finish(self, tracker: Any) -> None:
        self.progress.remove_task(tracker.task_id)


def _run_flow(function: Any, **parameters: Any) -> Any:
    """Call a flow in this process (ephemeral Prefect unless PREFECT_API_URL points at a server)."""
    _quiet_prefect()
    show_progress = sys.stderr.isatty() and not _state["verbose"]
    reporter = _RichReporter() if show_progress else None
    progress.set_reporter(reporter)
    from prefect.exceptions import ParameterTypeError

    try:
        if reporter:
            with reporter.progress:
                return function(**parameters)
        return function(**parameters)
    except ParameterTypeError as exc:  # the flow's parameter schema (flows/parameters.py) refused a value
        problems = [line.strip(" -") for line in str(exc).splitlines()[1:] if line.strip()]
        raise ConfigError(f"invalid option: {'; '.join(problems) or exc}; see --help") from None
    finally:
        progress.set_reporter(None)


def _location(repo: RepositoryOptions) -> Any:
    """The repository of a command that runs no flow, its Secret blocks read from the Prefect server this
    command reports to."""
    from tasks.repository import repository_location

    if repo.secret_block or repo.passphrase_secret_block:
        _use_prefect()
    return repository_location(repo)


# -- commands bound to flows: their options are the flow's parameters (directus_ops/cli_binding.py) ------------
@dataclasses.dataclass(frozen=True)
class _FlowCommand:
    group: typer.Typer
    name: str
    flow: str  # module:attribute, imported only when the command is built
    binding: Binding
    render: Callable[[Any], None]
    prepare: Callable[[dict[str, Any]], dict[str, Any] | None] | None


_FLOW_COMMANDS: dict[str, _FlowCommand] = {}  # by the command's path, e.g. "backup", "v8 migrate"


def flow_command(group: typer.Typer, name: str, flow: str, binding: Binding = Binding(), *,
                 prepare: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None,
                 path: str | None = None) -> Callable[[Callable[[Any], None]], Callable[[Any], None]]:
    """Declare a command that runs ``flow`` with the options derived from its signature. The decorated function
    prints the flow's result; its docstring is the command's help. ``prepare`` may check or complete the flow's
    arguments first (return None to stop: it printed why)."""

    def decorate(render: Callable[[Any], None]) -> Callable[[Any], None]:
        _FLOW_COMMANDS[path or name] = _FlowCommand(group, name, flow, binding, render, prepare)
        return render

    return decorate


def _add_flow_command(spec: _FlowCommand) -> None:
    import importlib

    module_name, attribute = spec.flow.split(":")
    flow = getattr(importlib.import_module(module_name), attribute)

    def command(**given: Any) -> None:
        with user_errors():
            _quiet_prefect()
            arguments = flow_arguments(flow.fn, spec.binding, given)
            arguments.update({o.name: given.get(o.name) for o in spec.binding.extra})
            prepared = spec.prepare(arguments) if spec.prepare is not None else arguments
            if prepared is None:
                return
            for option in spec.binding.extra:  # the command's own: never a flow parameter (parameters are stored)
                prepared.pop(option.name, None)
            result = _run_flow(flow, **prepared)
        spec.render(result)

    command.__signature__ = inspect.Signature(cli_parameters(flow.fn, spec.binding))  # type: ignore[attr-defined]
    command.__doc__ = spec.render.__doc__
    command.__name__ = spec.name.replace("-", "_")
    spec.group.command(spec.name)(command)


def print_result(result: Any) -> None:
    """A flow's typed result as the user sees it: its notes and warnings on stderr, its summary on stdout."""
    for note in getattr(result, "notes", lambda: [])():
        typer.echo(f"directus-ops: note: {note}", err=True)
    for warning in getattr(result, "warnings", lambda: [])():
        typer.echo(f"directus-ops: warning: {warning}", err=True)
    for line in result.lines():
        typer.echo(line)


# -- commands not bound to a flow that take a repository as the flows do ------------------------------------------
@dataclasses.dataclass(frozen=True)
class _RepositoryCommand:
    command: Callable[..., None]  # what typer calls
    body: Callable[..., None]  # the decorated function: its own parameters, and ``repo``


_REPOSITORY_COMMANDS: dict[str, _RepositoryCommand] = {}  # by the command's path, e.g. "repository upgrade"


def repository_command(path: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A command whose ``repo: RepositoryOptions`` parameter is given as the five options a flow's repository
    parameter has (cli_binding's --repo, --repo-endpoint, --repo-region, --repo-secret-block,
    --passphrase-secret-block), checked as a flow checks them. Its options are set when the command is built
    (``command``): deriving them imports flows.parameters, which other commands need not wait for."""

    def decorate(body: Callable[..., None]) -> Callable[..., None]:
        def command(**given: Any) -> None:
            options = {cli_name: given.pop(cli_name, None) for cli_name, _, _ in REPOSITORY_OPTIONS.values()}
            with user_errors():
                repo = repository_options(options)
            if repo is not None and (repo.secret_block or repo.passphrase_secret_block):
                _use_prefect()  # the blocks live on the Prefect server this command reports to
            body(repo=repo, **given)

        command.__doc__, command.__name__ = body.__doc__, body.__name__
        _REPOSITORY_COMMANDS[path] = _RepositoryCommand(command, body)
        return command

    return decorate


def _add_repository_options(spec: _RepositoryCommand) -> None:
    import typing

    from flows.parameters import RepositoryOptions

    hints = typing.get_type_hints(spec.body, localns={"RepositoryOptions": RepositoryOptions}, include_extras=True)
    own = [parameter.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=hints[name])
           for name, parameter in inspect.signature(spec.body).parameters.items() if name != "repo"]
    parameters = required_repository_parameters() + own
    spec.command.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        sorted(parameters, key=lambda p: p.default is not inspect.Parameter.empty))


@flow_command(app, "backup", "flows.backup:backup", Binding(positional=("project_dir",)))
def backup(snapshot_id: str) -> None:
    """Back up a project: database dump, every storage location, config, extensions. Prints the snapshot id."""
    typer.echo(snapshot_id)


@app.command()
@repository_command("snapshots")
def snapshots(
    repo: RepositoryOptions,
    as_json: Annotated[bool, typer.Option("--json", help="Print the snapshots as JSON.")] = False,
) -> None:
    """List the snapshots in a repository, oldest first (manifests are authenticated: this needs the passphrase).
    A manifest that cannot be read or trusted is left out with a warning on stderr."""
    from .repository import Repository
    from .snapshot_backup import SnapshotSummary

    def left_out(snapshot_id: str, exc: OpsError) -> None:
        typer.echo(f"directus-ops: warning: {redact(str(exc)).splitlines()[0]}", err=True)

    with user_errors():
        repository = Repository.open(_location(repo))
        summaries = [SnapshotSummary.of(m) for m in repository.headers(on_rejected=left_out)]
    if as_json:
        typer.echo(json.dumps([s.__dict__ for s in summaries], indent=2))
        return
    if not summaries:
        typer.echo(f"no snapshots in {repo.url}")
        return
    typer.echo(f"{'ID':<24} {'TIME (UTC)':<20} {'PROJECT':<20} {'DIRECTUS':<9} {'DATABASE':<18} {'FILES':>7} {'SIZE':>10}")
    for s in summaries:
        typer.echo(f"{s.id:<24} {s.time[:19].replace('T', ' '):<20} {s.project[:20]:<20} {(s.directus_version or '-'):<9} "
                   f"{s.database[:18]:<18} {s.files:>7} {progress.human_bytes(s.bytes):>10}")


@flow_command(app, "restore", "flows.restore:restore", Binding(flags={"storage": "--storage"}))
def restore(result: Any) -> None:
    """Restore a snapshot into the same project or a new target, verifying every checksum."""
    print_result(result)


@app.command()
def demo(
    directory: Annotated[Path, typer.Option("--dir", help="Where the demo project, its repository and the scratch copy live.")] = Path("demo"),
    directus_version: Annotated[str, typer.Option("--directus-version", help="Directus release (or major line: its newest installable release) installed from npm for a new demo project.")] = "12",
) -> None:
    """The embedded default end to end: a SQLite Directus project with local storage (created if absent) is
    backed up, restored into a scratch copy, and Directus on the copy is checked to serve the same content."""
    from . import demo as demo_project

    with user_errors():
        directory = directory.resolve()
        demo_project.ensure_passphrase(directory)
        project = demo_project.ensure_project(directory / "project", directus_version, say=lambda m: typer.echo(m, err=True))
        repo = directory / "repo"
        scratch = directory / "restored"
        typer.echo(f"reading the project through its API ({project.url})", err=True)
        before = demo_project.api_view(project)
        # Prefect's import (seconds) only now: the work above needs none of it, and a user sees it start at once.
        from flows.backup import backup as backup_flow
        from flows.restore import restore as restore_flow

        _quiet_prefect()
        typer.echo(f"backing up into {repo}", err=True)
        snapshot_id = _run_flow(backup_flow, project_dir=str(project.dir), repo=str(repo))
        typer.echo(f"backed up: snapshot {snapshot_id} in {repo}", err=True)
        demo_project.reset_scratch(scratch)
        _run_flow(restore_flow, repo=str(repo), project_dir=str(scratch), snapshot_id=snapshot_id)
        demo_project.link_node_modules(project.dir, scratch)
        typer.echo(f"restored into {scratch}; starting Directus there to compare", err=True)
        after = demo_project.api_view(demo_project.DemoProject(scratch, project.url, project.admin_password))
    summary = demo_project.summarize(before, after)
    ok = summary["posts_equal"] and summary["file_bytes_equal"] and summary["files_equal"]
    typer.echo(f"snapshot {snapshot_id}: {summary['posts']} posts and {summary['files']} files; restored copy "
               f"{'serves the same items and byte-identical files' if ok else 'DIFFERS from the original'}")
    typer.echo(f"project: {project.dir}  repository: {repo}  restored copy: {scratch}  (admin {demo_project.ADMIN_EMAIL}, password in {project.dir / '.env'})")
    if _state.get("local_server_url"):
        typer.echo(f"the runs (backup, restore) are in the local Prefect server's UI at {_state['local_server_url']}; "
                   "`directus-ops server stop` stops it")
    if not ok:
        raise typer.Exit(1)


@flow_command(app, "verify", "flows.verify:verify")
def verify(result: Any) -> None:
    """Check a repository: every manifest, every object present with its size; with --read-data the bytes
    themselves (--read-data alone: all of them). Prints each problem by snapshot, location and key; exits 9 if
    there is any."""
    print_result(result)


@flow_command(app, "forget", "flows.forget:forget")
def forget(result: Any) -> None:
    """Forget snapshots by a retention policy (grandfather-father-son, like restic); the newest snapshot of each
    project is always kept. With --prune, free the space."""
    print_result(result)


repository_app = typer.Typer(name="repository", help="Maintenance of a snapshot repository.", no_args_is_help=True)
app.add_typer(repository_app)


@repository_app.command("upgrade")
@repository_command("repository upgrade")
def repository_upgrade(
    repo: RepositoryOptions,
    lock_wait: Annotated[float, typer.Option("--lock-wait", min=0, help="Seconds to wait for running backups to finish.")] = 0,
) -> None:
    """Bring a format-2 repository to format 3: sign each readable manifest with a MAC made from the
    repository's key, then write format 3 to config.json (under an exclusive lock: no backup runs meanwhile).
    By running it you assert that the manifests now in the repository are yours: the upgrade signs what is
    there, so check the repository first (or upgrade a copy you trust). Manifests that cannot be read are
    reported and left unsigned (every command refuses them afterwards; remove them)."""
    with user_errors():
        from .repository_upgrade import upgrade_repository

        result = upgrade_repository(_location(repo), wait=lock_wait)
    for snapshot_id, problem in sorted(result.unreadable.items()):
        typer.echo(f"directus-ops: warning: snapshot {snapshot_id} left unsigned: {redact(problem).splitlines()[0]}", err=True)
    if result.already:
        typer.echo(f"{repo.url} already has format {result.format}: nothing to do")
        return
    for snapshot_id, project_name in sorted(result.signed.items()):
        typer.echo(f"signed  {snapshot_id}  (project {project_name})")
    typer.echo(f"{repo.url} upgraded to format {result.format}: {len(result.signed)} manifests signed, "
               f"{len(result.unreadable)} left unsigned" + (" (refused from now on; remove them)" if result.unreadable else ""))


server_app = typer.Typer(name="server", no_args_is_help=True, help=(
    "The local Prefect server that records ad-hoc runs when PREFECT_API_URL is not set (started in the "
    "background by the first command that runs a flow; its UI lists every run)."))
app.add_typer(server_app)


def _say_server(prefix: str, server: Any) -> None:
    typer.echo(f"{prefix} at {server.url} (pid {server.pid}, Prefect {server.prefect_version}); "
               f"its UI lists every run; logs in {local_server.prefect_home() / local_server.LOG_FILE}")


@server_app.command("status")
def server_status() -> None:
    """Say whether the local server runs, and where its UI is. Exit 1 when it does not run."""
    server = local_server.running()
    if server is None:
        typer.echo(f"no local Prefect server runs for {local_server.prefect_home()}")
        raise typer.Exit(1)
    _say_server("the local Prefect server runs", server)


@server_app.command("start")
def server_start() -> None:
    """Start the local server now (the first command that runs a flow would)."""
    with user_errors():
        server = local_server.ensure()
    _say_server("the local Prefect server runs", server)


@server_app.command("stop")
def server_stop() -> None:
    """Stop the local server (runs it recorded stay in $PREFECT_HOME/prefect.db; the next run starts it again)."""
    stopped = local_server.stop()
    typer.echo(f"stopped the local Prefect server (pid {stopped.pid})" if stopped
               else "no local Prefect server was running")


def _version(value: str) -> str:
    """A version as npm writes it (v11.1.0 -> 11.1.0); not a version: exit 14, as the plan would refuse it."""
    from .releases import parse_version

    return str(parse_version(value))


@flow_command(app, "upgrade", "flows.upgrade:upgrade_directus",
              Binding(positional=("project_dir",), flags={"accept_license_change": "--yes"}, convert={"to": _version}))
def upgrade(result: Any) -> None:
    """Upgrade Directus: backup, npm install (a Compose project: the image tag), migrate:latest, health check;
    rolled back on any failure."""
    print_result(result)


def _rehearsal_fails_the_command(arguments: dict[str, Any]) -> dict[str, Any]:
    arguments["raise_on_failure"] = True  # a failed rehearsal exits non-zero with its reason
    return arguments


@flow_command(app, "rehearse", "flows.rehearse:rehearse_upgrade",
              Binding(positional=("project_dir",), omit=frozenset({"raise_on_failure"}), convert={"to": _version}),
              prepare=_rehearsal_fails_the_command)
def rehearse(result: Any) -> None:
    """Rehearse an upgrade on a scratch copy of the project's latest snapshot; production is not touched."""
    print_result(result)


@flow_command(app, "downgrade", "flows.downgrade:downgrade_directus",
              Binding(positional=("project_dir",), flags={"accept_data_loss": "--yes"}, convert={"to": _version}))
def downgrade(result: Any) -> None:
    """Downgrade Directus: backup, migrate:down per newer migration (newer package still installed), older
    package, checks; rolled back on any failure."""
    print_result(result)


def _delete_confirmation(arguments: dict[str, Any]) -> dict[str, Any]:
    """--confirm is optional here: a dry run compares nothing, so it gets the project's name (the flow's field is
    required, for runs from the UI); a delete without it is refused as the flow would refuse it."""
    if arguments.get("confirm") is None:
        if arguments.get("dry_run"):
            arguments["confirm"] = Path(arguments["project_dir"]).name
        else:
            from .delete import check_delete

            repo = arguments.get("repo")
            check_delete(arguments["project_dir"], arguments.get("config_path"), None, repo.url if repo else None,
                         arguments.get("backup_database", "entire"), bool(arguments.get("backup_files")),
                         bool(arguments.get("backup_extensions")), bool(arguments.get("keep_root")))
    return arguments


@flow_command(app, "delete", "flows.delete:delete_project",
              Binding(positional=("project_dir",), defaults={"confirm": None}), prepare=_delete_confirmation)
def delete(result: Any) -> None:
    """Delete a project: backups first (verified), every directus_* table dropped so the project's own tables
    stay as a plain SQL database (checked), the project root removed (a SQLite database inside it is kept)."""
    print_result(result)


def _storage_moves(values: list[str]) -> dict[str, str] | None:
    from .move import parse_storage_moves

    return parse_storage_moves(values) or None


@flow_command(app, "move", "flows.move:move_project",
              Binding(positional=("project_dir",), convert={"to_storage": _storage_moves}))
def move(result: Any) -> None:
    """Move a project to a new database (same or another engine) and/or new storage, verified on both sides."""
    print_result(result)


# -- v8: the Directus v8 → v9+ migration's commands ---------------------------------------------------------------
v8_app = typer.Typer(name="v8", help="Directus v8 → v9+ migration tools.", no_args_is_help=True)
app.add_typer(v8_app)


def _token_to_environment(arguments: dict[str, Any]) -> dict[str, Any]:
    token = arguments.pop("token", None)
    if token:  # handed to the flow through the environment, never as a parameter (parameters are stored)
        from .redact import register_secret
        from .v8.api_target import TOKEN_ENV

        register_secret(token)
        os.environ[TOKEN_ENV] = token
    return arguments


def _comma_separated(values: list[str]) -> list[str]:
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


@flow_command(v8_app, "migrate", "flows.v8_migrate:v8_migrate", Binding(
    flags={"v8_database_url": "--v8-database"}, convert={"skip_collections": _comma_separated},
    extra=(CliOption("token", typer.Option(
        "--token", show_default=False, help="api mode: an admin user's static token (better: set DIRECTUS_OPS_TOKEN; "
                                            "never stored or logged).")),)),
    prepare=_token_to_environment, path="v8 migrate")
def v8_migrate(result: Any) -> None:
    """Migrate a Directus v8 project (database + upload folder) into a Directus 10, 11 or 12 project: roles (and
    11's policies), users, folders, files and their bytes, schema and metadata, every item with its references
    rewritten to the new UUIDs, and permissions. Run it again to resume a stopped run: a completed migration is
    not changed."""
    print_result(result)


@v8_app.command("rewrite-query")
def v8_rewrite_query(
    query: Annotated[str, typer.Argument(help="A v8 API URL, path (/_/items/articles?…) or query string.")],
) -> None:
    """Rewrite a v8 API URL or query string into its v9+ form: the v9 URL on stdout; notes (what changed) and
    warnings (what has no v9 form) on stderr."""
    from .v8.query import rewrite_query

    with user_errors():
        result = rewrite_query(query)
    typer.echo(result.v9)
    for note in result.notes:
        typer.echo(f"directus-ops: {note}", err=True)


# -- operations: serve the flows, deploy an inventory, apply the alerts (need a Prefect server) --------------------
@app.command()
def serve(
    project_dir: Annotated[Path, typer.Argument(help="The Directus project directory the deployments act on.")],
    repo: Annotated[str, typer.Option("--repo", envvar="DIRECTUS_OPS_REPO", help="Where the snapshots are: a local directory or s3://bucket/prefix.")],
    scratch_database: Annotated[Optional[str], typer.Option("--scratch-database", envvar="DIRECTUS_OPS_SCRATCH_DATABASE_URL", help="Also serve verify-drill: weekly, the latest snapshot's database restored into this scratch database (created and dropped; a password goes to DIRECTUS_OPS_DATABASE_PASSWORD).")] = None,
) -> None:
    """Serve every flow as a deployment from this process (schedules included; no work pool needed). Runs until
    stopped; schedules pause meanwhile. Needs PREFECT_API_URL (a Prefect server)."""
    with user_errors():
        os.environ["DIRECTUS_PROJECT_DIR"] = str(project_dir.resolve())
        os.environ["DIRECTUS_OPS_REPO"] = repo
        if scratch_database:  # served runs inherit this environment: the password stays out of the parameters
            os.environ["DIRECTUS_OPS_SCRATCH_DATABASE_URL"] = hide_password(scratch_database)
    from deployments.serve import main as serve_main

    serve_main()


@app.command("deploy-inventory")
def deploy_inventory(
    inventory: Annotated[Path, typer.Argument(help="An inventory YAML file (see inventory.example.yaml).")],
) -> None:
    """Create or update the backup, verify and forget deployments of every project in an inventory."""
    with user_errors():
        from deployments.inventory import apply_inventory

        _quiet_prefect()
        for name in apply_inventory(inventory):
            typer.echo(name)


alerts_app = typer.Typer(name="alerts", help="Alerts on backups (Prefect automations).", no_args_is_help=True)
app.add_typer(alerts_app)


@alerts_app.command("apply")
def alerts_apply(
    notify_block: Annotated[Optional[str], typer.Option("--notify-block", help="Name of a Prefect notification block (Slack, email, webhook, ...) the alerts send to.")] = None,
    file: Annotated[Optional[Path], typer.Option("--file", help="Automations file (default: deployments/automations.yaml).")] = None,
) -> None:
    """Create the alert automations (a failed backup run; no completed backup in 26 hours), replacing earlier ones."""
    with user_errors():
        from deployments.alerts import AUTOMATIONS_FILE, apply_automations

        _quiet_prefect()
        for name, automation_id in apply_automations(file or AUTOMATIONS_FILE, notify_block):
            typer.echo(f"{automation_id}  {name}")
    if not notify_block:
        typer.echo("directus-ops: warning: no --notify-block: the alerts fire but notify nobody", err=True)


def _optional_values(argv: list[str]) -> list[str]:
    """``--read-data`` may stand alone (all data) or take a percentage, as restic's does."""
    out = []
    for index, arg in enumerate(argv):
        out.append(arg)
        if arg == "--read-data":
            following = argv[index + 1] if index + 1 < len(argv) else None
            try:
                float(following) if following is not None else None
                given = following is not None
            except ValueError:
                given = False
            if not given:
                out.append("100")
    return out


@functools.cache
def command(invoked: str | None = None) -> Any:
    """The click command typer builds from ``app`` (80 ms: built once, and ahead of time in the warm runner).
    A command bound to a flow needs the flow's signature, so its module (and Prefect: seconds) is imported to
    build it: only the invoked one's when ``invoked`` names a command, every one's for help or an unknown
    command (the warm runner has them all imported already)."""
    for path, spec in _FLOW_COMMANDS.items():
        if invoked is None or path == invoked:
            _add_flow_command(spec)
    for path, repository_spec in _REPOSITORY_COMMANDS.items():
        if invoked is None or path == invoked:
            _add_repository_options(repository_spec)
    return typer.main.get_command(app)


_FLOW_GROUPS = frozenset({"v8"})  # groups holding commands bound to flows


def _plain_names(group: typer.Typer) -> set[str]:
    """The names of a group's commands not bound to flows, and of its subgroups (typer names a command declared
    without a name after its function, a subgroup after its Typer's name)."""
    commands = {c.name if isinstance(c.name, str) else typer.main.get_command_name(c.callback.__name__)
                for c in group.registered_commands if c.callback is not None}
    groups = {g.typer_instance.info.name for g in group.registered_groups if g.typer_instance is not None}
    return commands | {name for name in groups if isinstance(name, str)}


def _invoked(argv: list[str]) -> str | None:
    """The command a command line invokes ("backup", "v8 migrate", "repository upgrade"; "" for one not bound to
    a flow or a repository), if it is a known one; None otherwise."""
    words = [a for a in argv if not a.startswith("-")][:2]
    if not words:
        return None
    if words[0] in _FLOW_GROUPS:
        if len(words) > 1 and " ".join(words) in _FLOW_COMMANDS:
            return " ".join(words)
        group = next(g.typer_instance for g in app.registered_groups
                     if g.typer_instance is not None and g.typer_instance.info.name == words[0])
        return "" if len(words) > 1 and words[1] in _plain_names(group) else None
    if words[0] in _FLOW_COMMANDS:
        return words[0]
    for path in (" ".join(words), words[0]):
        if path in _REPOSITORY_COMMANDS:
            return path
    return "" if words[0] in _plain_names(app) - _FLOW_GROUPS else None


def run() -> NoReturn:
    """Run the command, then leave without tearing the interpreter down: freeing Prefect's module graph at
    exit takes about 0.5 s. What exit must do still happens: other threads finish, atexit handlers (Prefect's
    log and event flushes, the work directory's removal) run, output is flushed."""
    try:
        argv = _optional_values(sys.argv[1:])
        command(_invoked(argv)).main(args=argv, prog_name="directus-ops")
        code: Any = 0
    except SystemExit as exc:
        code = exc.code
    _leave(code)


def _leave(code: Any) -> NoReturn:
    import atexit
    import threading

    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is None:  # not CPython: the ordinary (slower) exit
        raise SystemExit(code)
    if code is None:
        code = 0
    elif not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


if __name__ == "__main__":  # last: every command (v8 migrate too) is registered above
    run()

"""CLI options derived from a flow's signature: the flow's parameters (their types, defaults, titles and
descriptions, declared once in flows/parameters.py) become the command's options, so the CLI, the Prefect UI
form and a direct call take the same parameters with the same checks.

A parameter ``snake_name`` is the option ``--snake-name`` unless the command names it otherwise (``flags``);
a ``RepositoryOptions`` parameter is the five options ``--repo``, ``--repo-endpoint``, ``--repo-region``,
``--repo-secret-block`` and ``--passphrase-secret-block``; a path is resolved against the directory the command
is typed in; a database URL's password moves into DIRECTUS_OPS_DATABASE_PASSWORD (parameters are stored with
the run, secrets must not be); a mapping is given as repeated ``KEY=VALUE`` options.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from .errors import ConfigError

if TYPE_CHECKING:
    from flows.parameters import RepositoryOptions

# Parameters holding a path on this host: resolved where the command is typed.
PATH_PARAMETERS = frozenset({"project_dir", "config_path", "config_out", "work_dir"})
# Parameters holding a database URL, whose password (if any) moves into the environment.
DATABASE_URL_PARAMETERS = frozenset({"database_url", "scratch_database_url", "to_database", "v8_database_url"})
# The forms' "no password here" (a parameter is stored with its run) reads, on the command line:
NO_PASSWORD_HERE = "No password here: set DIRECTUS_OPS_DATABASE_PASSWORD on the worker."
PASSWORD_MOVES = "A password in it moves to DIRECTUS_OPS_DATABASE_PASSWORD for the run (never stored with it)."
# Flags every command uses for a parameter whose CLI name is shorter than the flow's.
COMMON_FLAGS: Mapping[str, str] = {"config_path": "--config", "snapshot_id": "--snapshot",
                                   "scratch_database_url": "--scratch-database", "lock_wait_seconds": "--lock-wait",
                                   "read_data_percent": "--read-data", "project_wait_seconds": "--project-wait"}
COMMON_ENVVARS: Mapping[str, str] = {"config_path": "CONFIG_PATH"}
# RepositoryOptions' fields as options: (the command's parameter name, flag, environment variable).
REPOSITORY_OPTIONS: Mapping[str, tuple[str, str, str | None]] = {
    "url": ("repo", "--repo", "DIRECTUS_OPS_REPO"),
    "endpoint": ("repo_endpoint", "--repo-endpoint", "DIRECTUS_OPS_REPO_ENDPOINT"),
    "region": ("repo_region", "--repo-region", "DIRECTUS_OPS_REPO_REGION"),
    "secret_block": ("repo_secret_block", "--repo-secret-block", None),
    "passphrase_secret_block": ("passphrase_secret_block", "--passphrase-secret-block", None),
}


@dataclass(frozen=True)
class CliOption:
    """An option of the command that is no parameter of its flow (e.g. a secret the command puts into the
    environment): the command's ``prepare`` finds its value among the arguments and takes it out."""

    name: str
    option: Any  # typer.Option(...)
    annotation: Any = str | None
    default: Any = None


@dataclass(frozen=True)
class Binding:
    """How one command exposes its flow's parameters."""

    positional: tuple[str, ...] = ()
    flags: Mapping[str, str] = field(default_factory=dict)
    envvars: Mapping[str, str] = field(default_factory=dict)
    omit: frozenset[str] = frozenset()  # parameters the command does not offer (the flow's default applies)
    # A parameter's conversion from the option's value (a repeated option's: the list of them), raising a
    # one-line OpsError for a value it cannot take.
    convert: Mapping[str, Callable[[Any], Any]] = field(default_factory=dict)
    # The command's own default where it differs from the flow's (e.g. a confirmation the CLI asks for later).
    defaults: Mapping[str, Any] = field(default_factory=dict)
    extra: tuple[CliOption, ...] = ()  # the command's options that are no parameter of the flow


def cli_parameters(fn: Callable[..., Any], binding: Binding) -> list[inspect.Parameter]:
    """The command's parameters (typer reads them from the signature) derived from the flow function's."""
    out: list[inspect.Parameter] = []
    for name, parameter in inspect.signature(fn, eval_str=True).parameters.items():
        if name in binding.omit:
            continue
        value_type, description = _unwrap(parameter.annotation)
        default = binding.defaults.get(name, parameter.default)
        required = default is inspect.Parameter.empty
        if _repository_type(value_type):
            out.extend(_repository_parameters(description, required))
            continue
        cli_type = _cli_type(name, value_type)
        if name in binding.positional:
            info: Any = typer.Argument(help=description, show_default=False)
        else:
            flag = binding.flags.get(name) or COMMON_FLAGS.get(name) or "--" + name.replace("_", "-")
            envvar = binding.envvars.get(name) or COMMON_ENVVARS.get(name)
            if value_type is bool and default is True:
                flag = f"{flag}/--no-{flag[2:]}"  # on by default: the option turns it off
            if name in DATABASE_URL_PARAMETERS and description:
                description = description.replace(NO_PASSWORD_HERE, PASSWORD_MOVES)
            info = typer.Option(flag, envvar=envvar, help=description,
                                show_default=not required and default is not None and value_type is not bool)
        out.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[cli_type, info],
                                     default=inspect.Parameter.empty if required else default))
    out += [inspect.Parameter(o.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[o.annotation, o.option],
                              default=o.default) for o in binding.extra]
    # Required ones first: typer (like Python) wants no defaulted parameter before a required positional.
    return sorted(out, key=lambda p: p.default is not inspect.Parameter.empty)


def flow_arguments(fn: Callable[..., Any], binding: Binding, given: dict[str, Any]) -> dict[str, Any]:
    """The flow's keyword arguments from the command's parsed options."""
    from .database_password import hide_password

    arguments: dict[str, Any] = {}
    for name, parameter in inspect.signature(fn, eval_str=True).parameters.items():
        if name in binding.omit:
            continue
        value_type, _ = _unwrap(parameter.annotation)
        if _repository_type(value_type):
            arguments[name] = repository_options(given)
            continue
        value = given.get(name)
        if value is not None and name in binding.convert:
            value = binding.convert[name](value)
        elif isinstance(value, Path) or (value is not None and name in PATH_PARAMETERS):
            value = str(Path(value).expanduser().resolve())
        elif isinstance(value, str) and name in DATABASE_URL_PARAMETERS:
            value = hide_password(value)
        elif isinstance(value, list) and _mapping_type(value_type):
            value = parse_pairs(binding.flags.get(name) or "--" + name.replace("_", "-"), value)
        elif value is not None and _choices(value_type) and value not in _choices(value_type):
            # Said as the option is typed (the flow's own check would name the parameter and pydantic's wording).
            flag = binding.flags.get(name) or COMMON_FLAGS.get(name) or "--" + name.replace("_", "-")
            raise ConfigError(f"{flag} {value}: choose one of {', '.join(_choices(value_type))}")
        arguments[name] = value
    return arguments


def repository_options(given: Mapping[str, Any]) -> RepositoryOptions | None:
    """The five repository options as one RepositoryOptions (None without --repo), checked as a flow checks it:
    a bad value is one line naming its option."""
    from pydantic import ValidationError

    from flows.parameters import RepositoryOptions, first_problem

    from .repository import RepositoryLocation

    values = {key: given.get(cli_name) for key, (cli_name, _, _) in REPOSITORY_OPTIONS.items()}
    if not values["url"]:
        return None
    RepositoryLocation(url=values["url"])  # names what an s3:// URL lacks (its bucket) better than a pattern does
    try:
        return RepositoryOptions.model_validate(values)
    except ValidationError as exc:
        key, problem = first_problem(exc).split(": ", 1)
        flag = REPOSITORY_OPTIONS[key][1] if key in REPOSITORY_OPTIONS else "--repo"
        raise ConfigError(f"invalid option: {flag}: {problem}; see --help") from None


def parse_pairs(flag: str, values: list[str]) -> dict[str, str] | None:
    """Repeated ``KEY=VALUE`` options as a mapping."""
    if not values:
        return None
    parsed = {}
    for value in values:
        key, sep, target = value.partition("=")
        if not sep or not key or not target:
            raise ConfigError(f"{flag} {value!r}: write it as LOCATION=PATH or LOCATION=s3://bucket/prefix")
        parsed[key] = target
    return parsed


def _unwrap(annotation: Any) -> tuple[Any, str | None]:
    """The value type of an ``Annotated[T, Field(...)]`` parameter, and its description."""
    if typing.get_origin(annotation) is Annotated:
        value_type, *metadata = typing.get_args(annotation)
        for item in metadata:
            description = getattr(item, "description", None)
            if description:
                return value_type, description
        return value_type, None
    return annotation, None


def _optional_parts(value_type: Any) -> list[Any]:
    if typing.get_origin(value_type) in (typing.Union, types.UnionType):
        return [a for a in typing.get_args(value_type) if a is not type(None)]
    return [value_type]


def _repository_type(value_type: Any) -> bool:
    from flows.parameters import RepositoryOptions

    return any(part is RepositoryOptions for part in _optional_parts(value_type))


def _choices(value_type: Any) -> tuple[str, ...]:
    """A Literal parameter's allowed values (none for other types)."""
    for part in _optional_parts(value_type):
        base = _unwrap(part)[0]
        if typing.get_origin(base) is typing.Literal:
            return tuple(str(choice) for choice in typing.get_args(base))
    return ()


def _mapping_type(value_type: Any) -> bool:
    return any(typing.get_origin(_unwrap(part)[0]) is dict for part in _optional_parts(value_type))


def _cli_type(name: str, value_type: Any) -> Any:
    """What typer parses the option as; the flow's own types check the value."""
    parts = [_unwrap(part)[0] for part in _optional_parts(value_type)]
    optional = len(parts) < len(typing.get_args(value_type)) if typing.get_origin(value_type) in (
        typing.Union, types.UnionType) else False
    base = parts[0]
    if typing.get_origin(base) in (dict, list):
        return Optional[list[str]]
    if typing.get_origin(base) is typing.Literal:
        base = str
    if name in PATH_PARAMETERS:
        base = Path
    return Optional[base] if optional else base


def _repository_parameters(description: str | None, required: bool) -> list[inspect.Parameter]:
    from flows.parameters import RepositoryOptions

    out = []
    for key, (cli_name, flag, envvar) in REPOSITORY_OPTIONS.items():
        field_info = RepositoryOptions.model_fields[key]
        help_text = (description.split(": url", 1)[0] + ": a local directory or s3://bucket/prefix."
                     if key == "url" and description else field_info.description)
        url_required = key == "url" and required
        value_type: Any = str if url_required else str | None  # built at run time: typer reads it, mypy cannot
        annotation = Annotated[value_type, typer.Option(flag, envvar=envvar, help=help_text, show_default=False)]
        out.append(inspect.Parameter(cli_name, inspect.Parameter.KEYWORD_ONLY, annotation=annotation,
                                     default=inspect.Parameter.empty if url_required else None))
    return out


def required_repository_parameters() -> list[inspect.Parameter]:
    """The five options of a required repository (as a flow's ``repo: p.Repo`` gets them), for a command that
    runs no flow but takes a repository (snapshots, repository upgrade)."""
    from flows.parameters import Repo

    return _repository_parameters(_unwrap(Repo)[1], required=True)

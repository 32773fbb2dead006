"""Read a Directus project's config exactly the way Directus (``@directus/env``) does.

Rules reproduced here (Directus 10/11, ``@directus/env``):

* The file is ``CONFIG_PATH`` or ``<project>/.env``; ``.js/.mjs/.cjs`` (an object, or a function of the
  environment, evaluated with ``node``), ``.json``, ``.yaml/.yml``; anything else is dotenv (no ``${}``
  expansion).
* Values from the file **override** process environment variables.
* ``<VAR>_FILE`` (for Directus variables) reads ``<VAR>`` from that file, verbatim.
* Casting: a ``string:``, ``number:``, ``boolean:``, ``regex:``, ``array:`` or ``json:`` prefix forces a type;
  otherwise a per-key type map, otherwise a guess (``true``/``false`` -> bool, a number not starting with
  ``0`` -> number, a value with a comma -> list, else JSON if it parses, else the string).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .redact import is_secret_key, register_secret

DEFAULT_CONFIG_NAME = ".env"
JAVASCRIPT_EXTENSIONS = {"js", "mjs", "cjs"}

# The keys of @directus/env's TYPE_MAP that matter for reading a project.
TYPE_MAP: dict[str, str] = {
    "HOST": "string",
    "PORT": "string",
    "DB_NAME": "string",
    "DB_USER": "string",
    "DB_PASSWORD": "string",
    "DB_DATABASE": "string",
    "DB_PORT": "number",
    "DB_EXCLUDE_TABLES": "array",
}

# Directus's own defaults for the keys this tool reads.
DEFAULTS: dict[str, Any] = {
    "DB_EXCLUDE_TABLES": ["spatial_ref_sys", "sysdiagrams"],
    "STORAGE_LOCATIONS": "local",
    "STORAGE_LOCAL_DRIVER": "local",
    "STORAGE_LOCAL_ROOT": "./uploads",
    "EXTENSIONS_PATH": "./extensions",
    "MIGRATIONS_PATH": "./migrations",
}

# Prefixes of Directus variables (only these honour the ``_FILE`` suffix and are taken from the process env).
_DIRECTUS_VARIABLE = re.compile(
    r"^(CONFIG_PATH|HOST|PORT|PUBLIC_URL|SECRET|KEY|DB_.+|STORAGE_.+|EXTENSIONS_.+|MIGRATIONS_PATH|"
    r"PACKAGE_FILE_LOCATION|ADMIN_.+|CACHE_.+|REDIS.*|EMAIL_.+|AUTH_.+|LOG_.+|TELEMETRY.*|WEBSOCKETS_.+|"
    r"RATE_LIMITER_.+|SESSION_.+|REFRESH_TOKEN_.+|ACCESS_TOKEN_TTL|MAX_PAYLOAD_SIZE|ASSETS_.+|FILES_.+|TEMP_PATH)$"
)

_CAST_PREFIXES = ("string", "number", "regex", "array", "json", "boolean")


def _is_directus_variable(key: str) -> bool:
    if key.endswith("_FILE"):
        key = key[:-5]
    return bool(_DIRECTUS_VARIABLE.match(key))


def _guess_type(value: Any) -> str:
    if isinstance(value, bool) or value in ("true", "false"):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    text = str(value)
    if text and not text.startswith("0"):
        try:
            number = float(text)
        except ValueError:
            number = math.nan
        if not math.isnan(number) and abs(number) <= 2**53 - 1:
            return "number"
    if isinstance(value, list) or "," in text:
        return "array"
    return "json"


def _to_number(value: Any) -> int | float:
    number = float(value)
    return int(number) if number.is_integer() else number


def cast(value: Any, key: str | None = None) -> Any:
    """Cast one raw config value the way ``@directus/env``'s ``cast`` does."""
    flag = None
    if isinstance(value, str) and ":" in value and value.split(":", 1)[0] in _CAST_PREFIXES:
        flag = value.split(":", 1)[0]
        value = value[len(flag) + 1 :]
    kind = flag or (TYPE_MAP.get(key) if key else None) or _guess_type(value)
    try:
        if kind == "string":
            return "" if value is None else str(value)
        if kind == "number":
            return _to_number(value)
        if kind == "boolean":
            return value is True or value in ("true", "1", 1)
        if kind == "regex":
            return re.compile(str(value))
        if kind == "array":
            items = value if isinstance(value, list) else str(value).split(",")
            return [item for item in (cast(v) for v in items) if item != ""]
        # json: parse if it parses, else keep the string
        if isinstance(value, str):
            try:
                return json.loads(value)
            except ValueError:
                return value
        return value
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{key or 'a value'}: cannot read {value!r} as {kind} ({exc}); fix the value") from None


@dataclass
class DirectusConfig:
    """The effective config of a project: file values over process env over Directus defaults."""

    path: Path | None
    values: dict[str, Any]
    file_keys: set[str] = field(default_factory=set)

    def get(self, key: str, default: Any = None) -> Any:
        value = self.values.get(key, default)
        return default if value is None else value

    def text(self, key: str, default: str | None = None) -> str | None:
        """A value as text (numbers and booleans as Directus would print them); None if unset."""
        value = self.values.get(key)
        if value is None or value == "":
            return default
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, list):
            return ",".join(str(v) for v in value)
        return str(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self.values.get(key)
        if value is None:
            return default
        return value is True or value in ("true", "1", 1)

    def list(self, key: str) -> list[str]:
        value = self.values.get(key)
        if value is None or value == "":
            return []
        if isinstance(value, list):
            return [str(v).strip() for v in value if str(v).strip()]
        return [part.strip() for part in str(value).split(",") if part.strip()]

    def with_prefix(self, prefix: str) -> dict[str, Any]:
        return {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}


def resolve_config_path(project_dir: Path, config_path: str | Path | None = None) -> Path:
    """``config_path`` if given (relative to the project dir), else ``<project_dir>/.env``."""
    if config_path:
        path = Path(config_path).expanduser()
        return path if path.is_absolute() else (project_dir / path)
    return project_dir / DEFAULT_CONFIG_NAME


def _read_dotenv(path: Path, content: bytes | None = None) -> dict[str, Any]:
    import io

    from dotenv import dotenv_values

    # Node's dotenv does no ${VAR} expansion; neither must we.
    if content is not None:
        values = dotenv_values(stream=io.StringIO(content.decode("utf-8")), interpolate=False)
    else:
        values = dotenv_values(path, interpolate=False)
    return {k: v for k, v in values.items() if v is not None}


def _read_javascript(path: Path, environ: Mapping[str, str], content: bytes | None = None) -> dict[str, Any]:
    if content is not None:
        # node evaluates files only (an ES module, CommonJS or a function of the environment: no one way to
        # evaluate all three from memory), so the text goes to a 0600 file in the run's private 0700 work
        # directory, removed as soon as node has read it (by the next run if this one is killed).
        import shutil

        from . import workdir

        private = workdir.make_dir("config-")
        try:
            copy = private / path.name
            write_private_text(copy, content)
            return _read_javascript(copy, environ)
        finally:
            shutil.rmtree(private, ignore_errors=True)
    from . import process

    node = process.find_tool("node", purpose=f"evaluate the config file {path}", install_hint="install Node.js")
    script = (
        "const {pathToFileURL}=require('url');"
        "import(pathToFileURL(process.argv[1]).href).then(m=>{"
        "let e=('default' in m)?m.default:m; if(e&&typeof e==='object'&&'default' in e&&Object.keys(e).length===1)e=e.default;"
        "const v=typeof e==='function'?e(process.env):e;"
        "process.stdout.write(JSON.stringify(v));}).catch(err=>{console.error(String(err&&err.message||err));process.exit(1);});"
    )
    chunks: list[bytes] = []
    try:
        # stdout is read here, never logged: it holds the config's secrets.
        process.stream_stdout(
            [node, "-e", script, str(path)],
            lambda stream: chunks.append(stream.read()),
            env=dict(environ),
            cwd=path.parent,
            timeout=60,
        )
    except Exception as exc:
        raise ConfigError(f"cannot evaluate the JavaScript config {path}: {exc}; check it runs with `node {path}`") from None
    try:
        data = json.loads(b"".join(chunks) or b"null")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise ConfigError(f"the JavaScript config {path} must export an object or a function returning one")
    return data


def read_config_file(path: Path, environ: Mapping[str, str] | None = None,
                     content: bytes | None = None) -> dict[str, Any]:
    """Raw key/value pairs of a config file, before casting; from ``content`` (the file's bytes, e.g. a
    snapshot's decrypted config, kept off the disk) when given, ``path`` then naming its kind and place."""
    environ = os.environ if environ is None else environ
    extension = path.suffix.lower().lstrip(".")

    def text() -> str:
        return content.decode("utf-8") if content is not None else path.read_text(encoding="utf-8")

    try:
        if extension in JAVASCRIPT_EXTENSIONS:
            return _read_javascript(path, environ, content)
        if extension == "json":
            data = json.loads(text())
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: a JSON config must hold an object of variables")
            return data
        if extension in ("yaml", "yml"):
            import yaml

            data = yaml.safe_load(text())
            if not isinstance(data, dict):
                raise ConfigError(f"{path}: a YAML config must hold a mapping of variables")
            return data
        return _read_dotenv(path, content)
    except ConfigError:
        raise
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        raise ConfigError(f"cannot read the config file {path}: {reason}") from None
    except Exception as exc:  # yaml errors and the like
        raise ConfigError(f"cannot parse the config file {path}: {str(exc).splitlines()[0]}") from None


def load_config(config_path: Path, environ: Mapping[str, str] | None = None,
                content: bytes | None = None) -> DirectusConfig:
    """Build the effective config for ``config_path`` (which must exist unless its ``content`` is given: the
    config it will be) and register its secrets."""
    environ = os.environ if environ is None else environ
    if content is None and not config_path.is_file():
        raise ConfigError(
            f"no Directus config at {config_path}; pass the project directory that holds its .env, or --config PATH"
        )
    file_values = read_config_file(config_path, environ, content)
    raw: dict[str, Any] = {k: v for k, v in environ.items() if _is_directus_variable(k)}
    raw.update(file_values)

    def place(value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else config_path.parent / path

    return effective_config(config_path, raw, set(file_values), place)


def effective_config(config_path: Path, raw: Mapping[str, Any], file_keys: set[str],
                     place: Callable[[str], Path]) -> DirectusConfig:
    """The config from its raw variables (the environment Directus starts with, its file's values over it):
    defaults, ``<VAR>_FILE`` read (from the file ``place`` says the path means), values cast, secrets
    registered. ``config_path`` names where the config comes from."""
    values: dict[str, Any] = {key: cast(value, key) if key in TYPE_MAP else value for key, value in DEFAULTS.items()}
    for key, value in raw.items():
        if len(key) > 5 and key.endswith("_FILE") and _is_directus_variable(key) and isinstance(value, str):
            try:
                secret_path = place(value)
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc}") from None
            try:
                value = secret_path.read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"{key}: cannot read {value} ({exc.strerror}); fix the path or set {key[:-5]}") from None
            key = key[:-5]
        values[key] = cast(value, key)

    for key, value in values.items():
        if is_secret_key(key) and value not in (None, ""):
            register_secret(value)
    return DirectusConfig(path=config_path, values=values, file_keys=file_keys)


def render_dotenv(values: Mapping[str, Any]) -> str:
    """Write variables as a dotenv file that Directus reads back to the same values."""
    lines = []
    for key, value in values.items():
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = ",".join(str(v) for v in value)
        elif isinstance(value, (dict,)):
            text = "json:" + json.dumps(value)
        else:
            text = str(value)
        if re.search(r"[\s#'\"\\]", text) or text == "":
            text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
        lines.append(f"{key}={text}")
    return "\n".join(lines) + "\n"


def update_dotenv(path: Path, updates: Mapping[str, Any], remove: set[str] | frozenset[str] = frozenset()) -> str:
    """Return ``path``'s dotenv text with ``updates`` set in place (appended if new) and ``remove`` keys dropped.

    Lines that are not touched keep their exact text, comments included.
    """
    return update_dotenv_text(path.read_text(encoding="utf-8"), updates, remove)


def update_dotenv_text(text: str, updates: Mapping[str, Any], remove: set[str] | frozenset[str] = frozenset()) -> str:
    """``update_dotenv`` on a dotenv file's text."""
    pending = dict(updates)
    out = []
    for line in text.splitlines():
        match = re.match(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=", line)
        key = match.group(1) if match else None
        if key in remove and key not in pending:
            continue
        if key in pending:
            out.append(render_dotenv({key: pending.pop(key)}).rstrip("\n"))
            continue
        out.append(line)
    if pending:
        out.append(render_dotenv(pending).rstrip("\n"))
    return "\n".join(out) + "\n"


def write_private_text(path: Path, text: str | bytes) -> None:
    """Write ``text`` to ``path`` atomically with mode 0600 (a config holds the project's secrets): a temporary
    file beside it, created 0600 and synced, then renamed over it. The one writer of private config: the
    secrets are never readable by others, not even for a moment, and never anywhere but beside ``path``; a
    symlink at either name is replaced, never written through (``paths.LocalUncommitted``)."""
    from .paths import LocalUncommitted, key_from_name
    from .verified_copy import committed

    data = text.encode("utf-8") if isinstance(text, str) else text
    with committed(LocalUncommitted(str(path.parent), key_from_name(path.name), mode=0o600)) as out:
        out.write(data)
        out.handle.flush()
        os.fsync(out.handle.fileno())

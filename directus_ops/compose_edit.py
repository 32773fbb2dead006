"""Edits to a Compose file that keep everything else of it byte for byte: its comments, order, quoting and
indentation. Compose files are written by hand and read by people, so they are edited as text, line by line,
never loaded and dumped again; the result is read back through Compose by the caller.

``set_environment``: variables of one service's ``environment:`` set (the line of a variable replaced, a new one
added after the last) or removed; both the mapping form (``KEY: value``) and the list form (``- KEY=value``) are
kept as they are written. (An upgrade's new image tag: compose_upgrade.)
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from .errors import ConfigError

_PLAIN = re.compile(r"^[A-Za-z0-9_./@+-][A-Za-z0-9_./:@+-]*$")  # a value YAML and Compose read as written
_KEY_LINE = re.compile(r"""^(?P<indent>[ ]*)(?P<quote>["']?)(?P<key>[A-Za-z0-9_.-]+)(?P=quote)\s*:(?P<rest>.*)$""")
_LIST_LINE = re.compile(r"""^(?P<indent>[ ]*)-[ ]+(?P<quote>["']?)(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<sep>=|(?P=quote)\s*$|$)""")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _significant(line: str) -> bool:
    stripped = line.strip()
    return bool(stripped) and not stripped.startswith("#")


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """The index after the last line of the block whose header is ``lines[start]`` at ``indent``: the block
    holds the following lines indented deeper (blank and comment lines inside it included)."""
    end = start + 1
    last = start + 1
    while end < len(lines):
        if _significant(lines[end]):
            if _indent(lines[end]) <= indent:
                break
            last = end + 1
        end += 1
    return last


def _find_key(lines: list[str], start: int, stop: int, key: str, indent: int | None) -> int | None:
    for index in range(start, stop):
        match = _KEY_LINE.match(lines[index].rstrip("\r\n"))
        if match and match.group("key") == key and (indent is None or len(match.group("indent")) == indent):
            return index
    return None


def _child_indent(lines: list[str], start: int, stop: int) -> int | None:
    for index in range(start + 1, stop):
        if _significant(lines[index]):
            return _indent(lines[index])
    return None


def _service_block(lines: list[str], service: str, file_name: str) -> tuple[int, int, int]:
    """(header line, end, the service's own keys' indent) of ``service`` under the top-level ``services:``."""
    top = _find_key(lines, 0, len(lines), "services", 0)
    if top is None:
        raise ConfigError(f"{file_name} has no top-level `services:` block that directus-ops can edit")
    services_end = _block_end(lines, top, 0)
    indent = _child_indent(lines, top, services_end)
    header = _find_key(lines, top + 1, services_end, service, indent)
    if header is None:
        raise ConfigError(f"service '{service}' is not written in {file_name} (an override or extends file?); "
                          "change it by hand")
    end = _block_end(lines, header, indent or 0)
    own = _child_indent(lines, header, end)
    if own is None:
        raise ConfigError(f"service '{service}' in {file_name} is empty; directus-ops cannot edit it")
    return header, end, own


def _scalar(value: str) -> str:
    """A value as Compose reads it back exactly: "$" doubled (no interpolation), quoted unless plain."""
    value = value.replace("$", "$$")
    return value if _PLAIN.match(value) and value.lower() not in {"true", "false", "yes", "no", "on", "off", "null", "~"} \
        and not re.match(r"^[0-9.+-]", value) else json.dumps(value, ensure_ascii=False)


def _newline(lines: list[str]) -> str:
    return "\r\n" if lines and lines[0].endswith("\r\n") else "\n"


def set_environment(text: str, service: str, updates: Mapping[str, object], remove: frozenset[str] | set[str] = frozenset(),
                    file_name: str = "the Compose file") -> str:
    """``text`` with ``updates`` set in ``service``'s ``environment:`` and ``remove`` taken out of it."""
    lines = text.splitlines(keepends=True)
    newline = _newline(lines)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += newline
    header, end, own = _service_block(lines, service, file_name)
    env = _find_key(lines, header + 1, end, "environment", own)
    if env is None:  # a new block at the end of the service
        block = [" " * own + "environment:" + newline]
        block += [" " * (own + 2) + f"{key}: {_scalar(_text(value))}" + newline for key, value in updates.items()]
        return "".join(lines[:end] + block + lines[end:])
    inline = _KEY_LINE.match(lines[env].rstrip("\r\n"))
    if inline and inline.group("rest").split("#", 1)[0].strip():
        raise ConfigError(f"the environment of service '{service}' in {file_name} is written on one line; write it as a "
                          "block (one variable per line) so directus-ops can change it")
    env_end = _block_end(lines, env, own)
    entry_indent = _child_indent(lines, env, env_end)
    as_list = entry_indent is not None and lines[_first_entry(lines, env, env_end)].lstrip().startswith("-")
    entry_indent = entry_indent if entry_indent is not None else own + 2
    found: dict[str, int] = {}
    for index in range(env + 1, env_end):
        line = lines[index].rstrip("\r\n")
        match = (_LIST_LINE if as_list else _KEY_LINE).match(line)
        if match and _indent(line) == entry_indent:
            found[match.group("key")] = index
            rest = line.split(":", 1)[1].strip() if not as_list else ""
            if not as_list and rest[:1] in ("|", ">"):
                if match.group("key") in updates or match.group("key") in remove:
                    raise ConfigError(f"{match.group('key')} of service '{service}' in {file_name} is a multi-line "
                                      "value; change it by hand")

    def entry(key: str, value: object) -> str:
        if as_list:
            item = f"{key}={_text(value)}".replace("$", "$$")
            return " " * entry_indent + "- " + (item if _PLAIN.match(item.replace("=", "")) else json.dumps(item, ensure_ascii=False)) + newline
        return " " * entry_indent + f"{key}: {_scalar(_text(value))}" + newline

    replaced = dict(enumerate(lines))
    for key, value in updates.items():
        if key in found:
            replaced[found[key]] = entry(key, value)
    for key in remove:
        if key in found and key not in updates:
            replaced[found[key]] = ""
    added = [entry(key, value) for key, value in updates.items() if key not in found]
    out = [replaced[i] for i in range(len(lines))]
    return "".join(out[:env_end] + added + out[env_end:])


def _first_entry(lines: list[str], env: int, env_end: int) -> int:
    for index in range(env + 1, env_end):
        if _significant(lines[index]):
            return index
    return env


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)

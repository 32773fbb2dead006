"""Edits of a Compose file keep the rest of it byte for byte (directus_ops.compose_edit): an operator's
comments, order, quoting and indentation survive a move's new settings."""

from __future__ import annotations

import pytest
import yaml

from directus_ops.compose_edit import set_environment
from directus_ops.errors import ConfigError

MAPPING = """\
# production stack
services:
  database:
    image: postgres:16   # pinned
    environment:
      POSTGRES_PASSWORD: "x"

  directus:
    image: "directus/directus:11.17.4"  # keep in step with the docs
    volumes:
      - ./uploads:/directus/uploads
    environment:
      # the database
      DB_CLIENT: "sqlite3"
      DB_FILENAME: /directus/database/data.db
      SECRET: 'keep-me'   # rotate yearly
    restart: unless-stopped
"""

LIST = """\
services:
  directus:
    image: directus/directus:${DIRECTUS_VERSION:-12.4.0}
    environment:
      - DB_CLIENT=sqlite3
      - DB_FILENAME=/directus/database/data.db
      - "SECRET=s"
"""


def environment(text: str, service: str = "directus") -> dict:
    env = yaml.safe_load(text)["services"][service]["environment"]
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v).replace("$$", "$") for k, v in env.items()}


def test_environment_mapping_edited_in_place() -> None:
    out = set_environment(MAPPING, "directus", {"DB_CLIENT": "pg", "DB_HOST": "database", "DB_PORT": 5432,
                                                "DB_PASSWORD": "p$ss: #1"}, {"DB_FILENAME"})
    assert environment(out) == {"DB_CLIENT": "pg", "SECRET": "keep-me", "DB_HOST": "database", "DB_PORT": "5432",
                                "DB_PASSWORD": "p$ss: #1"}
    removed = {'      DB_CLIENT: "sqlite3"', "      DB_FILENAME: /directus/database/data.db"}
    kept = [line for line in MAPPING.splitlines() if line not in removed]
    assert all(line in out.splitlines() for line in kept)  # every other line, comments included, as it was
    assert out.index("DB_HOST") > out.index("SECRET") and out.index("DB_HOST") < out.index("restart:")
    assert "POSTGRES_PASSWORD" in out and environment(out, "database") == {"POSTGRES_PASSWORD": "x"}


def test_environment_list_form_stays_a_list() -> None:
    out = set_environment(LIST, "directus", {"DB_CLIENT": "pg", "DB_DATABASE": "directus"}, {"DB_FILENAME"})
    assert environment(out) == {"DB_CLIENT": "pg", "SECRET": "s", "DB_DATABASE": "directus"}
    assert "      - DB_CLIENT=pg\n" in out and '      - "SECRET=s"\n' in out


def test_a_service_without_environment_gets_one() -> None:
    text = "services:\n  directus:\n    image: directus/directus:12.4.0\n    env_file: directus.env\n"
    out = set_environment(text, "directus", {"DB_CLIENT": "pg"})
    assert out.startswith(text) and environment(out) == {"DB_CLIENT": "pg"}


def test_an_inline_environment_is_refused() -> None:
    text = "services:\n  directus:\n    image: directus/directus:12.4.0\n    environment: {DB_CLIENT: pg}\n"
    with pytest.raises(ConfigError, match="written on one line; write it as a block"):
        set_environment(text, "directus", {"DB_CLIENT": "mysql"})

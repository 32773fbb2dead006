"""A database password never travels as a flow parameter (parameters are stored with the run): the CLI moves
it out of a URL into DIRECTUS_OPS_DATABASE_PASSWORD, and a flow puts it back into the URL it opens."""

from __future__ import annotations

import os
from typing import overload

import sqlalchemy as sa

DATABASE_PASSWORD_ENV = "DIRECTUS_OPS_DATABASE_PASSWORD"


def hide_password(database_url: str) -> str:
    """The URL without its password, which moves into DIRECTUS_OPS_DATABASE_PASSWORD (and is registered for
    redaction); a malformed URL raises a clear ConfigError."""
    from .database import DatabaseSettings

    DatabaseSettings.from_url(database_url)  # registers the password for redaction; clear error if malformed
    url = sa.make_url(database_url)
    if not url.password:
        return database_url
    os.environ[DATABASE_PASSWORD_ENV] = url.password
    # URL.set(password=None) keeps the password (None means "unchanged" there): build the URL without it.
    bare = sa.engine.URL.create(url.drivername, url.username, None, url.host, url.port, url.database, url.query)
    return bare.render_as_string(hide_password=False)


@overload
def with_password(database_url: str) -> str: ...


@overload
def with_password(database_url: None) -> None: ...


@overload
def with_password(database_url: str | None) -> str | None: ...


def with_password(database_url: str | None) -> str | None:
    """Put the password from DIRECTUS_OPS_DATABASE_PASSWORD into a URL that has none."""
    password = os.environ.get(DATABASE_PASSWORD_ENV)
    if not database_url or not password:
        return database_url
    url = sa.make_url(database_url)
    if url.password:
        return database_url
    return url.set(password=password).render_as_string(hide_password=False)

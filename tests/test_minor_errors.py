"""Small errors of issue 13 (item 12): a bucketless S3 repository URL, the redaction rule for short secrets,
and the driver's reason in the unreachable-database error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from directus_ops.database import DatabaseSettings, server_version
from directus_ops.errors import DatabaseUnreachable
from directus_ops.redact import redact, register_secret
from directus_ops.repository import Repository, RepositoryLocation


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "directus_ops.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "s3:///"])
def test_an_s3_repository_url_without_a_bucket_names_the_missing_bucket(url, cli_env_no_server):
    done = _cli(["snapshots", "--repo", url], cli_env_no_server)
    assert done.returncode == 7
    assert done.stderr.strip().splitlines() == [
        f"directus-ops: error: repository URL {url!r} names no bucket; use s3://BUCKET or s3://BUCKET/PREFIX"]


def test_a_short_passphrase_does_not_redact_its_own_error_message(tmp_path, monkeypatch, capsys):
    from directus_ops.cli import fail
    from directus_ops.errors import WrongPassphrase

    monkeypatch.setenv("DIRECTUS_OPS_PASSPHRASE", "the right passphrase 42")
    Repository.open(RepositoryLocation(str(tmp_path / "repo")), create=True).master_key(create=True)
    location = RepositoryLocation(str(tmp_path / "repo")).with_passphrase("wrong")  # registered as a secret
    with pytest.raises(WrongPassphrase) as raised:
        Repository.open(location).master_key()
    fail(raised.value)  # what the command prints
    printed = capsys.readouterr().err
    assert printed.startswith("directus-ops: error: wrong passphrase for the repository"), printed
    assert "***" not in printed


def test_short_secrets_are_redacted_where_they_stand_as_values_long_ones_everywhere():
    register_secret("pw1")
    register_secret("a-long-secret-value-1")
    assert redact("postgresql://user:pw1@db/x") == "postgresql://user:***@db/x"
    assert redact("DB_PASSWORD=pw1") == "DB_PASSWORD=***"
    assert redact("DB_PASSWORD: pw1") == "DB_PASSWORD: ***"
    assert redact("password 'pw1' refused") == "password '***' refused"
    assert redact("pw1 is part of pw12 and xpw1") == "pw1 is part of pw12 and xpw1"  # ordinary text stays
    assert redact("the value a-long-secret-value-1x") == "the value ***x"
    register_secret("x")  # a one-character secret is kept too, and leaves words alone
    assert redact("exit x; KEY=x") == "exit x; KEY=***"


@pytest.mark.parametrize("url", ["postgresql://someone:pw-unreachable-1@127.0.0.1:1/nothing",
                                 "mysql://someone:pw-unreachable-1@127.0.0.1:1/nothing"])
def test_an_unreachable_database_error_keeps_the_drivers_reason(url):
    with pytest.raises(DatabaseUnreachable) as raised:
        server_version(DatabaseSettings.from_url(url))
    message = str(raised.value)
    assert "Connection refused" in message, message
    assert "127.0.0.1:1" in message and "check the DB_* settings" in message
    assert "pw-unreachable-1" not in message and len(message.splitlines()) == 1

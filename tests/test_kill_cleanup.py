"""What a run killed with SIGKILL leaves behind: no process (Prefect's temporary server, dump and restore
clients), no secret in a file outside the repository and the target, and the next run succeeds.

The real ``directus-ops`` command runs in its own process (ephemeral Prefect: no server), on PostgreSQL and
MariaDB projects whose database user has a password, and kills itself with a real SIGKILL at a chosen point
(``directus_ops.faults``). Its processes are found by a marker in their environment; its temporary directory
(``TMPDIR``) and state directory belong to the test, so every byte of every file in them is searched for the
secrets: the database passwords, the config's KEY and SECRET, the repository passphrase, and a value stored in
the database (which a decoded dump holds: it may sit in the run's private 0700 work directory until the next
run removes it, never anywhere else).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from harness import rows, small_project, write_env

from directus_ops.database import DatabaseSettings, open_engine

MARKER = "DIRECTUS_OPS_TEST_RUN_MARKER"

# (engine, command, point): every point on one engine at least, the database-client points on both.
CASES = [
    ("pg", "backup", "lock-taken:1"),
    ("pg", "backup", "dump-bytes:1"),  # pg_dump running
    ("mysql", "backup", "dump-bytes:1"),  # mariadb-dump running (its password: an inherited pipe, not a file)
    ("mysql", "backup", "object-stored:2"),
    ("pg", "backup", "before-manifest:1"),
    ("mysql", "restore", "restore-planned:1"),  # the snapshot's config read (in memory), nothing written
    ("pg", "restore", "database-fetched:1"),  # the decoded dump in the work directory
    ("pg", "restore", "database-loading:1"),  # pg_restore running
    ("mysql", "restore", "database-loading:1"),  # mariadb running
    ("mysql", "restore", "object-restored:1"),
    ("pg", "restore", "config-written:1"),
    ("mysql", "restore", "config-written:1"),
]


def _cli(args: list[str], env: dict[str, str], output: Path, point: str | None = None) -> tuple[int, str]:
    """Run the command; return its exit code and stderr. Its output goes to a file, not a pipe: an orphan
    holding the pipe would keep the test waiting instead of failing it."""
    env = {**env, "DIRECTUS_OPS_TEST_KILL_AT": point} if point else env
    with open(output, "wb") as out:
        code = subprocess.run([sys.executable, "-m", "directus_ops.cli", *args], env=env, stdout=out, stderr=out,
                              timeout=600).returncode
    return code, output.read_text(errors="replace")[-3000:]


def _processes_with(needle: bytes) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                environ = handle.read().split(b"\0")
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or another user's
        if needle in environ:
            found.append(f"{entry}: {command}")
    return found


def _kill_marked(needle: bytes) -> None:
    """Whatever a failed test leaves running (the test's own processes, found by their marker) is stopped."""
    for line in _processes_with(needle):
        with contextlib.suppress(OSError):
            os.kill(int(line.split(":")[0]), signal.SIGKILL)


def _files_holding(roots: list[Path], secret_values: list[str]) -> list[str]:
    found = []
    for root in roots:
        for directory, _, names in os.walk(root):
            for name in names:
                path = Path(directory) / name
                if path.is_symlink() or not path.is_file():
                    continue
                data = path.read_bytes()
                found += [f"{path} holds {secret!r}" for secret in secret_values if secret.encode() in data]
    return found


def _in_private_run_dir(path: Path, tmp: Path) -> bool:
    """``path`` is inside a run's work directory: directly under ``tmp``, owned by us, mode 0700."""
    top = tmp / path.relative_to(tmp).parts[0]
    info = top.lstat()
    return (top.name.startswith("directus-ops-run.") and stat.S_ISDIR(info.st_mode)
            and stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid())


@pytest.mark.parametrize("engine,command,point", CASES)
def test_a_run_killed_anywhere_leaves_no_process_no_secret_and_the_next_run_succeeds(
        engine, command, point, tmp_path, databases, cli_env_no_server, monkeypatch, request):
    source = databases.create(engine)
    project, settings = small_project(tmp_path, source)
    key, secret, passphrase = (f"{name}-{secrets.token_hex(12)}" for name in ("key", "secret", "passphrase"))
    row_secret = f"row-{secrets.token_hex(12)}"
    write_env(project / ".env", {**source.env(), "KEY": key, "SECRET": secret})
    engine_ = open_engine(settings)
    with engine_.begin() as conn:  # a value only the database (and so its dump) holds
        conn.execute(sa.text("INSERT INTO authors (name) VALUES (:n)"), {"n": row_secret})
    engine_.dispose()
    for index in range(3):
        (project / "uploads" / f"file-{index}.bin").write_bytes(os.urandom(30_000))
    assert source.password

    tmp, state, repo = tmp_path / "tmp", tmp_path / "state", tmp_path / "repo"
    tmp.mkdir()
    marker = secrets.token_hex(8)
    request.addfinalizer(lambda: _kill_marked(f"{MARKER}={marker}".encode()))
    env = {**cli_env_no_server, "TMPDIR": str(tmp), "DIRECTUS_OPS_STATE_DIR": str(state),
           "DIRECTUS_OPS_PASSPHRASE": passphrase, MARKER: marker}
    env.pop("DIRECTUS_OPS_PASSPHRASE_FILE", None)
    config_secrets = [source.password, key, secret, passphrase]

    target_dir = tmp_path / "restored"
    target = databases.create(engine)
    assert target.password
    config_secrets.append(target.password)
    backup_args = ["backup", str(project), "--repo", str(repo), "--encrypt"]
    restore_args = ["restore", "--project-dir", str(target_dir), "--repo", str(repo), "--database-url", target.url]
    if command == "backup":
        args = backup_args
    else:  # the snapshot to restore, taken in this process (one CLI run less: each pays a Prefect server start)
        from flows.backup import backup

        monkeypatch.setenv("DIRECTUS_OPS_PASSPHRASE", passphrase)
        request.getfixturevalue("prefect_server")
        backup(project_dir=str(project), repo=str(repo), encrypt=True)
        args = restore_args

    code, output = _cli(args, env, tmp_path / "killed.out", point)
    assert code == -signal.SIGKILL, output

    # No process of the run is alive (the watchdog allows its children a second to stop, then kills them).
    deadline = time.monotonic() + 6
    while (alive := _processes_with(f"{MARKER}={marker}".encode())) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive, alive

    # No secret of the config in any file of the temporary or state directory; the database's own data only
    # inside the dead run's private work directory.
    assert not _files_holding([tmp, state], config_secrets)
    leftovers = _files_holding([tmp, state], [row_secret])
    assert all(_in_private_run_dir(Path(line.split(" holds ")[0]), tmp) for line in leftovers), leftovers
    for path in target_dir.rglob("*") if target_dir.exists() else ():
        if path.is_file() and not path.is_symlink() and key.encode() in path.read_bytes():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, f"{path} holds the config's secrets and is not 0600"
    if (target_dir / ".env").exists():  # written once, with --database-url's settings in: never the source's
        written = (target_dir / ".env").read_text()
        assert source.password not in written and target.name in written

    # The next run succeeds (the project lock is a file lock: the kernel freed it), and it removed the dead
    # run's work directory.
    if command == "backup":
        code, output = _cli(backup_args, env, tmp_path / "again.out")
        assert code == 0, output
    else:
        code, output = _cli([*restore_args, "--replace"], env, tmp_path / "again.out")
        assert code == 0, output
        assert rows(DatabaseSettings.from_url(target.url)) == rows(settings)
        assert stat.S_IMODE((target_dir / ".env").stat().st_mode) == 0o600
        for path in (project / "uploads").iterdir():
            assert (target_dir / "uploads" / path.name).read_bytes() == path.read_bytes()
    assert not _files_holding([tmp, state], [*config_secrets, row_secret])
    assert not [p.name for p in tmp.iterdir() if p.name.startswith("directus-ops-run.")]


def test_the_work_directory_is_private_and_the_next_run_removes_only_dead_runs_directories(tmp_path, monkeypatch):
    import tempfile

    from directus_ops import workdir

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(workdir, "_current", None)
    uid = os.getuid()
    gone = subprocess.Popen(["true"])
    gone.wait()
    alive = subprocess.Popen(["sleep", "60"])
    try:
        started = workdir.process_start_time(alive.pid)
        dead = tmp_path / f"directus-ops-run.{uid}.{gone.pid}.{started}"
        reused = tmp_path / f"directus-ops-run.{uid}.{alive.pid}.1"  # the pid now belongs to another process
        live = tmp_path / f"directus-ops-run.{uid}.{alive.pid}.{started}"
        other = tmp_path / "directus-ops-run-something-else"
        for directory in (dead, reused, live, other):
            (directory / "staging-x").mkdir(parents=True)
            (directory / "staging-x" / "database.sql").write_text("decoded dump")
        made = workdir.make_dir("staging-")
        run = made.parent
        assert run.name == f"directus-ops-run.{uid}.{os.getpid()}.{workdir.process_start_time(os.getpid())}"
        assert stat.S_IMODE(run.stat().st_mode) == 0o700 and stat.S_IMODE(made.stat().st_mode) == 0o700
        assert not dead.exists() and not reused.exists()
        assert live.exists() and other.exists()
    finally:
        alive.kill()
        alive.wait()

"""The `directus-ops` command through its warm runner (directus_ops/runner.py) behaves as the command run in its
own process: same output, same exit codes, same death by a signal; it dies when its client is killed; the
runner holds none of the command's secrets; and commands that run flows reuse one local Prefect server.

Every test runs the installed `directus-ops` script (the client) in a state directory of its own, with a
runner started there and waited for, so each command below is known to go through it."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import small_project

from directus_ops import local_server, project_lock, runner

SCRIPT = str(Path(sys.executable).with_name("directus-ops"))


@pytest.fixture
def runner_env(tmp_path: Path, cli_env_no_server: dict[str, str]) -> Iterator[dict[str, str]]:
    """The environment of a command whose runner is up (its socket answers) before the test uses it."""
    env = {**cli_env_no_server, "DIRECTUS_OPS_STATE_DIR": str(tmp_path / "state"), "DIRECTUS_OPS_RUNNER": "on"}
    first = subprocess.run([SCRIPT, "--help"], env=env, capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    path = _socket(env)
    deadline = time.monotonic() + 90
    while not path.exists():
        assert time.monotonic() < deadline, "the runner did not start"
        time.sleep(0.2)
    yield env
    _stop_runners(env)


def _socket(env: dict[str, str]) -> Path:
    return runner.socket_path(Path(env["DIRECTUS_OPS_STATE_DIR"]))


def _stop_runners(env: dict[str, str]) -> None:
    runner.stop_all(Path(env["DIRECTUS_OPS_STATE_DIR"]))


def _runner_pid(env: dict[str, str]) -> int:
    wanted = str(_socket(env)).encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if wanted in (entry / "cmdline").read_bytes():
                    return int(entry.name)
            except OSError:
                continue
    raise AssertionError("no runner process")


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat[stat.rfind(")") + 2:].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _both(args: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    through = subprocess.run([SCRIPT, *args], env=env, capture_output=True, text=True, timeout=300)
    here = subprocess.run([SCRIPT, *args], env={**env, "DIRECTUS_OPS_RUNNER": "off"}, capture_output=True,
                          text=True, timeout=300)
    return through, here


def test_a_command_through_the_runner_prints_and_exits_as_in_its_own_process(runner_env, tmp_path):
    for args in (["--help"], ["snapshots", "--repo", str(tmp_path / "nowhere")], ["backup"], ["no-such-command"]):
        through, here = _both(args, runner_env)
        assert (through.returncode, through.stdout, through.stderr) == (here.returncode, here.stdout, here.stderr), args
    assert through.returncode == 2
    missing, _ = _both(["snapshots", "--repo", str(tmp_path / "nowhere")], runner_env)
    assert missing.returncode == 7
    assert missing.stderr.startswith("directus-ops: error: no snapshot repository at ")


def test_a_backup_through_the_runner_uses_the_commands_environment_and_records_its_run(runner_env, tmp_path,
                                                                                         databases):
    project, _ = small_project(tmp_path, databases.create("sqlite"))
    repo = tmp_path / "repo"
    backup = subprocess.run([SCRIPT, "backup", str(project), "--repo", str(repo)], env=runner_env,
                            capture_output=True, text=True, timeout=300)
    assert backup.returncode == 0, backup.stderr
    snapshot_id = backup.stdout.strip()
    listed = subprocess.run([SCRIPT, "snapshots", "--repo", str(repo)], env=runner_env, capture_output=True,
                            text=True, timeout=120)
    assert listed.returncode == 0 and snapshot_id in listed.stdout
    # The passphrase is the command's: another one in the command's environment is refused (exit 12).
    wrong = subprocess.run([SCRIPT, "snapshots", "--repo", str(repo)],
                           env={**runner_env, "DIRECTUS_OPS_PASSPHRASE": "not the passphrase"},
                           capture_output=True, text=True, timeout=120)
    assert wrong.returncode == 12, wrong.stderr
    # The runner never saw a secret: its environment is its own, not its clients'.
    environ = Path(f"/proc/{_runner_pid(runner_env)}/environ").read_bytes()
    assert runner_env["DIRECTUS_OPS_PASSPHRASE"].encode() not in environ
    # The run is recorded by the local Prefect server of the command's PREFECT_HOME.
    server = local_server.running(Path(runner_env["PREFECT_HOME"]))
    assert server is not None
    import httpx

    runs = httpx.post(f"{server.api_url}/flow_runs/filter",
                      json={"limit": 200}, timeout=30).json()
    assert any(run["parameters"].get("project_dir") == str(project) and run["state_type"] == "COMPLETED"
               for run in runs)


def test_a_command_killed_by_a_signal_kills_its_client_by_the_same_signal(runner_env, tmp_path, databases):
    project, _ = small_project(tmp_path, databases.create("sqlite"))
    killed = subprocess.run([SCRIPT, "backup", str(project), "--repo", str(tmp_path / "repo")],
                            env={**runner_env, "DIRECTUS_OPS_TEST_KILL_AT": "lock-taken:1"},
                            capture_output=True, text=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)


def _waiting_backup(runner_env: dict[str, str], root: Path, databases, monkeypatch) -> tuple[subprocess.Popen, int]:
    """A backup waiting for its project, which this test holds: its client, and its child of the runner."""
    project, _ = small_project(root, databases.create("sqlite"))
    monkeypatch.setenv("DIRECTUS_OPS_STATE_DIR", runner_env["DIRECTUS_OPS_STATE_DIR"])
    held = project_lock.hold(str(project), "test", wait=0)
    held.__enter__()
    _held.append(held)
    runner_pid = _runner_pid(runner_env)
    before = set(_children_of(runner_pid))
    client = subprocess.Popen([SCRIPT, "backup", str(project), "--repo", str(root / "repo")],
                              env={**runner_env, "DIRECTUS_OPS_PROJECT_WAIT": "120"}, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not (started := set(_children_of(runner_pid)) - before):
        assert time.monotonic() < deadline, "the command did not start in the runner"
        time.sleep(0.1)
    return client, started.pop()


_held: list = []


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_ctrl_c_reaches_the_command_and_a_killed_client_takes_its_command_with_it(runner_env, tmp_path, databases,
                                                                                   monkeypatch):
    try:
        client, child = _waiting_backup(runner_env, tmp_path / "a", databases, monkeypatch)
        time.sleep(1)  # the command is waiting for the project
        client.send_signal(signal.SIGINT)
        _, err = client.communicate(timeout=60)
        assert client.returncode == 130, err
        deadline = time.monotonic() + 30
        while not _gone(child):
            assert time.monotonic() < deadline, "the interrupted command is still running"
            time.sleep(0.1)

        client, child = _waiting_backup(runner_env, tmp_path / "b", databases, monkeypatch)
        time.sleep(1)
        client.kill()
        client.wait(timeout=30)
        deadline = time.monotonic() + 30
        while not _gone(child):
            assert time.monotonic() < deadline, "the command outlived its killed client"
            time.sleep(0.1)
    finally:
        for held in _held:
            held.__exit__(None, None, None)
        _held.clear()


def test_stop_all_stops_the_runner(runner_env):
    pid = _runner_pid(runner_env)
    _stop_runners(runner_env)
    deadline = time.monotonic() + 30
    while not _gone(pid):
        assert time.monotonic() < deadline, "the runner did not stop"
        time.sleep(0.1)
    assert not _socket(runner_env).exists()

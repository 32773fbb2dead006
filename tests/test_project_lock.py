"""One mutating procedure per project at a time, without a Prefect server: the file lock of project_lock.
(The same with a server, through real flow runs and the global concurrency limit: test_operations.py.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from directus_ops import project_lock
from directus_ops.errors import ProjectBusy

# Holds the project for HOLD seconds, then prints the time it let go.
HOLDER = """
import sys, time
from directus_ops import project_lock
with project_lock.hold(sys.argv[1], sys.argv[2], wait=0):
    print("held", time.time(), flush=True)
    time.sleep(float(sys.argv[3]))
    released = time.time()
print("released", released, flush=True)
"""


def start_holder(project: Path, env: dict[str, str], procedure: str = "upgrade", hold: float = 3.0) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(project), procedure, str(hold)], env=env,
                            stdout=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("held"), line
    return proc


def released_at(proc: subprocess.Popen) -> float:
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    return float(out.split()[-1])


@pytest.fixture
def no_server_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("DIRECTUS_OPS_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    return {**os.environ, "DIRECTUS_OPS_STATE_DIR": str(tmp_path / "state")}


def test_second_procedure_waits_for_the_first(tmp_path: Path, no_server_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    holder = start_holder(project, no_server_env, hold=2.0)
    try:
        with project_lock.hold(tmp_path / "." / "project", "backup", wait=30):  # the same project, spelt otherwise
            started = time.time()
    finally:
        released = released_at(holder)
    assert started >= released


def test_second_procedure_fails_at_once_with_no_wait(tmp_path: Path, no_server_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    holder = start_holder(project, no_server_env, hold=5.0)
    try:
        began = time.monotonic()
        with pytest.raises(ProjectBusy) as caught:
            with project_lock.hold(project, "backup", wait=0):
                pytest.fail("entered a project another procedure holds")
        assert time.monotonic() - began < 1.0
        message = str(caught.value)
        assert "\n" not in message and caught.value.exit_code == 17
        assert f"project {project.resolve()} is busy: upgrade (pid {holder.pid} on " in message
        assert "(no wait asked)" in message and "project_wait_seconds" in message
        # another project is not held
        other = tmp_path / "other"
        other.mkdir()
        with project_lock.hold(other, "backup", wait=0):
            pass
    finally:
        os.killpg(holder.pid, signal.SIGTERM)
        holder.wait(timeout=30)


def test_a_killed_holder_does_not_block(tmp_path: Path, no_server_env: dict[str, str]) -> None:
    project = tmp_path / "project"
    project.mkdir()
    holder = start_holder(project, no_server_env, hold=60.0)
    os.killpg(holder.pid, signal.SIGKILL)
    holder.wait(timeout=30)
    # The file still names the dead holder; its flock went with the process.
    assert project_lock.holder(project_lock.project_key(project))["pid"] == holder.pid
    with project_lock.hold(project, "backup", wait=0):
        assert project_lock.holder(project_lock.project_key(project))["pid"] == os.getpid()
    assert project_lock.holder(project_lock.project_key(project)) is None


def test_a_procedure_calling_another_on_its_project_does_not_wait_for_itself(tmp_path: Path,
                                                                             no_server_env: dict[str, str]) -> None:
    with project_lock.hold(tmp_path, "upgrade", wait=0):
        with project_lock.hold(tmp_path, "backup", wait=0):  # upgrade's backup subflow
            pass
        # still held for the outer procedure: another process is refused
        done = subprocess.run([sys.executable, "-c", HOLDER, str(tmp_path), "restore", "0"], env=no_server_env,
                              capture_output=True, text=True, timeout=60)
        assert done.returncode != 0 and "is busy: upgrade" in done.stderr


def test_the_decorator_adds_the_wait_parameter_to_the_flows() -> None:
    from flows.backup import backup
    from flows.downgrade import downgrade_directus
    from flows.exclusive import exclusive
    from flows.restore import restore
    from flows.upgrade import upgrade_directus

    for flow in (backup, restore, upgrade_directus, downgrade_directus):
        assert project_lock.WAIT_PARAMETER in flow.parameters.properties, flow.name
        given = {"project_dir": "/p", "repo": "/r", project_lock.WAIT_PARAMETER: "0"}
        if flow is downgrade_directus:
            given["to"] = "10.13.4"
        assert flow.validate_parameters(given)[project_lock.WAIT_PARAMETER] == 0.0
    with pytest.raises(TypeError, match="no parameter target_dir"):
        exclusive("move", "target_dir")(lambda project_dir: None)


def test_the_cli_exits_17_with_one_line_when_the_project_is_busy(tmp_path: Path, databases,
                                                                 cli_env_no_server: dict[str, str]) -> None:
    from harness import small_project

    project, _ = small_project(tmp_path, databases.create("sqlite3"))
    env = {**cli_env_no_server, "DIRECTUS_OPS_STATE_DIR": str(tmp_path / "state"), "DIRECTUS_OPS_PROJECT_WAIT": "0"}
    holder = start_holder(project, env, procedure="restore", hold=120.0)
    try:
        done = subprocess.run([str(Path(sys.executable).with_name("directus-ops")), "backup", str(project), "--repo",
                               str(tmp_path / "repo")], env=env, capture_output=True, text=True, timeout=300)
    finally:
        os.killpg(holder.pid, signal.SIGTERM)
        holder.wait(timeout=30)
    assert done.returncode == 17, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"directus-ops: error: project {project.resolve()} is busy: restore (pid ")
    assert "DIRECTUS_OPS_PROJECT_WAIT=SECONDS" in lines[0]

"""Shared by the benchmarks that time the ``directus-ops`` command as a user runs it: a subprocess running the
console script's own call (``directus_ops.runner.main``: the client of the warm runner) from this tree, with no Prefect server configured
(PREFECT_API_URL unset) and a temporary PREFECT_HOME and state directory of its own."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from _files import ROOT, make_project

from directus_ops import process, runner

# What the installed ``directus-ops`` script does; run by this interpreter with this tree first on the path,
# so the benchmark measures the code beside it (the venv's script imports the editable install's tree).
LAUNCHER = "from directus_ops.runner import main; main()"


class UserCli:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.warmed_up = False
        self.home = work / "prefect-home"
        self.home.mkdir(parents=True, exist_ok=True)
        # process.run passes this process's environment on and can only add to it: a server configured in the
        # caller's shell must not reach the command.
        os.environ.pop("PREFECT_API_URL", None)
        self.env = {"PREFECT_HOME": str(self.home), "DIRECTUS_OPS_STATE_DIR": str(work / "state"),
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}

    def run(self, *args: str, env: dict[str, str] | None = None) -> str:
        """Run ``directus-ops ARGS`` to completion; return what it printed. Raises ProcessFailed on failure."""
        return process.run([sys.executable, "-c", LAUNCHER, *args], env={**self.env, **(env or {})},
                           cwd=self.work, timeout=3 * 3600)

    def backup(self, project: Path, repo: str, *options: str, env: dict[str, str] | None = None) -> str:
        """``directus-ops backup PROJECT --repo REPO OPTIONS``; returns the snapshot id it printed."""
        return self.run("backup", str(project), "--repo", repo, *options, env=env).strip().splitlines()[-1]

    def warm_up(self) -> None:
        """One untimed backup of a small project: the CLI's first use (a local Prefect server started in the
        background, where the CLI does that; the interpreter's compiled modules) is not any measured run's.
        Once per instance."""
        if self.warmed_up:
            return
        self.warmed_up = True
        project, _ = make_project(self.work / "warm-up", "local", None, 20)
        self.backup(project, str(self.work / "warm-up" / "repo"))
        # The first command ran in its own process and started the warm runner: wait until it answers, as it
        # does for every command of a user after the first.
        socket_path = runner.socket_path(Path(self.env["DIRECTUS_OPS_STATE_DIR"]))
        deadline = time.monotonic() + 120
        while not socket_path.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        self.backup(project, str(self.work / "warm-up" / "repo"))

    def stop_server(self) -> str:
        """Stop what the CLI left running for later commands: its local Prefect server and its warm runner."""
        self.run("server", "stop")
        runner.stop_all(Path(self.env["DIRECTUS_OPS_STATE_DIR"]))
        return "stopped the CLI's local Prefect server (directus-ops server stop) and its warm runner"

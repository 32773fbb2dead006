"""Shared by the benchmarks that time the ``directus-ops`` command as a user runs it: a subprocess running the
console script's own call (``directus_ops.cli.run``) from this tree, with no Prefect server configured
(PREFECT_API_URL unset) and a temporary PREFECT_HOME and state directory of its own."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from _files import ROOT, make_project

from directus_ops import process
from directus_ops.errors import ProcessFailed

# What the installed ``directus-ops`` script does; run by this interpreter with this tree first on the path,
# so the benchmark measures the code beside it (the venv's script imports the editable install's tree).
LAUNCHER = "import sys; from directus_ops.cli import run; sys.exit(run())"


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

    def stop_server(self) -> str:
        """Stop the Prefect server the CLI started in the background (``directus-ops server stop``), if this
        version has that command; returns what happened, for the report."""
        try:
            usage = self.run("server", "--help")
        except ProcessFailed:
            usage = ""
        if "stop" not in usage:
            return ("this directus-ops has no `server stop` command: nothing stopped (a CLI run that starts "
                    "Prefect's temporary server stops it itself)")
        self.run("server", "stop")
        return "stopped the CLI's Prefect server (directus-ops server stop)"

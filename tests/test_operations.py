"""Deployments and operations on a REAL Prefect server (`prefect server start` on loopback, own PREFECT_HOME):
serve.py, prefect.yaml deployed with `prefect deploy --all` to a process pool and run by a real worker (from the
CLI and through the REST API, as the UI does), an interval schedule firing on its own, one procedure per project
(file lock and global concurrency limit), artifacts, alert automations, and an inventory of projects.

Uses small projects without Directus (SQLite) so runs take seconds. Everything started is stopped at the end.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from harness import small_project
from prefect_server import PREFECT, ROOT, Server, background

CLI = [str(Path(sys.executable).with_name("directus-ops"))]
POOL = "directus-ops"


@pytest.fixture(scope="module")
def server(prefect_server_process: Server) -> Server:
    return prefect_server_process


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("state")
    yield state
    from directus_ops import runner

    runner.stop_all(state)  # the warm runner the `directus-ops` commands of this module started


@pytest.fixture(scope="module")
def ops_env(server: Server, state_dir: Path) -> dict[str, str]:
    """What a worker/serve host has: the passphrase, the state directory, fast polling; progress artifacts for
    every copy (these copies are short)."""
    return server.env(DIRECTUS_OPS_STATE_DIR=str(state_dir), DIRECTUS_OPS_PROGRESS_ARTIFACT_AFTER="0",
                      PREFECT_WORKER_QUERY_SECONDS="1", PREFECT_RUNNER_POLL_FREQUENCY="1",
                      PREFECT_WORKER_PREFETCH_SECONDS="2")


@pytest.fixture
def api(server: Server, ops_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """In-process Prefect calls (deployments, blocks, flows) against the test server."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    for name in ("DIRECTUS_OPS_STATE_DIR",):
        monkeypatch.setenv(name, ops_env[name])
    with temporary_settings({PREFECT_API_URL: server.api}):
        yield server


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from harness import Databases

    root = tmp_path_factory.mktemp("site")
    databases = Databases(root / "sqlite")
    project_dir, _ = small_project(root, databases.create("sqlite3"))
    return project_dir


def snapshot_ids(repo: Path) -> list[str]:
    from directus_ops.repository import Repository, RepositoryLocation

    if not repo.exists():
        return []
    return Repository.open(RepositoryLocation(str(repo))).snapshot_ids()


def run_id_from(output: str) -> str:
    found = re.search(r"UUID:\s*([0-9a-f-]{36})", output)
    assert found, output
    return found.group(1)


def assert_backup_artifacts(server: Server, run_id: str, repo: Path) -> None:
    artifacts = server.artifacts(run_id)
    kinds = {a["type"] for a in artifacts}
    assert {"markdown", "table", "progress"} <= kinds, kinds
    report = next(a for a in artifacts if a["type"] == "markdown")
    assert report["key"] == "backup-project" and "Backup of project: snapshot" in report["data"]
    table = next(a for a in artifacts if a["type"] == "table")
    rows = json.loads(table["data"]) if isinstance(table["data"], str) else table["data"]
    assert [r["id"] for r in rows] == snapshot_ids(repo)
    progress = [a for a in artifacts if a["type"] == "progress"]
    assert any("storage 'local'" in (a["description"] or "") and a["data"] == 100.0 for a in progress), progress


# -- 3. serve.py: one process serves every flow, no pool ---------------------------------------------------------
def test_serve_py_serves_every_flow_and_runs_a_triggered_backup(server: Server, ops_env: dict[str, str],
                                                                project: Path, tmp_path: Path) -> None:
    repo = tmp_path / "served-repo"
    scratch_url = f"sqlite:///{tmp_path / 'drill.db'}"
    env = {**ops_env, "DIRECTUS_PROJECT_DIR": str(project), "DIRECTUS_OPS_REPO": str(repo),
           "DIRECTUS_OPS_SCRATCH_DATABASE_URL": scratch_url}
    with background([sys.executable, "deployments/serve.py"], env, tmp_path / "serve.log"):
        deadline = time.monotonic() + 120
        expected = {"backup", "restore", "verify", "forget", "upgrade", "rehearse-upgrade", "downgrade", "move",
                    "delete", "v8_migrate", "verify-drill"}
        while True:
            names = {d["name"] for d in server.post("/deployments/filter", {})}  # type: ignore[union-attr]
            if expected <= names:
                break
            assert time.monotonic() < deadline, (tmp_path / "serve.log").read_text()[-3000:]
            time.sleep(1)
        deployment = server.deployment("backup/backup")
        assert deployment["work_pool_name"] is None and deployment["parameters"] == {"project_dir": str(project),
                                                                                  "repo": {"url": str(repo)}}
        assert [s["schedule"]["cron"] for s in deployment["schedules"]] == ["17 2 * * *"]
        forget = server.deployment("forget/forget")
        assert forget["parameters"]["keep_daily"] == 14 and forget["parameters"]["prune"] is True
        drill = server.deployment("verify/verify-drill")  # served because a scratch database was given
        assert drill["parameters"] == {"repo": {"url": str(repo)}, "snapshot": "latest", "restore_drill": True,
                                       "scratch_database_url": scratch_url}
        assert [s["schedule"]["cron"] for s in drill["schedules"]] == ["30 6 * * 0"]
        run = server.post(f"/deployments/{deployment['id']}/create_flow_run", {})
        finished = server.wait_for_run(run["id"])  # type: ignore[index]
        assert finished["state"]["type"] == "COMPLETED", (finished["state"], (tmp_path / "serve.log").read_text()[-3000:])
    assert len(snapshot_ids(repo)) == 1


# -- 1 + 5. prefect.yaml, deploy --all, a worker, runs from the CLI and from the API, artifacts ------------------
@pytest.fixture(scope="module")
def worker(server: Server, ops_env: dict[str, str], project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The process pool, `prefect deploy --all` of prefect.yaml, and one worker."""
    default_repo = tmp_path_factory.mktemp("default-repo")
    scratch = tmp_path_factory.mktemp("drill") / "scratch.db"  # the restore drill's: created and dropped by each run
    env = {**ops_env, "DIRECTUS_PROJECT_DIR": str(project), "DIRECTUS_OPS_REPO": str(default_repo),
           "DIRECTUS_OPS_SCRATCH_DATABASE_URL": f"sqlite:///{scratch}"}
    server.cli("work-pool", "create", POOL, "--type", "process", env=env)
    server.cli("deploy", "--all", env=env)
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    with background([PREFECT, "worker", "start", "--pool", POOL], env, log):
        yield env


def test_deploy_all_and_a_worker_run_backups_from_the_cli_and_the_api(server: Server, worker: dict[str, str],
                                                                      project: Path, tmp_path: Path) -> None:
    for name, flow in [("backup", "backup"), ("restore", "restore"), ("verify", "verify"), ("forget", "forget"),
                       ("upgrade", "upgrade"), ("rehearse-upgrade", "rehearse-upgrade"), ("downgrade", "downgrade"),
                       ("verify-drill", "verify"), ("move", "move"), ("delete", "delete"), ("v8-migrate", "v8_migrate")]:
        deployment = server.deployment(f"{flow}/{name}")
        assert deployment["work_pool_name"] == POOL and deployment["enforce_parameter_schema"] is True
        assert deployment["description"] and "directus" in deployment["tags"]
    backup = server.deployment("backup/backup")
    assert backup["parameters"]["project_dir"] == str(project)
    assert [s["schedule"]["cron"] for s in backup["schedules"]] == ["17 2 * * *"]

    cli_repo, api_repo = tmp_path / "cli-repo", tmp_path / "api-repo"
    started = server.cli("deployment", "run", "backup/backup", "--param", f"project_dir={project}",
                         "--param", f'repo={{"url": "{cli_repo}"}}', env=worker)
    cli_run = run_id_from(started.stdout)
    api_run = server.post(f"/deployments/{backup['id']}/create_flow_run",
                          {"parameters": {"project_dir": str(project),
                                          "repo": {"url": str(api_repo)}}})["id"]  # type: ignore[index]
    for run_id, repo in ((cli_run, cli_repo), (api_run, api_repo)):
        finished = server.wait_for_run(run_id)
        assert finished["state"]["type"] == "COMPLETED", finished["state"]
        assert finished["parameters"]["repo"] == {"url": str(repo)}
        assert len(snapshot_ids(repo)) == 1
        assert_backup_artifacts(server, run_id, repo)

    # The project's global concurrency limit was created on first use, with one slot, now free.
    limits = server.post("/v2/concurrency_limits/filter", {})
    project_limits = [l for l in limits if l["name"].startswith("directus-project-project-")]  # type: ignore[union-attr]
    assert len(project_limits) == 1 and project_limits[0]["limit"] == 1 and project_limits[0]["active_slots"] == 0

    # A bad parameter is refused when the run is created (the schema is enforced): no run starts.
    refused = server.request("POST", f"/deployments/{backup['id']}/create_flow_run",
                             json={"parameters": {"project_dir": str(project), "repo": {"url": str(api_repo)},
                                                  "workers": "many"}})
    assert refused.status_code == 409 and "workers" in refused.text
    # A delete without its confirmation (the project's name) never starts either.
    delete = server.deployment("delete/delete")
    refused = server.request("POST", f"/deployments/{delete['id']}/create_flow_run", json={"parameters": {}})
    assert refused.status_code == 409 and "'confirm' is a required property" in refused.text
    assert not server.post("/flow_runs/filter", {"deployments": {"id": {"any_": [delete["id"]]}}})

    # The weekly restore drill (its scratch database given when deploying) runs on the worker: the latest
    # snapshot checked, its database restored into the scratch database, row counts compared, scratch dropped.
    drill = server.deployment("verify/verify-drill")
    assert [s["schedule"]["cron"] for s in drill["schedules"]] == ["30 6 * * 0"]
    scratch_url = worker["DIRECTUS_OPS_SCRATCH_DATABASE_URL"]
    assert drill["parameters"] == {"repo": {"url": worker["DIRECTUS_OPS_REPO"]}, "snapshot": "latest",
                                   "restore_drill": True, "scratch_database_url": scratch_url}
    run = server.post(f"/deployments/{drill['id']}/create_flow_run", {"parameters": {"repo": {"url": str(cli_repo)}}})
    finished = server.wait_for_run(run["id"])  # type: ignore[index]
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    report = next(a for a in server.artifacts(run["id"]) if a["type"] == "markdown")  # type: ignore[index]
    assert f"snapshot `{snapshot_ids(cli_repo)[0]}`" in report["data"] and "row counts match" in report["data"]
    assert not Path(scratch_url.removeprefix("sqlite:///")).exists()  # dropped


# -- 2. an interval schedule fires on its own ------------------------------------------------------------------
def test_an_interval_schedule_fires_on_its_own_and_completes(api: Server, worker: dict[str, str], project: Path,
                                                             tmp_path: Path) -> None:
    from prefect.deployments.runner import EntrypointType

    from flows.backup import backup

    repo = tmp_path / "interval-repo"
    deployment_id = backup.to_deployment(name="every-5-seconds", interval=5, entrypoint_type=EntrypointType.MODULE_PATH,
                                         parameters={"project_dir": str(project), "repo": {"url": str(repo)}}
                                         ).apply(work_pool_name=POOL)
    try:
        deadline = time.monotonic() + 150
        while True:
            runs = api.post("/flow_runs/filter", {"deployments": {"id": {"any_": [str(deployment_id)]}},
                                                  "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}})
            if runs:
                break
            assert time.monotonic() < deadline, "no scheduled run of the interval deployment completed"
            time.sleep(1)
        assert runs[0]["auto_scheduled"] is True  # type: ignore[index]
        assert snapshot_ids(repo)
    finally:
        api.request("POST", f"/deployments/{deployment_id}/pause_deployment").raise_for_status()
        api.request("DELETE", f"/deployments/{deployment_id}").raise_for_status()
    for run in api.post("/flow_runs/filter", {"flow_runs": {"state": {"type": {"any_": ["RUNNING", "PENDING"]}}}}):  # type: ignore[union-attr]
        api.wait_for_run(run["id"])  # a run already started finishes before the worker stops


# -- 4. one mutating procedure per project, with a server ------------------------------------------------------
# Holds the project until the test lets go (a line or the end of its stdin, or SIGINT): never for a set time,
# which a slow worker start could outlast. The time is taken before letting go: no waiter can start before it.
HOLDER = """
import sys, time
from flows.exclusive import hold
with hold(sys.argv[1], "upgrade", wait=0):
    print("held", flush=True)
    sys.stdin.readline()
    released = time.time()
print("released", released, flush=True)
"""


def hold_project(project: Path, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(project)], env=env, cwd=ROOT, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    assert line.startswith("held"), proc.stderr.read()  # type: ignore[union-attr]
    return proc


def wait_until_running(server: Server, run_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while (state := server.get(f"/flow_runs/{run_id}")["state"]["type"]) != "RUNNING":  # type: ignore[index]
        assert state in ("SCHEDULED", "PENDING") and time.monotonic() < deadline, f"flow run {run_id} is {state}"
        time.sleep(0.5)


def test_overlapping_runs_on_one_project_wait_or_fail_clearly(server: Server, worker: dict[str, str], project: Path,
                                                              tmp_path: Path) -> None:
    from directus_ops.repository import Repository, RepositoryLocation

    backup = server.deployment("backup/backup")

    def run(repo: Path, wait: float) -> str:
        return server.post(f"/deployments/{backup['id']}/create_flow_run",
                           {"parameters": {"project_dir": str(project), "repo": {"url": str(repo)},
                                           "project_wait_seconds": wait}})["id"]  # type: ignore[index]

    # Another procedure (an upgrade, say) holds the project: a backup waits for it, then runs.
    holder = hold_project(project, worker)
    waiting = run(tmp_path / "waited", 120)
    refused = run(tmp_path / "refused", 0)
    failed = server.wait_for_run(refused)
    assert failed["state"]["type"] == "FAILED"
    assert f"ProjectBusy: project {project.resolve()} is busy: upgrade (pid {holder.pid}" in failed["state"]["message"]
    assert not (tmp_path / "refused").exists() or not snapshot_ids(tmp_path / "refused")
    wait_until_running(server, waiting)  # started: it waits for the holder (the lock is its flow's first step)
    out, _ = holder.communicate(input="let go\n", timeout=60)
    released = float(out.split()[-1])
    done = server.wait_for_run(waiting)
    assert done["state"]["type"] == "COMPLETED", done["state"]
    manifest = Repository.open(RepositoryLocation(str(tmp_path / "waited"))).load_header(snapshot_ids(tmp_path / "waited")[0])
    assert manifest.time.timestamp() >= released  # started only after the holder let go

    # A holder on another host (its own state directory: no shared file lock) still excludes: the server's
    # global concurrency limit does.
    other_host = {**worker, "DIRECTUS_OPS_STATE_DIR": str(tmp_path / "other-host-state")}
    holder = hold_project(project, other_host)
    try:
        refused = server.wait_for_run(run(tmp_path / "refused-2", 0))
        assert refused["state"]["type"] == "FAILED"
        assert "Prefect concurrency limit directus-project-project-" in refused["state"]["message"]
    finally:
        holder.send_signal(signal.SIGINT)  # lets go at once (a killed holder's slot frees when its lease expires)
        holder.wait(timeout=30)
    limits = server.post("/v2/concurrency_limits/filter", {})
    assert all(l["active_slots"] == 0 for l in limits if l["name"].startswith("directus-project-"))  # type: ignore[union-attr]


# -- 6. alerts ------------------------------------------------------------------------------------------------
class _Hook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        _Hook.received.append(json.loads(body or b"{}"))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_alert_automations_are_applied_and_a_failed_backup_notifies(api: Server, worker: dict[str, str],
                                                                    tmp_path: Path) -> None:
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    hook = HTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    try:
        CustomWebhookNotificationBlock(name="directus-ops test", url=f"http://127.0.0.1:{hook.server_port}/alert",
                                       json_data={"subject": "{{subject}}", "body": "{{body}}"}).save("ops-alerts")
        applied = subprocess.run([*CLI, "alerts", "apply", "--notify-block", "ops-alerts"], env=worker,
                                 capture_output=True, text=True, timeout=120)
        assert applied.returncode == 0, applied.stderr
        again = subprocess.run([*CLI, "alerts", "apply", "--notify-block", "ops-alerts"], env=worker,
                               capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr
        automations = {a["name"]: a for a in api.post("/automations/filter", {})}  # type: ignore[union-attr]
        assert set(automations) == {"directus-ops backup failed", "directus-ops no backup in 26 hours"}  # replaced
        failed, missing = automations["directus-ops backup failed"], automations["directus-ops no backup in 26 hours"]
        assert failed["trigger"]["posture"] == "Reactive"
        assert set(failed["trigger"]["expect"]) == {"prefect.flow-run.Failed", "prefect.flow-run.Crashed"}
        assert missing["trigger"]["posture"] == "Proactive" and missing["trigger"]["within"] == 93600
        assert missing["trigger"]["expect"] == ["prefect.flow-run.Completed"]
        assert missing["trigger"]["for_each"] == ["related:deployment:prefect.resource.id"]
        for automation in (failed, missing):
            assert {"prefect.resource.role": "flow", "prefect.resource.name": "backup"} in automation["trigger"]["match_related"]
            assert automation["actions"][0]["type"] == "send-notification"

        # A backup run that fails (the project directory does not exist) sends the notification.
        backup = api.deployment("backup/backup")
        run = api.post(f"/deployments/{backup['id']}/create_flow_run",
                       {"parameters": {"project_dir": str(tmp_path / "gone"), "repo": {"url": str(tmp_path / "r")}}})
        assert api.wait_for_run(run["id"])["state"]["type"] == "FAILED"  # type: ignore[index]
        deadline = time.monotonic() + 60
        while not _Hook.received and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _Hook.received, "no notification arrived for the failed backup"
        assert "backup failed" in _Hook.received[0]["subject"] and "FAILED" in _Hook.received[0]["body"].upper()
    finally:
        hook.shutdown()
        for automation in api.post("/automations/filter", {}):  # type: ignore[union-attr]
            api.request("DELETE", f"/automations/{automation['id']}")

    missing_block = subprocess.run([*CLI, "alerts", "apply", "--notify-block", "nope"], env=worker,
                                   capture_output=True, text=True, timeout=120)
    assert missing_block.returncode == 2 and "no block named 'nope'" in missing_block.stderr
    assert len(missing_block.stderr.strip().splitlines()) == 1


# -- 7. an inventory of projects -----------------------------------------------------------------------------
INVENTORY = """
work_pool: directus-ops
projects:
  - name: shop
    dir: {project}
    repo: {repo}/shop
    backup_cron: "10 1 * * *"
    verify_cron: "30 5 * * 0"
    timezone: Europe/Berlin
    retention: {{keep_last: 3, keep_daily: 10}}
    scratch_database_url: sqlite:///{repo}/shop-drill.db
  - name: blog
    dir: /srv/blog
    repo: s3://agency-backups/blog
  - name: wiki
    dir: /srv/wiki
    repo: /backups/wiki
    backup_cron: "0 */6 * * *"
    verify_read_data_percent: 50
"""


def test_an_inventory_deploys_three_deployments_per_project_and_a_drill(server: Server, worker: dict[str, str], project: Path,
                                                            tmp_path: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(INVENTORY.format(project=project, repo=tmp_path))
    done = subprocess.run([*CLI, "deploy-inventory", str(inventory)], env=worker, capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr
    names = done.stdout.split()
    assert len(names) == 10 and "verify/shop-drill" in names  # only shop names a scratch database
    assert len([d for d in server.post("/deployments/filter", {})  # type: ignore[union-attr]
                if any(t.startswith("project:") for t in d["tags"])]) == 10
    shop_backup = server.deployment("backup/shop")
    assert shop_backup["parameters"] == {"project_dir": str(project), "repo": {"url": f"{tmp_path}/shop"}}
    assert shop_backup["work_pool_name"] == POOL and shop_backup["entrypoint"] == "flows.backup.backup"
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in shop_backup["schedules"]] == [("10 1 * * *", "Europe/Berlin")]
    shop_forget = server.deployment("forget/shop")
    assert {k: v for k, v in shop_forget["parameters"].items() if k.startswith("keep_") and v} == {"keep_last": 3, "keep_daily": 10}
    assert shop_forget["parameters"]["prune"] is True
    assert [s["schedule"]["cron"] for s in server.deployment("verify/shop")["schedules"]] == ["30 5 * * 0"]
    assert server.deployment("verify/blog")["schedules"] == []  # no verify_cron: on demand
    shop_drill = server.deployment("verify/shop-drill")
    assert shop_drill["parameters"] == {"repo": {"url": f"{tmp_path}/shop"}, "snapshot": "latest",
                                        "restore_drill": True,
                                        "scratch_database_url": f"sqlite:///{tmp_path}/shop-drill.db"}
    assert [(s["schedule"]["cron"], s["schedule"]["timezone"]) for s in shop_drill["schedules"]] == [("30 6 * * 0", "Europe/Berlin")]
    assert server.deployment("verify/wiki")["parameters"]["read_data_percent"] == 50
    assert server.deployment("forget/blog")["parameters"]["keep_monthly"] == 12  # the default policy
    assert [s["schedule"]["cron"] for s in server.deployment("backup/wiki")["schedules"]] == ["0 */6 * * *"]

    # The worker runs an inventory deployment (a module entrypoint, no pull step).
    run = server.post(f"/deployments/{shop_backup['id']}/create_flow_run", {})
    finished = server.wait_for_run(run["id"])  # type: ignore[index]
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    assert len(snapshot_ids(tmp_path / "shop")) == 1

    # A bad entry: one line naming the file, the project and the fix; nothing deployed.
    bad = tmp_path / "bad.yaml"
    bad.write_text("projects:\n  - {name: ok-one, dir: /srv/a, repo: /b/a}\n"
                   "  - {name: news, dir: /srv/news, repo: /b/news, retention: {keep_daily: -1}}\n")
    refused = subprocess.run([*CLI, "deploy-inventory", str(bad)], env=worker, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert refused.stderr.strip() == (f"directus-ops: error: inventory {bad}: project #2 (news), retention.keep_daily: "
                                      "Input should be greater than or equal to 0")
    assert server.request("GET", "/deployments/name/backup/ok-one").status_code == 404
    # A scratch database URL with a password: refused, the password not repeated.
    bad.write_text("projects:\n  - {name: news, dir: /srv/news, repo: /b/news, "
                   "scratch_database_url: 'postgresql://drill:hunter2@db/drill'}\n")
    refused = subprocess.run([*CLI, "deploy-inventory", str(bad)], env=worker, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and "hunter2" not in refused.stderr
    assert refused.stderr.strip().startswith(f"directus-ops: error: inventory {bad}: project #1 (news), "
                                             "scratch_database_url: the URL has a password in it")

    # The forget deployment's schema refuses a negative retention when a run is created (as the UI would).
    refused = server.request("POST", f"/deployments/{shop_forget['id']}/create_flow_run",
                             json={"parameters": {"keep_daily": -1}})
    assert refused.status_code == 409 and "keep_daily" in refused.text

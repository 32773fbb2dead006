"""A real Prefect server for the operations tests: `prefect server start` on a free loopback port with its
own PREFECT_HOME, and helpers to run the `prefect` CLI and worker/serve processes against it."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, home: Path, port: int) -> None:
        self.home, self.port = home, port
        self.api = f"http://127.0.0.1:{port}/api"
        self.http = httpx.Client(base_url=self.api, timeout=30)

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        env.update(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api, PREFECT_SERVER_ANALYTICS_ENABLED="false",
                   PREFECT_LOGGING_EXTRA_LOGGERS="directus_ops", DIRECTUS_OPS_HOME=str(ROOT))
        env.update(extra)
        return env

    def cli(self, *args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
            check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        done = subprocess.run([PREFECT, "--no-prompt", *args], env=env or self.env(), cwd=cwd, capture_output=True,
                              text=True, timeout=timeout)
        if check and done.returncode != 0:
            raise AssertionError(f"prefect {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
        return done

    def request(self, method: str, path: str, json: object = None) -> httpx.Response:
        """One API call; 503 (the server's SQLite was busy, on a loaded machine) is retried, as Prefect's own
        client does."""
        for attempt in range(8):
            response = self.http.request(method, path, json=json)
            if response.status_code != 503:
                return response
            time.sleep(1 + attempt)
        return response

    def post(self, path: str, body: dict | None = None) -> object:
        response = self.request("POST", path, body or {})
        response.raise_for_status()
        return response.json() if response.content else None

    def get(self, path: str) -> object:
        response = self.request("GET", path)
        response.raise_for_status()
        return response.json()

    def deployment(self, name: str) -> dict:
        return self.get(f"/deployments/name/{name}")  # type: ignore[return-value]

    def wait_for_run(self, run_id: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            run = self.get(f"/flow_runs/{run_id}")
            if run["state"]["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
                return run
            if time.monotonic() > deadline:
                raise AssertionError(f"flow run {run_id} still {run['state']['name']} after {timeout} s")
            time.sleep(0.5)

    def artifacts(self, run_id: str) -> list[dict]:
        return self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run_id]}}})  # type: ignore[return-value]


@contextlib.contextmanager
def background(args: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT) -> Iterator[subprocess.Popen]:
    """A long-running process (server, worker, serve.py) in its own process group, stopped with its group."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # children that outlived the leader


@contextlib.contextmanager
def prefect_server(home: Path, startup_timeout: float = 120) -> Iterator[Server]:
    home.mkdir(parents=True, exist_ok=True)
    server = Server(home, free_port())
    log = home / "server.log"
    with background([PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(server.port)],
                    server.env(), log) as proc:
        deadline = time.monotonic() + startup_timeout
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if server.http.get("/health").status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"prefect server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        try:
            yield server
        finally:
            server.http.close()

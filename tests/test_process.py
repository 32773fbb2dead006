"""The one subprocess helper: own process group, timeout, output to the log (redacted), killed on cancel."""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import time

import pytest

from harness import free_port, link_directus, write_env

from directus_ops import directus_cli, process
from directus_ops.errors import DirectusApiError
from directus_ops.errors import ProcessFailed, ToolMissing
from directus_ops.redact import register_secret


def pid_alive(pid: int, wait: float = 5.0) -> bool:
    """Whether ``pid`` still runs ``wait`` seconds from now at the latest (a zombie counts as dead)."""
    deadline = time.monotonic() + wait
    while True:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                running = handle.read().split()[2] != "Z"
        except FileNotFoundError:
            running = False
        if not running or time.monotonic() > deadline:
            return running
        time.sleep(0.05)


def test_output_goes_to_the_log_redacted(caplog):
    register_secret("tops3cret-value")
    with caplog.at_level(logging.INFO, logger="directus_ops.process"):
        output = process.run(["sh", "-c", "echo hello; echo password=tops3cret-value >&2"])
    assert "hello" in output and "tops3cret-value" not in output
    assert "[sh] hello" in caplog.text and "tops3cret-value" not in caplog.text and "password=***" in caplog.text


def test_each_line_reaches_on_line_redacted_as_it_comes():
    register_secret("tops3cret-value")
    seen: list[tuple[str, float]] = []
    started = time.monotonic()
    process.run(["sh", "-c", "echo one; echo token=tops3cret-value >&2; sleep 0.5; echo two"],
                on_line=lambda line: seen.append((line, time.monotonic() - started)))
    assert [line for line, _ in seen] == ["one", "token=***", "two"]
    assert seen[0][1] < 0.4 < seen[2][1]  # streamed, not handed over at the end


def test_a_failing_on_line_callback_does_not_stop_the_child():
    def broken(line: str) -> None:
        raise RuntimeError("display gone")

    output = process.run(["sh", "-c", "seq 1 20000"], on_line=broken, timeout=30)
    assert output.splitlines()[-1] == "20000"


def test_failure_names_the_tool_and_its_last_line():
    with pytest.raises(ProcessFailed, match="sh failed with exit code 3: boom"):
        process.run(["sh", "-c", "echo boom >&2; exit 3"])


# What npm prints for a version the registry does not have (its trailer last, on stderr); npm 11 prints the
# advice on one line, older npm wrapped it as here (the real npm test below sees the one-line form).
NPM_ETARGET = (
    "npm error code ETARGET\n"
    "npm error notarget No matching version found for directus@0.0.999-nonexistent.\n"
    "npm error notarget In most cases you or one of your dependencies are requesting\n"
    "npm error notarget a package version that doesn't exist.\n"
    "npm error A complete log of this run can be found in: /root/.npm/_logs/2026-01-01T00_00_00_000Z-debug-0.log\n"
)


def fail_with(stdout: str, stderr: str, code: int = 1) -> ProcessFailed:
    """Run a real ``sh`` that prints ``stdout`` and ``stderr`` and exits ``code``; return what it raised."""
    with pytest.raises(ProcessFailed) as caught:
        process.run(["sh", "-c", 'printf "%s" "$1"; printf "%s" "$2" >&2; exit "$3"', "sh", stdout, stderr, str(code)])
    return caught.value


def test_failure_names_the_cause_not_npms_log_trailer():
    error = fail_with("added 0 packages\n", NPM_ETARGET)
    assert str(error) == ("sh failed with exit code 1: npm error code ETARGET | "
                          "npm error notarget No matching version found for directus@0.0.999-nonexistent.")
    assert "A complete log of this run" in error.output_tail  # the tail itself keeps everything


def test_failure_skips_warnings_and_bare_prefixes():
    error = fail_with("", "npm warn EBADENGINE Unsupported engine {\nnpm error code ERESOLVE\n"
                          "npm error ERESOLVE unable to resolve dependency tree\nnpm error\n"
                          "npm error For a full report see:\nnpm error /root/.npm/_logs/x-eresolve-report.txt\n")
    assert str(error).endswith(": npm error code ERESOLVE | npm error ERESOLVE unable to resolve dependency tree")


# (No one-letter names in these outputs: another test registers the secret "x", redacted where it stands as a value.)
@pytest.mark.parametrize("stdout, stderr, cause", [
    ("", "pg_dump: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"nosuchdb\" does not exist\n",
     "pg_dump: error: connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database \"nosuchdb\" does not exist"),
    ("-- dumping\n", "mysqldump: Got error: 1049: \"Unknown database 'nosuchdb'\" when selecting the database\nbye\n",
     "mysqldump: Got error: 1049: \"Unknown database 'nosuchdb'\" when selecting the database"),
    ("", ("/p/cli.js:3\n  throw new Error(\"no config\");\n  ^\n\nError: no config\n"
          "    at Object.<anonymous> (/p/cli.js:3:9)\n\nNode.js v20.19.0\n"), "Error: no config"),
    ("", ("Traceback (most recent call last):\n  File \"x.py\", line 1, in <module>\n"
          "asyncpg.exceptions.InvalidCatalogNameError: database \"nosuchdb\" does not exist\nServer stopped!\n"),
     "asyncpg.exceptions.InvalidCatalogNameError: database \"nosuchdb\" does not exist"),
    ("", "a line\nstill nothing\n", "still nothing"),  # no error line: the last one, as before
    ("", "", "no output"),
])
def test_failure_names_each_tools_error_line(stdout, stderr, cause):
    assert str(fail_with(stdout, stderr, 2)) == f"sh failed with exit code 2: {cause}"


def test_failure_message_stays_one_bounded_line():
    error = fail_with("", "".join(f"error {i}: {'x' * 1000}\n" for i in range(10)))
    message = str(error)
    assert "\n" not in message and len(message) < 700
    assert message.count(" | ") == 2 and "error 0:" in message and "error 3:" not in message


def test_failure_message_is_redacted():
    register_secret("tops3cret-value")
    error = fail_with("", "Error: login as admin with password tops3cret-value refused\n")
    assert "tops3cret-value" not in str(error) and "***" in str(error)


def test_a_real_npm_install_of_a_missing_version_names_etarget(tmp_path):
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    (tmp_path / "package.json").write_text("{}")
    with pytest.raises(ProcessFailed) as caught:
        process.run([npm, "install", "--no-audit", "--no-fund", "directus@0.0.999-nonexistent"], cwd=tmp_path,
                    env={"npm_config_cache": str(tmp_path / "npm-cache")}, timeout=120)
    message = str(caught.value)
    assert "ETARGET" in message and "notarget No matching version found for directus@0.0.999-nonexistent" in message
    assert "complete log" not in message


def test_recent_output_of_a_server_that_exited_holds_its_last_lines():
    with process.spawn(["sh", "-c", "echo starting; sleep 0.2; echo 'Error: listen EADDRINUSE :::8055' >&2; exit 1"],
                       check=False) as proc:
        proc.wait()
        output = process.recent_output(proc)  # read after the exit: the last line may still be in the pipe
    assert output.splitlines() == ["starting", "Error: listen EADDRINUSE :::8055"]
    assert process.failure_cause(output) == "Error: listen EADDRINUSE :::8055"


def test_directus_that_exits_while_starting_says_why(tmp_path, directus, databases):
    """A real Directus whose database does not exist: the error carries its error line, not "see its log"."""
    database = databases.create("pg", create_database=False)
    port = free_port()
    project = tmp_path / "project"
    link_directus(project, directus)
    write_env(project / ".env", {**database.env(), "KEY": "k-0123456789", "SECRET": "s-0123456789", "PORT": str(port),
                                 "TELEMETRY": "false"})
    with pytest.raises(DirectusApiError) as caught, \
            directus_cli.running_server(project, f"http://127.0.0.1:{port}", ready_timeout=120):
        pass
    message = str(caught.value)
    assert message.startswith(f"Directus at http://127.0.0.1:{port} exited while starting: exit code 1: "), message
    assert f'error: database "{database.name}" does not exist' in message, message
    assert "severity" not in message and database.password not in message  # not the error object's dump


def test_a_local_prefect_server_that_exits_while_starting_says_why(prefect_home, monkeypatch):
    """Its database unreachable (nothing listens on port 1), Prefect's server exits: the error names why."""
    from directus_ops import local_server
    from directus_ops.errors import LocalServerFailed

    home = prefect_home
    (home / local_server.LOG_FILE).write_text("ERROR: an earlier start's line\n")  # appended to, not ours
    monkeypatch.setenv("PREFECT_API_DATABASE_CONNECTION_URL", "postgresql+asyncpg://nobody@127.0.0.1:1/nothing")
    with contextlib.ExitStack() as stack:
        # Hold Prefect's preferred port (if free) so the server gets a random one: another session's server
        # starting on the preferred port meanwhile would answer there and be taken for this one.
        preferred = stack.enter_context(socket.socket())
        with contextlib.suppress(OSError):
            preferred.bind((local_server.HOST, local_server.PREFERRED_PORT))
            preferred.listen()
        with pytest.raises(LocalServerFailed) as caught:
            local_server.ensure(home, timeout=90)
    message = str(caught.value)
    assert message.startswith("the local Prefect server exited while starting: ConnectionRefusedError: "), message
    assert "earlier start" not in message and f"(see {home / local_server.LOG_FILE})" in message


def test_timeout_kills_the_whole_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    with pytest.raises(ProcessFailed, match="did not finish within 1 s"):
        # The grandchild (sleep) would outlive a kill of sh alone.
        process.run(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"], timeout=1)
    assert time.monotonic() - started < 15
    assert not pid_alive(int(pidfile.read_text()))


def test_cancel_kills_the_group(tmp_path):
    pidfile = tmp_path / "child.pid"
    with pytest.raises(KeyboardInterrupt):
        with process.spawn(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; wait"]):
            while not pidfile.exists() or not pidfile.read_text().strip():
                time.sleep(0.05)
            raise KeyboardInterrupt  # what a cancelled run sees
    assert not pid_alive(int(pidfile.read_text()))


def test_missing_tool_is_named_with_the_fix():
    with pytest.raises(ToolMissing, match="`no-such-dump` is needed to dump things but is not installed; install it"):
        process.find_tool("no-such-dump", purpose="dump things", install_hint="install it")


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period(tmp_path):
    pidfile = tmp_path / "child.pid"
    with pytest.raises(ProcessFailed, match="did not finish"):
        # SIG_IGN is inherited through exec: this sleep can only be stopped by SIGKILL.
        process.run(["sh", "-c", f"(trap '' TERM; exec sleep 60) & echo $! > {pidfile}; wait"], timeout=1)
    assert not pid_alive(int(pidfile.read_text()))


def test_a_local_prefect_server_whose_port_is_taken_meanwhile_starts_on_another(tmp_path, prefect_home):
    """The race two starting servers run into (the preferred port found free, then taken by another before our
    server binds it): caused here by handing the start a port another server already answers on. Ours must
    not take that server for itself, and must start on another port."""
    from directus_ops import local_server

    other_home, home = tmp_path / "other-home", prefect_home
    other_home.mkdir()
    other = local_server.ensure(other_home, timeout=90)
    try:
        version = local_server._prefect_version()
        with pytest.raises(local_server._PortTaken):
            local_server._start_on(home, version, 90, other.port)
        ours = local_server.ensure(home, timeout=90)
        try:
            assert ours.port != other.port and ours.pid != other.pid
            assert local_server._listens(ours.pid, ours.port) and not local_server._listens(ours.pid, other.port)
        finally:
            local_server.stop(home)
    finally:
        local_server.stop(other_home)

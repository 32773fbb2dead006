"""The one subprocess helper: own process group, timeout, output to the log (redacted), killed on cancel."""

from __future__ import annotations

import logging
import time

import pytest

from directus_ops import process
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

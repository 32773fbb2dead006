"""Progress of long work (dumps, copies), reported to whoever listens: the CLI draws bars, flows log.

Plain code calls ``progress.track(label, total)`` and advances it; it never knows who is listening.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import Protocol

log = logging.getLogger("directus_ops.progress")


class Tracker(Protocol):
    def advance(self, amount: int) -> None: ...


class Reporter(Protocol):
    def start(self, label: str, total: int | None) -> Tracker: ...
    def finish(self, tracker: Tracker) -> None: ...


class _LogTracker:
    """Logs a line at most every ``interval`` seconds: progress in the run's log without flooding it."""

    def __init__(self, label: str, total: int | None, interval: float = 15.0) -> None:
        self.label, self.total, self.interval = label, total, interval
        self.done = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def advance(self, amount: int) -> None:
        with self._lock:
            self.done += amount
            now = time.monotonic()
            if now - self._last < self.interval:
                return
            self._last = now
        if self.total:
            log.info("%s: %s of %s (%d%%)", self.label, human_bytes(self.done), human_bytes(self.total),
                     100 * self.done // max(self.total, 1))
        else:
            log.info("%s: %s", self.label, human_bytes(self.done))


class LogReporter:
    def start(self, label: str, total: int | None) -> Tracker:
        return _LogTracker(label, total)

    def finish(self, tracker: Tracker) -> None:
        pass


_reporter: Reporter = LogReporter()
# Listeners beside the reporter (flows/report.py's progress artifacts): they see every tracker too.
_observers: list[Reporter] = []


def set_reporter(reporter: Reporter | None) -> None:
    global _reporter
    _reporter = reporter or LogReporter()


def add_observer(observer: Reporter) -> None:
    if observer not in _observers:
        _observers.append(observer)


class _Fanout:
    def __init__(self, trackers: list[tuple[Reporter, Tracker]]) -> None:
        self.trackers = trackers

    def advance(self, amount: int) -> None:
        for _, tracker in self.trackers:
            tracker.advance(amount)


@contextlib.contextmanager
def track(label: str, total: int | None = None) -> Iterator[Tracker]:
    trackers = [(r, r.start(label, total)) for r in [_reporter, *_observers]]
    try:
        yield trackers[0][1] if len(trackers) == 1 else _Fanout(trackers)
    finally:
        for reporter, tracker in trackers:
            reporter.finish(tracker)


def human_bytes(count: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"

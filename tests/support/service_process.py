"""``noticewatch run`` as a child process that tests stop, kill and restart (the crash tests).

:class:`Bench` writes a sources.toml for one loopback feed and any number of loopback
webhook receivers (one notifier each) and starts ``run`` against it; :class:`Service`
is one such process, logging to its own file (a pipe nobody reads would fill up and
block a process that logs every delivery). :func:`check_database` is what every
restart must find, and :class:`GatedFeedServer` lets a test hold a fetch's answer.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.feed_server import FeedServer, _Route
from tests.support.feeds import Entry, rss
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

ROOT = Path(__file__).parent.parent.parent
RULE = "clearview"


def notices(count: int, start: int = 0) -> list[Entry]:
    """``count`` distinct items that all match :data:`RULE`; item ``i`` links to /n/i."""
    return [
        Entry(f"n-{i}", f"Clearview notice {i}", f"https://notices.example/n/{i}")
        for i in range(start, start + count)
    ]


def notice_feed(count: int, start: int = 0) -> bytes:
    return rss(*notices(count, start))


def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; AssertionError naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def check_database(db: Path) -> None:
    """What a restart must find after any stop: an intact file with intact references."""
    if not db.exists():
        return  # stopped before it created the database: nothing to find
    with sqlite3.connect(f"file:{db}?mode=rw", uri=True) as conn:
        integrity = conn.execute("PRAGMA integrity_check").fetchall()
        assert integrity == [("ok",)], f"PRAGMA integrity_check on {db}: {integrity}"
        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
        assert broken == [], f"PRAGMA foreign_key_check on {db}: {broken}"
    conn.close()


def main_thread_state(pid: int) -> str:
    """Where the process's main thread waits in the kernel (``/proc/PID/wchan``)."""
    try:
        return Path(f"/proc/{pid}/wchan").read_text()
    except OSError:
        return ""


class StateWatch:
    """Reads ``query`` again and again (every ~2 ms) from its own connection while a run
    works, and keeps each distinct answer: the committed states the run went through.
    One SELECT reads one snapshot (WAL), so an answer never mixes two commits."""

    def __init__(self, db: Path, query: str) -> None:
        self.db, self.query = db, query
        self.seen: list[tuple[object, ...]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="state-watch", daemon=True)

    def _watch(self) -> None:
        conn = sqlite3.connect(self.db, isolation_level=None, check_same_thread=False)
        try:
            while not self._stop.wait(0.002):
                for row in conn.execute(self.query).fetchall():
                    if not self.seen or self.seen[-1] != row:
                        self.seen.append(row)
        finally:
            conn.close()

    def __enter__(self) -> StateWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


class Launcher:
    """Starts ``run`` processes through :mod:`tests.support.run_fork` (see why there) and
    learns how each ended."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self._helper = subprocess.Popen(
            [sys.executable, "-m", "tests.support.run_fork"],
            cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        self._changed = threading.Condition()
        self._started: list[int] = []
        self.exits: dict[int, int] = {}
        threading.Thread(target=self._read, name="run-fork-reader", daemon=True).start()

    def _read(self) -> None:
        assert self._helper.stdout is not None
        for line in self._helper.stdout:
            word, pid, *code = line.split()
            with self._changed:
                if word == "started":
                    self._started.append(int(pid))
                else:
                    self.exits[int(pid)] = int(code[0])
                self._changed.notify_all()

    def start(self, log_path: Path) -> int:
        assert self._helper.stdin is not None
        with self._changed:
            count = len(self._started)
            self._helper.stdin.write(f"{log_path}\n")
            self._helper.stdin.flush()
            if not self._changed.wait_for(lambda: len(self._started) > count, timeout=30):
                raise AssertionError(f"the run helper started nothing (exit {self._helper.poll()})")
            return self._started[-1]

    def wait(self, pid: int, timeout: float) -> int:
        """The exit code of ``pid`` once it ended; AssertionError after ``timeout`` s."""
        with self._changed:
            if not self._changed.wait_for(lambda: pid in self.exits, timeout=timeout):
                raise AssertionError(f"run (pid {pid}) still running after {timeout}s")
            return self.exits[pid]

    def close(self) -> None:
        if self._helper.stdin is not None:
            self._helper.stdin.close()  # EOF: the helper ends after its last child
        self._helper.wait(timeout=30)


class Service:
    """One ``noticewatch run`` process; its output goes to ``log_path``."""

    def __init__(self, launcher: Launcher, log_path: Path) -> None:
        self.log_path = log_path
        self._launcher = launcher
        self.pid = launcher.start(log_path)

    @property
    def alive(self) -> bool:
        return self.pid not in self._launcher.exits

    @property
    def output(self) -> str:
        """What it logged so far ("" until the forked child has opened its log)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill9(self) -> None:
        """SIGKILL: no handler, no clean-up, no flush: a power cut for the process."""
        if self.alive:
            os.kill(self.pid, signal.SIGKILL)
        self._launcher.wait(self.pid, timeout=10)

    def terminate(self, timeout: float = 15) -> tuple[int, float]:
        """SIGTERM and wait; (exit code, seconds it took to exit)."""
        began = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        code = self._launcher.wait(self.pid, timeout)
        return code, time.monotonic() - began

    def close(self) -> None:
        """Make sure the process is gone (a failed test must not leave it running)."""
        if self.alive:
            self.kill9()


@dataclass
class Bench:
    """A config with one rss source and one webhook notifier per receiver, in ``tmp``."""

    tmp: Path
    feed_url: str
    receivers: Sequence[WebhookReceiver]
    services: list[Service] = field(default_factory=list)
    launcher: Launcher | None = None

    @property
    def db(self) -> Path:
        return self.tmp / "data" / "noticewatch.db"

    def write_config(self) -> None:
        # A source polled once per start (every 1h), alerts from its first fetch on
        # (baseline off), and dedupe off: the numbered notices are near-copies of
        # each other by design and must each alert.
        notifiers = "".join(
            textwrap.dedent(
                f"""
                [[notifiers]]
                name = "hook-{number}"
                type = "webhook"
                url = "{receiver.url}"
                secret = "${{TEST_WEBHOOK_SECRET}}"
                allow_private = true
                timeout = "2s"
                """
            )
            for number, receiver in enumerate(self.receivers)
        )
        head = textwrap.dedent(
            f"""
            [monitor]
            database = "sqlite:///{self.db}"
            baseline = false
            dedupe = false
            http_port = 0

            [[sources]]
            name = "bulk"
            type = "rss"
            url = "{self.feed_url}"
            every = "1h"

            [[rules]]
            name = "cv"
            query = "{RULE}"
            """
        )
        (self.tmp / "sources.toml").write_text(head + notifiers)

    def environ(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("NOTICEWATCH_")}
        env["PYTHONPATH"] = str(ROOT)
        env["TEST_WEBHOOK_SECRET"] = WEBHOOK_SECRET
        env["NOTICEWATCH_CONFIG"] = str(self.tmp / "sources.toml")
        return env

    def start(self) -> Service:
        if self.launcher is None:
            self.launcher = Launcher(self.tmp, self.environ())
        service = Service(self.launcher, self.tmp / f"run-{len(self.services) + 1}.log")
        self.services.append(service)
        return service

    def close(self) -> None:
        for service in self.services:
            service.close()
        if self.launcher is not None:
            self.launcher.close()

    # --- what the receivers got ---------------------------------------------------------

    def accepted(self) -> int:
        """Accepted deliveries over all receivers, repeats included."""
        return sum(len(receiver.deliveries) for receiver in self.receivers)

    def pairs(self) -> dict[tuple[int, str], list[str]]:
        """(receiver number, item link) -> the webhook-id of every accepted delivery."""
        found: dict[tuple[int, str], list[str]] = {}
        for number, receiver in enumerate(self.receivers):
            for delivery in receiver.deliveries:
                link = delivery.payload["data"]["item"]["url"]
                found.setdefault((number, link), []).append(delivery.webhook_id or "")
        return found

    def expected_pairs(self, links: Sequence[str]) -> set[tuple[int, str]]:
        return {(number, link) for number in range(len(self.receivers)) for link in links}


class SlowReceiver(WebhookReceiver):
    """A WebhookReceiver that waits ``delay`` seconds before it reads and answers each
    request, so that a delivery is nearly always in flight when the test stops ``run``."""

    delay = 0.0
    in_flight = 0  # requests it is waiting on right now

    def _handle(self, handler: Any) -> None:
        with self._lock:
            self.in_flight += 1
        try:
            time.sleep(self.delay)  # the endpoint's latency, not a wait in the test
            super()._handle(handler)
        finally:
            with self._lock:
                self.in_flight -= 1


class GatedFeedServer(FeedServer):
    """A FeedServer whose answers can be held: with ``hold()`` a GET is recorded (so the
    test sees the request arrive) and then waits until ``release()`` before answering."""

    def __init__(self) -> None:
        super().__init__()
        self._open = threading.Event()
        self._open.set()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def _lookup(self, path: str) -> _Route | None:
        # Called by the handler after the request is recorded, before it answers.
        while not self._open.wait(0.05):
            if self._stopping.is_set():
                break
        return super()._lookup(path)

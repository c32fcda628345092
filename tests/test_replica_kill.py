"""A ``noticewatch run`` replica killed with SIGKILL mid-delivery, on PostgreSQL.

Two real ``run`` processes share one database, loopback feeds and a real webhook receiver
(signatures checked with ``standardwebhooks``). The receiver holds the first request it
gets; the replica that sent it (the holder of that alert's claim) is killed while it
waits. The survivor takes the dead replica's claims over once they expire and delivers
every alert; a repeat, if any, carries the same ``webhook-id``. Leases are short here
because the webhook timeout is: a claim lasts three timeouts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from storage.db import create_db_engine
from storage.store import Store
from storage.tables import AlertRow
from tests.support.feed_server import FeedServer
from tests.support.feeds import Entry, rss
from tests.support.replicas import feed_path, replicas_config
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[1]
SOURCES = 10
PER_SOURCE = 3
TIMEOUT = timedelta(seconds=4)  # the webhook timeout: a delivery claim lasts 12s


def _config(tmp_path: Path, db: str, feeds: FeedServer, hook: WebhookReceiver) -> Path:
    path = tmp_path / "sources.toml"
    timeout = f'timeout = "{TIMEOUT.seconds}s"'
    path.write_text(
        replicas_config(db, feeds, hook.url, SOURCES, every="10m", monitor="baseline = false",
                        notifier=timeout)
    )  # fmt: skip
    for n in range(SOURCES):
        entries = [Entry(f"s{n}-{k}", f"Clearview contract {n}.{k}") for k in range(PER_SOURCE)]
        feeds.serve(feed_path(n), rss(*entries))
    return path


@contextmanager
def _replica(path: Path, name: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SECRET": WEBHOOK_SECRET,
        "NOTICEWATCH_REPLICA_ID": name,
        "NOTICEWATCH_LOG_LEVEL": "INFO",
    }
    with log.open("wb") as out:  # a file, not a pipe nobody reads: it never blocks the replica
        proc = subprocess.Popen(
            [sys.executable, "-m", "monitor", "run", "--config", str(path)],
            cwd=path.parent, env=environ, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _wait(check: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_replica_killed_mid_delivery_loses_nothing(
    pg_url: str, tmp_path: Path, feed_server: FeedServer, webhook_receiver: WebhookReceiver
) -> None:
    path = _config(tmp_path, pg_url, feed_server, webhook_receiver)
    store = Store(create_db_engine(pg_url))
    webhook_receiver.hang_next(1)  # held until the replica that sent it is dead
    total = SOURCES * PER_SOURCE
    with ExitStack() as stack:
        procs = {
            name: stack.enter_context(_replica(path, name, tmp_path / f"{name}.log"))
            for name in ("a", "b")
        }
        assert webhook_receiver.wait_for_requests(1, timeout=45), "no delivery was attempted"
        held = webhook_receiver.requests[0].headers["webhook-id"]

        def holder() -> str | None:
            with store.session() as s:
                row = s.get(AlertRow, held)
                return row.claimed_by if row is not None else None

        victim = holder()
        assert victim in procs, f"the held alert's claim is {victim!r}"
        with store.session() as s:
            query = select(AlertRow.id).where(col(AlertRow.claimed_by) == victim)
            in_flight = set(s.exec(query).all())
        procs[victim].send_signal(signal.SIGKILL)
        procs[victim].wait(timeout=10)
        killed_at = datetime.now(UTC)
        survivor = "b" if victim == "a" else "a"
        # The survivor takes the dead replica's claims over after they expire (12s) and
        # delivers everything; its delivery timer fires every 5s.
        _wait(lambda: len(set(webhook_receiver.ids())) >= total, 60, "every alert delivered")
        assert procs[survivor].poll() is None, (tmp_path / f"{survivor}.log").read_text()
        _wait(
            lambda: store.alert_counts() == {("newsroom", "delivered"): total},
            15,
            "every delivery recorded",
        )
        with store.session() as s:
            stuck = s.exec(select(AlertRow).where(col(AlertRow.claimed_by).is_not(None))).all()
        assert stuck == []  # no claim outlives its alert's delivery
        for lease in store.leases(datetime.now(UTC)):  # sources: 90s leases, not waited for
            assert lease.holder == survivor or (
                lease.expires_at is not None
                and lease.expires_at <= killed_at + timedelta(seconds=90)
            )
        status = subprocess.run(
            [sys.executable, "-m", "monitor", "status", "--config", str(path)],
            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT), "SECRET": WEBHOOK_SECRET},
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert status.returncode == 0, status.stderr
        assert "REPLICAS" in status.stdout and f"  {survivor}: " in status.stdout
    store.engine.dispose()
    ids = webhook_receiver.ids()
    with store.session() as s:
        alert_ids = set(s.exec(select(AlertRow.id)).all())
    assert len(alert_ids) == total and set(ids) == alert_ids
    # Only what the dead replica had claimed may arrive twice, under the same webhook-id
    # (one delivered but not yet recorded when it died): the receiver drops the repeat.
    repeats = {ident for ident in ids if ids.count(ident) > 1}
    assert repeats <= in_flight, repeats
    assert webhook_receiver.rejected == []

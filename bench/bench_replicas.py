"""Sources per minute and deliveries per second with 1, 2 and 3 replicas sharing one
PostgreSQL database, and with one replica on SQLite; over loopback only (127.0.0.1).

Run by hand from the repository root (see bench/README.md)::

    python bench/bench_replicas.py --postgres postgresql+psycopg://user@127.0.0.1:5432/postgres
    python bench/bench_replicas.py --feeds 50 --quick       # a quick look

The parent starts a loopback FeedServer and a WebhookReceiver that checks every signature
(both from tests/support), and per scenario a fresh database (PostgreSQL: a new database
created on the server and dropped after; SQLite: a new file), migrated by the parent. Each
replica is a child process: it opens the App as ``noticewatch run`` does (its own engine,
HTTP clients and replica id), then waits for the parent's go.

Phase 1 (fetch): every replica fires every source at once (8 at a time, like a timer
firing for all of them), claiming each through the database as the service does; every
source is fetched by exactly one of them. ``--feeds`` feeds of 20 items, two of which
match a rule, so the phase queues 2 x feeds alerts (``baseline = false``).
Phase 2 (deliver): every replica runs delivery rounds until nothing is left to claim.

A figure is the work done divided by the wall time from the first replica's start to the
last one's end of the phase (each child reports its own times), the median of
``--repeats`` repeats. The receiver's signature checks run in the parent's threads, on the
same machine: they are part of what a delivery costs here.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from machine import cpu_model  # bench/machine.py: this script's folder is on sys.path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench this checkout, whatever an editable install points at

if TYPE_CHECKING:
    from monitor.app import App
    from tests.support.feed_server import FeedServer

ITEMS = 20
MATCHING = 2
CONCURRENCY = 8


# --- the child: one replica ------------------------------------------------------------------


async def _fetch_all(app: App) -> int:
    """Fire every source at once, claiming each as the service does; the number fetched."""
    from monitor.pipeline import run_source
    from monitor.replicas import due_again, source_lease

    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(name: str) -> int:
        async with gate:
            source = app.sources[name]
            again = due_again(source.config.every)
            claim = app.store.claim_source(
                name, app.replica.id, app.clock(), source_lease(source.config.timeout), again
            )
            if claim is None:
                return 0
            run = await run_source(source, app.pipeline, lease=claim)
            if run.outcome in ("paused", "error"):
                app.store.release_source(claim)
            return 1

    return sum(await asyncio.gather(*(one(name) for name in app.sources)))


async def _replica(config_path: Path, replica: str) -> None:
    from monitor.app import open_app
    from monitor.config import load_config

    config = load_config(config_path, dict(os.environ))
    async with open_app(config, replica_id=replica) as app:
        print("ready", flush=True)
        for phase in ("fetch", "deliver"):
            sys.stdin.readline()  # the parent's go
            started = time.time()
            work = 0
            if phase == "fetch":
                work = await _fetch_all(app)
            else:
                for name in app.notifiers:
                    work += (await app.deliverer.deliver_due(name)).delivered
            print(json.dumps({"start": started, "end": time.time(), "work": work}), flush=True)


# --- the parent ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    engine: str
    replicas: int
    sources_per_minute: float
    deliveries_per_second: float
    fetched: int
    delivered: int


def _config(path: Path, db: str, feeds: FeedServer, hook_url: str, count: int) -> None:
    from tests.support.replicas import replicas_config

    extra = "baseline = false\ndedupe = false"  # every matching item alerts, unconditionally
    path.write_text(replicas_config(db, feeds, hook_url, count, monitor=extra))


def _serve(feeds: FeedServer, count: int) -> None:
    from tests.support.feeds import Entry, rss
    from tests.support.replicas import feed_path

    for n in range(count):
        entries = [
            Entry(
                f"s{n}-{k}",
                f"Clearview contract {n}.{k}" if k < MATCHING else f"Tender {n}.{k} for chairs",
                description=f"Notice {k} of feed {n}: supplies, works and services.",
            )
            for k in range(ITEMS)
        ]
        feeds.serve(feed_path(n), rss(*entries))


@contextmanager
def _database(engine: str, postgres: str | None, tmp: Path) -> Iterator[str]:
    if engine == "sqlite":
        yield f"sqlite:///{tmp / f'bench-{uuid.uuid4().hex[:8]}.db'}"
        return
    from tests.support.databases import fresh_database

    assert postgres is not None
    with fresh_database(postgres) as url:
        yield url


def _phase(children: list[subprocess.Popen[str]]) -> tuple[float, int]:
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    reports = []
    for child in children:
        assert child.stdout is not None
        reports.append(json.loads(child.stdout.readline()))
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return wall, sum(r["work"] for r in reports)


def _once(engine: str, replicas: int, count: int, postgres: str | None, tmp: Path) -> Result:
    from storage.db import create_db_engine
    from tests.support.feed_server import FeedServer
    from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

    with (
        FeedServer() as feeds,
        WebhookReceiver(WEBHOOK_SECRET) as hook,
        _database(engine, postgres, tmp) as db,
    ):
        _serve(feeds, count)
        config = tmp / "sources.toml"
        _config(config, db, feeds, hook.url, count)
        create_db_engine(db).dispose()  # migrate once, before the replicas open it
        environ = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
        environ |= {"SECRET": WEBHOOK_SECRET, "PYTHONPATH": str(ROOT)}
        environ["NOTICEWATCH_LOG_LEVEL"] = "ERROR"
        command = [sys.executable, __file__, "--child", str(config)]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE}
        children = [
            subprocess.Popen([*command, f"r{n}"], text=True, env=environ, **pipes)
            for n in range(1, replicas + 1)
        ]
        try:
            for child in children:
                assert child.stdout is not None and child.stdout.readline().strip() == "ready"
            fetch_wall, fetched = _phase(children)
            deliver_wall, delivered = _phase(children)
        finally:
            for child in children:
                child.wait(timeout=60)
        expected = count * MATCHING
        ids = hook.ids()
        if fetched != count or delivered != expected or len(set(ids)) != expected:
            raise SystemExit(
                f"{engine} x{replicas}: fetched {fetched}/{count}, delivered {delivered}/"
                f"{expected}, {len(set(ids))} distinct webhook-ids received"
            )
        if len(ids) != len(set(ids)):
            raise SystemExit(f"{engine} x{replicas}: {len(ids) - len(set(ids))} duplicates")
    return Result(
        engine, replicas, count / fetch_wall * 60, delivered / deliver_wall, fetched, delivered
    )


def _loadavg() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}, {five:.2f}, {fifteen:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "REPLICA"), help=argparse.SUPPRESS)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("NOTICEWATCH_TEST_POSTGRES_URL"),
        help="SQLAlchemy URL of a PostgreSQL maintenance database (the user may CREATE "
        "DATABASE); default: $NOTICEWATCH_TEST_POSTGRES_URL",
    )
    parser.add_argument("--feeds", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    if args.child:
        asyncio.run(_replica(Path(args.child[0]), args.child[1]))
        return
    if not args.postgres:
        raise SystemExit("give --postgres URL (or set NOTICEWATCH_TEST_POSTGRES_URL)")
    repeats = 1 if args.quick else args.repeats
    scenarios = [("postgresql", 1), ("postgresql", 2), ("postgresql", 3), ("sqlite", 1)]
    load_before = _loadavg()
    rows = []
    with tempfile.TemporaryDirectory(prefix="nw-bench-replicas-") as tmp:
        for engine, replicas in scenarios:
            runs = [
                _once(engine, replicas, args.feeds, args.postgres, Path(tmp))
                for _ in range(repeats)
            ]
            rows.append(
                (
                    engine,
                    replicas,
                    statistics.median(r.sources_per_minute for r in runs),
                    statistics.median(r.deliveries_per_second for r in runs),
                )
            )
            print(f"  {engine} x{replicas}: done", file=sys.stderr, flush=True)
    print(f"{args.feeds} feeds of {ITEMS} items ({MATCHING} matching: {args.feeds * MATCHING} "
          f"deliveries), median of {repeats}; {cpu_model()}, {os.cpu_count()} CPUs, "
          f"Python {platform.python_version()}")  # fmt: skip
    print(f"load average (1, 5, 15 min) before: {load_before}; after: {_loadavg()}")
    print()
    print("| database | replicas | sources / minute | deliveries / second |")
    print("|---|---|---|---|")
    for engine, replicas, per_minute, per_second in rows:
        print(f"| {engine} | {replicas} | {per_minute:,.0f} | {per_second:,.1f} |")


if __name__ == "__main__":
    main()

"""Two and three replicas against one PostgreSQL database and 200 loopback feeds.

The replicas are in-process Service/App instances with distinct replica ids, each with its
own engine, sharing the clock the test steps: every replica's timer "fires" for every
source in every interval (all at once, then again a moment later), and the database
decides who fetches. A real feed server counts the fetches; a real webhook receiver checks
every signature with ``standardwebhooks``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from monitor.app import open_app
from monitor.config import load_config
from monitor.scheduler import Service
from tests.support.fakes import Clock
from tests.support.feed_server import FeedServer
from tests.support.feeds import Entry, rss
from tests.support.replicas import feed_path, replicas_config
from tests.support.webhook_receiver import WEBHOOK_SECRET, WebhookReceiver

pytestmark = pytest.mark.anyio

SOURCES = 200
EVERY = timedelta(minutes=15)


def _config(tmp_path: Path, db: str, feeds: FeedServer, hook: WebhookReceiver) -> Path:
    path = tmp_path / "sources.toml"
    path.write_text(replicas_config(db, feeds, hook.url, SOURCES, notifier='timeout = "10s"'))
    return path


def _serve(feeds: FeedServer, version: int) -> None:
    """Version 1: one dull item per feed. Version 2: plus one match in every other feed."""
    for n in range(SOURCES):
        entries = [Entry(f"s{n}-a", f"Tender {n} for office chairs")]
        if version >= 2 and n % 2 == 0:
            entries.append(Entry(f"s{n}-b", f"Clearview AI contract {n}"))
        feeds.serve(feed_path(n), rss(*entries, title=f"feed {n}"))


@asynccontextmanager
async def _replicas(path: Path, count: int, clock: Clock) -> AsyncIterator[list[Service]]:
    config = load_config(path, {"SECRET": WEBHOOK_SECRET})
    async with AsyncExitStack() as stack:
        apps = [
            await stack.enter_async_context(open_app(config, clock=clock, replica_id=f"r{n}"))
            for n in range(1, count + 1)
        ]
        yield [Service(app) for app in apps]


async def _fire_every_timer(replicas: list[Service], clock: Clock) -> None:
    """Every replica's timer fires for every source at once, then again 10s later
    (timers of other replicas, jitter): only the first claim of each source may fetch.
    (Less than the 30s delivery claim: the deliveries these runs start are in flight.)"""
    names = list(replicas[0].app.sources)
    gate = asyncio.Semaphore(10)  # the feed server's listen backlog is small

    async def fire(service: Service, name: str) -> None:
        async with gate:
            await service._source(name)

    size = len(replicas)
    for offset in (0, 10):
        clock.advance(timedelta(seconds=offset))
        # Interleaved, the replicas' order rotating per source: any of them may win.
        await asyncio.gather(
            *(
                fire(replicas[(index + k) % size], name)
                for index, name in enumerate(names)
                for k in range(size)
            )
        )


def _fetches(feeds: FeedServer, since: int) -> Counter[str]:
    return Counter(request.path for request in feeds.requests[since:])


@pytest.mark.parametrize("count", [2, 3])
async def test_replicas_fetch_each_source_once_per_interval_and_deliver_each_alert_once(
    count: int, pg_url: str, tmp_path: Path, webhook_receiver: WebhookReceiver
) -> None:
    # Deliveries are signed with the clock's time, and the receiver checks it against the
    # real one: the second interval (the one that queues alerts and sends them) is now.
    start = datetime.now(UTC).replace(microsecond=0) - EVERY
    clock = Clock(start)
    with FeedServer() as feeds:
        path = _config(tmp_path, pg_url, feeds, webhook_receiver)
        _serve(feeds, 1)
        async with _replicas(path, count, clock) as replicas:
            seen = 0
            for interval in range(2):
                clock.now = start + interval * EVERY
                if interval == 1:
                    _serve(feeds, 2)  # 100 feeds gain a matching item
                await _fire_every_timer(replicas, clock)
                fetched = _fetches(feeds, seen)
                seen = len(feeds.requests)
                assert len(fetched) == SOURCES, f"interval {interval}: sources not fetched"
                assert set(fetched.values()) == {1}, f"interval {interval}: fetched twice"
            # Every replica did part of the work.
            holders = replicas[0].app.store.last_holders()
            assert len(holders) == SOURCES and set(holders.values()) == {
                f"r{n}" for n in range(1, count + 1)
            }
            # A run that queued alerts woke its replica's delivery; then every replica's
            # delivery timer fires as well.
            await asyncio.gather(*(t for r in replicas for t in r.tasks.values()))
            await asyncio.gather(*(r._deliver("newsroom") for r in replicas))
            store = replicas[0].app.store
            counts = store.alert_counts()
            assert counts == {("newsroom", "delivered"): SOURCES // 2}
            assert store.leases(clock()) == []
    assert webhook_receiver.rejected == []
    ids = webhook_receiver.ids()
    assert len(ids) == SOURCES // 2 and len(set(ids)) == len(ids)  # 0 duplicates
    titles = sorted(d.payload["data"]["item"]["title"] for d in webhook_receiver.deliveries)
    assert titles == sorted(f"Clearview AI contract {n}" for n in range(0, SOURCES, 2))
